"""The base config every experiment starts from, its argument parsing, and validation.

Experiments live in `experiments/NAME.py` as `get_config(arg)`; they start from
`base_config()` and change what they need. Swept values have one home, `config.sweep`:
every run of an experiment is one point of the product of its tuples.
"""

import itertools
import math

import ml_collections

from cl_research import data
from cl_research import kernels
from cl_research import models
from cl_research import optim
from cl_research import sharding
from cl_research import train

SWEEP_AXES = ('lam', 'alpha', 'feature_size', 'seed')
FIGURES = ('fig2', 'fig3', 'fig5')


class ConfigError(ValueError):
  """A config value that cannot work; the message names it and what would be valid."""


def base_config():
  """LeNets++ on MNIST with the Caffe solver's settings, one run at lam 0.01."""
  c = ml_collections.ConfigDict()
  c.sweep = ml_collections.ConfigDict()
  c.sweep.lam = (0.01,)  # center-loss weight; see cl_research.losses for the convention
  c.sweep.alpha = (0.5,)  # center update rate of ECCV16 Eq. 4 (`paper` mode only)
  c.sweep.feature_size = (2,)
  c.sweep.seed = (0,)  # init and data order
  # A second product grid whose runs are added to the first (ECCV16 Fig. 5 sweeps lambda
  # at one alpha and alpha at one lambda); unused while its tuples are empty.
  c.sweep_extra = ml_collections.ConfigDict({a: () for a in SWEEP_AXES})

  c.data = ml_collections.ConfigDict()
  c.data.name = 'mnist'
  c.data.source = 'auto'
  c.data.manual_dir = ''  # a folder with the four IDX .gz files
  c.data.data_dir = ml_collections.FieldReference(None, field_type=str)  # tfds data_dir
  c.data.num_train = 0  # a seeded, class-stratified subset of this size; 0: whole split
  c.data.num_test = 0
  c.data.subset_seed = 0  # which subset num_train / num_test keep
  c.data.bundled_test_fraction = 0.2
  c.data.holdout_classes = ()  # open-set: removed from training, verification pairs only
  c.data.augment_shift = 0  # training images moved by up to this many pixels; 0: off

  c.model = ml_collections.ConfigDict()
  c.model.name = 'lenets_pp'
  c.model.channels = (32, 64, 128)
  c.model.feature_prelu = False
  c.model.classifier_bias = True
  c.model.kernels = 'auto'  # convolution + PReLU: xla | onednn | auto (cl_research.kernels)

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = 'sgd'
  c.optimizer.learning_rate = 0.01
  c.optimizer.momentum = 0.9
  c.optimizer.weight_decay = 5e-4
  c.optimizer.decay_biases = False  # Caffe LeNets++: decay_mult 0 on biases (optim.decay_mask)
  c.optimizer.lr_decay = 0.8  # Caffe MNIST solver: x0.8 at 5k and 8k of 10k iterations
  c.optimizer.lr_decay_at = (0.5, 0.8)  # fractions of num_steps
  c.optimizer.warmup_frac = 0.0  # linear warm-up over this fraction of num_steps
  c.optimizer.grad_clip_norm = 0.0  # clip the network's gradient to this global norm; 0: off

  c.centers = ml_collections.ConfigDict()
  c.centers.mode = 'paper'  # 'paper': Eq. 4 with alpha; 'gradient': own optimizer
  c.centers.optimizer = 'sgd'  # gradient mode only
  c.centers.learning_rate = 0.5
  c.centers.momentum = 0.0
  c.centers.unscale_lambda = False  # gradient mode: KaiyangZhou's center step (train.py)
  c.centers.init_scale = 0.0  # centers start uniform in +-init_scale; 0: at the origin

  c.eval = ml_collections.ConfigDict()
  c.eval.verification_pairs = 6000  # LFW-style pairs from the test split; 0: off
  c.eval.pairs_seed = 0
  c.eval.knn_k = 5
  c.eval.silhouette_samples = 2000

  c.parallel = ml_collections.ConfigDict()
  # The `auto` (0) choices below are resolved per backend by cl_research.runtime.
  c.parallel.group_strategy = 'auto'  # runs of a group: 'vmap', 'map' (lax.map), 'unroll'
  c.parallel.max_group_size = 0  # most runs trained together; 0: auto (CPU 1, else all)
  c.parallel.steps_per_call = 0  # steps per compiled program; 0: auto (CPU 1, else a chunk)
  c.parallel.shard = 'auto'  # 'model' axis of a group, 'batch' of a lone run, 'none', 'auto'
  c.parallel.num_devices = 0  # local devices to use; 0: all
  c.parallel.local_processes = 0  # processes pinned to their own cores; 0: auto (CPU: 1/core)
  c.parallel.distributed = False  # jax.distributed.initialize(); also on if the env says so
  c.parallel.coordinator_address = ''  # '' : from the environment (or SLURM / TPU)
  c.parallel.num_processes = 0
  c.parallel.process_id = -1

  c.checkpoint_every = 0  # > 0: an orbax checkpoint of each group every N steps (resume)
  c.figure = ''  # '', 'fig2', 'fig3' or 'fig5': a paper figure drawn after the sweep
  c.snapshot_every = 0  # > 0: test features every N steps -> evolution.gif per run
  c.batch_size = 128
  c.num_steps = 10_000
  c.log_every = 100
  c.plot_max_points = 10_000
  return c


def parse_arg(arg, allowed):
  """'a,b' -> {'a', 'b'}; an unknown token is a ConfigError naming the valid ones.
  `allowed`: the experiment's `ARGS` (token -> what it does)."""
  tokens = {t for t in (arg or '').split(',') if t}
  unknown = tokens - set(allowed)
  if unknown:
    raise ConfigError(f'unknown config argument {sorted(unknown)[0]!r}; '
                      f'valid: {", ".join(sorted(allowed))}')
  return tokens


def apply_cpu(c):
  """The 2-core-CPU budget: LeNets++ at 1/4 width, 900 SGD steps of 64 at lr 0.04, the
  gradient clipped to norm 5 (`fig*:cpu`; `sweep` raises the steps to 1,500). How each
  value was chosen, with the measurements: docs/cpu_budget.md."""
  c.model.channels = (8, 16, 32)
  c.batch_size = 64
  c.num_steps = 900
  c.optimizer.learning_rate = 0.04
  c.optimizer.grad_clip_norm = 5.0
  c.log_every = 50
  return c


FIGURE_ARGS = {'mnist': 'MNIST (the default)', 'fashion_mnist': 'Fashion-MNIST',
               'cpu': 'the 2-core-CPU budget of configs.apply_cpu',
               'smoke': 'seconds, a tiny net (tests)'}


def figure_config(arg, figure):
  """Base config for a paper figure: `arg` picks the dataset and the size.

  Tokens: `mnist` (default) or `fashion_mnist`; `cpu` for the CPU budget of
  `apply_cpu`; `smoke` for seconds. Without `cpu`/`smoke`: the paper's LeNets++ and the
  Caffe solver (10k steps of 128) on a 50K/10K split.
  """
  tokens = parse_arg(arg, FIGURE_ARGS)
  c = base_config()
  c.figure = figure
  c.data.name = 'fashion_mnist' if 'fashion_mnist' in tokens else 'mnist'
  c.data.num_train = 50_000  # ECCV16's 50K/10K split (the bundled digits are fewer)
  if 'cpu' in tokens:
    apply_cpu(c)
  if 'smoke' in tokens:
    apply_smoke(c)
  return c


def apply_smoke(c):
  """Shrinks a config to seconds of CPU time, keeping its grid (for tests)."""
  c.num_steps = 20
  c.log_every = 10
  c.batch_size = 32
  c.data.num_train = 512
  c.data.num_test = 256
  c.eval.verification_pairs = 200
  # One process: starting a pinned process per core costs ~5 s, more than a smoke run.
  c.parallel.local_processes = 1
  if c.model.name == 'lenets_pp':
    c.model.channels = (4, 8, 8)
  return c


def expand_runs(config):
  """Every point of `sweep` then of `sweep_extra` (if set), without repeats, in order.
  In `gradient` center mode alpha plays no part: the points' alpha is None."""
  points = []
  for grid in (config.sweep, config.sweep_extra):
    if not grid.lam:
      continue
    for values in itertools.product(*[tuple(grid[a]) for a in SWEEP_AXES]):
      point = dict(zip(SWEEP_AXES, values))
      if config.centers.mode == 'gradient':
        point['alpha'] = None
      if point not in points:
        points.append(point)
  return points


def run_name(point):
  alpha = '' if point['alpha'] is None else f"alpha={point['alpha']:g}_"
  return f"lam={point['lam']:g}_{alpha}d={point['feature_size']}_seed={point['seed']}"


def check_dataset(config, dataset):
  """Raises ConfigError where the loaded data cannot serve `config` (the checks that need
  the data: what held-out classes and subsets leave)."""
  _check(len(dataset.train_labels) >= config.batch_size,
         f'{len(dataset.train_labels)} training examples are left (data.num_train='
         f'{config.data.num_train}, data.holdout_classes={tuple(config.data.holdout_classes)}'
         f'): fewer than batch_size={config.batch_size}')


def describe_point(point):
  """'lambda=0.1, alpha=0.5, d=2, seed=0' for the keys `point` has (alpha None: left out)."""
  names = {'lam': 'lambda', 'alpha': 'alpha', 'feature_size': 'd', 'seed': 'seed'}
  return ', '.join(f'{names[k]}={point[k]:g}' if isinstance(point[k], float) else
                   f'{names[k]}={point[k]}' for k in names if point.get(k) is not None)


def json_diff(old, new, prefix=''):
  """'a.b: 1 -> 2, ...' for the leaves that differ between two config dicts."""
  diffs = []
  for key in sorted(set(old) | set(new)):
    a, b = old.get(key), new.get(key)
    if isinstance(a, dict) and isinstance(b, dict):
      diff = json_diff(a, b, f'{prefix}{key}.')
      if diff:
        diffs.append(diff)
    elif a != b:
      diffs.append(f'{prefix}{key}: {a!r} -> {b!r}')
  return ', '.join(diffs)


def _check(ok, message):
  if not ok:
    raise ConfigError(message)


def _check_choice(value, name, valid):
  _check(value in valid, f'{name}={value!r} is not one of {", ".join(valid)}')


def validate(config):
  """Raises ConfigError on the first value that cannot work, before any compute. Checks
  names and values only: whether this machine can run a choice is `cl_research.runtime`'s
  question."""
  for axis in SWEEP_AXES:
    values = config.sweep[axis]
    _check(isinstance(values, (tuple, list)) and len(values) > 0,
           f'sweep.{axis}={values!r} must be a non-empty tuple')
  extra_sizes = {len(config.sweep_extra[a]) > 0 for a in SWEEP_AXES}
  _check(len(extra_sizes) == 1, 'sweep_extra: set all of lam, alpha, feature_size, seed '
         'or none of them')
  if config.centers.mode == 'gradient':
    alphas = set(config.sweep.alpha) | set(config.sweep_extra.alpha)
    _check(len(alphas) <= 1, f'sweep.alpha={tuple(config.sweep.alpha)!r} sweeps alpha, which '
           "only the paper's center update uses; with centers.mode='gradient' give one value "
           "or use centers.mode='paper'")
  points = expand_runs(config)
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
  _check_choice(config.data.name, 'data.name', data.DATASETS)
  _check_choice(config.data.source, 'data.source', data.SOURCES)
  _check(config.data.source != 'bundled' or config.data.name == 'mnist',
         f'data.source=bundled exists only for mnist, not {config.data.name!r}; use '
         'data.source=auto or tfds')
  _check_choice(config.model.name, 'model.name', tuple(models.MODELS))
  _check_choice(config.model.kernels, 'model.kernels', kernels.CHOICES)
  _check_choice(config.optimizer.name, 'optimizer.name', optim.OPTIMIZERS)
  _check_choice(config.centers.mode, 'centers.mode', train.CENTER_MODES)
  _check_choice(config.centers.optimizer, 'centers.optimizer', optim.OPTIMIZERS)
  _check_choice(config.parallel.group_strategy, 'parallel.group_strategy',
                train.GROUP_STRATEGIES)
  _check_choice(config.parallel.shard, 'parallel.shard', sharding.SHARD_MODES)
  for name in ('max_group_size', 'num_devices', 'num_processes', 'steps_per_call',
               'local_processes'):
    _check(config.parallel[name] >= 0, f'parallel.{name}={config.parallel[name]!r} must be '
           '>= 0 (0: no limit / all / from the environment)')
  _check(config.checkpoint_every >= 0,
         f'checkpoint_every={config.checkpoint_every!r} must be >= 0 (0: off)')
  _check(config.figure in ('',) + FIGURES, f'figure={config.figure!r} is not one of '
         f'{", ".join(FIGURES)} (or empty)')
  for c in config.data.holdout_classes:
    _check(isinstance(c, int) and 0 <= c < 10,
           f'data.holdout_classes has {c!r}: class ids are integers in [0, 10)')
  held_out = set(config.data.holdout_classes)
  _check(len(held_out) <= 8, 'data.holdout_classes: keep at least 2 classes for training')
  _check(len(held_out) != 1 or not config.eval.verification_pairs,
         f'data.holdout_classes={tuple(config.data.holdout_classes)!r} holds one class; '
         'open-set verification pairs need at least 2 held-out classes (or '
         'eval.verification_pairs=0)')
  shift = config.data.augment_shift
  _check(isinstance(shift, int) and 0 <= shift <= 13, f'data.augment_shift={shift!r} must '
         'be an integer number of pixels in [0, 13] (0: off)')
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
  _check(0 < config.data.bundled_test_fraction < 1,
         f'data.bundled_test_fraction={config.data.bundled_test_fraction!r} must be in (0, 1)')
  _check(config.data.num_train == 0 or config.data.num_train >= config.batch_size,
         f'data.num_train={config.data.num_train} is smaller than '
         f'batch_size={config.batch_size}')
