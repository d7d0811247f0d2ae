"""A sweep over seeds writes its statistics, and they are what one computes by hand from
summary.csv."""

import csv
import math

import numpy as np
import pytest
from scipy import stats

from cl_research import configs
from cl_research import outputs
from cl_research.engine import experiment
from cl_research.engine.tasks import digits
from cl_research.evaluation import evaluators
from cl_research.evaluation import statistics as analysis
from tests.conftest import synthetic_dataset
from tests.conftest import tiny_config


def read(path):
  with open(path) as f:
    return list(csv.DictReader(f))


@pytest.mark.e2e
def test_three_seeds_write_statistics_equal_to_the_hand_computed_ones(tmp_path):
  config = tiny_config(**{'sweep.seed': (0, 1, 2), 'sweep.lam': (0.0, 0.5),
                          'optimizer.learning_rate': 0.05, 'evals.verification.pairs': 40})
  experiment.train_and_evaluate(config, str(tmp_path), dataset=synthetic_dataset())
  summary = read(tmp_path / 'summary.csv')
  by_setting = {r['lam']: r for r in read(tmp_path / 'summary_by_setting.csv')}
  comparisons = read(tmp_path / 'comparisons.csv')
  assert set(by_setting) == {'0.0', '0.5'}
  expected_columns = {'n', 'diverged'} | {f'{m}_{s}' for m in outputs.metric_columns(evaluators.metric_keys(configs.digits_config().evals),
                                                                     digits.DigitsTask.trained)
                                          for s in ('mean', 'std', 'ci95_low', 'ci95_high')}
  assert expected_columns <= set(by_setting['0.5'])
  assert tuple(comparisons[0]) == analysis.COMPARISON_COLUMNS
  for r in comparisons:  # both sides' counts, a verdict of the five
    assert (r['finished'], r['diverged'], r['baseline_finished'], r['baseline_diverged'],
            r['excluded_pairs']) == ('3', '0', '3', '0', '0')
    assert r['verdict'] in analysis.VERDICTS
  family = [r for r in comparisons if r['family'] == 'declared']
  assert {r['metric'] for r in family} == set(config.analysis.family)
  np.testing.assert_allclose([float(r['p_holm']) for r in family],
                             analysis.holm([float(r['p_value']) for r in family]))
  for lam in ('0.0', '0.5'):
    row = by_setting[lam]
    assert row['n'] == '3' and row['diverged'] == '0'
    for metric in ('test_accuracy', 'test_intra_inter', 'verification_accuracy'):
      x = np.array([float(r[metric]) for r in summary if r['lam'] == lam])
      half = stats.t.ppf(0.975, 2) * x.std(ddof=1) / math.sqrt(3)
      for key, value in (('mean', x.mean()), ('std', x.std(ddof=1)),
                         ('ci95_low', x.mean() - half), ('ci95_high', x.mean() + half)):
        assert math.isclose(float(row[f'{metric}_{key}']), value, rel_tol=1e-9), (metric, key)
  compared = {r['metric']: r for r in comparisons}
  assert {r['baseline'] for r in comparisons} == {'lambda=0, alpha=0.5, d=2'}
  for metric in ('test_accuracy', 'test_intra_inter'):
    by_seed = {(r['lam'], r['seed']): float(r[metric]) for r in summary}
    a = np.array([by_seed['0.5', s] for s in '012'])
    b = np.array([by_seed['0.0', s] for s in '012'])
    c = compared[metric]
    assert c['n'] == '3' and c['setting'] == 'lambda=0.5, alpha=0.5, d=2'
    assert math.isclose(float(c['mean_diff']), (a - b).mean(), rel_tol=1e-9)
    half = stats.t.ppf(0.975, 2) * (a - b).std(ddof=1) / math.sqrt(3)
    assert math.isclose(float(c['ci95_high']), (a - b).mean() + half, rel_tol=1e-9)
    assert math.isclose(float(c['p_value']), stats.ttest_rel(a, b).pvalue, rel_tol=1e-9)
    sd = (a - b).std(ddof=1)
    assert math.isclose(float(c['mde']), analysis.minimum_detectable_effect(sd, 3), rel_tol=1e-9)


@pytest.mark.e2e
def test_one_seed_writes_no_statistics(tmp_path):
  config = tiny_config(**{'sweep.lam': (0.0, 0.5)})
  experiment.train_and_evaluate(config, str(tmp_path), dataset=synthetic_dataset())
  assert not (tmp_path / 'summary_by_setting.csv').exists()
  assert not (tmp_path / 'comparisons.csv').exists()
