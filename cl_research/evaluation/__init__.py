"""What a run's features say: clustering, verification, open-set identification,
retrieval, and the statistics over seeds; the evaluators that `config.evals` names.

The public functions, importable from here:
  clustering     accuracy, clustering_metrics (intra/inter), knn_accuracy, silhouette,
                 unit_vectors, intra_class_distances
  verification   make_pairs, verification_protocol (LFW-style pairs of a split),
                 insightface_protocol, eccv16_protocol (face packs), tar_at_far,
                 equal_error_rate, estimable (can the negatives estimate a rate?)
  openset        open_set_identification (rank-1 and DIR at an FPIR of any gallery and
                 probes), identification (the held-out digits' three groups of classes)
  retrieval      retrieval_metrics (MAP@R, R-precision, precision@1)
  statistics     mean_interval, paired_comparison, holm, minimum_detectable_effect,
                 by_setting, comparisons
  evaluators     EVALUATORS, metric_keys, run_evaluators
"""

from cl_research.evaluation.clustering import accuracy
from cl_research.evaluation.clustering import clustering as clustering_metrics
from cl_research.evaluation.clustering import intra_class_distances
from cl_research.evaluation.clustering import knn_accuracy
from cl_research.evaluation.clustering import silhouette
from cl_research.evaluation.clustering import unit_vectors
from cl_research.evaluation.evaluators import EVALUATORS
from cl_research.evaluation.evaluators import metric_keys
from cl_research.evaluation.evaluators import run as run_evaluators
from cl_research.evaluation.openset import identification
from cl_research.evaluation.openset import open_set_identification
from cl_research.evaluation.retrieval import retrieval_metrics
from cl_research.evaluation.statistics import by_setting
from cl_research.evaluation.statistics import comparisons
from cl_research.evaluation.statistics import holm
from cl_research.evaluation.statistics import mean_interval
from cl_research.evaluation.statistics import minimum_detectable_effect
from cl_research.evaluation.statistics import paired_comparison
from cl_research.evaluation.verification import eccv16_protocol
from cl_research.evaluation.verification import equal_error_rate
from cl_research.evaluation.verification import estimable
from cl_research.evaluation.verification import evaluate as verification_protocol
from cl_research.evaluation.verification import insightface_protocol
from cl_research.evaluation.verification import make_pairs
from cl_research.evaluation.verification import tar_at_far

__all__ = ('EVALUATORS', 'accuracy', 'by_setting', 'clustering_metrics', 'comparisons',
           'eccv16_protocol', 'equal_error_rate', 'estimable', 'holm', 'identification',
           'insightface_protocol', 'intra_class_distances', 'knn_accuracy', 'make_pairs',
           'mean_interval', 'metric_keys', 'minimum_detectable_effect', 'open_set_identification',
           'paired_comparison', 'retrieval_metrics', 'run_evaluators', 'silhouette', 'tar_at_far', 'unit_vectors',
           'verification_protocol')
