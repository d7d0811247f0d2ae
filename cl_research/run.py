"""`python -m cl_research.run --config NAME[:ARG] [--config.FIELD=VALUE ...]`: the
command line (`cl_research.launch.cli`)."""

import sys

from cl_research.launch import cli

if __name__ == '__main__':
  sys.exit(cli.main())
