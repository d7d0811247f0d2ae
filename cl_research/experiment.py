"""`train_and_evaluate(config, workdir)`: every run of a sweep, its outputs and summary.

The CLI (`cl_research.run`), the tests and the notebooks all call this one function.
Runs that share shapes and seed train together as a group (`cl_research.train`); groups
are dealt out over processes; every file is written atomically; a rerun on the same
workdir skips finished runs and resumes interrupted groups from their last checkpoint.
What the workdir holds: `cl_research.outputs`.
"""

import dataclasses
import hashlib
import logging
import time
from typing import Any

import jax
import numpy as np
import tqdm

import cl_research
from cl_research import batches
from cl_research import checkpoints
from cl_research import configs
from cl_research import data
from cl_research import figures
from cl_research import files
from cl_research import local_processes
from cl_research import metrics
from cl_research import outputs
from cl_research import plots
from cl_research import provenance
from cl_research import runtime as runtime_lib
from cl_research import sharding
from cl_research import train
from cl_research import verification

log = logging.getLogger(__name__)


def group_points(points, max_group_size):
  """Runs that can train together: same feature size and seed, in sweep order, at most
  `max_group_size` per group (0: no limit)."""
  groups = {}
  for p in points:
    groups.setdefault((p['feature_size'], p['seed']), []).append(p)
  size = max_group_size or len(points)
  return [g[i:i + size] for g in groups.values() for i in range(0, len(g), size)]


def group_name(points):
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


def is_due(step, every, num_steps):
  """Whether something done every `every` steps (0: never) happens after `step`; the
  last step always counts."""
  return bool(every) and (step % every == 0 or step == num_steps)


def snapshot_indices(dataset):
  """The fixed test subset drawn in evolution GIFs."""
  return plots.subsample(len(dataset.test_labels), 2000)


def _snapshot(trainer, state, images):
  features, _ = trainer.features_and_logits(state.params, images)
  return features, np.asarray(state.centers)


def train_group(trainer, dataset, config, points, workdir, progress):
  """Trains the runs of one group together (resuming from a checkpoint if one exists).

  Returns the final states (member axis first, padding included), each run's last
  logged metrics, each run's evolution snapshots (or None) and the wall time per run.
  """
  start = time.perf_counter()
  names = [configs.run_name(p) for p in points]
  paths = [outputs.run_paths(workdir, n).create() for n in names]
  shards = sharding.model_shards(trainer.mesh)
  padded = points + [points[0]] * ((-len(points)) % shards)  # equal slices per device
  states = trainer.init_group([p['seed'] for p in padded])
  hparams = train.stack([trainer.hparams(p['lam'], p['alpha']) for p in padded])
  ckpt = checkpoints.GroupCheckpoints(outputs.checkpoint_dir(workdir, group_name(points)))
  snapshot_paths = [p.snapshots for p in paths]
  step, states, snapshots = ckpt.restore(states, names, snapshot_paths, len(points))
  if step:
    log.info('group %s: resumed at step %d', group_name(points), step)
  logs = [outputs.RunLog(p.metrics, step) for p in paths]
  snap_images = dataset.test_images[snapshot_indices(dataset)]
  if config.snapshot_every and snapshots is None:  # a fresh start, or snapshots lost
    snapshots = [[(step, *_snapshot(trainer, train.member(states, i), snap_images))]
                 for i in range(len(points))]
  device_data = batches.DeviceData(dataset.train_images, dataset.train_labels,
                                 points[0]['seed'], config.batch_size, trainer.mesh)
  progress.update(step * len(points))
  for end in (e for e in chunk_ends(config) if e > step):
    states, chunk_aux = trainer.train_chunk(states, hparams, device_data, step, end - step)
    chunk_aux = jax.device_get(chunk_aux)
    diverged_at = np.asarray(jax.device_get(states.diverged_at))
    for t in range(end - step):
      s = step + t + 1
      if not is_due(s, config.log_every, config.num_steps):
        continue
      for i, run_log in enumerate(logs):
        if not diverged_at[i] or s <= diverged_at[i]:
          run_log.write(s, {k: float(v[t, i]) for k, v in chunk_aux.items()})
    progress.update((end - step) * len(points))
    step = end
    if is_due(step, config.snapshot_every, config.num_steps):
      for i in range(len(points)):
        snapshots[i].append((step, *_snapshot(trainer, train.member(states, i), snap_images)))
    if diverged_at[:len(points)].all():
      log.warning('group %s: every run diverged; stopping at step %d', group_name(points),
                  step)
      progress.update((config.num_steps - step) * len(points))
      break
    if is_due(step, config.checkpoint_every, config.num_steps):
      ckpt.save(step, states, names, len(points), snapshots, snapshot_paths)
  for run_log in logs:
    run_log.close()
  wall_s = time.perf_counter() - start
  return states, [run_log.last for run_log in logs], snapshots, wall_s / len(points)


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
  seen = ~np.isin(features['test_labels'], dataset.holdout_classes)
  for split, mask in (('train', slice(None)), ('test', seen)):
    feats, labels = features[f'{split}_features'][mask], features[f'{split}_labels'][mask]
    result[f'{split}_accuracy'] = metrics.accuracy(logits[split][mask], labels)
    for key, value in metrics.clustering(feats, labels, dataset.num_classes).items():
      result[f'{split}_{key}'] = value
  result['test_knn_accuracy'] = metrics.knn_accuracy(
      features['train_features'], features['train_labels'], features['test_features'][seen],
      features['test_labels'][seen], k=eval_config.knn_k)
  result['test_silhouette'] = metrics.silhouette(
      features['test_features'][seen], features['test_labels'][seen],
      eval_config.silhouette_samples)
  if eval_config.verification_pairs:
    result.update(verification.evaluate(
        features['test_features'], features['test_labels'], eval_config.verification_pairs,
        seed=eval_config.pairs_seed, classes=dataset.holdout_classes or None))
  return result, features


def clip_record(state, clip_norm):
  """How much the gradient clip shaped a run: the fraction of steps it engaged and the
  mean pre-clip gradient norm (the clip shrinks the whole step, so a lambda that
  enlarges the norm also shrinks the softmax part of it)."""
  steps = max(int(state.step), 1)
  return {'clip_fraction': int(state.clipped_steps) / steps if clip_norm else 0.0,
          'mean_grad_norm': float(state.grad_norm_sum) / steps,
          'max_grad_norm': float(state.grad_norm_max)}


def write_run(trainer, dataset, config, workdir, point, state, last, snapshots, wall_s,
              metadata):
  """Evaluates one trained run and writes its features, plots and (last) result.json."""
  start = time.perf_counter()
  paths = outputs.run_paths(workdir, configs.run_name(point))
  diverged_at = int(state.diverged_at)
  quantity = train.diverged_quantity(state.diverged_code)
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
      **({} if diverged_at else clip_record(state, config.optimizer.grad_clip_norm)),
  }
  files.savez(paths.features, **features)
  title = outputs.run_title(dataset, point, result)
  names = data.class_names(dataset.name)
  plots.plot_run(None if diverged_at else features, title, names, paths.scatter,
                 config.plot_max_points)
  if not diverged_at:
    distances = metrics.intra_class_distances(features['test_features'],
                                              features['test_labels'], dataset.num_classes)
    plots.plot_intra_histogram(distances, features['test_labels'], names,
                               f'test intra-class distances\n{title}', paths.intra_hist)
  if snapshots:
    snap_labels = dataset.test_labels[snapshot_indices(dataset)]
    plots.write_evolution_gif(snapshots, snap_labels, names, f"lambda={point['lam']:g}",
                              paths.evolution)
  result['wall_s'] = round(wall_s + time.perf_counter() - start, 2)
  result['metadata'] = metadata
  files.write_json(paths.result, result)
  return result


def progress_label(group, done_before, total, cores):
  """What a progress bar shows while `group` trains: 'lam=0.1 d=3, run 3 of 5, core 0'."""
  lams = ','.join(f"{p['lam']:g}" for p in group)
  first = done_before + 1
  runs = (f'run {first} of {total}' if len(group) == 1 else
          f'runs {first}-{done_before + len(group)} of {total}')
  where = f", core{'s' if len(cores) > 1 else ''} {','.join(map(str, cores))}" if cores else ''
  return f"lam={lams} d={group[0]['feature_size']}, {runs}{where}"


def train_groups(config, workdir, dataset, groups, runtime, metadata, show_progress=True,
                 cores=None):
  """Trains and writes every run of `groups` in this process, one group after another."""
  trainers = {}
  total = sum(len(g) for g in groups)
  progress = tqdm.tqdm(total=total * config.num_steps, unit='step', mininterval=1.0,
                       dynamic_ncols=True, disable=not show_progress or not total)
  with progress:
    done = 0
    for group in groups:
      progress.set_description(progress_label(group, done, total, cores))
      mesh = sharding.mesh_for(len(group), config.batch_size, config.parallel)
      key = (group[0]['feature_size'], None if mesh is None else tuple(mesh.shape.items()))
      if key not in trainers:
        trainers[key] = train.Trainer(config, group[0]['feature_size'], dataset.num_classes,
                                      dataset.image_shape, runtime, mesh=mesh)
      trainer = trainers[key]
      states, lasts, snapshots, wall_s = train_group(trainer, dataset, config, group, workdir,
                                                     progress)
      for i, point in enumerate(group):
        write_run(trainer, dataset, config, workdir, point, train.member(states, i), lasts[i],
                  snapshots[i] if snapshots else None, wall_s, metadata)
      done += len(group)


def deal_in_blocks(groups, count):
  """`count` shares of consecutive groups, sizes within one of each other: groups of a
  feature size sit together in sweep order, so a process compiles fewer train steps."""
  bounds = [i * len(groups) // count for i in range(count + 1)]
  return [groups[a:b] for a, b in zip(bounds, bounds[1:])]


@dataclasses.dataclass(frozen=True)
class Payload:
  """What the parent hands its local processes (`local_processes.run`)."""
  config: Any
  workdir: str
  dataset: data.Dataset
  groups_per_process: list  # process i trains groups_per_process[i]
  runtime: runtime_lib.Runtime
  metadata: dict


def train_share(payload_path, index, cores):
  """Entry of local process `index`: trains its share of the groups; only process 0
  shows a progress bar."""
  payload = local_processes.read_payload(payload_path)
  cl_research.setup_logging(f'process {index}')
  runtime_lib.enable_compilation_cache()
  metadata = {**payload.metadata, 'local_process': {'index': index, 'cores': cores}}
  train_groups(payload.config, payload.workdir, payload.dataset,
               payload.groups_per_process[index], payload.runtime, metadata,
               show_progress=index == 0, cores=cores)


def train_and_evaluate(config, workdir, dataset=None):
  """Runs every point of `config.sweep` and writes all outputs under `workdir`.

  Raises `configs.ConfigError` or `kernels.Unavailable` before writing anything.
  """
  configs.validate(config)
  process, num_processes = sharding.initialize(config.parallel)
  runtime = runtime_lib.resolve(config)
  if dataset is None:
    dataset = data.load(config.data)
  configs.check_dataset(config, dataset)
  points = configs.expand_runs(config)
  if process == 0:
    outputs.prepare_workdir(config, workdir)
  sharding.barrier('workdir-ready')
  groups = group_points(points, runtime.max_group_size)[process::num_processes]
  unfinished = [[p for p in g if outputs.finished_result(
      outputs.run_paths(workdir, configs.run_name(p))) is None] for g in groups]
  unfinished = [g for g in unfinished if g]
  skipped = sum(len(g) for g in groups) - sum(len(g) for g in unfinished)
  if skipped:
    log.info('%d finished runs found in %s: not retrained', skipped, workdir)
  runtime = runtime.for_groups(len(unfinished))
  metadata = provenance.metadata(config, dataset, runtime)
  if process == 0:
    files.write_json(outputs.workdir_file(workdir, 'metadata.json'), metadata)
  count = runtime.local_processes
  if count > 1:
    groups_per_process = deal_in_blocks(unfinished, count)
    local_processes.run('cl_research.experiment:train_share',
                        Payload(config, workdir, dataset, groups_per_process, runtime,
                                metadata), count)
  else:
    train_groups(config, workdir, dataset, unfinished, runtime, metadata,
                 show_progress=process == 0)
  sharding.barrier('runs-done')
  results, features_by_name = [], {}
  for point in points:
    name = configs.run_name(point)
    result, features = outputs.load_run(outputs.run_paths(workdir, name))
    results.append(result)
    features_by_name[name] = features
  if process == 0:
    outputs.write_summary(outputs.workdir_file(workdir, 'summary.csv'), results)
    outputs.write_grids(workdir, config, dataset, results, features_by_name)
    if config.figure:
      figures.FIGURES[config.figure](workdir, results, features_by_name, dataset)
  log.info('data: %s', dataset.title)
  sharding.barrier('summary-written')
  return results
