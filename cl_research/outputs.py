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
                  'verification_tar_at_far_1e-3', 'verification_accuracy_l2')
SUMMARY_COLUMNS = (('name', 'status', 'diverged_step', 'diverged_quantity', 'lam', 'alpha',
                    'feature_size', 'seed', 'data_source', 'data_detail', 'num_train',
                    'num_test', 'num_steps') + RESULT_METRICS +
                   ('final_loss', 'final_softmax_loss', 'final_center_loss', 'wall_s'))
FINISHED = ('complete', 'diverged')


def cell_label(result):
  """Short description of a run's outcome for plot titles."""
  if result['status'] == 'diverged':
    return f"DIVERGED ({result['diverged_quantity']} at step {result['diverged_step']})"
  return f"test acc {result['test_accuracy']:.3f}, intra/inter {result['test_intra_inter']:.3g}"


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


def finished_result(run_dir):
  """The result.json of a finished run, or None."""
  result = files.read_json(os.path.join(run_dir, 'result.json'))
  return result if result and result.get('status') in FINISHED else None


def load_run(run_dir):
  """(result, features) of a finished run on disk, or (None, None)."""
  result = finished_result(run_dir)
  if result is None:
    return None, None
  with np.load(os.path.join(run_dir, 'features.npz')) as f:
    return result, dict(f)


def write_summary(path, results):
  out = io.StringIO()
  writer = csv.DictWriter(out, fieldnames=SUMMARY_COLUMNS, extrasaction='ignore', restval='')
  writer.writeheader()
  for r in results:
    writer.writerow(r)
  files.write_text(path, out.getvalue())


def write_grids(workdir, config, dataset, results, features_by_name):
  """One grid per (alpha, seed): `grid.png` for the first, suffixed names for others."""
  lams, dims = tuple(config.sweep.lam), tuple(config.sweep.feature_size)
  paths = []
  for k, (alpha, seed) in enumerate((a, s) for a in config.sweep.alpha
                                    for s in config.sweep.seed):
    cells = {(r['feature_size'], r['lam']): {
        'features': features_by_name[r['name']] if r['status'] == 'complete' else None,
        'label': cell_label(r)} for r in results if r['alpha'] == alpha and r['seed'] == seed}
    name = 'grid.png' if k == 0 else f'grid_alpha={alpha:g}_seed={seed}.png'
    title = (f'{dataset.title}: test features, alpha={alpha:g}, seed={seed}, '
             f'{config.num_steps} steps')
    plots.plot_grid(cells, dims, lams, title, data.class_names(dataset.name),
                    os.path.join(workdir, name))
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
  old = files.read_json(os.path.join(workdir, 'config.json'))
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
  path = os.path.join(workdir, 'config.json')
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
