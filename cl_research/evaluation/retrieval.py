"""Retrieval metrics of metric learning: MAP@R, R-precision and precision@1, as
pytorch-metric-learning's AccuracyCalculator defines them (Musgrave, Belongie, Lim,
"A Metric Learning Reality Check", ECCV 2020).

For each query, R is the number of references of its class (without the query itself
when queries and references are the same embeddings); its R nearest references are
retrieved (exact, ties in order of index):
  precision_at_1  whether the nearest reference has the query's class;
  r_precision     the share of the R nearest with the query's class;
  map_at_r        (1/R) sum over the R nearest of P(i) at every i that has the query's
                  class, P(i) the share of the first i that do.
Each is the mean over queries; queries whose class has no reference (R = 0) are left
out, as AccuracyCalculator leaves out its "lone" queries. Written with NumPy rather
than taken from pytorch-metric-learning, which needs PyTorch (and faiss for speed);
queries are scored in chunks so that 100,000 x 100,000 fits in memory.
"""

import math

import numpy as np

from cl_research.evaluation import clustering

METRICS = ('cosine', 'euclidean')
CHUNK_ELEMENTS = 2 ** 25  # query x reference distances held at once (128 MiB of float32)


def _distances(queries_QxD, reference_MxD, metric):
  if metric == 'cosine':
    return -(queries_QxD @ reference_MxD.T)  # on unit vectors: ordering by cosine
  squared = (np.sum(queries_QxD ** 2, axis=1)[:, None] + np.sum(reference_MxD ** 2, axis=1)
             - 2 * queries_QxD @ reference_MxD.T)
  return np.maximum(squared, 0)


def retrieval_metrics(embeddings_NxD, labels_N, reference_MxD=None, reference_labels_M=None,
                      metric='cosine'):
  """dict(map_at_r, r_precision, precision_at_1, queries): the module's metrics of the
  queries `embeddings_NxD` against `reference_MxD` (None: the queries themselves, each
  query's own item excluded); `queries` counts the queries scored (R > 0)."""
  if metric not in METRICS:
    raise ValueError(f'metric={metric!r} is not one of {", ".join(METRICS)}')
  same_source = reference_MxD is None
  queries = np.asarray(embeddings_NxD, np.float32)
  labels = np.asarray(labels_N)
  reference = queries if same_source else np.asarray(reference_MxD, np.float32)
  reference_labels = labels if same_source else np.asarray(reference_labels_M)
  if metric == 'cosine':
    queries = clustering.unit_vectors(queries).astype(np.float32)
    reference = queries if same_source else clustering.unit_vectors(reference).astype(
        np.float32)
  classes, counts = np.unique(reference_labels, return_counts=True)
  count_of = dict(zip(classes.tolist(), counts.tolist()))
  r_N = np.array([count_of.get(c, 0) for c in labels.tolist()]) - int(same_source)
  scored = np.flatnonzero(r_N > 0)
  sums = {'map_at_r': 0.0, 'r_precision': 0.0, 'precision_at_1': 0.0}
  chunk = max(1, CHUNK_ELEMENTS // max(len(reference), 1))
  for start in range(0, len(scored), chunk):
    rows = scored[start:start + chunk]
    d = _distances(queries[rows], reference, metric).astype(np.float64)
    if same_source:
      d[np.arange(len(rows)), rows] = np.inf
    r = r_N[rows]
    k = int(r.max())
    nearest = np.argpartition(d, k - 1, axis=1)[:, :k] if k < d.shape[1] else np.tile(
        np.arange(d.shape[1]), (len(rows), 1))
    order = np.lexsort((nearest, np.take_along_axis(d, nearest, axis=1)), axis=1)
    nearest = np.take_along_axis(nearest, order, axis=1)
    hit = reference_labels[nearest] == labels[rows][:, None]  # Q x k
    within_r = np.arange(k)[None, :] < r[:, None]
    hit &= within_r
    precision_i = np.cumsum(hit, axis=1) / np.arange(1, k + 1)
    sums['map_at_r'] += float(np.sum(np.sum(precision_i * hit, axis=1) / r))
    sums['r_precision'] += float(np.sum(hit.sum(axis=1) / r))
    sums['precision_at_1'] += float(np.sum(hit[:, 0]))
  n = len(scored)
  out = {k: (v / n if n else math.nan) for k, v in sums.items()}
  out['queries'] = int(n)
  return out
