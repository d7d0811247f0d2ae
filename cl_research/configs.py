"""The base config every experiment starts from, its argument parsing, and validation.

Experiments live in `experiments/NAME.py` as `get_config(arg)`; they start from
`base_config()` and change what they need. Swept values have one home, `config.sweep`:
every run of an experiment is one point of the product of its tuples.
"""

import itertools
import math

import ml_collections

from cl_research import data
from cl_research import models

CENTER_MODES = ('paper', 'gradient')
OPTIMIZERS = ('sgd', 'adam')
SWEEP_AXES = ('lam', 'alpha', 'feature_size', 'seed')


class ConfigError(ValueError):
  """A config value that cannot work; the message names it and what would be valid."""


def base_config():
  """LeNets++ on MNIST with the Caffe solver's settings, one run at lam 0.01."""
  c = ml_collections.ConfigDict()
  c.sweep = ml_collections.ConfigDict()
  c.sweep.lam = (0.01,)  # center-loss weight; see cl_research.losses for the convention
  c.sweep.alpha = (0.5,)  # center update rate of ECCV16 Eq. 4 (`paper` mode)
  c.sweep.feature_size = (2,)
  c.sweep.seed = (0,)  # init and data order

  c.data = ml_collections.ConfigDict()
  c.data.name = 'mnist'
  c.data.source = 'auto'
  c.data.manual_dir = ''  # a folder with the four IDX .gz files
  c.data.data_dir = ml_collections.FieldReference(None, field_type=str)  # tfds data_dir
  c.data.num_train = 0  # 0: whole split
  c.data.num_test = 0
  c.data.bundled_test_fraction = 0.2

  c.model = ml_collections.ConfigDict()
  c.model.name = 'lenets_pp'
  c.model.channels = (32, 64, 128)
  c.model.feature_prelu = False
  c.model.classifier_bias = True

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = 'sgd'
  c.optimizer.learning_rate = 0.01
  c.optimizer.momentum = 0.9
  c.optimizer.weight_decay = 5e-4
  c.optimizer.lr_decay = 0.8  # Caffe MNIST solver: x0.8 at 5k and 8k of 10k iterations
  c.optimizer.lr_decay_at = (0.5, 0.8)  # fractions of num_steps
  c.optimizer.warmup_frac = 0.0  # linear warm-up over this fraction of num_steps
  c.optimizer.grad_clip_norm = 0.0  # clip the network's gradient to this global norm; 0: off

  c.centers = ml_collections.ConfigDict()
  c.centers.mode = 'paper'  # 'paper': Eq. 4 with alpha; 'gradient': own optimizer
  c.centers.optimizer = 'sgd'  # gradient mode only
  c.centers.learning_rate = 0.5
  c.centers.momentum = 0.0
  c.centers.unscale_lambda = False  # gradient mode: divide center grads by lam

  c.batch_size = 128
  c.num_steps = 10_000
  c.log_every = 100
  c.plot_max_points = 10_000
  return c


def parse_arg(arg, allowed):
  """'a,b' -> {'a', 'b'}; an unknown token is a ConfigError naming the valid ones."""
  tokens = {t for t in (arg or '').split(',') if t}
  unknown = tokens - set(allowed)
  if unknown:
    raise ConfigError(f'unknown config argument {sorted(unknown)[0]!r}; '
                      f'valid: {", ".join(sorted(allowed))}')
  return tokens


def apply_smoke(c):
  """Shrinks a config to seconds of CPU time, keeping its grid (for tests)."""
  c.num_steps = 20
  c.log_every = 10
  c.batch_size = 32
  c.data.num_train = 512
  c.data.num_test = 256
  if c.model.name == 'lenets_pp':
    c.model.channels = (4, 8, 8)
  return c


def expand_runs(config):
  """Every point of the sweep grid as a dict of its swept values, in a stable order."""
  axes = [tuple(config.sweep[a]) for a in SWEEP_AXES]
  return [dict(zip(SWEEP_AXES, point)) for point in itertools.product(*axes)]


def run_name(point):
  return (f"lam={point['lam']:g}_alpha={point['alpha']:g}_"
          f"d={point['feature_size']}_seed={point['seed']}")


def _check(ok, message):
  if not ok:
    raise ConfigError(message)


def _check_choice(value, name, valid):
  _check(value in valid, f'{name}={value!r} is not one of {", ".join(valid)}')


def validate(config):
  """Raises ConfigError on the first value that cannot work, before any compute."""
  for axis in SWEEP_AXES:
    values = config.sweep[axis]
    _check(isinstance(values, (tuple, list)) and len(values) > 0,
           f'sweep.{axis}={values!r} must be a non-empty tuple')
  for lam in config.sweep.lam:
    _check(isinstance(lam, (int, float)) and math.isfinite(lam) and lam >= 0,
           f'sweep.lam has {lam!r}: lambda must be a finite number >= 0')
  for alpha in config.sweep.alpha:
    _check(isinstance(alpha, (int, float)) and 0 < alpha <= 1,
           f'sweep.alpha has {alpha!r}: alpha must be in (0, 1]')
  for d in config.sweep.feature_size:
    _check(isinstance(d, int) and not isinstance(d, bool) and d >= 1,
           f'sweep.feature_size has {d!r}: feature size must be an integer >= 1')
  for seed in config.sweep.seed:
    _check(isinstance(seed, int) and seed >= 0,
           f'sweep.seed has {seed!r}: seeds must be integers >= 0')
  _check_choice(config.data.name, 'data.name', data.DATASETS)
  _check_choice(config.data.source, 'data.source', data.SOURCES)
  _check_choice(config.model.name, 'model.name', models.MODELS)
  _check_choice(config.optimizer.name, 'optimizer.name', OPTIMIZERS)
  _check_choice(config.centers.mode, 'centers.mode', CENTER_MODES)
  _check_choice(config.centers.optimizer, 'centers.optimizer', OPTIMIZERS)
  for name in ('batch_size', 'num_steps', 'log_every', 'plot_max_points'):
    _check(config[name] >= 1, f'{name}={config[name]!r} must be >= 1')
  for name in ('num_train', 'num_test'):
    _check(config.data[name] >= 0, f'data.{name}={config.data[name]!r} must be >= 0 '
           '(0 means the whole split)')
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
