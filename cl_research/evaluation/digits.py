"""What a finished run records: the features of both splits and every metric on them,
how the gradient clip shaped its training, and the loss values it used."""

import numpy as np

from cl_research.evaluation import clustering as metrics
from cl_research.evaluation import openset
from cl_research.evaluation import verification
def evaluate(features_and_logits, state, dataset, eval_config):
  """Final features of both splits and every metric computed from them;
  `features_and_logits(images)` runs the trained model over a split.

  With held-out classes, accuracy, k-NN and clustering use the classes seen in training
  and verification pairs come only from the held-out ones (open-set).
  Returns (None, features) when the features are not finite.
  """
  features, logits = {'centers': np.asarray(state.centers)}, {}
  for split in ('train', 'test'):
    images = getattr(dataset, f'{split}_images')
    features[f'{split}_features'], logits[split] = features_and_logits(images)
    features[f'{split}_labels'] = getattr(dataset, f'{split}_labels')
  if not all(np.isfinite(features[k]).all()
             for k in ('train_features', 'test_features', 'centers')):
    return None, features
  result = {}
  seen = ~np.isin(features['test_labels'], dataset.holdout_classes)
  for split, mask in (('train', slice(None)), ('test', seen)):
    feats, labels = features[f'{split}_features'][mask], features[f'{split}_labels'][mask]
    result[f'{split}_accuracy'] = metrics.accuracy(logits[split][mask], labels)
    for key, value in metrics.clustering(feats, labels, dataset.num_classes).items():
      result[f'{split}_{key}'] = value
    result[f'{split}_angular_intra_inter'] = metrics.clustering(
        metrics.unit_vectors(feats), labels, dataset.num_classes)['intra_inter']
  result['test_knn_accuracy'] = metrics.knn_accuracy(
      features['train_features'], features['train_labels'], features['test_features'][seen],
      features['test_labels'][seen], k=eval_config.knn_k)
  result['test_silhouette'] = metrics.silhouette(
      features['test_features'][seen], features['test_labels'][seen],
      eval_config.silhouette_samples)
  if eval_config.verification_pairs:
    numbers, roc = verification.evaluate(
        features['test_features'], features['test_labels'], eval_config.verification_pairs,
        seed=eval_config.pairs_seed, classes=dataset.holdout_classes or None)
    result.update(numbers, verification_roc=roc)
  if dataset.holdout_classes:
    result.update(openset.identification(
        features['test_features'], features['test_labels'], dataset.holdout_classes,
        k=eval_config.enrolment_images, seed=eval_config.pairs_seed))
  return result, features


LOSS_VALUES = {'combined': ('m1', 'm2', 'm3'),
               'sphereface': ('sphereface_base', 'sphereface_gamma', 'sphereface_power',
                              'sphereface_lambda_min'),
               'contrastive_center': ('contrastive_delta',), 'git': ('git_weight',),
               'island': ('island_weight',)}


def loss_values(config, point):
  """The `config.loss` numbers a run's head and regularizer use beyond its point's."""
  keys = LOSS_VALUES.get(point['head'], ()) + LOSS_VALUES.get(point['regularizer'], ())
  return {k: config.loss[k] for k in keys}


def clip_record(state, clip_norm):
  """How much the gradient clip shaped a run: the fraction of steps it engaged and the
  mean pre-clip gradient norm (the clip shrinks the whole step, so a lambda that
  enlarges the norm also shrinks the softmax part of it)."""
  steps = max(int(state.step), 1)
  return {'clip_fraction': int(state.clipped_steps) / steps if clip_norm else 0.0,
          'mean_grad_norm': float(state.grad_norm_sum) / steps,
          'max_grad_norm': float(state.grad_norm_max)}
