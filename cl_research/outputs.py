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

from cl_research import configs
from cl_research import data
from cl_research import files
from cl_research import plots


RESULT_METRICS = ('train_accuracy', 'train_intra', 'train_inter', 'train_intra_inter',
                  'test_accuracy', 'test_intra', 'test_inter', 'test_intra_inter',
                  'test_knn_accuracy', 'test_silhouette', 'verification_accuracy',
                  'verification_accuracy_std', 'verification_auc',
                  'verification_tar_at_far_1e-2', 'verification_tar_at_far_1e-3',
                  'verification_accuracy_l2')
SUMMARY_COLUMNS = (('name', 'status', 'diverged_step', 'diverged_quantity', 'lam', 'alpha',
                    'feature_size', 'seed', 'data_source', 'data_detail', 'num_train',
                    'num_test', 'num_steps') + RESULT_METRICS +
                   ('final_loss', 'final_softmax_loss', 'final_center_loss', 'clip_fraction',
                    'mean_grad_norm', 'max_grad_norm', 'wall_s'))
FINISHED = ('complete', 'diverged')


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
  """The files of the run called `name` (`configs.run_name`)."""
  return RunPaths(os.path.join(workdir, 'runs', name))


def checkpoint_dir(workdir, group_name):
  """The folder of a group's orbax checkpoints."""
  return os.path.join(workdir, 'checkpoints', group_name)


def workdir_file(workdir, name):
  """A file at the top of a workdir: config.json, metadata.json, summary.csv, grid.png,
  figN.png."""
  return os.path.join(workdir, name)


def cell_label(result):
  """Short description of a run's outcome for plot titles."""
  if result['status'] == 'diverged':
    return f"DIVERGED ({result['diverged_quantity']} at step {result['diverged_step']})"
  ratio = result['test_intra_inter']  # None when every class mean is the same point
  ratio = 'undefined (features collapsed)' if ratio is None else f'{ratio:.3g}'
  return f"test acc {result['test_accuracy']:.3f}, intra/inter {ratio}"


def run_title(dataset, point, result):
  """The title of a run's plots: the data, the run's point and its outcome."""
  return f'{dataset.title}\n{configs.describe_point(point)}: {cell_label(result)}'



class RunLog:
  """One run's metrics.jsonl, appended as training goes; truncated to a resumed step."""

  def __init__(self, path, resume_step):
    kept = []
    if resume_step and os.path.exists(path):
      with open(path) as f:
        kept = [line for line in f if json.loads(line)['step'] <= resume_step]
    files.write_text(path, ''.join(kept))
    self.file = open(path, 'a')  # pylint: disable=consider-using-with
    self.last = {}

  def write(self, step, values):
    self.last = values
    self.file.write(json.dumps(files.json_safe({'step': step, **values})) + '\n')
    self.file.flush()

  def close(self):
    self.file.close()


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


def write_summary(path, results):
  out = io.StringIO()
  writer = csv.DictWriter(out, fieldnames=SUMMARY_COLUMNS, extrasaction='ignore', restval='')
  writer.writeheader()
  for r in results:
    writer.writerow(r)
  files.write_text(path, out.getvalue())


def write_grids(workdir, config, dataset, results, features_by_name):
  """One grid per (alpha, seed) of `config.sweep`: `grid.png` for the first, suffixed
  names for the others; each says which seed it shows."""
  lams, dims = tuple(config.sweep.lam), tuple(config.sweep.feature_size)
  alphas = [None] if config.centers.mode == 'gradient' else list(config.sweep.alpha)
  paths = []
  for k, (alpha, seed) in enumerate((a, s) for a in alphas for s in config.sweep.seed):
    cells = {(r['feature_size'], r['lam']): {
        'features': features_by_name[r['name']] if r['status'] == 'complete' else None,
        'label': cell_label(r)} for r in results if r['alpha'] == alpha and r['seed'] == seed}
    point = configs.describe_point({'alpha': alpha, 'seed': seed})
    name = 'grid.png' if k == 0 else f"grid_{point.replace(', ', '_')}.png"
    title = f'{dataset.title}\ntest features, {point}, {config.num_steps} steps'
    plots.plot_grid(cells, dims, lams, title, data.class_names(dataset.name),
                    workdir_file(workdir, name))
    paths.append(name)
  return paths


def format_table(results):
  cols = ('lam', 'alpha', 'feature_size', 'seed', 'status', 'test_accuracy',
          'test_intra_inter', 'wall_s')
  head = ' '.join(f'{c:>16}' for c in cols)
  rows = [' '.join(f'{r[c]:>16.4g}' if isinstance(r[c], float) else f'{r[c]!s:>16}'
                   for c in cols) for r in results]
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
