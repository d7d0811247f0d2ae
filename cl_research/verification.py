"""The face papers' LFW verification protocol, for any labelled features.

A fixed, seeded set of pairs (half same class, half different), cosine similarity of
the deep features, and accuracy with the threshold chosen by 10-fold cross-validation:
for each fold the threshold that maximises accuracy on the other nine folds is applied
to the held-out fold. Also ROC AUC and TAR at FAR = 1e-3 (scikit-learn), which need no
threshold.
"""

import numpy as np
from sklearn import metrics as sk_metrics
from sklearn.model_selection import StratifiedKFold

from cl_research import metrics

FAR_GRID = np.logspace(-3, 0, 31)  # where ROC curves are kept, to average over seeds


def _unique_pairs(draw, count, num_available, enumerate_all, rng):
  """`count` distinct unordered pairs drawn by `draw()` (an (a, b) sampler) with
  rejection, or sampled from `enumerate_all()` (an Nx2 array of all `num_available`
  pairs) when `count` is so large a share that rejection would be slow."""
  if count > num_available:
    raise ValueError(f'{count} unique pairs requested, only {num_available} exist')
  if 2 * count > num_available:
    everything = enumerate_all()
    return everything[np.sort(rng.choice(len(everything), count, replace=False))]
  seen, pairs = set(), []
  while len(pairs) < count:
    a, b = draw()
    key = (min(a, b), max(a, b))
    if key not in seen:
      seen.add(key)
      pairs.append((a, b))
  return np.array(pairs, int).reshape(-1, 2)


def make_pairs(labels_N, num_pairs, seed, classes=None):
  """Indices (a, b) and `same` flags: num_pairs // 2 same-class pairs, the rest different.

  Only examples whose label is in `classes` (all if None) are used. Every pair is
  distinct as an unordered pair ((a, b) and (b, a) are one pair) and never joins an
  example with itself; same-class pairs pick a class uniformly, then two of its members.
  The order is shuffled so folds mix both kinds; a seed gives the same pairs everywhere.
  """
  rng = np.random.default_rng(seed)
  labels_N = np.asarray(labels_N)
  pool = np.flatnonzero(np.isin(labels_N, classes)) if classes is not None else np.arange(
      len(labels_N))
  present = [c for c in np.unique(labels_N[pool]) if (labels_N[pool] == c).sum() >= 2]
  if len(present) < 2:
    raise ValueError(f'verification pairs need >= 2 classes with >= 2 examples; got {present}')
  by_class = {c: pool[labels_N[pool] == c] for c in present}
  num_same = num_pairs // 2

  def all_pairs(members, same_class):
    a, b = np.triu_indices(len(members), k=1)
    pairs = np.stack([members[a], members[b]], axis=1)
    return pairs[(labels_N[pairs[:, 0]] == labels_N[pairs[:, 1]]) == same_class]

  def draw_same():
    return tuple(rng.choice(by_class[rng.choice(present)], 2, replace=False))

  def draw_different():
    while True:
      a, b = rng.choice(pool, 2, replace=False)
      if labels_N[a] != labels_N[b]:
        return a, b

  num_same_available = sum(len(m) * (len(m) - 1) // 2 for m in by_class.values())
  num_diff_available = len(pool) * (len(pool) - 1) // 2 - sum(
      n * (n - 1) // 2 for n in np.unique(labels_N[pool], return_counts=True)[1])
  same = _unique_pairs(draw_same, num_same, num_same_available, lambda: np.concatenate(
      [all_pairs(m, True) for m in by_class.values()]), rng)
  diff = _unique_pairs(draw_different, num_pairs - num_same, num_diff_available,
                       lambda: all_pairs(pool, False), rng)
  pairs = np.concatenate([same, diff])
  is_same = np.concatenate([np.ones(len(same), bool), np.zeros(len(diff), bool)])
  order = rng.permutation(len(pairs))
  return pairs[order], is_same[order]


def cosine_scores(features_NxD, pairs_Px2):
  f = metrics.unit_vectors(features_NxD)
  return np.sum(f[pairs_Px2[:, 0]] * f[pairs_Px2[:, 1]], axis=1)


def negative_l2_scores(features_NxD, pairs_Px2):
  """-||a - b||: the distance center loss itself shrinks; higher means more similar."""
  f = np.asarray(features_NxD, np.float64)
  return -np.linalg.norm(f[pairs_Px2[:, 0]] - f[pairs_Px2[:, 1]], axis=1)


def best_threshold(scores, same):
  """The threshold (predict same if score >= t) with the highest accuracy on these pairs.

  Candidates are midpoints between sorted distinct scores plus both ends; ties go to
  the smallest threshold.
  """
  values = np.unique(scores)
  candidates = np.concatenate([[values[0] - 1.0], (values[:-1] + values[1:]) / 2,
                               [values[-1] + 1.0]])
  # accuracy(t) = (#same with score >= t + #diff with score < t) / n, for all t at once
  same_sorted, diff_sorted = np.sort(scores[same]), np.sort(scores[~same])
  true_accepts = len(same_sorted) - np.searchsorted(same_sorted, candidates, side='left')
  true_rejects = np.searchsorted(diff_sorted, candidates, side='left')
  accuracy = (true_accepts + true_rejects) / len(scores)
  return float(candidates[np.argmax(accuracy)])


def folds(same, num_folds=10):
  """(train, held-out) index pairs; each fold has the same share of same-class pairs,
  as LFW's folds of 300 + 300 pairs."""
  return list(StratifiedKFold(n_splits=num_folds).split(np.zeros(len(same)), same))


def kfold_accuracy(scores, same, num_folds=10):
  """Accuracy per held-out fold with the threshold fit on the other folds."""
  accuracies, thresholds = [], []
  for train_idx, test_idx in folds(same, num_folds):
    t = best_threshold(scores[train_idx], same[train_idx])
    predicted = scores[test_idx] >= t
    accuracies.append(float(np.mean(predicted == same[test_idx])))
    thresholds.append(t)
  return np.array(accuracies), np.array(thresholds)


def tar_at_far(scores, same, far=1e-3):
  """True accept rate at the largest false accept rate not above `far`. With N negative
  pairs it is decided by the far * N highest-scoring ones: 3 of 3,000 at FAR 1e-3."""
  fpr, tpr, _ = sk_metrics.roc_curve(same, scores)
  ok = fpr <= far
  return float(tpr[ok].max()) if ok.any() else 0.0


def roc_on_grid(fpr, tpr, grid=FAR_GRID):
  """The true accept rate at each false accept rate of `grid` (the best reached at or
  below it), so curves of several runs can be averaged point by point."""
  return np.array([tpr[fpr <= f].max() if np.any(fpr <= f) else 0.0 for f in grid])


def equal_error_rate(fpr, tpr):
  """Where the false accept rate equals the false reject rate, linearly interpolated."""
  frr = 1.0 - tpr
  i = np.flatnonzero(fpr >= frr)[0]
  if i == 0:
    return float(fpr[0])
  a, b = fpr[i - 1] - frr[i - 1], fpr[i] - frr[i]  # a < 0 <= b
  t = a / (a - b)
  return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def score_metrics(scores, same, num_folds=10, suffix=''):
  """Every number of the protocol for one kind of score (higher = more alike)."""
  fpr, tpr, _ = sk_metrics.roc_curve(same, scores)
  accuracies, _ = kfold_accuracy(scores, same, num_folds)
  out = {'accuracy': float(accuracies.mean()), 'accuracy_std': float(accuracies.std()),
         'auc': float(sk_metrics.roc_auc_score(same, scores)),
         'eer': equal_error_rate(fpr, tpr),
         'tar_at_far_1e-2': tar_at_far(scores, same, 1e-2),
         'tar_at_far_1e-3': tar_at_far(scores, same, 1e-3)}
  return {f'verification_{k}{suffix}': v for k, v in out.items()}, roc_on_grid(fpr, tpr)


def evaluate(features_NxD, labels_N, num_pairs=6000, seed=0, classes=None, num_folds=10):
  """The whole protocol: (a flat dict of floats for result.json / summary.csv, the ROC
  curves on FAR_GRID by cosine and by Euclidean distance).

  The protocol's score is cosine similarity; the `_l2` numbers repeat it with Euclidean
  distance, which is what center loss optimises and differs most from cosine for
  low-dimensional features near the origin. `verification_accuracy_std` is the standard
  deviation over the 10 folds of this one pair set, not run-to-run variation.
  """
  pairs, same = make_pairs(labels_N, num_pairs, seed, classes)
  scores = cosine_scores(features_NxD, pairs)
  if not np.all(np.isfinite(scores)):
    raise ValueError('non-finite features: cannot score verification pairs')
  cosine, roc_cosine = score_metrics(scores, same, num_folds)
  l2, roc_l2 = score_metrics(negative_l2_scores(features_NxD, pairs), same, num_folds, '_l2')
  roc = {'far': FAR_GRID.tolist(), 'tar_cosine': roc_cosine.tolist(),
         'tar_l2': roc_l2.tolist()}
  return {**cosine, **l2, 'verification_pairs': int(len(pairs))}, roc
