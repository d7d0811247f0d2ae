"""Open-set identification, as a face system's watch list works (NIST's FRVT terms).

A gallery of templates with labels; probes are *mated* when their label is in the
gallery and *non-mated* otherwise. Scores are cosine similarities; a probe's answer is
its best-scoring template.
- rank-1: the share of mated probes whose best template carries their label;
- DIR at FPIR f (detection and identification rate at a false positive identification
  rate): with the threshold that lets at most k = floor(f n) of the n non-mated probes
  reach a template (those above the (k+1)-th highest non-mated score), the share of
  mated probes whose best template is theirs and reaches it. Reported only where the
  non-mated probes can estimate it (`verification.estimable`: f n >= 10).

For the digits, `identification` splits the classes three ways: trained on; enrolled
(held out of training, one template each, the mean of `k` seeded enrolment images);
and unknown (held out of training and not enrolled), whose probes are the non-mated
ones. Non-mated probes from the trained classes ("known unknowns") measure something
else: a loss that compresses the training classes keeps them away from the templates
for that reason alone. That number is reported too, in its own column.
"""

import math

import numpy as np

from cl_research.evaluation import clustering as metrics
from cl_research.evaluation import verification


def open_set_identification(gallery_GxD, gallery_labels_G, probes_PxD, probe_labels_P,
                            fpir=1e-2):
  """rank1, dir_at_fpir and threshold (NaN where no mated probes / not estimable), with
  the numbers of mated and non-mated probes. Cosine scores; a probe whose label is not
  among `gallery_labels_G` is non-mated."""
  gallery_labels_G = np.asarray(gallery_labels_G)
  probe_labels_P = np.asarray(probe_labels_P)
  scores_PxG = metrics.unit_vectors(probes_PxD) @ metrics.unit_vectors(gallery_GxD).T
  best_P = scores_PxG.max(axis=1)
  mated = np.isin(probe_labels_P, gallery_labels_G)
  correct = gallery_labels_G[scores_PxG.argmax(axis=1)][mated] == probe_labels_P[mated]
  nonmated_best = np.sort(best_P[~mated])[::-1]
  n = len(nonmated_best)
  out = {'rank1': float(correct.mean()) if mated.any() else math.nan,
         'dir_at_fpir': math.nan, 'threshold': math.nan,
         'mated_probes': int(mated.sum()), 'nonmated_probes': int(n)}
  if mated.any() and n and verification.estimable(fpir, n):
    k = int(math.floor(fpir * n + 1e-9))  # non-mated probes allowed through
    threshold = np.nextafter(nonmated_best[k], np.inf) if k < n else -np.inf
    out['threshold'] = float(threshold)
    out['dir_at_fpir'] = float(np.mean(correct & (best_P[mated] >= threshold)))
  return out


def fpir_name(fpir):
  """'1e-2' for 0.01: how a key names its FPIR."""
  return f'{fpir:.0e}'.replace('e-0', 'e-')


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


def split_classes(holdout, num_unknown):
  """(enrolled, unknown): the held-out classes but the last `num_unknown`, and those."""
  holdout = tuple(holdout)
  return holdout[:len(holdout) - num_unknown], holdout[len(holdout) - num_unknown:]


def identification(features_NxD, labels_N, holdout, num_unknown, k=5, seed=0, fpir=1e-2):
  """Rank-1 of the enrolled classes' probes and DIR at `fpir` against the unknown
  classes' probes (`openset_dir_at_fpir_<f>`) and against the trained classes' probes
  (`..._known_unknowns`), on test features: `holdout` are the classes held out of
  training, its last `num_unknown` the unknown ones."""
  labels_N = np.asarray(labels_N)
  enrolled, unknown = split_classes(holdout, num_unknown)
  enrolled = [c for c in enrolled if (labels_N == c).sum() > k]  # with a probe left
  name = fpir_name(fpir)
  if len(enrolled) < 2:  # too few test images to enrol: nothing to identify
    return {'openset_rank1': math.nan, f'openset_dir_at_fpir_{name}': math.nan,
            f'openset_dir_at_fpir_{name}_known_unknowns': math.nan,
            'openset_nonmated_probes': 0, 'openset_nonmated_probes_known_unknowns': 0}
  enrol, mated = enrolment_split(labels_N, enrolled, k, seed)
  templates = np.stack([features_NxD[enrol[c]].mean(axis=0) for c in enrolled])
  unknown_probes = np.flatnonzero(np.isin(labels_N, unknown))
  trained_probes = np.flatnonzero(~np.isin(labels_N, tuple(holdout)))
  out = {}
  for suffix, nonmated in (('', unknown_probes), ('_known_unknowns', trained_probes)):
    probes = np.concatenate([mated, nonmated])
    r = open_set_identification(templates, enrolled, features_NxD[probes], labels_N[probes],
                                fpir)
    out['openset_rank1'] = r['rank1']
    out[f'openset_dir_at_fpir_{name}{suffix}'] = r['dir_at_fpir']
    out[f'openset_nonmated_probes{suffix}'] = r['nonmated_probes']
  return out
