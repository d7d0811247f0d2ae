"""Feature-space metrics: accuracy and how tightly each class clusters."""

import numpy as np


def accuracy(logits_NxC, labels_N):
  """Fraction of argmax predictions equal to the labels."""
  return float(np.mean(np.argmax(logits_NxC, axis=-1) == labels_N))


def class_means(features_NxD, labels_N, num_classes):
  """Per-class mean feature; rows of classes with no example are NaN."""
  means_CxD = np.full((num_classes, features_NxD.shape[1]), np.nan)
  for c in range(num_classes):
    members = features_NxD[labels_N == c]
    if len(members):
      means_CxD[c] = members.mean(axis=0)
  return means_CxD


def clustering(features_NxD, labels_N, num_classes):
  """Intra-class spread, inter-class separation and their (scale-free) ratio.

  intra: mean over examples of the squared distance to their class mean.
  inter: mean over pairs of distinct present classes of the squared distance between
  class means. The ratio intra / inter is unchanged by scaling all features, so it
  compares runs whose feature norms differ (center loss shrinks them).
  """
  features_NxD = np.asarray(features_NxD, np.float64)
  means_CxD = class_means(features_NxD, labels_N, num_classes)
  intra = float(np.mean(np.sum((features_NxD - means_CxD[labels_N])**2, axis=1)))
  present = means_CxD[~np.isnan(means_CxD).any(axis=1)]
  sq_dists = np.sum((present[:, None] - present[None]) ** 2, axis=-1)
  k = len(present)
  inter = float(sq_dists.sum() / (k * (k - 1))) if k > 1 else float('nan')
  # All class means equal (e.g. dead ReLU features): separation 0, the ratio undefined.
  ratio = intra / inter if inter > 0 else float('nan')
  return {'intra': intra, 'inter': inter, 'intra_inter': ratio}


def unit_vectors(features_NxD):
  """Each feature divided by its norm (a zero feature stays zero): the directions the
  angular heads classify by. Their intra/inter is the angular clustering number."""
  f = np.asarray(features_NxD, np.float64)
  return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


def knn_accuracy(train_features_NxD, train_labels_N, test_features_MxD, test_labels_M, k=5):
  """Test accuracy of a k-nearest-neighbour classifier on the features (no classifier head)."""
  from sklearn.neighbors import KNeighborsClassifier  # pylint: disable=import-outside-toplevel
  knn = KNeighborsClassifier(n_neighbors=k).fit(train_features_NxD, train_labels_N)
  return float(knn.score(test_features_MxD, test_labels_M))


def silhouette(features_NxD, labels_N, max_samples=2000, seed=0):
  """Mean silhouette coefficient (scikit-learn), on a seeded subsample for speed."""
  from sklearn.metrics import silhouette_score  # pylint: disable=import-outside-toplevel
  if len(np.unique(labels_N)) < 2:
    return float('nan')
  return float(silhouette_score(features_NxD, labels_N, sample_size=min(max_samples,
                                                                        len(labels_N)),
                                random_state=seed))


def intra_class_distances(features_NxD, labels_N, num_classes):
  """Per example, the distance to its class mean (IJCV19 Fig. 6 histograms)."""
  means_CxD = class_means(np.asarray(features_NxD, np.float64), labels_N, num_classes)
  return np.linalg.norm(features_NxD - means_CxD[labels_N], axis=1)
