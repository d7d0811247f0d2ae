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
  features, labels = separable_features(n_per_class=100)
  out, _ = verification.evaluate(features, labels, num_pairs=20_000)  # 10,000 negatives
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


def test_tar_at_far_is_reported_only_where_the_negatives_can_estimate_it():
  """3,000 negative pairs allow 3 false accepts at FAR 1e-3 (empty) and 30 at 1e-2."""
  features, labels = separable_features(n_per_class=100)
  out, _ = verification.evaluate(features, labels, num_pairs=6000)
  assert out['verification_tar_at_far_1e-2'] == 1.0
  assert np.isnan(out['verification_tar_at_far_1e-3'])
  assert verification.estimable(1e-3, 10_000) and not verification.estimable(1e-3, 9_999)


def test_tar_at_far_keeps_the_operating_points_at_tied_scores():
  """20 score levels, each shared by one positive and one negative pair (a straight
  diagonal of the ROC curve), above 480 positives and 980 negatives: at FAR 1e-2 (10 of
  1,000 negatives) the exact TAR is 10 / 500. roc_curve's default drop_intermediate
  removes the collinear points and reads 0."""
  levels = np.linspace(10, 5, 20)
  scores = np.r_[levels, levels, np.full(480, 1.0), np.full(980, 0.0)]
  same = np.r_[np.ones(20, bool), np.zeros(20, bool), np.ones(480, bool), np.zeros(980, bool)]
  assert verification.tar_at_far(scores, same, 1e-2) == pytest.approx(10 / 500)


def insightface_calculate_val(thresholds, embeddings1, embeddings2, actual_issame, far_target,
                              nrof_folds=10):
  """insightface's `eval/verification.py` calculate_val, transcribed line by line, with
  `interpolate.interp1d(far_train, thresholds, kind='slinear')` as SciPy <= 1.8 builds it
  (interp1d sorts x stably, then make_interp_spline(k=1) returns the B-spline with knots
  r_[x[0], x, x[-1]] and coefficients y: written here with scipy's BSpline)."""
  from scipy import interpolate  # pylint: disable=g-import-not-at-top
  from sklearn.model_selection import KFold  # pylint: disable=g-import-not-at-top

  def calculate_val_far(threshold, dist, actual_issame):
    predict_issame = np.less(dist, threshold)
    true_accept = np.sum(np.logical_and(predict_issame, actual_issame))
    false_accept = np.sum(np.logical_and(predict_issame, np.logical_not(actual_issame)))
    n_same = np.sum(actual_issame)
    n_diff = np.sum(np.logical_not(actual_issame))
    return float(true_accept) / float(n_same), float(false_accept) / float(n_diff)

  def interp1d_slinear_scipy18(x, y):
    ind = np.argsort(x, kind='mergesort')
    x, y = x[ind], y[ind]
    return interpolate.BSpline(np.r_[x[0], x, x[-1]], y, 1)

  nrof_pairs = min(len(actual_issame), embeddings1.shape[0])
  nrof_thresholds = len(thresholds)
  k_fold = KFold(n_splits=nrof_folds, shuffle=False)
  val = np.zeros(nrof_folds)
  far = np.zeros(nrof_folds)
  diff = np.subtract(embeddings1, embeddings2)
  dist = np.sum(np.square(diff), 1)
  indices = np.arange(nrof_pairs)
  for fold_idx, (train_set, test_set) in enumerate(k_fold.split(indices)):
    far_train = np.zeros(nrof_thresholds)
    for threshold_idx, threshold in enumerate(thresholds):
      _, far_train[threshold_idx] = calculate_val_far(threshold, dist[train_set],
                                                      actual_issame[train_set])
    if np.max(far_train) >= far_target:
      f = interp1d_slinear_scipy18(far_train, thresholds)
      threshold = f(far_target)
    else:
      threshold = 0.0
    val[fold_idx], far[fold_idx] = calculate_val_far(threshold, dist[test_set],
                                                     actual_issame[test_set])
  return np.mean(val), np.std(val), np.mean(far)


@pytest.mark.parametrize('seed', range(3))
def test_insightface_val_equals_insightfaces_calculate_val(seed):
  """Random 6,000-pair packs (128-D, same-identity pairs a noisy copy; VAL 0.3 to 0.6):
  VAL, its std and the FAR reached equal the transcription to 1e-9. Anchoring the
  interpolation at the lowest threshold of a flat FAR stretch misses by up to 3 points
  on these packs."""
  from sklearn import preprocessing  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  same = np.repeat(rng.permutation(np.r_[np.ones(300, bool), np.zeros(300, bool)])[None],
                   10, axis=0).ravel()
  left = rng.normal(size=(6000, 128))
  noise = (3 + 0.5 * seed) * rng.normal(size=(6000, 128))  # VAL about 0.6 to 0.3
  right = np.where(same[:, None], left + noise, rng.normal(size=(6000, 128)))
  emb = np.empty((12000, 128))
  emb[0::2], emb[1::2] = left, right
  unit = preprocessing.normalize(emb)
  val, val_std, far = insightface_calculate_val(np.arange(0, 4, 0.001), unit[0::2], unit[1::2],
                                                same, 1e-3)
  got = verification.insightface_protocol(emb, same)
  assert got['val_at_far_1e-3'] == pytest.approx(val, abs=1e-9)
  assert got['val_std'] == pytest.approx(val_std, abs=1e-9)
  assert got['far'] == pytest.approx(far, abs=1e-9)
  assert got['val_negatives'] == 2700 and not verification.estimable(1e-3, 2700)


def test_slinear_anchors_a_flat_stretch_at_its_highest_threshold():
  far = np.array([0.0, 0.0, 0.1, 0.1, 0.1, 0.5])
  thresholds = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
  assert verification.slinear(far, thresholds, 0.1) == 4.0  # the last of the stretch
  assert verification.slinear(far, thresholds, 0.3) == pytest.approx(4.5)  # from (0.1, 4)
  assert verification.slinear(far, thresholds, 0.05) == pytest.approx(1.5)  # from (0, 1)
