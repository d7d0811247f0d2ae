"""`train_and_evaluate(config, workdir)`: every run of a sweep, its outputs and summary.

The CLI (`cl_research.run`), the tests and the notebooks all call this one function.
Runs that share shapes and seed train together as a group (`cl_research.train`); groups
are dealt out over processes; every file is written atomically; a rerun on the same
workdir skips finished runs and resumes interrupted groups from their last checkpoint.

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
import hashlib
import io
import json
import logging
import os
import time

import jax
import numpy as np
import tqdm

from cl_research import checkpoints
from cl_research import configs
from cl_research import data
from cl_research import figures
from cl_research import files
from cl_research import metrics
from cl_research import parallel
from cl_research import plots
from cl_research import provenance
from cl_research import train
from cl_research import verification

log = logging.getLogger(__name__)

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


def evaluate(trainer, state, dataset, eval_config):
  """Final features of both splits and every metric computed from them.

  With held-out classes, accuracy, k-NN and clustering use the classes seen in training
  and verification pairs come only from the held-out ones (open-set).
  Returns (None, features) when the features are not finite.
  """
  features, logits = {'centers': np.asarray(state.centers)}, {}
  for split in ('train', 'test'):
    images = getattr(dataset, f'{split}_images')
    features[f'{split}_features'], logits[split] = trainer.features_and_logits(state.params,
                                                                              images)
    features[f'{split}_labels'] = getattr(dataset, f'{split}_labels')
  if not all(np.isfinite(features[k]).all()
             for k in ('train_features', 'test_features', 'centers')):
    return None, features
  result = {}
  known = ~np.isin(features['test_labels'], dataset.holdout_classes)
  for split, mask in (('train', slice(None)), ('test', known)):
    feats, labels = features[f'{split}_features'][mask], features[f'{split}_labels'][mask]
    result[f'{split}_accuracy'] = metrics.accuracy(logits[split][mask], labels)
    for key, value in metrics.clustering(feats, labels, dataset.num_classes).items():
      result[f'{split}_{key}'] = value
  result['test_knn_accuracy'] = metrics.knn_accuracy(
      features['train_features'], features['train_labels'], features['test_features'][known],
      features['test_labels'][known], k=eval_config.knn_k)
  result['test_silhouette'] = metrics.silhouette(
      features['test_features'][known], features['test_labels'][known],
      eval_config.silhouette_samples)
  if eval_config.verification_pairs:
    result.update(verification.evaluate(
        features['test_features'], features['test_labels'], eval_config.verification_pairs,
        seed=eval_config.pairs_seed, classes=dataset.holdout_classes or None))
  return result, features


def group_points(points, max_size=0):
  """Runs that can train together: same feature size and seed, in sweep order."""
  groups = {}
  for p in points:
    groups.setdefault((p['feature_size'], p['seed']), []).append(p)
  size = parallel.max_group_size(max_size) or len(points)
  return [g[i:i + size] for g in groups.values() for i in range(0, len(g), size)]


def group_id(points):
  names = '|'.join(configs.run_name(p) for p in points)
  head = points[0]
  return (f"d={head['feature_size']}_seed={head['seed']}_"
          f"{hashlib.sha1(names.encode()).hexdigest()[:10]}")


def chunk_ends(config):
  """Steps where a compiled chunk ends: logging, snapshots, checkpoints and the last."""
  ends = {config.num_steps}
  for every in (config.log_every, config.snapshot_every, config.checkpoint_every):
    if every:
      ends.update(range(every, config.num_steps, every))
  return sorted(ends)


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


def due(step, every, num_steps):
  """Whether something done every `every` steps (0: never) happens after `step`; the
  last step always counts."""
  return bool(every) and (step % every == 0 or step == num_steps)


def snapshot_indices(dataset):
  """The fixed test subset drawn in evolution GIFs."""
  return plots.subsample(len(dataset.test_labels), 2000)


def _snapshot_features(trainer, state, images):
  features, _ = trainer.features_and_logits(state.params, images)
  return features, np.asarray(state.centers)


def train_group(trainer, dataset, config, points, workdir, progress):
  """Trains the runs of one group together (resuming from a checkpoint if one exists).

  Returns the final states (member axis first, padding included), each run's last
  logged metrics, each run's evolution snapshots (or None) and the wall time per run.
  """
  start = time.perf_counter()
  names = [configs.run_name(p) for p in points]
  run_dirs = [os.path.join(workdir, 'runs', n) for n in names]
  for d in run_dirs:
    os.makedirs(d, exist_ok=True)
  shards = parallel.model_shards(trainer.mesh)
  padded = points + [points[0]] * ((-len(points)) % shards)  # equal slices per device
  seed = points[0]['seed']
  states = trainer.init_group([p['seed'] for p in padded])
  hparams = train.stack([trainer.hparams(p['lam'], p['alpha']) for p in padded])
  ckpt = checkpoints.GroupCheckpoints(os.path.join(workdir, 'checkpoints', group_id(points)))
  step, states, snapshots = ckpt.restore(states, names, run_dirs, len(points))
  if step:
    log.info('group %s: resumed at step %d', group_id(points), step)
  logs = [RunLog(os.path.join(d, 'metrics.jsonl'), step) for d in run_dirs]
  snap_images = dataset.test_images[snapshot_indices(dataset)]
  if config.snapshot_every and snapshots is None:  # a fresh start, or snapshots lost
    snapshots = [[(step, *_snapshot_features(trainer, train.member(states, i), snap_images))]
                 for i in range(len(points))]
  data_on_device = trainer.device_data(dataset.train_images, dataset.train_labels, seed)
  progress.update(step * len(points))
  for end in (e for e in chunk_ends(config) if e > step):
    states, chunk_metrics = trainer.train_chunk(states, hparams, data_on_device, step,
                                                end - step)
    chunk_metrics = jax.device_get(chunk_metrics)
    diverged_at = np.asarray(jax.device_get(states.diverged_at))
    for t in range(end - step):
      s = step + t + 1
      if not due(s, config.log_every, config.num_steps):
        continue
      for i, run_log in enumerate(logs):
        if not diverged_at[i] or s <= diverged_at[i]:
          run_log.write(s, {k: float(v[t, i]) for k, v in chunk_metrics.items()})
    progress.update((end - step) * len(points))
    step = end
    if due(step, config.snapshot_every, config.num_steps):
      for i in range(len(points)):
        snapshots[i].append((step, *_snapshot_features(trainer, train.member(states, i),
                                                        snap_images)))
    if diverged_at[:len(points)].all():
      log.warning('group %s: every run diverged; stopping at step %d', group_id(points), step)
      progress.update((config.num_steps - step) * len(points))
      break
    if due(step, config.checkpoint_every, config.num_steps):
      ckpt.save(step, states, names, len(points), snapshots, run_dirs)
  for run_log in logs:
    run_log.close()
  wall_s = time.perf_counter() - start
  return states, [run_log.last for run_log in logs], snapshots, wall_s / len(points)


def write_run(trainer, dataset, config, point, state, last, snapshots, wall_s, run_dir,
              meta):
  """Evaluates one trained run and writes its features, plots and (last) result.json."""
  start = time.perf_counter()
  diverged_at = int(state.diverged_at)
  quantity = train.DIVERGED_QUANTITIES[int(state.diverged_what)]
  result, features = evaluate(trainer, state, dataset, config.eval)
  if result is None and not diverged_at:  # finite training, non-finite evaluation
    diverged_at, quantity = config.num_steps, 'features'
  if diverged_at:  # the numbers of a diverged run mean nothing: record none of them
    log.warning('run %s diverged: %s non-finite at step %d', configs.run_name(point),
                quantity, diverged_at)
    result = dict.fromkeys(RESULT_METRICS)
  result = {
      'name': configs.run_name(point), **point,
      'status': 'diverged' if diverged_at else 'complete',
      'diverged_step': diverged_at or None, 'diverged_quantity': quantity or None,
      'center_mode': config.centers.mode, 'data_source': dataset.source,
      'data_detail': dataset.detail, 'num_train': len(dataset.train_labels),
      'num_test': len(dataset.test_labels), 'num_steps': config.num_steps,
      **result, 'final_loss': last.get('loss'),
      'final_softmax_loss': last.get('softmax_loss'),
      'final_center_loss': last.get('center_loss'),
  }
  files.savez(os.path.join(run_dir, 'features.npz'), **features)
  title = (f"{dataset.title}  lambda={point['lam']:g} alpha={point['alpha']:g} "
           f"d={point['feature_size']}  " + cell_label(result))
  names = data.class_names(dataset.name)
  plots.plot_run(None if diverged_at else features, title, names,
                 os.path.join(run_dir, 'scatter.png'), config.plot_max_points)
  if not diverged_at:
    distances = metrics.intra_class_distances(features['test_features'],
                                              features['test_labels'], dataset.num_classes)
    plots.plot_intra_histogram(distances, features['test_labels'], names,
                               f'test intra-class distances, {title}',
                               os.path.join(run_dir, 'intra_hist.png'))
  if snapshots:
    snap_labels = dataset.test_labels[snapshot_indices(dataset)]
    plots.write_evolution_gif(snapshots, snap_labels, names, f"lambda={point['lam']:g}",
                              os.path.join(run_dir, 'evolution.gif'))
  result['wall_s'] = round(wall_s + time.perf_counter() - start, 2)
  result['metadata'] = meta
  files.write_json(os.path.join(run_dir, 'result.json'), result)
  return result


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


def train_groups(config, workdir, dataset, groups, meta, show_progress=True, label=''):
  """Trains and writes every run of `groups` in this process, one group after another."""
  trainers = {}
  progress = tqdm.tqdm(total=sum(len(g) for g in groups) * config.num_steps, unit='step',
                       mininterval=1.0, dynamic_ncols=True, disable=not show_progress)
  with progress:
    for group in groups:
      progress.set_description(f"{label}d={group[0]['feature_size']} x{len(group)}")
      mesh = parallel.mesh_for(len(group), config.batch_size, config.parallel)
      key = (group[0]['feature_size'], None if mesh is None else tuple(mesh.shape.items()))
      if key not in trainers:
        trainers[key] = train.Trainer(config, group[0]['feature_size'], dataset.num_classes,
                                      dataset.image_shape, mesh=mesh)
      trainer = trainers[key]
      states, lasts, snapshots, wall_s = train_group(trainer, dataset, config, group, workdir,
                                                     progress)
      for i, point in enumerate(group):
        write_run(trainer, dataset, config, point, train.member(states, i), lasts[i],
                  snapshots[i] if snapshots else None, wall_s,
                  os.path.join(workdir, 'runs', configs.run_name(point)), meta)


def train_share(payload_path, index, cores):
  """Entry of local process `index` (`parallel.run_local_processes`): its share of the
  groups, dealt round-robin; only process 0 shows a progress bar."""
  config, workdir, dataset, groups, meta = parallel.read_payload(payload_path)
  count = meta['local_processes']
  logging.basicConfig(format=f'%(levelname)s %(name)s [process {index}]: %(message)s')
  logging.getLogger('cl_research').setLevel(logging.INFO)
  meta = {**meta, 'local_process': {'index': index, 'cores': cores}}
  train_groups(config, workdir, dataset, groups[index::count], meta, show_progress=index == 0,
               label=f'process 0/{count}: ')


def train_and_evaluate(config, workdir, dataset=None):
  """Runs every point of `config.sweep` and writes all outputs under `workdir`."""
  configs.validate(config)
  process, num_processes = parallel.initialize(config.parallel)
  if dataset is None:
    dataset = data.load(config.data)
  points = configs.expand_runs(config)
  if process == 0:
    prepare_workdir(config, workdir)
  parallel.barrier('workdir-ready')
  groups = group_points(points, config.parallel.max_group_size)[process::num_processes]
  todo = [[p for p in g
           if finished_result(os.path.join(workdir, 'runs', configs.run_name(p))) is None]
          for g in groups]
  todo = [g for g in todo if g]
  skipped = sum(len(g) for g in groups) - sum(len(g) for g in todo)
  if skipped:
    log.info('%d finished runs found in %s: not retrained', skipped, workdir)
  local = parallel.local_processes(config.parallel.local_processes, len(todo))
  meta = {**provenance.metadata(config, dataset), 'local_processes': local}
  if process == 0:
    files.write_json(os.path.join(workdir, 'metadata.json'), meta)
  if local > 1:
    log.info('%d groups dealt over %d local processes, pinned to cores %s', len(todo), local,
             parallel.core_sets(local))
    parallel.run_local_processes('cl_research.experiment:train_share',
                                 (config, workdir, dataset, todo, meta), local)
  else:
    train_groups(config, workdir, dataset, todo, meta, show_progress=process == 0)
  parallel.barrier('runs-done')
  results, features_by_name = [], {}
  for point in points:
    result, features = load_run(os.path.join(workdir, 'runs', configs.run_name(point)))
    results.append(result)
    features_by_name[configs.run_name(point)] = features
  if process == 0:
    write_summary(os.path.join(workdir, 'summary.csv'), results)
    write_grids(workdir, config, dataset, results, features_by_name)
    if config.figure:
      figures.FIGURES[config.figure](workdir, results, features_by_name, dataset)
  log.info('data source: %s', dataset.title)
  parallel.barrier('summary-written')
  return results
