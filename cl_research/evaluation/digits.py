"""What a finished run records: the features of both splits and every metric on them,
how the gradient clip shaped its training, and the loss values it used."""

import numpy as np

from cl_research.evaluation import evaluators


def evaluate(features_and_logits, trained_centers, centers_CxD, dataset, evals_config):
  """Final features of both splits and every metric the evaluators of `config.evals`
  compute from them (`evaluators.run`); `features_and_logits(images)` runs the trained
  model over a split (logits over every class of the dataset). `trained_centers`: the
  train state's centers, which must be finite; `centers_CxD`: them at their class ids
  (NaN rows for classes the classifier lacks), as the run records them.

  With held-out classes, accuracy, k-NN and clustering use the classes seen in training
  and verification pairs come only from the held-out ones (open-set).
  Returns (None, features) when the features are not finite.
  """
  features, logits = {'centers': np.asarray(centers_CxD)}, {}
  for split in ('train', 'test'):
    images = getattr(dataset, f'{split}_images')
    features[f'{split}_features'], logits[split] = features_and_logits(images)
    features[f'{split}_labels'] = getattr(dataset, f'{split}_labels')
  if not (all(np.isfinite(features[k]).all() for k in ('train_features', 'test_features'))
          and np.isfinite(np.asarray(trained_centers)).all()):
    return None, features
  finished = evaluators.FinishedFeatures(
      train_features=features['train_features'], train_labels=features['train_labels'],
      train_logits=logits['train'], test_features=features['test_features'],
      test_labels=features['test_labels'], test_logits=logits['test'],
      num_classes=dataset.num_classes, holdout_classes=tuple(dataset.holdout_classes))
  return evaluators.run(evals_config, finished), features


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
