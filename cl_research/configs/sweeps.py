"""A sweep's runs: the points of `config.sweep` (and `sweep_extra`), and their names.

A run is one point: a dict of the swept values, `lam`, `alpha`, `feature_size`, `seed`,
`head`, `regularizer`, `scale`, `margin` and `holdout` (the classes held out of its
training, a tuple). An empty loss axis takes `config.loss`'s value (`loss.head`,
`loss.regularizer`, `loss.scale`, the head's own margin); an empty `holdout`,
`data.holdout_classes`. Values a
run does not use are None: alpha without the paper's center update or without centers,
scale and margin for heads that have none; and lam is 0 without a regularizer. So a sweep
never trains one run twice under two names.
"""

import itertools

from cl_research import errors
from cl_research.core import heads
from cl_research.core import regularizers

SWEEP_AXES = ('lam', 'alpha', 'feature_size', 'seed', 'head', 'regularizer', 'scale',
              'margin', 'holdout')
REQUIRED_AXES = ('lam', 'alpha', 'feature_size', 'seed')
NAMES = {'lam': 'lambda', 'alpha': 'alpha', 'feature_size': 'd', 'seed': 'seed',
         'head': 'head', 'regularizer': 'regularizer', 'scale': 's', 'margin': 'm',
         'holdout': 'held out'}
DEFAULT_LOSS = {'head': 'softmax', 'regularizer': 'center'}  # left out of names


def _values(config, grid, axis):
  values = tuple(grid[axis])
  if axis == 'holdout':
    return tuple(tuple(v) for v in values) or (tuple(config.data.get('holdout_classes', ())),)
  if values or axis in REQUIRED_AXES:
    return values
  return (config.loss[axis],) if axis in ('head', 'regularizer') else (None,)


def _resolve(config, point):
  """The point as the run uses it: defaults filled in, unused values None."""
  head, regularizer = point['head'], point['regularizer']
  spec = heads.HEADS[head]
  point['scale'] = (None if not spec.scaled else
                    config.loss.scale if point['scale'] is None else point['scale'])
  point['margin'] = (None if spec.margin_field is None else
                     config.loss[spec.margin_field] if point['margin'] is None
                     else point['margin'])
  if regularizer == 'none':
    point['lam'] = 0.0
  if config.centers.mode == 'gradient' or not regularizers.uses_centers(regularizer):
    point['alpha'] = None
  return point


def resolve(config, point):
  """A copy of `point` with what its run uses (`_resolve`): e.g. the baseline of a
  comparison made by changing one value of a setting."""
  return _resolve(config, dict(point))


def expand_runs(config, grids=None):
  """Every point of `sweep` then of `sweep_extra` (if set), without repeats, in order;
  `grids` picks other ConfigDicts of sweep axes."""
  points = []
  for grid in grids or (config.sweep, config.sweep_extra):
    if not grid.lam:
      continue
    for values in itertools.product(*[_values(config, grid, a) for a in SWEEP_AXES]):
      point = _resolve(config, dict(zip(SWEEP_AXES, values)))
      if point not in points:
        points.append(point)
  return points


def _text(value, separator=','):
  if isinstance(value, tuple):
    return separator.join(map(str, value)) or 'none'
  return f'{value:g}' if isinstance(value, float) else str(value)


def run_name(point):
  """'lam=0.1_alpha=0.5_d=2_seed=0' plus `_head=..`, `_s=..`, `_m=..`, `_reg=..` where
  the point has them and they are not softmax + center; no alpha where it is None."""
  parts = [f"lam={_text(point['lam'])}"]
  if point.get('alpha') is not None:
    parts.append(f"alpha={_text(point['alpha'])}")
  parts += [f"d={point['feature_size']}", f"seed={point['seed']}"]
  if point.get('head', 'softmax') != 'softmax':
    parts.append(f"head={point['head']}")
  parts += [f'{NAMES[k]}={_text(point[k])}' for k in ('scale', 'margin')
            if point.get(k) is not None]
  if point.get('regularizer', 'center') != 'center':
    parts.append(f"reg={point['regularizer']}")
  if point.get('holdout'):
    parts.append(f"held={_text(point['holdout'], '-')}")
  return '_'.join(parts)


def describe_point(point, keys=None):
  """'lambda=0.1, alpha=0.5, d=2, seed=0' for `keys` (default: every key of NAMES) the
  point has and that is not None; softmax + center and no held-out classes left out."""
  shown = []
  for k in keys or NAMES:
    value = point.get(k)
    if value is None or (keys is None and (DEFAULT_LOSS.get(k) == value or value == ())):
      continue
    shown.append(f'{NAMES[k]}={_text(value)}')
  return ', '.join(shown)


def grids(config):
  """The pictures of `config.sweep` along `config.grid` (rows, columns): a list of
  (fixed values, row values, column values, {(i, j): run name}), one per combination
  of the other axes' sweep values."""
  row_key, col_key = config.grid
  axes = {a: _values(config, config.sweep, a) for a in SWEEP_AXES}
  others = [a for a in SWEEP_AXES if a not in config.grid]
  out = []
  for combo in itertools.product(*[axes[a] for a in others]):
    fixed = dict(zip(others, combo))
    cells = {(i, j): run_name(_resolve(config, {**fixed, row_key: r, col_key: c}))
             for i, r in enumerate(axes[row_key]) for j, c in enumerate(axes[col_key])}
    out.append((fixed, axes[row_key], axes[col_key], cells))
  return out


def axis_label(axis, value):
  """'d=2', 'lambda=0.1', 'head=arcface' for a panel's heading."""
  return f'{NAMES[axis]}={_text(value)}'


def file_safe(text):
  """'alpha=0.5, seed=0, held out=6,7' -> 'alpha=0.5_seed=0_heldout=6-7', for file names."""
  return text.replace(', ', '_').replace(' ', '').replace(',', '-')


def validate(config):
  """Raises ConfigError where `config.sweep`, `sweep_extra` or `analysis.baseline` cannot
  make runs: every axis a tuple, feature sizes and seeds of the right kind."""
  for axis in REQUIRED_AXES:
    values = config.sweep[axis]
    errors.check(isinstance(values, (tuple, list)) and len(values) > 0,
                 f'sweep.{axis}={values!r} must be a non-empty tuple')
  extra_sizes = {len(config.sweep_extra[a]) > 0 for a in REQUIRED_AXES}
  errors.check(len(extra_sizes) == 1, 'sweep_extra: set all of lam, alpha, feature_size, '
               'seed or none of them')
  for kind, valid in (('head', heads.HEADS), ('regularizer', regularizers.REGULARIZERS)):
    for value in {config.loss[kind], *config.sweep[kind], *config.sweep_extra[kind]}:
      errors.check(value in valid, f'{kind} {value!r} is not one of {", ".join(valid)}')
  points = expand_runs(config)
  for d in {p['feature_size'] for p in points}:
    errors.check(isinstance(d, int) and not isinstance(d, bool) and d >= 1,
                 f'sweep.feature_size has {d!r}: feature size must be an integer >= 1')
  for seed in {p['seed'] for p in points}:
    errors.check(isinstance(seed, int) and seed >= 0,
                 f'sweep.seed has {seed!r}: seeds must be integers >= 0')
  for baseline in config.analysis.baseline:
    key = baseline.partition('=')[0]
    errors.check(key in SWEEP_AXES and key != 'seed' and '=' in baseline,
                 f'analysis.baseline has {baseline!r}: a baseline is AXIS=VALUE with AXIS one '
                 f'of {", ".join(a for a in SWEEP_AXES if a != "seed")}')
  return points


def validate_grid(config):
  """Raises ConfigError where `config.grid` does not name two axes of a point."""
  for axis in config.grid:
    errors.check(axis in SWEEP_AXES, f'grid={tuple(config.grid)!r}: {axis!r} is not one of '
                 f'{", ".join(SWEEP_AXES)}')
  errors.check(len(config.grid) == 2,
               f'grid={tuple(config.grid)!r} must name 2 axes (rows, columns)')
