"""Open-set identification and the verification numbers on hand-made features, and the
`openset` experiment end to end."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
from sklearn import metrics as sk_metrics

from cl_research.evaluation import openset
from cl_research.evaluation import statistics as analysis
from cl_research.evaluation import verification
from tests.conftest import REPO


def circle_features(classes, per_class=20, noise=0.05, seed=0):
  """Features on the unit circle, one direction per class, a little noise."""
  rng = np.random.default_rng(seed)
  labels = np.repeat(np.arange(classes), per_class)
  angle = 2 * np.pi * labels / classes + rng.normal(0, noise, len(labels))
  return np.stack([np.cos(angle), np.sin(angle)], 1), labels


def test_identification_of_separable_unseen_classes_is_perfect():
  features, labels = circle_features(10, per_class=600)
  out = openset.identification(features, labels, holdout=(5, 6, 7, 8, 9), num_unknown=2, k=5)
  assert out['openset_rank1'] == 1.0 and out['openset_dir_at_fpir_1e-2'] == 1.0
  assert out['openset_dir_at_fpir_1e-2_known_unknowns'] == 1.0
  # non-mated: the two unknown classes' images; known unknowns: the five trained classes'
  assert out['openset_nonmated_probes'] == 2 * 600
  assert out['openset_nonmated_probes_known_unknowns'] == 5 * 600


def angle_features(degrees):
  return np.stack([np.cos(np.radians(degrees)), np.sin(np.radians(degrees))], 1)


def test_dir_lets_floor_of_fpir_times_n_non_mated_probes_through():
  """1,000 non-mated probes with distinct scores at FPIR 1e-2: exactly 10 reach the
  threshold (a quantile with method='higher' lets 9 through), and DIR counts the mated
  probes above it."""
  rng = np.random.default_rng(0)
  gallery = angle_features(np.array([0.0, 180.0]))
  nonmated = angle_features(rng.permutation(np.linspace(30, 80, 1000)))  # distinct scores
  mated = angle_features(rng.uniform(-60, 60, 300))
  probes = np.concatenate([mated, nonmated])
  labels = np.r_[np.zeros(300, int), np.full(1000, 7)]
  out = openset.open_set_identification(gallery, [0, 1], probes, labels, fpir=1e-2)
  scores = probes @ gallery.T
  accepted = scores[300:].max(1) >= out['threshold']
  assert accepted.sum() == 10
  assert out['dir_at_fpir'] == pytest.approx(np.mean(scores[:300, 0] >= out['threshold']))
  assert out['rank1'] == 1.0 and 0 < out['dir_at_fpir'] < 1
  assert out['nonmated_probes'] == 1000 and out['mated_probes'] == 300


def test_dir_is_not_reported_where_the_non_mated_probes_cannot_estimate_it():
  """100 non-mated probes at FPIR 1e-2 would rest on one of them: NaN, rank-1 still."""
  gallery = angle_features(np.array([0.0, 180.0]))
  probes = np.concatenate([angle_features(np.full(20, 5.0)), angle_features(np.full(100, 90.0))])
  labels = np.r_[np.zeros(20, int), np.full(100, 3)]
  out = openset.open_set_identification(gallery, [0, 1], probes, labels, fpir=1e-2)
  assert np.isnan(out['dir_at_fpir']) and np.isnan(out['threshold']) and out['rank1'] == 1.0
  out = openset.open_set_identification(gallery, [0, 1], probes, labels, fpir=1e-1)
  assert out['dir_at_fpir'] == 1.0  # 10 of 100 may pass: estimable


def test_unknown_unknowns_and_known_unknowns_are_separate_numbers():
  """Trained classes kept far from the templates, unknown classes close to them: the
  DIR against unknown unknowns is the lower one (the trained classes flatter it)."""
  rng = np.random.default_rng(0)
  parts = [angle_features(rng.normal(a, s, 600)) for a, s in (
      (0, 2), (120, 2), (240, 2),  # enrolled classes 0, 1, 2
      (10, 5), (130, 5),  # unknown classes 3, 4: near the templates
      (60, 1), (180, 1), (300, 1))]  # trained classes 5, 6, 7: between them
  features = np.concatenate(parts)
  labels = np.repeat(np.arange(8), 600)
  out = openset.identification(features, labels, holdout=(0, 1, 2, 3, 4), num_unknown=2)
  assert out['openset_dir_at_fpir_1e-2'] < out['openset_dir_at_fpir_1e-2_known_unknowns']
  assert out['openset_rank1'] == 1.0


def test_equal_error_rate_and_roc_grid_against_sklearn():
  rng = np.random.default_rng(0)
  same = rng.random(2000) < 0.5
  scores = rng.normal(same * 1.5, 1.0)
  fpr, tpr, _ = sk_metrics.roc_curve(same, scores)
  eer = verification.equal_error_rate(fpr, tpr)
  i = np.argmin(np.abs(fpr - (1 - tpr)))
  assert abs(eer - fpr[i]) < 0.01 and 0.15 < eer < 0.3
  grid = verification.roc_on_grid(fpr, tpr)
  assert np.all(np.diff(grid) >= 0) and grid[-1] == 1.0


@pytest.mark.e2e
def test_openset_smoke_end_to_end_through_the_cli(tmp_path):
  workdir = tmp_path / 'openset'
  proc = subprocess.run(
      [sys.executable, '-m', 'cl_research.run', '--config', 'openset:smoke',
       '--config.data.source=bundled', '--config.sweep.feature_size=(2,)',
       '--config.sweep_extra.feature_size=(2,)', '--config.sweep.lam=(0.1,)',
       "--config.sweep_extra.head=('softmax', 'arcface')", '--workdir', str(workdir)],
      cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(workdir / 'summary.csv') as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 2 * 2 * 3  # splits x seeds x settings
  assert {r['holdout'] for r in rows} == {'5,6,7,8,9', '0,1,2,3,4'}
  for r in rows:
    assert r['openset_rank1'] != '' and r['verification_eer'] != ''
  with open(workdir / 'comparisons.csv') as f:
    comparisons = list(csv.DictReader(f))
  baselines = {r['baseline'] for r in comparisons}
  assert any('regularizer=none' in b and 'head=' not in b for b in baselines)
  for r in comparisons:
    assert r['verdict'] in analysis.VERDICTS and r['p_holm'] != '' or r['verdict'] == 'n/a'
    assert r['finished'] == r['baseline_finished'] == '2' and r['diverged'] == '0'
    assert r['baseline_diverged'] == r['excluded_pairs'] == '0'
  assert {r['family'] for r in comparisons} >= {'declared', 'verification_eer'}
  assert any(r['mde'] != '' for r in comparisons)
  for name in ('roc.png', 'summary_by_setting.csv'):
    assert os.path.getsize(workdir / name) > 0
