"""The digits task: classification datasets held in memory (MNIST, Fashion-MNIST, any
tfds image dataset), many same-shape runs trained together.

Runs that share shapes, seed, head, regularizer and held-out classes form a group: their
states are stacked and trained as one program on the same batches (`groups.Trainer`),
the data and its order staying on the device. A finished run records its features of
both splits, every metric on them (`evaluation.digits`) and its plots; the sweep writes
summary.csv, the statistics over seeds, the feature grids and the paper figure of
`config.figure`.
"""

import hashlib
import logging
import os

import jax
import numpy as np

from cl_research import data as data_lib
from cl_research import errors
from cl_research import files
from cl_research import outputs
from cl_research.configs import sweeps
from cl_research.core import heads
from cl_research.core import models
from cl_research.core import step as step_lib
from cl_research.data import device_batches
from cl_research.engine import groups
from cl_research.evaluation import clustering
from cl_research.evaluation import digits as digits_eval
from cl_research.evaluation import evaluators
from cl_research.evaluation import statistics
from cl_research.outputs import figures
from cl_research.outputs import plots
from cl_research.platform import sharding

log = logging.getLogger(__name__)

CLASSIFIER_CLASSES = ('all', 'trained')  # `model.classifier_classes`
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


def snapshot_indices(dataset):
  """The fixed test subset drawn in evolution GIFs."""
  return plots.subsample(len(dataset.test_labels), 2000)


class DigitsTask:
  """Sweeps over an in-memory dataset (`data.load`); `dataset` (default: loaded in
  `prepare`) is the whole one, each run takes the part its held-out classes and
  `data.num_train` leave."""

  outputs_made = 'grid.png'
  described = ('data_source', 'data_detail', 'num_train', 'num_test')  # summary columns of
  trained = ('clip_fraction', 'mean_grad_norm', 'max_grad_norm')  # describe_run, training_record

  def __init__(self, config, dataset=None):
    self.config = config
    self.result_metrics = evaluators.metric_keys(config.evals)
    self.dataset = dataset
    self.runtime = None
    self._datasets = {}  # per set of held-out classes
    self._trainers = {}  # per setup, built in the process that trains

  @staticmethod
  def validate(config, points):
    """Raises ConfigError where the digits sections (data, model, eval, grid, snapshots,
    figure, group strategy) cannot serve the sweep."""
    data_lib.validate(config, points)
    models.validate(config.model, models.DIGITS_MODELS)
    errors.check_choice(config.model.classifier_classes, 'model.classifier_classes',
                        CLASSIFIER_CLASSES)
    groups.validate(config.parallel)
    evaluators.validate(config.evals, ('clustering', 'pairs', 'openset', 'retrieval'), points)
    statistics.validate(config.analysis, outputs.metric_columns(
        evaluators.metric_keys(config.evals), DigitsTask.trained))
    sharding.validate_shard(config.parallel)
    sweeps.validate_grid(config)
    errors.check(config.snapshot_every >= 0,
                 f'snapshot_every={config.snapshot_every!r} must be >= 0')
    errors.check(config.plot_max_points >= 1,
                 f'plot_max_points={config.plot_max_points!r} must be >= 1')
    errors.check(config.figure in ('',) + tuple(figures.FIGURES), f'figure={config.figure!r} '
                 f'is not one of {", ".join(figures.FIGURES)} (or empty)')

  def __getstate__(self):  # what a local process receives: no compiled functions
    return {**self.__dict__, '_trainers': {}}

  def prepare(self, runtime, points):
    """Loads the data and checks that it can serve every run; raises ConfigError or
    DataError before anything is written."""
    self.runtime = runtime
    if self.dataset is None:
      self.dataset = data_lib.load(self.config.data)
    for holdout in dict.fromkeys(p['holdout'] for p in points):
      data_lib.check_run_dataset(self.config, self.run_dataset(holdout))

  def run_dataset(self, holdout):
    """The dataset a run with these held-out classes trains on (`Dataset.for_run`)."""
    if holdout not in self._datasets:
      self._datasets[holdout] = self.dataset.for_run(holdout, self.config.data.num_train,
                                                     self.config.data.subset_seed)
    return self._datasets[holdout]

  def data_record(self):
    return self.dataset

  def classifier_classes(self, holdout):
    """The classes a run's classifier has outputs for, in order: None for every class
    of the dataset; the classes it trains on with `model.classifier_classes=trained`
    (held-out classes are then no negatives of the softmax)."""
    if self.config.model.classifier_classes == 'all':
      return None
    held = set(self.run_dataset(holdout).holdout_classes)
    return tuple(c for c in range(self.dataset.num_classes) if c not in held)

  def group_points(self, points):
    return group_points(points, self.runtime.max_group_size)

  def for_groups(self, runtime):
    self.runtime = runtime

  def trainer(self, group, mesh):
    first = group[0]
    classes = self.classifier_classes(first['holdout'])
    outputs_count = self.dataset.num_classes if classes is None else len(classes)
    key = (first['feature_size'], first['head'], first['regularizer'], outputs_count,
           None if mesh is None else tuple(mesh.shape.items()))
    if key not in self._trainers:
      self._trainers[key] = groups.Trainer(
          self.config, first['feature_size'], outputs_count,
          self.dataset.image_shape, self.runtime, mesh=mesh, head=first['head'],
          regularizer=first['regularizer'])
    return self._trainers[key]

  def start(self, group, paths):
    mesh = sharding.mesh_for(len(group), self.config.batch_size, self.config.parallel)
    return DigitsGroup(self, group, paths, self.trainer(group, mesh),
                       self.run_dataset(group[0]['holdout']),
                       self.classifier_classes(group[0]['holdout']))

  def describe_run(self, point):
    dataset = self.run_dataset(point['holdout'])
    return {'center_mode': self.config.centers.mode,
            'loss_values': digits_eval.loss_values(self.config, point),
            'data_source': dataset.source, 'data_detail': dataset.detail,
            'num_train': len(dataset.train_labels), 'num_test': len(dataset.test_labels)}

  def write_summary(self, workdir, points, results):
    """summary.csv, the statistics over seeds, the feature grids and the paper figure."""
    features_by_name = {r['name']: outputs.load_run(
        outputs.run_paths(workdir, r['name']))[1] for r in results}
    outputs.write_summary(outputs.workdir_file(workdir, 'summary.csv'), results,
                          self.summary_columns(results))
    outputs.write_seed_statistics(workdir, self.config, results,
                                  outputs.metric_columns(self.result_metrics, self.trained))
    splits = {p['holdout'] for p in points}  # titles name held-out classes if one split
    shown = self.dataset.for_run(points[0]['holdout'] if len(splits) == 1 else (),
                                 self.config.data.num_train, self.config.data.subset_seed)
    if self.config.plots:
      outputs.write_grids(workdir, self.config, shown, results, features_by_name)
    if self.config.figure:
      figures.FIGURES[self.config.figure](workdir, results, features_by_name, shown)
    log.info('data: %s', self.dataset.title)

  def summary_columns(self, results):
    del results
    return outputs.summary_columns(self.described, self.result_metrics, self.trained)

  @staticmethod
  def table_columns(results):
    del results
    return ['status', 'test_accuracy', 'test_intra_inter', 'wall_s']


class DigitsGroup:
  """One group in training: its stacked states, the data on the device, the evolution
  snapshots."""

  def __init__(self, task, group, paths, trainer, dataset, classes=None):
    config = task.config
    self.config, self.group, self.paths = config, group, paths
    self.trainer, self.dataset = trainer, dataset
    self.classes = classes  # the classifier's classes (None: all, in label order)
    self.checkpoint_name = group_name(group)
    self.cadences = (config.snapshot_every,)
    self.spans_processes = False  # a group trains in one process (groups are dealt)
    shards = sharding.model_shards(trainer.mesh)
    padded = group + [group[0]] * ((-len(group)) % shards)  # equal slices per device
    self.states = trainer.init_group([p['seed'] for p in padded])
    self.hparams = groups.stack([trainer.hparams(p['lam'], p['alpha'], scale=p['scale'],
                                                 margin=p['margin']) for p in padded])
    labels = dataset.train_labels
    if classes is not None:  # the classifier's own indices
      labels = np.searchsorted(np.asarray(classes), labels).astype(np.int32)
    self.device_data = device_batches.DeviceData(dataset.train_images, labels,
                                                 group[0]['seed'], config.batch_size,
                                                 trainer.mesh)
    self.snap_images = dataset.test_images[snapshot_indices(dataset)]
    self.snapshots = None

  def _snapshot(self, states, i):
    state = groups.member(states, i)
    features, _ = self.trainer.features_and_logits(state.params, self.snap_images)
    return features, self._by_class(state.centers, np.nan, 0)

  def _by_class(self, values, fill, axis):
    """`values` whose `axis` indexes the classifier's classes (centers' rows, logits'
    columns) with that axis over every class of the dataset, each class at its id and
    `fill` for those the classifier lacks."""
    values = np.asarray(values)
    if self.classes is None:
      return values
    shape = list(values.shape)
    shape[axis] = self.dataset.num_classes
    out = np.full(shape, fill, values.dtype)
    index = [slice(None)] * len(shape)
    index[axis] = list(self.classes)
    out[tuple(index)] = values
    return out

  def resume(self, step, extra):
    """Takes back the evolution snapshots saved with the checkpoint of `step`."""
    del extra
    paths = [p.snapshots for p in self.paths]
    if step and self.config.snapshot_every and all(os.path.exists(p) for p in paths):
      self.snapshots = []
      for path in paths:
        with np.load(path) as f:
          keep = f['steps'] <= step
          self.snapshots.append(list(zip(f['steps'][keep].tolist(), f['features'][keep],
                                         f['centers'][keep])))

  def begin(self, states, step):
    if self.config.snapshot_every and self.snapshots is None:  # fresh, or snapshots lost
      self.snapshots = [[(step, *self._snapshot(states, i))] for i in range(len(self.group))]
    return [{} for _ in self.group]

  def advance(self, states, step, num_steps):
    states, aux = self.trainer.train_chunk(states, self.hparams, self.device_data, step,
                                           num_steps)
    return states, jax.device_get(aux)

  def observe(self, states, step):
    if step_lib.is_due(step, self.config.snapshot_every, self.config.num_steps):
      for i in range(len(self.group)):
        self.snapshots[i].append((step, *self._snapshot(states, i)))
    return [{} for _ in self.group]

  def images(self, step):
    """Per run {tag: H x W x 3 image} for TensorBoard: the scatter of the snapshot taken
    at `step` (none where no snapshot is due)."""
    if not step_lib.is_due(step, self.config.snapshot_every, self.config.num_steps):
      return [{} for _ in self.group]
    labels = self.dataset.test_labels[snapshot_indices(self.dataset)]
    return [{'test_features': plots.scatter_image(
        snaps[-1][1], labels, snaps[-1][2], f'{sweeps.describe_point(p)}, step {step}',
        self.dataset.class_names)} for p, snaps in zip(self.group, self.snapshots)]

  def checkpoint_extra(self):
    """Writes the evolution snapshots so far beside the checkpoint."""
    for paths, snaps in zip(self.paths, self.snapshots or ()):
      files.savez(paths.snapshots, steps=np.array([s for s, _, _ in snaps]),
                  features=np.stack([f for _, f, _ in snaps]),
                  centers=np.stack([c for _, _, c in snaps]))
    return None

  def close(self):
    pass

  def evaluate(self, i, state, diverged):
    """(metrics or None where the features are not finite, features); a diverged run's
    features are still written, for its plots."""
    del i, diverged

    def features_and_logits(images):
      features, logits = self.trainer.features_and_logits(state.params, images)
      return features, self._by_class(logits, -np.inf, 1)
    return digits_eval.evaluate(features_and_logits, state.centers,
                                self._by_class(state.centers, np.nan, 0), self.dataset,
                                self.config.evals)

  def training_record(self, i, state, last, diverged):
    del i, last
    return {} if diverged else digits_eval.clip_record(
        state, self.config.optimizer.grad_clip_norm)

  def write_files(self, i, point, result, features, paths):
    """features.npz, the scatter, the intra-class histogram and the evolution GIF (the
    plots with `config.plots` only)."""
    files.savez(paths.features, **features)
    if not self.config.plots:
      return
    title = outputs.run_title(self.dataset, point, result)
    names = self.dataset.class_names
    plots.plot_run(outputs.shown_features(result, {result['name']: features}), title, names,
                   paths.scatter, self.config.plot_max_points,
                   directions=heads.is_angular(point['head']))
    if result['status'] == 'complete':
      distances = clustering.intra_class_distances(
          features['test_features'], features['test_labels'], self.dataset.num_classes)
      plots.plot_intra_histogram(distances, features['test_labels'], names,
                                 f'test intra-class distances\n{title}', paths.intra_hist)
    if self.snapshots:
      snap_labels = self.dataset.test_labels[snapshot_indices(self.dataset)]
      plots.write_evolution_gif(self.snapshots[i], snap_labels, names,
                                f"lambda={point['lam']:g}", paths.evolution)
