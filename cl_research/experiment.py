"""`train_and_evaluate(config, workdir)`: every run of a sweep, its outputs and summary.

The CLI (`cl_research.run`), the tests and the notebooks all call this one function.
Runs that share shapes and seed train together as a group (`cl_research.train`); groups
are dealt out over processes; every file is written atomically; a rerun on the same
workdir skips finished runs and resumes interrupted groups from their last checkpoint.
What the workdir holds: `cl_research.outputs`.
"""

import hashlib
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
from cl_research import outputs
from cl_research import parallel
from cl_research import plots
from cl_research import provenance
from cl_research import train
from cl_research import verification

log = logging.getLogger(__name__)

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
  logs = [outputs.RunLog(os.path.join(d, 'metrics.jsonl'), step) for d in run_dirs]
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
    result = dict.fromkeys(outputs.RESULT_METRICS)
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
           f"d={point['feature_size']}  " + outputs.cell_label(result))
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
  """Entry of local process `index` (`parallel.run_local_processes`): trains its share of
  the groups; only process 0 shows a progress bar."""
  config, workdir, dataset, shares, meta = parallel.read_payload(payload_path)
  logging.basicConfig(format=f'%(levelname)s %(name)s [process {index}]: %(message)s')
  logging.getLogger('cl_research').setLevel(logging.INFO)
  meta = {**meta, 'local_process': {'index': index, 'cores': cores}}
  train_groups(config, workdir, dataset, shares[index], meta, show_progress=index == 0,
               label=f'process 0/{len(shares)}: ')


def train_and_evaluate(config, workdir, dataset=None):
  """Runs every point of `config.sweep` and writes all outputs under `workdir`."""
  configs.validate(config)
  process, num_processes = parallel.initialize(config.parallel)
  if dataset is None:
    dataset = data.load(config.data)
  points = configs.expand_runs(config)
  if process == 0:
    outputs.prepare_workdir(config, workdir)
  parallel.barrier('workdir-ready')
  groups = group_points(points, config.parallel.max_group_size)[process::num_processes]
  todo = [[p for p in g
           if outputs.finished_result(os.path.join(workdir, 'runs', configs.run_name(p))) is None]
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
    shares = [todo[i::local] for i in range(local)]  # round-robin
    parallel.run_local_processes('cl_research.experiment:train_share',
                                 (config, workdir, dataset, shares, meta), local)
  else:
    train_groups(config, workdir, dataset, todo, meta, show_progress=process == 0)
  parallel.barrier('runs-done')
  results, features_by_name = [], {}
  for point in points:
    result, features = outputs.load_run(os.path.join(workdir, 'runs', configs.run_name(point)))
    results.append(result)
    features_by_name[configs.run_name(point)] = features
  if process == 0:
    outputs.write_summary(os.path.join(workdir, 'summary.csv'), results)
    outputs.write_grids(workdir, config, dataset, results, features_by_name)
    if config.figure:
      figures.FIGURES[config.figure](workdir, results, features_by_name, dataset)
  log.info('data source: %s', dataset.title)
  parallel.barrier('summary-written')
  return results
