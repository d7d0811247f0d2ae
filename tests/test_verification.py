"""The verification protocol on synthetic features with known answers."""

import numpy as np
import pytest

from cl_research.evaluation import verification


def separable_features(n_per_class=60, num_classes=5, seed=0):
  rng = np.random.default_rng(seed)
  labels = np.repeat(np.arange(num_classes), n_per_class)
  angles = 2 * np.pi * labels / num_classes
  directions = np.stack([np.cos(angles), np.sin(angles)], axis=1)
  return directions * (1 + rng.random((len(labels), 1))), labels  # same direction per class


def test_pairs_are_half_same_half_different_seeded_and_never_self():
  _, labels = separable_features()
  pairs, same = verification.make_pairs(labels, 600, seed=3)
  assert len(pairs) == 600 and same.sum() == 300
  assert np.all((labels[pairs[:, 0]] == labels[pairs[:, 1]]) == same)
  assert np.all(pairs[:, 0] != pairs[:, 1])
  again, _ = verification.make_pairs(labels, 600, seed=3)
  np.testing.assert_array_equal(pairs, again)


def test_pairs_restricted_to_held_out_classes():
  _, labels = separable_features()
  pairs, issame = verification.make_pairs(labels, 200, seed=0, classes=[3, 4])
  first, second = labels[pairs[:, 0]], labels[pairs[:, 1]]
  assert set(first) | set(second) == {3, 4}  # both held-out classes, no other
  np.testing.assert_array_equal(issame, first == second)  # the flags say what the pairs are
  assert issame.sum() == 100 and (~issame).sum() == 100
  assert len({tuple(sorted(p)) for p in pairs.tolist()}) == 200  # distinct pairs


def test_perfectly_separable_features_give_100_percent():
  features, labels = separable_features()
  out, _ = verification.evaluate(features, labels, num_pairs=1000)
  assert out['verification_accuracy'] == 1.0
  assert out['verification_auc'] == 1.0
  assert out['verification_tar_at_far_1e-3'] == 1.0


def test_l2_score_separates_what_cosine_cannot():
  # Two classes on the same ray at different radii: same angle, different distance.
  labels = np.repeat([0, 1], 50)
  features = np.where(labels[:, None] == 0, 1.0, 10.0) * np.array([[1.0, 1.0]])
  features = features + 0.01 * np.random.default_rng(0).normal(size=features.shape)
  out, _ = verification.evaluate(features, labels, num_pairs=400)
  assert out['verification_accuracy_l2'] == 1.0
  assert out['verification_accuracy'] < 0.75


def test_identical_features_give_50_percent():
  _, labels = separable_features()
  out, _ = verification.evaluate(np.ones((len(labels), 3)), labels, num_pairs=1000)
  assert out['verification_accuracy'] == pytest.approx(0.5)
  assert out['verification_auc'] == pytest.approx(0.5)


def test_fold_thresholds_are_fit_only_on_training_folds():
  rng = np.random.default_rng(0)
  scores = rng.normal(size=200)
  same = rng.random(200) < 0.5
  scores[same] += 1.0
  accuracies, thresholds = verification.kfold_accuracy(scores, same, num_folds=10)
  splits = verification.folds(same, 10)
  for (train, held_out), t in zip(splits, thresholds):
    assert len(np.intersect1d(train, held_out)) == 0 and len(train) + len(held_out) == 200
    assert t == verification.best_threshold(scores[train], same[train])
  # Changing the held-out fold's scores changes nothing about its threshold.
  tampered = scores.copy()
  first_fold = splits[0][1]
  tampered[first_fold] = np.where(same[first_fold], -5.0, 5.0)
  _, thresholds_after = verification.kfold_accuracy(tampered, same, num_folds=10)
  assert thresholds_after[0] == thresholds[0]
  assert accuracies.shape == (10,)


def test_best_threshold_is_the_accuracy_maximiser():
  scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.35])
  same = np.array([False, False, False, True, True, True])
  t = verification.best_threshold(scores, same)
  assert 0.3 < t <= 0.35
  assert np.mean((scores >= t) == same) == 1.0


def test_pairs_are_distinct_unordered_pairs():
  labels = np.repeat(np.arange(10), 100)  # 1,000 examples, like a small test split
  pairs, same = verification.make_pairs(labels, 6000, seed=0)
  unordered = {(min(a, b), max(a, b)) for a, b in pairs.tolist()}
  assert len(unordered) == 6000 and same.sum() == 3000


def test_pairs_use_every_pair_when_asked_for_all_and_refuse_more():
  labels = np.array([0, 0, 0, 1, 1, 1])  # 6 same-class and 9 different-class pairs
  pairs, same = verification.make_pairs(labels, 12, seed=1)
  assert len({(min(a, b), max(a, b)) for a, b in pairs.tolist()}) == 12 and same.sum() == 6
  with pytest.raises(ValueError, match='only 6 exist'):
    verification.make_pairs(labels, 14, seed=1)


def test_tar_at_far_reports_the_level_the_pairs_support():
  features, labels = separable_features()
  out, _ = verification.evaluate(features, labels, num_pairs=400)
  assert out['verification_tar_at_far_1e-2'] == 1.0
