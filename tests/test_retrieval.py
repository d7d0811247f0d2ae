"""Retrieval metrics against values computed by hand (pytorch-metric-learning's own test
cases and small ones worked out below) and a direct loop over its definitions."""

import numpy as np
import pytest

from cl_research.evaluation import retrieval


def test_pytorch_metric_learnings_hand_cases():
  """pytorch-metric-learning tests/utils/test_calculate_accuracies.py: separate query and
  reference sets; every query finds its own label first (1), and a case where one
  query's class sits far away (0.9)."""
  points = np.arange(10)[:, None].astype(float)
  out = retrieval.retrieval_metrics(points, np.arange(10), points, np.arange(10), 'euclidean')
  assert (out['precision_at_1'], out['r_precision'], out['map_at_r']) == (1, 1, 1)
  query, reference = points.copy(), points.copy()
  query[-1], reference[0] = 100, -100
  labels_q = np.array([0] * 9 + [1])
  labels_r = np.array([1] + [0] * 9)
  out = retrieval.retrieval_metrics(query, labels_q, reference, labels_r, 'euclidean')
  assert out['precision_at_1'] == pytest.approx(0.9)
  assert out['r_precision'] == pytest.approx(0.9)
  assert out['map_at_r'] == pytest.approx(0.9)


def test_same_source_excludes_each_query_itself_worked_by_hand():
  """Points 0, 0.1, 5, 5.1, 10 with classes 0, 0, 1, 1, 0. Query 0: R = 2, nearest
  0.1 (hit), 5 (miss): P@1 1, R-precision 1/2, MAP@R (1/1)/2. Query 0.1: the same.
  Queries 5 and 5.1: R = 1, a hit: 1, 1, 1. Query 10: R = 2, nearest 5.1 and 5, misses:
  0, 0, 0."""
  points = np.array([[0.0], [0.1], [5.0], [5.1], [10.0]])
  out = retrieval.retrieval_metrics(points, np.array([0, 0, 1, 1, 0]), metric='euclidean')
  assert out['precision_at_1'] == pytest.approx(4 / 5)
  assert out['r_precision'] == pytest.approx((0.5 + 0.5 + 1 + 1 + 0) / 5)
  assert out['map_at_r'] == pytest.approx((0.5 + 0.5 + 1 + 1 + 0) / 5)
  assert out['queries'] == 5


def test_map_at_r_rewards_order_within_the_first_r():
  """Query 0 against references 1, 2, 3, 4, 100 of classes 0, 1, 0, 0, 1: R = 3, the
  three nearest are hit, miss, hit: MAP@R (1/1 + 2/3) / 3, R-precision 2/3 (the fourth
  nearest, a hit, is beyond R)."""
  points = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [100.0]])
  labels = np.array([0, 0, 1, 0, 0, 1])
  out = retrieval.retrieval_metrics(points[:1], labels[:1], points[1:], labels[1:], 'euclidean')
  assert out['map_at_r'] == pytest.approx((1 + 2 / 3) / 3)
  assert out['r_precision'] == pytest.approx(2 / 3) and out['precision_at_1'] == 1


def brute_force(embeddings, labels, metric):
  """The definitions, query by query (same source)."""
  if metric == 'cosine':
    e = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    dist = -(e @ e.T)
  else:
    dist = np.linalg.norm(embeddings[:, None] - embeddings[None], axis=-1) ** 2
  maps, rps, p1s = [], [], []
  for q in range(len(labels)):
    others = np.array([i for i in range(len(labels)) if i != q])
    r = int(np.sum(labels[others] == labels[q]))
    if r == 0:
      continue
    ranked = others[np.lexsort((others, dist[q, others]))][:r]
    hit = labels[ranked] == labels[q]
    precision = np.cumsum(hit) / np.arange(1, r + 1)
    maps.append(np.sum(precision * hit) / r)
    rps.append(hit.mean())
    p1s.append(hit[0])
  return np.mean(maps), np.mean(rps), np.mean(p1s)


@pytest.mark.parametrize('metric', retrieval.METRICS)
def test_random_embeddings_match_the_definitions_in_chunks(metric, monkeypatch):
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 7, 300)
  labels[0] = 99  # a class with one member: no reference, not scored
  embeddings = rng.normal(size=(300, 8)) + 0.8 * np.eye(8)[labels % 8]
  monkeypatch.setattr(retrieval, 'CHUNK_ELEMENTS', 300 * 37)  # several chunks
  out = retrieval.retrieval_metrics(embeddings, labels, metric=metric)
  expected = brute_force(embeddings, labels, metric)
  np.testing.assert_allclose((out['map_at_r'], out['r_precision'], out['precision_at_1']),
                             expected, rtol=1e-6)
  assert out['queries'] == 299


def test_an_unknown_metric_is_refused():
  with pytest.raises(ValueError, match="metric='dot' is not one of cosine, euclidean"):
    retrieval.retrieval_metrics(np.zeros((3, 2)), np.zeros(3), metric='dot')
