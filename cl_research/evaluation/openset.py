"""Open-set evaluation: identification of classes never seen in training.

With `data.holdout_classes`, the classes split into seen (trained on) and unseen (only
evaluated); verification pairs then come from the unseen ones (`cl_research.evaluation.verification`)
and identification works as a face system's watch list does:

- gallery: one template per unseen class, the mean feature of `k` enrolment images
  drawn (seeded) from its test images;
- probes: the unseen classes' other test images (mated: their class is in the gallery)
  and every test image of a seen class (non-mated: it is not);
- scores: cosine similarity of a probe to each template;
- rank-1: the share of mated probes whose best template is their own;
- DIR at FAR f (NIST's detection and identification rate): with the threshold at which
  a share f of non-mated probes reach some template, the share of mated probes whose
  own template is their best and reaches the threshold.
"""

import numpy as np

from cl_research.evaluation import clustering as metrics


def enrolment_split(labels_N, classes, k, seed):
  """(enrolment indices per class, mated probe indices): `k` seeded enrolment images per
  class in `classes`, the rest of their images as probes."""
  rng = np.random.default_rng(seed)
  enrol, probes = {}, []
  for c in classes:
    members = rng.permutation(np.flatnonzero(labels_N == c))
    enrol[c] = members[:k]
    probes.append(members[k:])
  return enrol, np.sort(np.concatenate(probes)) if probes else np.array([], int)


def identification(features_NxD, labels_N, unseen, k=5, seed=0, far=1e-2):
  """Rank-1 and DIR at `far` of the unseen classes against probes of every class."""
  labels_N = np.asarray(labels_N)
  unseen = [c for c in unseen if (labels_N == c).sum() > k]
  enrol, mated = enrolment_split(labels_N, unseen, k, seed)
  nonmated = np.flatnonzero(~np.isin(labels_N, unseen))
  unit = metrics.unit_vectors(features_NxD)
  templates = metrics.unit_vectors(np.stack([features_NxD[enrol[c]].mean(axis=0)
                                             for c in unseen]))
  scores_mated = unit[mated] @ templates.T
  best = scores_mated.argmax(axis=1)
  correct = np.asarray(unseen)[best] == labels_N[mated]
  best_mated = scores_mated.max(axis=1)
  best_nonmated = (unit[nonmated] @ templates.T).max(axis=1)
  # the smallest threshold that lets through at most `far` of the non-mated probes
  threshold = np.quantile(best_nonmated, 1.0 - far, method='higher') if len(nonmated) else -1
  threshold = np.nextafter(threshold, np.inf)
  return {'openset_rank1': float(correct.mean()),
          f'openset_dir_at_far_{far:.0e}'.replace('e-0', 'e-'): float(
              np.mean(correct & (best_mated >= threshold))),
          'openset_mated_probes': int(len(mated)),
          'openset_nonmated_probes': int(len(nonmated))}
