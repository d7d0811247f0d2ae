"""Whether a config can work: names and values, checked before any compute.

Every choice (dataset, source, model, kernels, optimizer, center mode, head,
regularizer, group strategy, sharding) is checked here against the tuple its module
defines, and nowhere else. Whether this machine can run a choice is
`cl_research.platform.runtime`'s question.
"""

import math

import jax

from cl_research.core.models import backbones
from cl_research import configs
from cl_research import data
from cl_research.engine.tasks import faces as face_training
from cl_research.engine import groups
from cl_research.core import heads
from cl_research.platform import kernels
from cl_research.core.models import lenets as models
from cl_research.core import optim
from cl_research.core import regularizers
from cl_research.platform import sharding
from cl_research.configs import sweeps
from cl_research.core import step as train
from cl_research.evaluation import verification
def _check(ok, message):
  if not ok:
    raise configs.ConfigError(message)


def _number(value):
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(
      value)


def _validate_loss_values(points):
  """Scales, margins and head / regularizer pairs every run of the sweep can use."""
  for p in points:
    head, margin, scale = p['head'], p['margin'], p['scale']
    _check(p['regularizer'] != 'normalized_center' or head in heads.ANGULAR,
           f"regularizer 'normalized_center' with head {head!r}: it is for the angular heads "
           f"({', '.join(heads.ANGULAR)}); with {head!r} use 'center'")
    if scale is not None:
      _check(_number(scale) and scale > 0, f'scale {scale!r} ({head}): the scale s must be > 0')
    if margin is None:
      continue
    _check(_number(margin) and margin >= 0,
           f'margin {margin!r} ({head}): a margin must be a number >= 0')
    if head == 'arcface':
      _check(margin < math.pi / 2, f'margin {margin!r} (arcface): an angular margin must be '
             'in [0, pi/2) radians')
    if head == 'sphereface':
      _check(margin >= 1 and float(margin).is_integer(), f'margin {margin!r} (sphereface): '
             'm must be a positive integer (1 is plain normalised-weight softmax; 4 is usual)')


def _check_choice(value, name, valid):
  _check(value in valid, f'{name}={value!r} is not one of {", ".join(valid)}')


def validate(config):
  """Raises configs.ConfigError on the first value that cannot work, before any compute."""
  for axis in sweeps.REQUIRED_AXES:
    values = config.sweep[axis]
    _check(isinstance(values, (tuple, list)) and len(values) > 0,
           f'sweep.{axis}={values!r} must be a non-empty tuple')
  extra_sizes = {len(config.sweep_extra[a]) > 0 for a in sweeps.REQUIRED_AXES}
  _check(len(extra_sizes) == 1, 'sweep_extra: set all of lam, alpha, feature_size, seed '
         'or none of them')
  if config.centers.mode == 'gradient':
    alphas = set(config.sweep.alpha) | set(config.sweep_extra.alpha)
    _check(len(alphas) <= 1, f'sweep.alpha={tuple(config.sweep.alpha)!r} sweeps alpha, which '
           "only the paper's center update uses; with centers.mode='gradient' give one value "
           "or use centers.mode='paper'")
  for kind, valid in (('head', heads.HEADS), ('regularizer', regularizers.REGULARIZERS)):
    for value in {config.loss[kind], *config.sweep[kind], *config.sweep_extra[kind]}:
      _check(value in valid, f'{kind} {value!r} is not one of {", ".join(valid)}')
  points = sweeps.expand_runs(config)
  _validate_loss_values(points)
  for lam in {p['lam'] for p in points}:
    _check(isinstance(lam, (int, float)) and math.isfinite(lam) and lam >= 0,
           f'sweep.lam has {lam!r}: lambda must be a finite number >= 0')
  for alpha in {p['alpha'] for p in points} - {None}:
    _check(isinstance(alpha, (int, float)) and 0 < alpha <= 1,
           f'sweep.alpha has {alpha!r}: alpha must be in (0, 1]')
  for d in {p['feature_size'] for p in points}:
    _check(isinstance(d, int) and not isinstance(d, bool) and d >= 1,
           f'sweep.feature_size has {d!r}: feature size must be an integer >= 1')
  for seed in {p['seed'] for p in points}:
    _check(isinstance(seed, int) and seed >= 0,
           f'sweep.seed has {seed!r}: seeds must be integers >= 0')
  for baseline in config.analysis.baseline:
    key = baseline.partition('=')[0]
    _check(key in sweeps.SWEEP_AXES and key != 'seed' and '=' in baseline,
           f'analysis.baseline has {baseline!r}: a baseline is AXIS=VALUE with AXIS one of '
           f'{", ".join(a for a in sweeps.SWEEP_AXES if a != "seed")}')
  for axis in config.grid:
    _check(axis in sweeps.SWEEP_AXES, f'grid={tuple(config.grid)!r}: {axis!r} is not one of '
           f'{", ".join(sweeps.SWEEP_AXES)}')
  _check(len(config.grid) == 2, f'grid={tuple(config.grid)!r} must name 2 axes (rows, columns)')
  _check_choice(config.model.kernels, 'model.kernels', kernels.CHOICES)
  _check_choice(config.model.dtype, 'model.dtype', models.DTYPES)
  _check_choice(config.optimizer.name, 'optimizer.name', optim.OPTIMIZERS)
  _check_choice(config.centers.mode, 'centers.mode', train.CENTER_MODES)
  _check_choice(config.centers.optimizer, 'centers.optimizer', optim.OPTIMIZERS)
  _check_choice(config.parallel.group_strategy, 'parallel.group_strategy',
                groups.GROUP_STRATEGIES)
  _check_choice(config.parallel.shard, 'parallel.shard', sharding.SHARD_MODES)
  for name in ('max_group_size', 'num_devices', 'num_processes', 'steps_per_call',
               'local_processes'):
    _check(config.parallel[name] >= 0, f'parallel.{name}={config.parallel[name]!r} must be '
           '>= 0 (0: no limit / all / from the environment)')
  _check(config.checkpoint_every >= 0,
         f'checkpoint_every={config.checkpoint_every!r} must be >= 0 (0: off)')
  _check(config.figure in ('',) + configs.FIGURES, f'figure={config.figure!r} is not one of '
         f'{", ".join(configs.FIGURES)} (or empty)')
  _check(config.centers.init_scale >= 0,
         f'centers.init_scale={config.centers.init_scale!r} must be >= 0')
  _check(config.snapshot_every >= 0, f'snapshot_every={config.snapshot_every!r} must be >= 0')
  _check(config.eval.verification_pairs == 0 or config.eval.verification_pairs >= 20,
         f'eval.verification_pairs={config.eval.verification_pairs!r} must be 0 (off) or '
         '>= 20 (10 folds)')
  for name in ('batch_size', 'num_steps', 'log_every', 'plot_max_points'):
    _check(config[name] >= 1, f'{name}={config[name]!r} must be >= 1')
  for name in ('num_train', 'num_test', 'subset_seed'):
    _check(config.data[name] >= 0, f'data.{name}={config.data[name]!r} must be >= 0 '
           '(num_train, num_test: 0 means the whole split)')
  _check(config.optimizer.learning_rate > 0,
         f'optimizer.learning_rate={config.optimizer.learning_rate!r} must be > 0')
  _check(config.optimizer.grad_clip_norm >= 0,
         f'optimizer.grad_clip_norm={config.optimizer.grad_clip_norm!r} must be >= 0 (0: off)')
  _check(0 <= config.optimizer.warmup_frac < 1,
         f'optimizer.warmup_frac={config.optimizer.warmup_frac!r} must be in [0, 1)')
  _check_choice(config.optimizer.lr_schedule, 'optimizer.lr_schedule', optim.LR_SCHEDULES)
  if config.data.name == 'faces':
    _validate_faces(config)
  else:
    _validate_in_memory_data(config, points)


def _validate_in_memory_data(config, points):
  """The data and model fields of the MNIST-style experiments (data held in memory)."""
  _check(data.known(config.data.name), f'data.name={config.data.name!r} is not one of '
         f'{", ".join(data.DATASETS)} or a tensorflow-datasets name (kmnist, cifar10, ...)')
  _check_choice(config.data.source, 'data.source', data.SOURCES)
  _check(config.data.source != 'bundled' or config.data.name == 'mnist',
         f'data.source=bundled exists only for mnist, not {config.data.name!r}; use '
         'data.source=auto or tfds')
  _check_choice(config.model.name, 'model.name', tuple(models.MODELS))
  for held_out in {p['holdout'] for p in points}:
    for c in held_out:
      _check(isinstance(c, int) and not isinstance(c, bool) and c >= 0,
             f'held-out classes {held_out!r} have {c!r}: class ids are integers >= 0')
    _check(len(set(held_out)) != 1 or not config.eval.verification_pairs,
           f'held-out classes {held_out!r}: one class; open-set verification pairs need '
           'at least 2 held-out classes (or eval.verification_pairs=0)')
  shift = config.data.augment_shift
  _check(isinstance(shift, int) and 0 <= shift <= 13, f'data.augment_shift={shift!r} must '
         'be an integer number of pixels in [0, 13] (0: off)')
  _check(0 < config.data.test_fraction < 1,
         f'data.test_fraction={config.data.test_fraction!r} must be in (0, 1)')
  _check(config.data.channels in (0, 1, 3),
         f'data.channels={config.data.channels!r} is not one of 0 (as stored), 1, 3')
  _check(config.data.image_size == 0 or 8 <= config.data.image_size <= 512,
         f'data.image_size={config.data.image_size!r} must be 0 (as stored) or in [8, 512]')
  _check(config.data.num_train == 0 or config.data.num_train >= config.batch_size,
         f'data.num_train={config.data.num_train} is smaller than '
         f'batch_size={config.batch_size}')


def _validate_faces(config):
  """The fields of the face experiments (`configs.face_config`)."""
  d, m, e = config.data, config.model, config.eval
  _check_choice(d.face_source, 'data.face_source', face_training.FACE_SOURCES)
  _check(not d.lfw_pairs or bool(d.lfw_dir),
         'data.lfw_pairs is set but data.lfw_dir is empty: pairs.txt names images in it')
  _check(d.workers >= 0, f'data.workers={d.workers!r} must be >= 0 (0: threads)')
  _check_choice(m.name, 'model.name', backbones.BACKBONES)
  _check(m.name != 'iresnet' or m.depth in backbones.IRESNET_BLOCKS,
         f'model.depth={m.depth!r} is not one of {", ".join(map(str, backbones.IRESNET_BLOCKS))}')
  _check(_number(m.width) and m.width > 0, f'model.width={m.width!r} must be > 0')
  _check_choice(e.flip, 'eval.flip', verification.FLIP_MODES)
  _check_choice(e.protocol, 'eval.protocol', verification.PROTOCOLS)
  _check(e.num_folds >= 2, f'eval.num_folds={e.num_folds!r} must be >= 2')
  _check(e.face_every >= 0, f'eval.face_every={e.face_every!r} must be >= 0 (0: at the end)')
  _check(e.batch_size >= 1, f'eval.batch_size={e.batch_size!r} must be >= 1')
  _check(len(d.val_targets) > 0 or bool(d.lfw_pairs), 'data.val_targets is empty and no '
         'data.lfw_pairs: a face run needs verification pairs')
  shard = config.parallel.classifier_shard
  devices = config.parallel.num_devices or jax.local_device_count()
  _check(isinstance(shard, int) and shard >= 1 and devices % shard == 0,
         f'parallel.classifier_shard={shard!r} must be >= 1 and divide the {devices} devices')
  _check(config.batch_size % (devices // shard) == 0,
         f'batch_size={config.batch_size} does not split over {devices // shard} data-'
         'parallel devices')


def check_dataset(config, dataset):
  """Raises configs.ConfigError where the loaded data cannot serve `config` (the checks that need
  the data: its classes, what held-out classes and subsets leave). `dataset` is what a
  run trains on (`data.Dataset.for_run`)."""
  held_out = set(dataset.holdout_classes)
  bad = sorted(c for c in held_out if c >= dataset.num_classes)
  _check(not bad, f'held-out classes {tuple(dataset.holdout_classes)} have '
         f'{bad[0] if bad else None!r}: {config.data.name} has classes 0 to '
         f'{dataset.num_classes - 1}')
  _check(dataset.num_classes - len(held_out) >= 2,
         f'held-out classes {tuple(dataset.holdout_classes)}: keep at least 2 of the '
         f'{dataset.num_classes} classes for training')
  _check(len(dataset.train_labels) >= config.batch_size,
         f'{len(dataset.train_labels)} training examples are left (data.num_train='
         f'{config.data.num_train}, held-out classes {tuple(dataset.holdout_classes)}): '
         f'fewer than batch_size={config.batch_size}')
