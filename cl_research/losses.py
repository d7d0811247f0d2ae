"""The public loss API: `cl_research.losses` is `cl_research.core.losses`.

Import the heads, regularizers and `objective` from here in your own training loop;
see the README's "Your own loop".
"""

from cl_research.core.losses import *  # noqa: F401,F403  pylint: disable=wildcard-import,unused-wildcard-import
from cl_research.core.losses import __all__  # noqa: F401
