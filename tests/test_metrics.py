"""Clustering metrics on features with known answers."""

import numpy as np

from cl_research.evaluation import clustering as metrics


def test_clustering_known_values():
  features = np.array([[0.0, 1.0], [0.0, -1.0], [10.0, 1.0], [10.0, -1.0]])
  labels = np.array([0, 0, 1, 1])
  out = metrics.clustering(features, labels, num_classes=3)  # class 2 absent: ignored
  assert out['intra'] == 1.0
  assert out['inter'] == 100.0
  assert out['intra_inter'] == 0.01


def test_ratio_is_scale_free_and_falls_when_clusters_tighten():
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(4), 50)
  means = np.array([[5, 0], [0, 5], [-5, 0], [0, -5]], float)
  loose = means[labels] + rng.normal(size=(200, 2))
  tight = means[labels] + 0.1 * rng.normal(size=(200, 2))
  r_loose = metrics.clustering(loose, labels, 4)['intra_inter']
  np.testing.assert_allclose(metrics.clustering(7 * loose, labels, 4)['intra_inter'], r_loose)
  assert metrics.clustering(tight, labels, 4)['intra_inter'] < r_loose / 50


def test_accuracy():
  logits = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
  assert metrics.accuracy(logits, np.array([0, 1, 1])) == 2 / 3


def test_collapsed_features_give_an_undefined_ratio_not_a_crash():
  out = metrics.clustering(np.zeros((6, 3)), np.array([0, 0, 1, 1, 2, 2]), 3)
  assert out['inter'] == 0.0 and np.isnan(out['intra_inter'])
