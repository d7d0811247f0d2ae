"""`train_and_evaluate(config, workdir)`: every run of a sweep, its outputs and summary.

The CLI (`cl_research.run`), the tests and the notebooks all call this one function.
Runs that share shapes and seed train together as a group (`cl_research.engine.groups`); groups
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
from cl_research.data import device_batches as batches
from cl_research.engine import checkpoints
from cl_research import data
from cl_research.evaluation import digits as evaluation
from cl_research.engine.tasks import faces as face_training
from cl_research.outputs import figures
from cl_research import files
from cl_research.engine import groups
from cl_research.core import heads
from cl_research.platform import local_processes
from cl_research.evaluation import clustering as metrics
from cl_research import outputs
from cl_research.outputs import plots
from cl_research.outputs import provenance
from cl_research.platform import runtime as runtime_lib
from cl_research.platform import sharding
from cl_research.configs import sweeps
from cl_research.core import step as train
from cl_research.launch import validation
log = logging.getLogger(__name__)


GROUP_KEY = ('feature_size', 'seed', 'head', 'regularizer', 'holdout')  # runs of a group share


def group_points(points, max_group_size):
  """Runs that can train together: same feature size, seed, head and regularizer (the
  static parts of the step), in sweep order, at most `max_group_size` per group (0: no
  limit). They differ in the traced numbers: lambda, alpha, scale, margin."""
  by_key = {}
  for p in points:
    by_key.setdefault(tuple(p[k] for k in GROUP_KEY), []).append(p)
  size = max_group_size or len(points)
  return [g[i:i + size] for g in by_key.values() for i in range(0, len(g), size)]


def group_name(points):
  names = '|'.join(sweeps.run_name(p) for p in points)
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
  names = [sweeps.run_name(p) for p in points]
  paths = [outputs.run_paths(workdir, n).create() for n in names]
  shards = sharding.model_shards(trainer.mesh)
  padded = points + [points[0]] * ((-len(points)) % shards)  # equal slices per device
  states = trainer.init_group([p['seed'] for p in padded])
  hparams = groups.stack([trainer.hparams(p['lam'], p['alpha'], scale=p['scale'],
                                         margin=p['margin']) for p in padded])
  ckpt = checkpoints.GroupCheckpoints(outputs.checkpoint_dir(workdir, group_name(points)))
  snapshot_paths = [p.snapshots for p in paths]
  step, states, snapshots = ckpt.restore(states, names, snapshot_paths, len(points))
  if step:
    log.info('group %s: resumed at step %d', group_name(points), step)
  logs = [outputs.RunLog(p.metrics, step) for p in paths]
  snap_images = dataset.test_images[snapshot_indices(dataset)]
  if config.snapshot_every and snapshots is None:  # a fresh start, or snapshots lost
    snapshots = [[(step, *_snapshot(trainer, groups.member(states, i), snap_images))]
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
      if not train.is_due(s, config.log_every, config.num_steps):
        continue
      for i, run_log in enumerate(logs):
        if not diverged_at[i] or s <= diverged_at[i]:
          run_log.write(s, {k: float(v[t, i]) for k, v in chunk_aux.items()})
    progress.update((end - step) * len(points))
    step = end
    if train.is_due(step, config.snapshot_every, config.num_steps):
      for i in range(len(points)):
        snapshots[i].append((step, *_snapshot(trainer, groups.member(states, i), snap_images)))
    if diverged_at[:len(points)].all():
      log.warning('group %s: every run diverged; stopping at step %d', group_name(points),
                  step)
      progress.update((config.num_steps - step) * len(points))
      break
    if train.is_due(step, config.checkpoint_every, config.num_steps):
      ckpt.save(step, states, names, len(points), snapshots, snapshot_paths)
  for run_log in logs:
    run_log.close()
  wall_s = time.perf_counter() - start
  return states, [run_log.last for run_log in logs], snapshots, wall_s / len(points)


def write_run(trainer, dataset, config, workdir, point, state, last, snapshots, wall_s,
              metadata):
  """Evaluates one trained run and writes its features, plots and (last) result.json."""
  start = time.perf_counter()
  paths = outputs.run_paths(workdir, sweeps.run_name(point))
  diverged_at = int(state.diverged_at)
  quantity = train.diverged_quantity(state.diverged_code)
  result, features = evaluation.evaluate(trainer, state, dataset, config.eval)
  if result is None and not diverged_at:  # finite training, non-finite evaluation
    diverged_at, quantity = config.num_steps, 'features'
  if diverged_at:  # the numbers of a diverged run mean nothing: record none of them
    log.warning('run %s diverged: %s non-finite at step %d', sweeps.run_name(point),
                quantity, diverged_at)
    result = {}
  result = {
      'name': sweeps.run_name(point), **point,
      'status': 'diverged' if diverged_at else 'complete',
      'diverged_step': diverged_at or None, 'diverged_quantity': quantity or None,
      'center_mode': config.centers.mode, 'loss_values': evaluation.loss_values(config, point),
      'data_source': dataset.source,
      'data_detail': dataset.detail, 'num_train': len(dataset.train_labels),
      'num_test': len(dataset.test_labels), 'num_steps': config.num_steps,
      'dtype': config.model.dtype,
      **dict.fromkeys(outputs.RESULT_METRICS), **result,  # every metric key, None if unmeasured
      'final_loss': last.get('loss'),
      'final_softmax_loss': last.get('softmax_loss'),
      'final_regularizer_loss': last.get('regularizer_loss'),
      **({} if diverged_at else evaluation.clip_record(state,
                                                         config.optimizer.grad_clip_norm)),
  }
  files.savez(paths.features, **features)
  title = outputs.run_title(dataset, point, result)
  names = dataset.class_names
  plots.plot_run(outputs.shown_features(result, {result['name']: features}), title, names,
                 paths.scatter,
                 config.plot_max_points, directions=point['head'] in heads.ANGULAR)
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
  """What a progress bar shows while `group` trains: 'lam=0.1 d=3, run 3 of 5, core 0'
  (with the head, regularizer and held-out classes where they are not the defaults)."""
  lams = ','.join(f"{p['lam']:g}" for p in group)
  first = done_before + 1
  runs = (f'run {first} of {total}' if len(group) == 1 else
          f'runs {first}-{done_before + len(group)} of {total}')
  where = f", core{'s' if len(cores) > 1 else ''} {','.join(map(str, cores))}" if cores else ''
  loss = sweeps.describe_point({k: v for k, v in group[0].items()
                                if k in ('head', 'regularizer', 'holdout')})
  loss = f', {loss}' if loss else ''
  return f"lam={lams} d={group[0]['feature_size']}{loss}, {runs}{where}"


def run_dataset(dataset, config, holdout):
  """The dataset a run with these held-out classes trains on (`data.Dataset.for_run`)."""
  return dataset.for_run(holdout, config.data.num_train, config.data.subset_seed)


def train_groups(config, workdir, dataset, run_groups, runtime, metadata, show_progress=True,
                 cores=None):
  """Trains and writes every run of `run_groups` in this process, one group after
  another; `dataset` is the whole one (`data.load`), each group takes its part."""
  trainers, datasets = {}, {}  # built once per setup, taken once per set of held-out classes
  total = sum(len(g) for g in run_groups)
  progress = tqdm.tqdm(total=total * config.num_steps, unit='step', mininterval=1.0,
                       dynamic_ncols=True, disable=not show_progress or not total)
  with progress:
    done = 0
    for group in run_groups:
      progress.set_description(progress_label(group, done, total, cores))
      mesh = sharding.mesh_for(len(group), config.batch_size, config.parallel)
      first = group[0]
      key = (first['feature_size'], first['head'], first['regularizer'],
             None if mesh is None else tuple(mesh.shape.items()))
      if key not in trainers:
        trainers[key] = groups.Trainer(config, first['feature_size'], dataset.num_classes,
                                      dataset.image_shape, runtime, mesh=mesh,
                                      head=first['head'], regularizer=first['regularizer'])
      trainer = trainers[key]
      if first['holdout'] not in datasets:
        datasets[first['holdout']] = run_dataset(dataset, config, first['holdout'])
      group_data = datasets[first['holdout']]
      states, lasts, snapshots, wall_s = train_group(trainer, group_data, config, group,
                                                     workdir, progress)
      for i, point in enumerate(group):
        write_run(trainer, group_data, config, workdir, point, groups.member(states, i),
                  lasts[i],
                  snapshots[i] if snapshots else None, wall_s, metadata)
      done += len(group)


def deal_in_blocks(run_groups, count):
  """`count` shares of consecutive groups, sizes within one of each other: groups of a
  feature size sit together in sweep order, so a process compiles fewer train steps."""
  bounds = [i * len(run_groups) // count for i in range(count + 1)]
  return [run_groups[a:b] for a, b in zip(bounds, bounds[1:])]


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
  `dataset` (default: `data.load(config.data)`) is the whole one; each run takes the part
  its held-out classes and `data.num_train` leave. Face configs (`data.name='faces'`)
  stream their data instead: `cl_research.engine.tasks.faces`. Raises `configs.ConfigError` or
  `kernels.Unavailable` before writing anything.
  """
  validation.validate(config)
  if config.data.name == 'faces':
    return face_training.train_and_evaluate(config, workdir)
  process, num_processes = sharding.initialize(config.parallel)
  runtime = runtime_lib.resolve(config)
  if dataset is None:
    dataset = data.load(config.data)
  points = sweeps.expand_runs(config)
  for holdout in dict.fromkeys(p['holdout'] for p in points):
    validation.check_dataset(config, run_dataset(dataset, config, holdout))
  if process == 0:
    outputs.prepare_workdir(config, workdir)
  sharding.barrier('workdir-ready')
  mine = group_points(points, runtime.max_group_size)[process::num_processes]
  unfinished = [[p for p in g if outputs.finished_result(
      outputs.run_paths(workdir, sweeps.run_name(p))) is None] for g in mine]
  unfinished = [g for g in unfinished if g]
  skipped = sum(len(g) for g in mine) - sum(len(g) for g in unfinished)
  if skipped:
    log.info('%d finished runs found in %s: not retrained', skipped, workdir)
  runtime = runtime.for_groups(len(unfinished))
  metadata = provenance.metadata(config, dataset, runtime)
  if process == 0:
    files.write_json(outputs.workdir_file(workdir, 'metadata.json'), metadata)
  count = runtime.local_processes
  if count > 1:
    groups_per_process = deal_in_blocks(unfinished, count)
    local_processes.run('cl_research.engine.experiment:train_share',
                        Payload(config, workdir, dataset, groups_per_process, runtime,
                                metadata), count)
  else:
    train_groups(config, workdir, dataset, unfinished, runtime, metadata,
                 show_progress=process == 0)
  sharding.barrier('runs-done')
  results, features_by_name = [], {}
  for point in points:
    name = sweeps.run_name(point)
    result, features = outputs.load_run(outputs.run_paths(workdir, name))
    results.append(result)
    features_by_name[name] = features
  if process == 0:
    outputs.write_summary(outputs.workdir_file(workdir, 'summary.csv'), results)
    outputs.write_seed_statistics(workdir, config, results)
    splits = {p['holdout'] for p in points}  # titles name held-out classes if one split
    shown = run_dataset(dataset, config, points[0]['holdout'] if len(splits) == 1 else ())
    outputs.write_grids(workdir, config, shown, results, features_by_name)
    if config.figure:
      figures.FIGURES[config.figure](workdir, results, features_by_name, shown)
  log.info('data: %s', dataset.title)
  sharding.barrier('summary-written')
  return results
