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
  """'higher', 'lower' or 'no clear difference': where the interval lies against 0."""
  if comparison['n'] > 1 and comparison['ci95_low'] > 0:
    return 'higher'
  if comparison['n'] > 1 and comparison['ci95_high'] < 0:
    return 'lower'
  return 'no clear difference'
