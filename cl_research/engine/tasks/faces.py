"""The faces task: identities streamed from disk, a face backbone, the face protocols.

A config with `task = 'faces'` (`experiments/face.py`) runs here: each point of its
sweep trains alone, with batches from the Grain pipeline (`cl_research.data.stream`) over
a face source (`cl_research.data.faces`), through the same pure `step.train_step` as
the digits (BatchNorm statistics in `TrainState.batch_stats`). Every `every` steps of
its `face_pairs` evaluator (`config.evals`; and at step 0 and the end) the validation
packs are embedded, with their mirror images joined per `flip`, and scored by `protocol`
(`verification.face_pack_metrics`). The pipeline's iterator state is checkpointed with
the train state, so a resumed run sees the same batches. The sweep writes summary.csv
(with several seeds summary_by_setting.csv and comparisons.csv) and verification.png
(accuracy over steps).
"""

import functools
import logging
import os
import time

import jax
import numpy as np

from cl_research import errors
from cl_research import outputs
from cl_research.configs import sweeps
from cl_research.core import models
from cl_research.core import step as step_lib
from cl_research.data import faces
from cl_research.data import stream
from cl_research.data.faces import synthetic
from cl_research.engine import groups
from cl_research.evaluation import evaluators
from cl_research.outputs import plots
from cl_research.platform import sharding

log = logging.getLogger(__name__)



def open_source(data_config):
  """(the training source, a description, the folder read) per `data.face_source`;
  raises FaceDataError. The description names a folder by its last component only, so a
  summary column holds no machine path (metadata.json keeps the whole folder)."""
  kind = data_config.face_source
  if kind == 'rec' and not data_config.rec_dir:
    raise faces.FaceDataError('data.rec_dir is empty: face:rec reads an insightface pack '
                              '(train.rec, train.idx) from that folder')
  if kind == 'folder' and not data_config.folder:
    raise faces.FaceDataError('data.folder is empty: face:folder reads '
                              'root/<identity>/<image>')
  if kind == 'synthetic':
    folder = synthetic.generate(synthetic_folder(data_config), **synthetic_spec(data_config))
  elif kind == 'rec':
    folder = data_config.rec_dir
  if kind in ('synthetic', 'rec'):
    source = faces.RecordIOSource(os.path.join(folder, 'train.rec'),
                                  os.path.join(folder, 'train.idx'))
    detail = (f"{'generated ' * (kind == 'synthetic')}insightface pack "
              f'{os.path.basename(os.path.normpath(folder))}')
  elif kind == 'folder':
    folder = data_config.folder
    source = faces.ImageFolderSource(folder)
    detail = f'image folder {os.path.basename(os.path.normpath(folder))}'
  else:
    folder = data_config.data_dir
    source = faces.TfdsIdentitySource(data_config.tfds_name, data_config.tfds_split,
                                      data_config.data_dir, data_config.label_key or None)
    detail = f'tfds {data_config.tfds_name}:{data_config.tfds_split}'
  if source.num_classes < 2:
    raise faces.FaceDataError(f'{detail} ({folder}): {source.num_classes} identities; '
                              'training a classifier needs at least 2')
  return (source, f'{detail} ({len(source):,} images, {source.num_classes:,} identities)',
          folder)


def synthetic_spec(data_config):
  n = data_config.synthetic_identities
  return dict(identities=n, images_per_identity=data_config.synthetic_images,
              val_identities=max(2, n // 2), num_pairs=data_config.synthetic_pairs)


def synthetic_folder(data_config):
  """`data.rec_dir`, or the cache folder of the generated pack's spec."""
  return data_config.rec_dir or synthetic.default_folder(**synthetic_spec(data_config))


def val_dir(data_config):
  """Where the validation packs lie: `data.val_dir`, else the training pack's folder."""
  if data_config.val_dir:
    return data_config.val_dir
  if data_config.face_source == 'synthetic':
    return synthetic_folder(data_config)
  return data_config.rec_dir


def protocol_settings(config):
  """The settings of the run's `face_pairs` evaluator (`config.evals`)."""
  return evaluators.of_type(config.evals, 'face_pairs')


def load_val_sets(config):
  """[(name, images_2NxHxWx3 uint8, issame_N)] of `data.val_targets` (`<name>.bin` in
  `data.val_dir`, default the pack's folder) and of LFW's `pairs.txt` if given."""
  size = models.input_size(config.model)
  sets = [(name, *faces.load_bin(os.path.join(val_dir(config.data), f'{name}.bin'), size))
          for name in config.data.val_targets]
  if config.data.lfw_pairs:
    sets.append(('lfw_pairs', *faces.read_lfw_pairs(config.data.lfw_pairs,
                                                    config.data.lfw_dir, size)))
  for name, _, issame in sets:
    if len(issame) < protocol_settings(config).num_folds:
      raise faces.FaceDataError(f'{name}: {len(issame)} pairs, fewer than '
                                f'num_folds={protocol_settings(config).num_folds}')
  return sets


def embedder(predict_fn, state, batch_size):
  """uint8 images -> their float64 embeddings at `state`, in batches of `batch_size`."""
  def embed_images(uint8_images):
    features, _ = step_lib.in_batches(
        lambda x: predict_fn(state.params, stream.normalize(x), state.batch_stats),
        uint8_images, batch_size)
    return features.astype(np.float64)
  return embed_images


def evaluate(predict_fn, state, val_sets, config):
  """{'<pack>_<metric>': value} of the run's `face_pairs` evaluator over the packs."""
  settings = protocol_settings(config)
  return evaluators.EVALUATORS['face_pairs'](
      settings, embedder(predict_fn, state, settings.batch_size), val_sets)


def describe_model(config):
  """'iresnet50', 'iresnet18 x0.125', 'face_resnet'."""
  m = config.model
  name = f'iresnet{m.depth}' if m.name == 'iresnet' else m.name
  return name + (f' x{m.width:g}' if m.width != 1 else '')


class FacesTask:
  """Sweeps over a face source: one run per group, streamed batches."""

  outputs_made = 'verification.png'
  result_metrics = ()  # the packs' metrics are named after the packs: `<pack>_<metric>`
  described = ('model', 'data_detail', 'num_train', 'num_classes')  # summary columns of
  trained = ('train_accuracy', 'images_per_s')  # describe_run and training_record

  def __init__(self, config, dataset=None):
    del dataset  # faces stream from `data.face_source`
    self.config = config
    self.source = self.detail = self.folder = self.val_sets = self.mesh = self.runtime = None

  @staticmethod
  def validate(config, points):
    """Raises ConfigError where the face sections (data, model, eval, classifier
    sharding) cannot serve the sweep."""
    faces.validate(config.data)
    models.validate(config.model, models.FACE_MODELS)
    evaluators.validate(config.evals, ('face_pairs',), points)
    errors.check(len(config.evals) == 1, f'evals has {", ".join(config.evals)}: a face run '
                 'takes one face_pairs evaluator')
    sharding.validate_classifier_shard(config.parallel, config.batch_size)

  def prepare(self, runtime, points):
    """Opens the source and the validation packs; raises FaceDataError before anything
    is written."""
    del points
    self.runtime = runtime
    self.source, self.detail, self.folder = open_source(self.config.data)
    shard = self.config.parallel.classifier_shard
    if self.source.num_classes % shard:
      raise faces.FaceDataError(f'{self.detail}: {self.source.num_classes} identities do not '
                                f'split over parallel.classifier_shard={shard} devices')
    self.val_sets = load_val_sets(self.config)
    self.mesh = sharding.face_mesh(self.config.parallel)

  def data_record(self):
    return {'name': 'faces', 'source': self.config.data.face_source, 'detail': self.detail,
            'folder': self.folder,
            'num_train': len(self.source), 'num_classes': self.source.num_classes,
            'validation': {n: int(len(s)) for n, _, s in self.val_sets}}

  def group_points(self, points):
    return [[p] for p in points]

  def for_groups(self, runtime):
    self.runtime = runtime

  def start(self, group, paths):
    (point,) = group
    return FaceRun(self, point)

  def describe_run(self, point):
    del point
    return {'model': describe_model(self.config), 'data_detail': self.detail,
            'num_train': len(self.source), 'num_classes': self.source.num_classes,
            'protocol': protocol_settings(self.config).protocol,
            'flip': protocol_settings(self.config).flip}

  def metric_keys(self, results):
    """What the `face_pairs` evaluator returned: `<pack>_<metric>`, sorted."""
    packs = [n for n, _, _ in self.val_sets]
    return tuple(sorted({k for r in results for k in r
                         if any(k.startswith(f'{n}_') for n in packs)}))

  def summary_columns(self, results):
    return outputs.summary_columns(self.described, self.metric_keys(results), self.trained)

  def write_summary(self, workdir, points, results):
    del points
    outputs.write_summary(outputs.workdir_file(workdir, 'summary.csv'), results,
                          self.summary_columns(results))
    outputs.write_seed_statistics(workdir, self.config, results, outputs.metric_columns(
        self.metric_keys(results), self.trained))
    plots.plot_face_verification(workdir, results, [n for n, _, _ in self.val_sets],
                                 outputs.workdir_file(workdir, 'verification.png'))

  @staticmethod
  def table_columns(results):
    return ['status'] + sorted({k for r in results for k in r if k.endswith('_accuracy')
                                and k != 'train_accuracy'}) + ['images_per_s', 'wall_s']


class FaceRun:
  """One face run in training (a group of one): its state, the pipeline's iterator,
  the compiled step and embedding function, the images/s timing."""

  def __init__(self, task, point):
    config = self.config = task.config
    self.task, self.point = task, point
    self.checkpoint_name = sweeps.run_name(point)
    self.every = protocol_settings(config).every
    self.cadences = (self.every,)
    self.spans_processes = True  # every process trains this one run on its shard
    size = models.input_size(config.model)
    head, regularizer = point['head'], point['regularizer']
    num_classes = task.source.num_classes
    model = models.get_model(config.model, point['feature_size'], num_classes, head=head)
    setup = step_lib.make_setup(config, model, head, regularizer)
    # one compiled program: op by op, a BatchNorm network's initialisation is slow
    init = functools.partial(step_lib.init_state, setup, size + (3,), num_classes,
                             point['feature_size'], config.centers.init_scale, point['seed'])
    self.states = groups.stack([jax.jit(init)()])
    self.hparams = step_lib.hparams(config, point['lam'], point['alpha'],
                                    scale=point['scale'], margin=point['margin'])
    self.batches = stream.iterator(
        stream.dataset(task.source, config.batch_size, point['seed'], size, config.data.flip),
        workers=config.data.workers)
    self.shardings = sharding.face_state_shardings(groups.member(self.states, 0), task.mesh)
    self.step_fn = jax.jit(functools.partial(step_lib.train_step, setup), donate_argnums=0,
                           out_shardings=None if task.mesh is None else (self.shardings, None))
    self.predict_fn = jax.jit(functools.partial(step_lib.predict, model, head))
    self.scores = {}  # the validation numbers at the last chunk's end, once measured
    self.timed_images, self.timed_s = 0, 0.0

  def resume(self, step, extra):
    if step:
      self.batches.set_state(extra)

  def _evaluate(self, states):
    return evaluate(self.predict_fn, groups.member(states, 0), self.task.val_sets,
                    self.config)

  def begin(self, states, step):
    return [self._evaluate(states) if step == 0 and self.every else {}]

  def advance(self, states, step, num_steps):
    state = groups.member(states, 0)
    if self.shardings:
      state = jax.device_put(state, self.shardings)
    auxes = []
    for t in range(num_steps):
      tick = time.perf_counter()  # images/s counts the wait for the input batch too
      batch = sharding.put_batch(next(self.batches), self.task.mesh)
      state, aux = self.step_fn(state, batch, self.hparams)
      auxes.append(jax.device_get(aux))
      if step + t + 1 > 1:  # the first step compiles
        jax.block_until_ready(state.step)
        self.timed_images += self.config.batch_size
        self.timed_s += time.perf_counter() - tick
    aux = {k: np.array([[a[k]] for a in auxes]) for k in auxes[0]}
    return groups.stack([state]), aux

  def observe(self, states, step):
    due = step_lib.is_due(step, self.every, self.config.num_steps)
    self.scores = self._evaluate(states) if due else {}
    return [self.scores]

  def images(self, step):
    del step
    return [{}]

  def checkpoint_extra(self):
    return self.batches.get_state()

  def close(self):
    if hasattr(self.batches, 'close'):
      self.batches.close()

  def evaluate(self, i, state, diverged):
    del i
    if diverged:
      return {}, None
    return self.scores or evaluate(self.predict_fn, state, self.task.val_sets,
                                   self.config), None

  def training_record(self, i, state, last, diverged):
    del i, state, diverged
    return {'train_accuracy': last.get('accuracy'),
            'images_per_s': (round(self.timed_images / self.timed_s, 1) if self.timed_s
                             else None)}

  def write_files(self, i, point, result, artifacts, paths):
    del i, point, result, artifacts, paths  # a face run's files are its log and result


