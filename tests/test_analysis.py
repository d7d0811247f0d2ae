"""Seed statistics against scipy and hand-computed values."""

import math

import numpy as np
import pytest
from scipy import stats

from cl_research.evaluation import statistics as analysis


def test_mean_interval_is_the_student_t_interval_of_the_mean():
  values = [0.91, 0.95, 0.93, 0.96]
  mean, std, low, high = analysis.mean_interval(values)
  assert math.isclose(mean, np.mean(values)) and math.isclose(std, np.std(values, ddof=1))
  half = stats.t.ppf(0.975, 3) * std / 2
  assert math.isclose(low, mean - half) and math.isclose(high, mean + half)


def test_one_value_has_a_mean_and_no_interval():
  mean, std, low, high = analysis.mean_interval([0.5, None, float('nan')])
  assert mean == 0.5 and all(math.isnan(x) for x in (std, low, high))


def test_paired_comparison_pairs_by_position_and_matches_scipy():
  values, baseline = [0.93, 0.95, 0.94], [0.90, 0.919, 0.911]
  c = analysis.paired_comparison(values, baseline)
  diffs = np.subtract(values, baseline)
  assert c['n'] == 3 and math.isclose(c['mean_diff'], diffs.mean())
  assert math.isclose(c['p_value'], stats.ttest_rel(values, baseline).pvalue)
  half = stats.t.ppf(0.975, 2) * diffs.std(ddof=1) / math.sqrt(3)
  assert math.isclose(c['ci95_low'], diffs.mean() - half)
  assert c['verdict'] == 'higher'
  assert analysis.paired_comparison([1.0, 2.0], [1.5, 1.5])['verdict'] == 'inconclusive'


@pytest.mark.parametrize('values,baseline', [
    ([0.91, 0.93], [0.90, 0.92]),  # every difference 0.01: zero spread
    ([0.91], [0.90]),  # one pair
    ([0.91, float('nan')], [0.90, 0.92]),  # one finite pair
])
def test_no_interval_and_no_verdict_without_spread_or_pairs(values, baseline):
  c = analysis.paired_comparison(values, baseline, margin=0.01)
  assert c['verdict'] == 'n/a'
  assert all(math.isnan(c[k]) for k in ('ci95_low', 'ci95_high', 'p_value', 'p_tost', 'mde'))
  assert c['mean_diff'] == pytest.approx(0.01)


def test_tost_declares_equivalence_inside_the_margin_only():
  rng = np.random.default_rng(0)
  baseline = rng.normal(0.9, 0.02, 12)
  close = baseline + rng.normal(0.0, 0.002, 12)  # differences of about +-0.2 points
  c = analysis.paired_comparison(close, baseline, margin=0.01)
  d = close - baseline
  expected = max(stats.ttest_1samp(d, -0.01, alternative='greater').pvalue,
                 stats.ttest_1samp(d, 0.01, alternative='less').pvalue)
  assert math.isclose(c['p_tost'], expected) and c['verdict'] == 'equivalent'
  assert analysis.paired_comparison(close, baseline, margin=0.0001)['verdict'] == 'inconclusive'
  assert analysis.paired_comparison(close, baseline)['verdict'] == 'inconclusive'  # no margin


def test_minimum_detectable_effect_has_the_stated_power():
  """At the MDE, simulated paired t-tests reject in 80% of experiments (noncentral t)."""
  sd, n = 0.02, 5
  mde = analysis.minimum_detectable_effect(sd, n)
  rng = np.random.default_rng(0)
  d = rng.normal(mde, sd, (20_000, n))
  rejected = stats.ttest_1samp(d, 0.0, axis=1).pvalue < 0.05
  assert abs(rejected.mean() - 0.8) < 0.015
  # and with three seeds, an SD of 2 points hides effects of several points
  assert analysis.minimum_detectable_effect(0.02, 3) > 0.05


def test_holm_matches_the_step_down_rule_by_hand():
  p = [0.01, 0.04, 0.03, float('nan'), 0.005]
  # sorted 0.005, 0.01, 0.03, 0.04 of m = 4: times 4, 3, 2, 1, then the running maximum
  expected = [0.03, 0.06, 0.06, math.nan, 0.02]
  np.testing.assert_allclose(analysis.holm(p), expected)
  np.testing.assert_allclose(analysis.holm([0.6, 0.7]), [1.0, 1.0])  # capped at 1


def run(seed, setting, status='complete', **metrics):
  return {'seed': seed, 'lam': setting, 'status': status, **metrics}


def test_comparisons_count_both_sides_and_exclude_diverged_pairs():
  results = [run(0, 0.0, acc=0.90), run(1, 0.0, acc=0.91), run(2, 0.0, acc=0.92),
             run(3, 0.0, 'diverged'),
             run(0, 1.0, acc=0.95), run(1, 1.0, 'diverged'), run(2, 1.0, acc=0.96),
             run(3, 1.0, acc=0.97)]
  (row,) = analysis.comparisons(results, ('lam',), ('acc',), 'lam=0', margins={'acc': 0.01})
  assert (row['finished'], row['diverged']) == (3, 1)
  assert (row['baseline_finished'], row['baseline_diverged']) == (3, 1)
  assert row['excluded_pairs'] == 2 and row['n'] == 2  # seeds 1 and 3 out, 0 and 2 in
  assert row['mean_diff'] == pytest.approx(0.045) and row['margin'] == 0.01


def test_verdicts_use_holm_adjusted_p_values_within_the_declared_family():
  """Ten comparisons of one metric, each p about 0.02 on its own: inconclusive once
  adjusted together; a metric outside the family is adjusted on its own."""
  results = [run(s, 0.0, acc=0.90 + 0.001 * s, loss=1.0 + 0.01 * s) for s in range(3)]
  for k in range(1, 11):
    results += [run(s, float(k), acc=0.90 + 0.001 * s + 0.01 + 0.006 * (s == 1),
                    loss=1.0 + 0.01 * s + 0.5 + 0.1 * (s == 1)) for s in range(3)]
  rows = analysis.comparisons(results, ('lam',), ('acc', 'loss'), 'lam=0')
  unadjusted = {r['verdict'] for r in rows if r['metric'] == 'acc'}
  assert unadjusted == {'higher'}
  analysis.adjust(rows, family=('acc',))
  acc = [r for r in rows if r['metric'] == 'acc']
  assert {r['family'] for r in acc} == {'declared'} and {r['verdict'] for r in acc} == {
      'inconclusive'}
  np.testing.assert_allclose([r['p_holm'] for r in acc], analysis.holm([r['p_value'] for r in acc]))
  loss = [r for r in rows if r['metric'] == 'loss']
  assert {r['family'] for r in loss} == {'loss'}
  assert all(r['verdict'] in analysis.VERDICTS for r in rows)
