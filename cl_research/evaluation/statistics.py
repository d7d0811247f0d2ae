"""Statistics over seeds: means with Student-t intervals and paired comparisons (scipy).

A comparison between two settings pairs their runs by seed (the same seed gives the same
initialisation and batches), so the seed-to-seed spread that both share cancels.
"""

import math

import numpy as np
from scipy import stats


def mean_interval(values, confidence=0.95):
  """(mean, sample std (ddof 1), low, high) of the Student-t interval of the mean, over
  the finite values; the interval is the mean itself for one value, NaN for none."""
  x = np.asarray([v for v in values if v is not None and math.isfinite(v)], float)
  if len(x) == 0:
    return (math.nan,) * 4
  mean = float(x.mean())
  if len(x) == 1:
    return mean, math.nan, mean, mean
  std = float(x.std(ddof=1))
  half = float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1)) * std / math.sqrt(len(x))
  return mean, std, mean - half, mean + half


def paired_difference(values, baseline, confidence=0.95):
  """`values - baseline`, paired element by element (by seed): a dict with n,
  mean_diff, ci95_low, ci95_high (Student-t) and p_value (two-sided paired t-test;
  NaN below two pairs or when every difference is equal)."""
  a, b = np.asarray(values, float), np.asarray(baseline, float)
  keep = np.isfinite(a) & np.isfinite(b)
  a, b = a[keep], b[keep]
  mean, _, low, high = mean_interval(a - b, confidence)
  p_value = math.nan
  if len(a) > 1 and np.ptp(a - b) > 0:
    p_value = float(stats.ttest_rel(a, b).pvalue)
  return {'n': int(len(a)), 'mean_diff': mean, 'ci95_low': low, 'ci95_high': high,
          'p_value': p_value}


def verdict(comparison):
  """'higher', 'lower' or 'no clear difference': where the interval lies against 0.
  `comparison` is `paired_difference`'s dict or a row of comparisons.csv (its text)."""
  if int(comparison['n']) > 1 and float(comparison['ci95_low']) > 0:
    return 'higher'
  if int(comparison['n']) > 1 and float(comparison['ci95_high']) < 0:
    return 'lower'
  return 'no clear difference'


def setting_of(result, axes):
  """The values of `axes` in a run's result: its setting (every swept value but the
  seed). Lists, as JSON stores tuples, become tuples."""
  return tuple(tuple(v) if isinstance(v, list) else v for v in (result.get(a) for a in axes))


def by_setting(results, axes, metrics):
  """One row per setting: the setting's values, `n` (complete runs), `diverged` (left
  out of the statistics) and, per metric M, M_mean, M_std, M_ci95_low, M_ci95_high."""
  settings = {}
  for r in results:
    settings.setdefault(setting_of(r, axes), []).append(r)
  rows = []
  for setting, runs in settings.items():
    done = [r for r in runs if r['status'] == 'complete']
    row = {**dict(zip(axes, setting)), 'n': len(done),
           'diverged': sum(r['status'] == 'diverged' for r in runs)}
    for m in metrics:
      values = [r.get(m) for r in done]
      row[f'{m}_mean'], row[f'{m}_std'], row[f'{m}_ci95_low'], row[f'{m}_ci95_high'] = (
          mean_interval([v for v in values if isinstance(v, (int, float))]))
    rows.append(row)
  return rows


def parse_baseline(spec):
  """'lam=0' -> ('lam', 0.0); 'head=softmax' -> ('head', 'softmax')."""
  key, _, value = spec.partition('=')
  try:
    return key, float(value)
  except ValueError:
    return key, value


def comparisons(results, axes, metrics, baseline='lam=0', label=None, resolve=None):
  """Each setting against its baseline (the same setting with `baseline`'s value), paired
  by seed over the runs complete in both: rows of metric, setting, baseline, n,
  mean_diff, ci95_low, ci95_high, p_value. `label(setting dict)` names a setting;
  `resolve(point)` makes the baseline's values what its runs use (e.g. no margin for
  the softmax head)."""
  key, value = parse_baseline(baseline)
  label = label or (lambda s: ', '.join(f'{k}={v}' for k, v in s.items()))
  resolve = resolve or (lambda point: point)
  runs = {}
  for r in results:
    if r['status'] == 'complete':
      runs.setdefault(setting_of(r, axes), {})[r['seed']] = r
  rows = []
  for setting, by_seed in runs.items():
    named = dict(zip(axes, setting))
    if named.get(key) == value:
      continue
    base_setting = setting_of(resolve({**named, key: value}), axes)
    base = runs.get(base_setting)
    if base is None or base_setting == setting:
      continue
    seeds = sorted(set(by_seed) & set(base))
    for m in metrics:
      pairs = [(by_seed[s].get(m), base[s].get(m)) for s in seeds]
      pairs = [(a, b) for a, b in pairs if isinstance(a, (int, float))
               and isinstance(b, (int, float))]
      c = paired_difference([a for a, _ in pairs], [b for _, b in pairs])
      rows.append({'metric': m, 'setting': label(named),
                   'baseline': label(dict(zip(axes, base_setting))), **c})
  return rows
