"""Seed statistics against scipy and hand-computed values."""

import math

import numpy as np
from scipy import stats

from cl_research.evaluation import statistics as analysis


def test_mean_interval_is_the_student_t_interval_of_the_mean():
  values = [0.91, 0.95, 0.93, 0.96]
  mean, std, low, high = analysis.mean_interval(values)
  assert math.isclose(mean, np.mean(values)) and math.isclose(std, np.std(values, ddof=1))
  half = stats.t.ppf(0.975, 3) * std / 2
  assert math.isclose(low, mean - half) and math.isclose(high, mean + half)
  assert analysis.mean_interval([0.5, None, float('nan')])[::2] == (0.5, 0.5)


def test_paired_difference_pairs_by_position_and_matches_scipy():
  values, baseline = [0.93, 0.95, 0.94], [0.90, 0.919, 0.911]
  c = analysis.paired_difference(values, baseline)
  diffs = np.subtract(values, baseline)
  assert c['n'] == 3 and math.isclose(c['mean_diff'], diffs.mean())
  assert math.isclose(c['p_value'], stats.ttest_rel(values, baseline).pvalue)
  half = stats.t.ppf(0.975, 2) * diffs.std(ddof=1) / math.sqrt(3)
  assert math.isclose(c['ci95_low'], diffs.mean() - half)
  assert analysis.verdict(c) == 'higher'
  assert analysis.verdict(analysis.paired_difference([1.0, 2.0], [1.5, 1.5])) == (
      'no clear difference')
