"""What a sweep writes under its workdir, how it reads finished runs back, and when it
refuses a workdir. Every file is written atomically (`cl_research.files`).

Workdir layout:
  config.json            the resolved config (a rerun with a different one is refused)
  metadata.json          package versions, backend, devices, git commit, data provenance
  summary.csv            one row per run
  grid.png               test features, rows = feature size, columns = lambda
  fig2/3/5.png           the paper figure named by `config.figure`, if any
  runs/<name>/           metrics.jsonl, result.json, features.npz, scatter.png,
                         intra_hist.png, evolution.gif (with `snapshot_every`)
  checkpoints/<group>/   orbax checkpoints of a group's train states (`checkpoint_every`)
"""

import csv
import dataclasses
import io
import json
import os

import numpy as np
import tensorboardX

from cl_research import configs
from cl_research import files
from cl_research.configs import sweeps
from cl_research.core import heads
from cl_research.core import regularizers
from cl_research.evaluation import statistics as analysis
from cl_research.outputs import plots

RUN_COLUMNS = ('name', 'status', 'diverged_step', 'diverged_quantity')
LOSS_COLUMNS = ('final_loss', 'final_softmax_loss', 'final_regularizer_loss')


def summary_columns(described, metric_keys, trained):
  """summary.csv's columns, for every task: the run and its status, the swept values,
  what the task says of its data and model (`described`), the steps and precision, the
  evaluators' `metric_keys` (`evaluation.evaluators.metric_keys`), the last losses, what
  the task records of training (`trained`) and the wall time."""
  return (RUN_COLUMNS + sweeps.SWEEP_AXES + tuple(described) + ('num_steps', 'dtype') +
          metric_columns(metric_keys, trained))


def metric_columns(metric_keys, trained):
  """The numbers of summary.csv that summary_by_setting.csv and comparisons.csv
  aggregate."""
  return tuple(metric_keys) + LOSS_COLUMNS + tuple(trained) + ('wall_s',)


FINISHED = ('complete', 'diverged')
SETTING_AXES = tuple(a for a in sweeps.SWEEP_AXES if a != 'seed')


@dataclasses.dataclass(frozen=True)
class RunPaths:
  """The files of one run, under `<workdir>/runs/<name>/`."""
  folder: str

  def _file(self, name):
    return os.path.join(self.folder, name)

  def create(self):
    os.makedirs(self.folder, exist_ok=True)
    return self

  result = property(lambda self: self._file('result.json'))
  metrics = property(lambda self: self._file('metrics.jsonl'))
  features = property(lambda self: self._file('features.npz'))
  scatter = property(lambda self: self._file('scatter.png'))
  intra_hist = property(lambda self: self._file('intra_hist.png'))
  evolution = property(lambda self: self._file('evolution.gif'))
  snapshots = property(lambda self: self._file('snapshots.npz'))  # evolution frames so far


def run_paths(workdir, name):
  """The files of the run called `name` (`sweeps.run_name`)."""
  return RunPaths(os.path.join(workdir, 'runs', name))


def checkpoint_dir(workdir, group_name):
  """The folder of a group's orbax checkpoints."""
  return os.path.join(workdir, 'checkpoints', group_name)


def workdir_file(workdir, name):
  """A file at the top of a workdir: config.json, metadata.json, summary.csv, grid.png,
  figN.png."""
  return os.path.join(workdir, name)


def cell_label(result, angular=False):
  """Short description of a run's outcome for plot titles (with `angular`, the
  intra/inter of the features' directions)."""
  if result['status'] == 'diverged':
    return f"DIVERGED ({result['diverged_quantity']} at step {result['diverged_step']})"
  ratio = result['test_angular_intra_inter' if angular else 'test_intra_inter']
  ratio = 'undefined (features collapsed)' if ratio is None else f'{ratio:.3g}'
  return f"test acc {result['test_accuracy']:.3f}, {'angular ' * angular}intra/inter {ratio}"


def shown_features(result, features_by_name):
  """A run's features for its plots, without centers where its regularizer has none
  (they never move), None for a run that did not complete. A regularizer this process
  has not registered (read from another's workdir) keeps its centers."""
  if result['status'] != 'complete':
    return None
  features = features_by_name[result['name']]
  known = regularizers.REGULARIZERS.get(result.get('regularizer', 'center'))
  if known is None or known.uses_centers:
    return features
  return {**features, 'centers': None}


def run_title(dataset, point, result):
  """The title of a run's plots: the data, the run's point and its outcome."""
  return f'{dataset.title}\n{sweeps.describe_point(point)}: {cell_label(result)}'


class RunLog:
  """One run's metrics.jsonl, appended as training goes and truncated to a resumed step,
  and, with `events`, the same scalars as TensorBoard event files in the run's folder
  (tensorboardX: no TensorFlow; a resume purges the events past its step, so
  `tensorboard --logdir <workdir>` shows one curve per run)."""

  def __init__(self, path, resume_step, events=True):
    kept = []
    if resume_step and os.path.exists(path):
      with open(path) as f:
        kept = [line for line in f if json.loads(line)['step'] <= resume_step]
    files.write_text(path, ''.join(kept))
    self.file = open(path, 'a')  # pylint: disable=consider-using-with
    self.last = {}
    self.events = None
    if events:
      self.events = tensorboardX.SummaryWriter(os.path.dirname(path), flush_secs=30,
                                               purge_step=resume_step + 1 if resume_step
                                               else None)

  def write(self, step, values):
    self.last = values
    self.file.write(json.dumps(files.json_safe({'step': step, **values})) + '\n')
    self.file.flush()
    if self.events:
      for key, value in values.items():
        if isinstance(value, (int, float, np.number)) and np.isfinite(value):
          self.events.add_scalar(key, float(value), step)

  def image(self, step, tag, rgb_HxWx3):
    if self.events:
      self.events.add_image(tag, rgb_HxWx3, step, dataformats='HWC')

  def close(self):
    self.file.close()
    if self.events:
      self.events.close()


def finished_result(paths):
  """The result.json of a finished run (`RunPaths`), or None."""
  result = files.read_json(paths.result)
  return result if result and result.get('status') in FINISHED else None


def load_run(paths):
  """(result, features) of a finished run (`RunPaths`) on disk, or (None, None)."""
  result = finished_result(paths)
  if result is None:
    return None, None
  with np.load(paths.features) as f:
    return result, dict(f)


def write_csv(path, columns, rows):
  """`rows` (dicts) as CSV with `columns`; missing values and None are empty cells, a
  tuple of classes is '6,7,8,9'."""
  out = io.StringIO()
  writer = csv.DictWriter(out, fieldnames=columns, extrasaction='ignore', restval='')
  writer.writeheader()
  for r in rows:
    writer.writerow({k: ','.join(map(str, v)) if isinstance(v, (list, tuple)) else v
                     for k, v in files.json_safe(r).items()})
  files.write_text(path, out.getvalue())


def read_csv(path):
  """The rows of a CSV file `write_csv` wrote, as dicts of text."""
  with open(path) as f:
    return list(csv.DictReader(f))


def elapsed_minutes(workdir):
  """Minutes from a workdir's config.json to its summary.csv: training, evaluation and
  the runs' plots."""
  return (os.path.getmtime(workdir_file(workdir, 'summary.csv')) -
          os.path.getmtime(workdir_file(workdir, 'config.json'))) / 60


def write_summary(path, results, columns):
  write_csv(path, columns, results)


def write_seed_statistics(workdir, config, results, metrics):
  """With more than one seed: `summary_by_setting.csv` (each setting's mean, std and 95%
  interval over seeds of each of `metrics`) and `comparisons.csv` (each setting against
  its baselines, `analysis.baseline`, paired by seed, with the verdicts of
  `evaluation.statistics`: Holm over `analysis.family`, TOST at `analysis.margins`).
  Returns the files written."""
  if len({r['seed'] for r in results}) < 2:
    return []
  rows = analysis.by_setting(results, SETTING_AXES, metrics)
  columns = list(SETTING_AXES) + ['n', 'diverged'] + [
      f'{m}_{s}' for m in metrics for s in ('mean', 'std', 'ci95_low', 'ci95_high')]
  write_csv(workdir_file(workdir, 'summary_by_setting.csv'), columns, rows)
  compared = [row for baseline in config.analysis.baseline for row in analysis.comparisons(
      results, SETTING_AXES, metrics, baseline, label=sweeps.describe_point,
      resolve=lambda p: sweeps.resolve(config, p), margins=dict(config.analysis.margins))]
  analysis.adjust(compared, tuple(config.analysis.family))
  write_csv(workdir_file(workdir, 'comparisons.csv'), analysis.COMPARISON_COLUMNS, compared)
  return ['summary_by_setting.csv', 'comparisons.csv']


def write_grids(workdir, config, dataset, results, features_by_name):
  """One grid along `config.grid` per combination of the sweep's other values, for the
  first seed only: `grid.png` for the first, suffixed names for the others, each saying
  what it holds; with an angular head, the same of the features' directions
  (`grid_directions*.png`)."""
  by_name = {r['name']: r for r in results}
  first_seed = config.sweep.seed[0]
  paths = []
  combos = [c for c in sweeps.grids(config) if c[0].get('seed', first_seed) == first_seed]
  for k, (fixed, rows, cols, names) in enumerate(combos):
    runs = {ij: by_name[n] for ij, n in names.items() if n in by_name}
    cells = {ij: {'features': shown_features(r, features_by_name), 'label': cell_label(r)}
             for ij, r in runs.items()}
    suffix = '' if k == 0 else '_' + sweeps.file_safe(sweeps.describe_point(fixed))
    common = {a: v for a, v in fixed.items()  # what every panel's run has
              if all(analysis.setting_of(r, (a,)) == (v,) for r in runs.values())}
    title = (f'{dataset.title}\ntest features, {sweeps.describe_point(common)}, '
             f'{config.num_steps} steps')
    row_key, col_key = config.grid
    labels = ([sweeps.axis_label(row_key, v) for v in rows],
              [sweeps.axis_label(col_key, v) for v in cols])
    angular = any(r['head'] in heads.HEADS and heads.is_angular(r['head'])
                  for r in runs.values())
    for directions in (False, True) if angular else (False,):
      if directions:
        cells = {ij: {**c, 'label': cell_label(runs[ij], angular=True)} for ij, c in cells.items()}
      name = f"grid{'_directions' if directions else ''}{suffix}.png"
      plots.plot_grid(cells, *labels, title.replace('features', 'feature directions')
                      if directions else title, dataset.class_names,
                      workdir_file(workdir, name), directions=directions)
      paths.append(name)
  return paths


def format_table(results, columns):
  """The summary printed at the end of a command: one line per run, the swept values
  that vary and the task's `columns`."""
  cols = ['lam', 'alpha', 'feature_size', 'seed']
  cols += [c for c in ('head', 'regularizer', 'scale', 'margin')
           if any(r.get(c) not in (None, sweeps.DEFAULT_LOSS.get(c)) for r in results)]
  cols += list(columns)
  head = ' '.join(f'{c:>16}' for c in cols)
  rows = [' '.join(f'{r.get(c):>16.4g}' if isinstance(r.get(c), float) else
                   f'{r.get(c)!s:>16}' for c in cols) for r in results]
  return '\n'.join([head] + rows)


def config_conflict(config, workdir):
  """None, or what differs between `config` and the one stored in `workdir`."""
  old = files.read_json(workdir_file(workdir, 'config.json'))
  new = json.loads(config.to_json_best_effort())
  return None if old is None or old == new else configs.json_diff(old, new)


def resolve_workdir(config, workdir, new_workdir=False):
  """`workdir`, or with `new_workdir` the first of `workdir-2`, `-3`... that is free or
  holds this config; raises ConfigError if `workdir` holds another config."""
  if not new_workdir:
    prepare_workdir(config, workdir, dry_run=True)
    return workdir
  candidate, k = workdir, 1
  while config_conflict(config, candidate):
    k += 1
    candidate = f'{workdir}-{k}'
  return candidate


def prepare_workdir(config, workdir, dry_run=False):
  """Creates the workdir and its config.json; refuses one that holds another config."""
  path = workdir_file(workdir, 'config.json')
  conflict = config_conflict(config, workdir)
  if conflict:
    raise configs.ConfigError(
        f'workdir {workdir!r} holds runs of a different config ({conflict}); use another '
        '--workdir, or --new_workdir to get a fresh one')
  if dry_run:
    return
  os.makedirs(workdir, exist_ok=True)
  if not os.path.exists(path):
    files.write_text(path, config.to_json_best_effort(indent=2) + '\n')
