"""Command line: `python -m cl_research.run --config sweep [--config.field=value ...]`.

`--config` takes an experiment name (`experiments/NAME.py`) or a path, optionally with
`:arg` (e.g. `sweep:smoke`). Overrides are checked against the locked config, so a
misspelt field is an error. Bad input exits with code 2 and one line on stderr, before
any training and before anything is written.
"""

import logging
import os
import sys

from absl import flags
from ml_collections import config_flags

from cl_research import configs
from cl_research import data
from cl_research import experiment
from cl_research import outputs
from cl_research import parallel


EXPERIMENTS_DIRS = (os.path.join(os.getcwd(), 'experiments'),
                    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                 'experiments'))


class UsageError(ValueError):
  pass


def available_experiments():
  return sorted({f[:-3] for d in EXPERIMENTS_DIRS if os.path.isdir(d)
                 for f in os.listdir(d) if f.endswith('.py') and not f.startswith('_')})


def resolve_config_path(spec):
  """'sweep:smoke' -> ('/.../experiments/sweep.py:smoke', 'sweep_smoke')."""
  path, _, arg = spec.partition(':')
  if not path.endswith('.py'):
    found = [os.path.join(d, path + '.py') for d in EXPERIMENTS_DIRS
             if os.path.isfile(os.path.join(d, path + '.py'))]
    if not found:
      raise UsageError(f'unknown config {path!r}; available: '
                       f'{", ".join(available_experiments())} (or a path to a .py file)')
    path = found[0]
  elif not os.path.isfile(path):
    raise UsageError(f'config file {path!r} does not exist')
  stem = os.path.splitext(os.path.basename(path))[0]
  name = '_'.join([stem] + [t for t in arg.split(',') if t])
  return path + (f':{arg}' if arg else ''), name


def rewrite_config_arg(argv):
  """Replaces the `--config` value by a resolved path; returns (argv, config name)."""
  argv, name = list(argv), None
  for i, a in enumerate(argv):
    if a == '--config' and i + 1 < len(argv):
      argv[i + 1], name = resolve_config_path(argv[i + 1])
    elif a.startswith('--config='):
      resolved, name = resolve_config_path(a[len('--config='):])
      argv[i] = '--config=' + resolved
  if name is None:
    raise UsageError(f'--config is required; available: {", ".join(available_experiments())}')
  return argv, name


def parse(argv):
  """Parses argv into (config, workdir); raises UsageError/ConfigError on bad input."""
  argv, name = rewrite_config_arg(argv)
  fv = flags.FlagValues()
  config_flag = config_flags.DEFINE_config_file('config', None, 'experiment config',
                                                lock_config=True, flag_values=fv,
                                                sys_argv=argv)
  flags.DEFINE_string('workdir', None, 'output folder (default runs/<config name>)',
                      flag_values=fv)
  flags.DEFINE_bool('new_workdir', False, 'if the workdir holds another config, write to '
                    'WORKDIR-2 (-3, ...) instead of refusing', flag_values=fv)
  try:
    fv(argv)
  except configs.ConfigError:
    raise
  except (KeyError, AttributeError) as e:
    overrides = [a.split('=')[0] for a in argv if a.startswith('--config.')]
    detail = ' '.join(str(e).replace('\\n', ' ').replace('\\', '').strip('\'"').split())
    raise UsageError(f'unknown config field in {" ".join(overrides)} ({detail})') from None
  except (flags.Error, TypeError, ValueError) as e:
    raise UsageError(' '.join(str(e).split()) or type(e).__name__) from None
  workdir = fv.workdir or os.path.join('runs', name)
  return config_flag.value, workdir, fv.new_workdir


def main(argv=None):
  argv = sys.argv if argv is None else argv
  logging.basicConfig(format='%(levelname)s %(name)s: %(message)s')
  logging.getLogger('cl_research').setLevel(logging.INFO)
  try:
    config, workdir, new_workdir = parse(argv)
    configs.validate(config)
    workdir = outputs.resolve_workdir(config, workdir, new_workdir)
    dataset = data.load(config.data)
  except (UsageError, configs.ConfigError, data.DataError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  try:
    results = experiment.train_and_evaluate(config, workdir, dataset=dataset)
  except parallel.LocalProcessError as e:
    print(f'error: {e}; finished runs are kept and the same command trains the rest',
          file=sys.stderr)
    return 1
  print(outputs.format_table(results))
  print(f'outputs: {os.path.abspath(workdir)} (summary.csv, grid.png, runs/)')
  return 0


if __name__ == '__main__':
  sys.exit(main())
