"""cl_research: center loss (Wen et al., ECCV 2016) and its ablations in JAX/Flax."""

import logging


def setup_logging(tag=''):
  """INFO logs of the project's modules on stderr; `tag` marks a local process's lines."""
  prefix = f' [{tag}]' if tag else ''
  logging.basicConfig(format=f'%(levelname)s %(name)s{prefix}: %(message)s')
  logging.getLogger('cl_research').setLevel(logging.INFO)
