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
from cl_research.evaluation import verification
from tests.conftest import REPO


def circle_features(classes, per_class=20, noise=0.05, seed=0):
  """Features on the unit circle, one direction per class, a little noise."""
  rng = np.random.default_rng(seed)
  labels = np.repeat(np.arange(classes), per_class)
  angle = 2 * np.pi * labels / classes + rng.normal(0, noise, len(labels))
  return np.stack([np.cos(angle), np.sin(angle)], 1), labels


def test_identification_of_separable_unseen_classes_is_perfect():
  features, labels = circle_features(10)
  out = openset.identification(features, labels, unseen=[6, 7, 8, 9], k=5)
  assert out['openset_rank1'] == 1.0 and out['openset_dir_at_far_1e-2'] == 1.0
  assert out['openset_mated_probes'] == 4 * 15 and out['openset_nonmated_probes'] == 6 * 20


def test_dir_counts_only_mated_probes_above_the_non_mated_threshold():
  """Two unseen classes (near 0 and at 90 degrees) and a seen class at 45 degrees: a mated
  probe is detected only if its own template is its best and it beats the score of every
  seen-class probe (FAR 1e-2 of 200 identical non-mated probes lets none through)."""
  rng = np.random.default_rng(0)
  angle = lambda a: np.stack([np.cos(np.radians(a)), np.sin(np.radians(a))], 1)
  features = np.concatenate([angle(rng.uniform(0, 50, 25)), angle(np.full(25, 90.0)),
                             angle(np.full(200, 45.0))])
  labels = np.r_[np.zeros(25, int), np.ones(25, int), np.full(200, 2)]
  out = openset.identification(features, labels, unseen=[0, 1], k=5, seed=0)
  enrol, mated = openset.enrolment_split(labels, [0, 1], 5, 0)
  templates = np.stack([features[enrol[c]].mean(0) for c in (0, 1)])
  templates /= np.linalg.norm(templates, axis=1, keepdims=True)
  nonmated_score = (angle(np.array([45.0])) @ templates.T).max()
  scores = features[mated] @ templates.T
  correct = scores.argmax(1) == labels[mated]
  detected = correct & (scores.max(1) > nonmated_score)
  assert out['openset_rank1'] == pytest.approx(correct.mean())
  assert out['openset_dir_at_far_1e-2'] == pytest.approx(detected.mean())
  assert 0 < detected.mean() < correct.mean()  # the threshold bites


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
  assert {r['holdout'] for r in rows} == {'6,7,8,9', '0,1,2,3'}
  for r in rows:
    assert r['openset_rank1'] != '' and r['verification_eer'] != ''
  with open(workdir / 'comparisons.csv') as f:
    baselines = {r['baseline'] for r in csv.DictReader(f)}
  assert any('regularizer=none' in b and 'head=' not in b for b in baselines)
  for name in ('roc.png', 'summary_by_setting.csv'):
    assert os.path.getsize(workdir / name) > 0
