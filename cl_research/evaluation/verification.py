"""The face papers' LFW verification protocol, for any labelled features.

A fixed, seeded set of pairs (half same class, half different), cosine similarity of
the deep features, and accuracy with the threshold chosen by 10-fold cross-validation:
for each fold the threshold that maximises accuracy on the other nine folds is applied
to the held-out fold. Also ROC AUC, the equal error rate and TAR at FAR 1e-2 and 1e-3
(scikit-learn), which need no threshold.

A rate at a false accept rate f is read off the ROC curve with every operating point kept
(`drop_intermediate=False`: the default drops points at tied scores and can misread the
rate) and reported only where the pairs can estimate it: at least
`MIN_FALSE_ACCEPTS` negative pairs would be accepted (f x negatives >= 10). Below that
the rate rests on a handful of pairs (at FAR 1e-3 over 3,000 negatives, on the 3 highest)
and is NaN, an empty cell in summary.csv.
"""

import numpy as np
from sklearn import metrics as sk_metrics
from sklearn.model_selection import KFold
from sklearn.model_selection import StratifiedKFold

from cl_research.evaluation import clustering as metrics

FAR_GRID = np.logspace(-3, 0, 31)  # where ROC curves are kept, to average over seeds
MIN_FALSE_ACCEPTS = 10  # a rate at FAR f needs f x negatives >= this many false accepts


def estimable(rate, num_negatives):
  """Whether `num_negatives` negatives (impostor pairs, non-mated probes) can estimate a
  rate at false accept rate `rate`: at least MIN_FALSE_ACCEPTS of them would be accepted.
  (The small tolerance keeps 1e-3 x 10,000 = 9.999... from failing.)"""
  return rate * num_negatives >= MIN_FALSE_ACCEPTS - 1e-9


def roc_curve(same, scores):
  """(fpr, tpr) with every operating point kept, tied scores included."""
  fpr, tpr, _ = sk_metrics.roc_curve(same, scores, drop_intermediate=False)
  return fpr, tpr


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
  """True accept rate at the largest false accept rate not above `far`: the share of
  positive pairs scoring above the threshold that accepts at most floor(far x N) of the N
  negative pairs. NaN where the negatives cannot estimate it (`estimable`)."""
  same = np.asarray(same, bool)
  if not estimable(far, np.sum(~same)):
    return float('nan')
  fpr, tpr = roc_curve(same, scores)
  return float(tpr[fpr <= far].max())


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
  fpr, tpr = roc_curve(same, scores)
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


# The face packs' protocols: pairs given by the pack (consecutive images), 10 folds of
# consecutive pairs, as both reference codes split them.

FLIP_MODES = ('sum', 'concat', 'none')  # how the flipped image's embedding joins in
PROTOCOLS = ('insightface', 'eccv16')


def with_flip(embeddings_NxD, flipped_NxD, mode):
  """insightface sums the embeddings of the image and its mirror; the ECCV16 code
  concatenates them; `none` keeps the image's own."""
  if mode == 'sum':
    return embeddings_NxD + flipped_NxD
  if mode == 'concat':
    return np.concatenate([embeddings_NxD, flipped_NxD], axis=1)
  return embeddings_NxD


def consecutive_folds(num_pairs, num_folds=10):
  """(train, test) indices: fold k is the k-th block of consecutive pairs (sklearn's
  unshuffled KFold, as insightface; LFW's pairs.txt lists its folds in blocks)."""
  return list(KFold(n_splits=num_folds, shuffle=False).split(np.arange(num_pairs)))


def _val_far(threshold, dist, same):
  accept = dist < threshold
  val = np.sum(accept & same) / max(np.sum(same), 1)
  far = np.sum(accept & ~same) / max(np.sum(~same), 1)
  return val, far


def slinear(x_sorted, y, x_new):
  """`scipy.interpolate.interp1d(x, y, kind='slinear')(x_new)` as SciPy <= 1.8 computes it
  for a nondecreasing `x` with repeated values (insightface's FAR curve is flat over
  many thresholds; SciPy >= 1.9 refuses repeated x). SciPy <= 1.8 builds the degree-1
  B-spline with knots (x_0, x_0, ..., x_{n-1}, x_{n-1}) and coefficients y, whose value on
  the last nonempty knot interval [x_l, x_{l+1}) holding x_new is linear from
  (x_l, y_l) to (x_{l+1}, y_{l+1}): within a flat stretch, l is its *last* index, so
  the interpolation anchors at the highest y (threshold) of the stretch. Written out
  here because no maintained SciPy computes it."""
  x_sorted, y = np.asarray(x_sorted, float), np.asarray(y, float)
  l = np.searchsorted(x_sorted, x_new, side='right') - 1
  if not 0 <= l < len(x_sorted):
    raise ValueError(f'{x_new} is outside [{x_sorted[0]}, {x_sorted[-1]}]')
  if l == len(x_sorted) - 1 or x_sorted[l] == x_new:
    return float(y[l])
  t = (x_new - x_sorted[l]) / (x_sorted[l + 1] - x_sorted[l])
  return float(y[l] + t * (y[l + 1] - y[l]))


INSIGHTFACE_ACCURACY_THRESHOLDS = np.arange(0, 4, 0.01)
INSIGHTFACE_VAL_THRESHOLDS = np.arange(0, 4, 0.001)


def insightface_protocol(embeddings_2NxD, issame_N, num_folds=10, far_target=1e-3):
  """insightface's `verification.evaluate`, number for number: L2-normalised embeddings,
  squared distance, unshuffled folds of consecutive pairs. Accuracy: per fold the
  accuracy-best threshold of the other folds on `arange(0, 4, 0.01)` (the first on ties).
  VAL at FAR `far_target`: per fold, the other folds' FAR at each threshold of
  `arange(0, 4, 0.001)`, the threshold interpolated in it as `interp1d(far, thresholds,
  kind='slinear')` of SciPy <= 1.8 does (`slinear`; 0 where the other folds never reach
  the target), applied to the fold. Returns accuracy, its std over the folds, VAL, its
  std, the mean FAR reached, and `val_negatives`, the fewest negative pairs a threshold
  was fit on: VAL is an estimate only where `estimable(far_target, val_negatives)` (LFW's
  6,000 pairs give 2,700: not at 1e-3); insightface reports it regardless, and so does
  this function, so that it stays comparable with insightface's printout."""
  emb = metrics.unit_vectors(embeddings_2NxD)
  dist = np.sum((emb[0::2] - emb[1::2]) ** 2, axis=1)
  same = np.asarray(issame_N, bool)
  acc_thresholds, val_thresholds = INSIGHTFACE_ACCURACY_THRESHOLDS, INSIGHTFACE_VAL_THRESHOLDS
  accuracies, vals, fars, negatives = [], [], [], []
  for train_idx, test_idx in consecutive_folds(len(same), num_folds):
    train_dist, train_same = dist[train_idx], same[train_idx]
    accept_TxP = train_dist < acc_thresholds[:, None]
    best = acc_thresholds[int(np.argmax(np.mean(accept_TxP == train_same, axis=1)))]
    accuracies.append(np.mean((dist[test_idx] < best) == same[test_idx]))
    # FAR at every threshold: the share of negatives whose distance lies below it
    negative_dist = np.sort(train_dist[~train_same])
    train_far = np.searchsorted(negative_dist, val_thresholds, side='left') / max(
        len(negative_dist), 1)
    negatives.append(len(negative_dist))
    threshold = (slinear(train_far, val_thresholds, far_target)
                 if train_far.max() >= far_target else 0.0)
    val, far = _val_far(threshold, dist[test_idx], same[test_idx])
    vals.append(val)
    fars.append(far)
  return {'accuracy': float(np.mean(accuracies)), 'accuracy_std': float(np.std(accuracies)),
          'val_at_far_1e-3': float(np.mean(vals)), 'val_std': float(np.std(vals)),
          'far': float(np.mean(fars)), 'val_negatives': int(min(negatives))}


def eccv16_protocol(features_2NxD, issame_N, num_folds=10):
  """The ECCV16 / SphereFace LFW evaluation: per fold, the other folds' mean feature is
  subtracted, features L2-normalised, cosine scores, and the threshold is the mean of
  the accuracy-best of 20,001 thresholds over [-1, 1] on the other folds. Also TAR at
  FAR 1e-3 over all pairs by cosine (no folds; NaN where the negatives cannot estimate
  it, `tar_at_far`). Returns accuracy, its std, that TAR."""
  features = np.asarray(features_2NxD, np.float64)
  same = np.asarray(issame_N, bool)
  thresholds = np.linspace(-1, 1, 20001)
  accuracies, all_scores = [], np.zeros(len(same))
  for train_idx, test_idx in consecutive_folds(len(same), num_folds):
    mu = features[np.concatenate([2 * train_idx, 2 * train_idx + 1])].mean(axis=0)
    f = metrics.unit_vectors(features - mu)
    scores = np.sum(f[0::2] * f[1::2], axis=1)
    all_scores[test_idx] = scores[test_idx]
    s_sorted, d_sorted = np.sort(scores[train_idx][same[train_idx]]), np.sort(
        scores[train_idx][~same[train_idx]])
    correct = (len(s_sorted) - np.searchsorted(s_sorted, thresholds, side='right')
               + np.searchsorted(d_sorted, thresholds, side='left'))
    threshold = thresholds[correct == correct.max()].mean()
    accuracies.append(np.mean((scores[test_idx] > threshold) == same[test_idx]))
  return {'accuracy': float(np.mean(accuracies)), 'accuracy_std': float(np.std(accuracies)),
          'tar_at_far_1e-3': tar_at_far(all_scores, same, 1e-3)}


def face_pack_metrics(embeddings_2NxD, issame_N, protocol, num_folds=10):
  """The numbers of `protocol` (one of PROTOCOLS) on a pack's pairs."""
  if protocol == 'insightface':
    return insightface_protocol(embeddings_2NxD, issame_N, num_folds)
  return eccv16_protocol(embeddings_2NxD, issame_N, num_folds)
