"""Center loss (Wen et al., ECCV 2016) and the loss family around it, as pure functions.

The loss of a run is `head cross-entropy + lam * regularizer`: a classifier head makes
logits from the features (`cl_research.core.heads`: softmax, NormFace, CosFace, ArcFace, the
combined margin, SphereFace) and a feature regularizer pulls them into shape
(`cl_research.core.regularizers`: center, contrastive-center, ring, Git, island, normalised
center). With the softmax head and the center regularizer it is ECCV16 Eq. 5 in the
convention used throughout this project (the Caffe release's, which keeps the paper's
lambda): both terms are means over the batch,

    L = mean_i CE(logits_i, y_i) + lam * 1/2 * mean_i ||x_i - c_{y_i}||^2.

Mapping from other conventions to this project's `lam`:
  * ECCV16 as written (sums over the batch for both terms): same lam.
  * IJCV19, `1/(2m) sum_i ||x_i - c_{y_i}||^2`: same lam.
  * KaiyangZhou/pytorch-center-loss (no 1/2, mean over the batch): lam = 2 * theirs.
  * A Keras center-loss layer (per-sample `sum (x - c)^2`, no 1/2, loss weights 1 : w,
    `experiments/seed.py`): lam = 2 * w, e.g. w = 0.2 -> lam = 0.4.

The public API below can be used without the rest of the project. Every function works
under `jit`, `grad` and `vmap`; none holds state.
"""

import jax
import jax.numpy as jnp
import optax

from cl_research import errors
from cl_research.core import heads
from cl_research.core import regularizers
from cl_research.core.heads import cosine_logits
from cl_research.core.heads import margin_logits
from cl_research.core.heads import sphereface_logits
from cl_research.core.regularizers import center_loss
from cl_research.core.regularizers import contrastive_center_loss
from cl_research.core.regularizers import ring_loss

__all__ = ('center_loss', 'center_update', 'joint_loss', 'objective', 'cosine_logits',
           'margin_logits', 'sphereface_logits', 'contrastive_center_loss', 'ring_loss',
           'paper_center_update', 'island_delta')


# Above this many classes Eq. 4 runs as a gather and a scatter-add of the batch's rows
# (cost independent of C: face datasets have 10k-100k identities); at or below it as the
# one-hot product, which is cheap for few classes and is the arithmetic every number in
# docs/ was computed with (the two agree to float rounding, not bit for bit).
ONE_HOT_MAX_CLASSES = 1024


def center_update(centers_CxD, features_BxD, labels_B, alpha, eps=1.0):
  """ECCV16 Eq. 4: move each center toward the mean of its class in the batch.

  delta_c_j = sum_i [y_i = j] (c_j - x_i) / (eps + n_j),  c_j <- c_j - alpha * delta_c_j.

  `eps = 1` is the paper's rule; IJCV19 uses `eps = 1e-5`. Classes absent from the
  batch (n_j = 0) have delta 0 and stay put. Features are treated as constants. lam
  does not enter: in the paper the center step is independent of the loss weight. Exact
  when the centers are sharded over classes (GSPMD partitions either form).
  """
  features_BxD = jax.lax.stop_gradient(features_BxD)
  num_classes = centers_CxD.shape[0]
  if num_classes > ONE_HOT_MAX_CLASSES:
    # each example adds (c_j - x_i) / (eps + n_j) to its class's delta
    counts_B = jnp.sum(labels_B[:, None] == labels_B[None, :], axis=1).astype(
        features_BxD.dtype)
    centers_CxD = jnp.asarray(centers_CxD)
    delta_BxD = (centers_CxD[labels_B] - features_BxD) / (eps + counts_B[:, None])
    return centers_CxD.at[labels_B].add(-alpha * delta_BxD)
  onehot_BxC = jax.nn.one_hot(labels_B, num_classes, dtype=features_BxD.dtype)
  counts_C = onehot_BxC.sum(axis=0)
  feature_sums_CxD = onehot_BxC.T @ features_BxD
  delta_CxD = (counts_C[:, None] * centers_CxD - feature_sums_CxD) / (eps + counts_C[:, None])
  return centers_CxD - alpha * delta_CxD


def island_delta(centers_CxD, island_weight):
  """Island loss's addition to Eq. 4's delta (Cai et al. 2018, their center update):
  lambda_1 / (C - 1) sum_{k != j} d cos(c_j, c_k) / d c_j, which spreads the centers'
  directions apart."""
  grad_CxD = jax.grad(regularizers.island_pairs)(centers_CxD)  # each pair counted twice
  return island_weight / (centers_CxD.shape[0] - 1) * 0.5 * grad_CxD


def paper_center_update(regularizer, centers_CxD, features_BxD, labels_B, alpha, hparams):
  """Each regularizer's centers by the paper's rule: Eq. 4 toward the batch's class
  means (of the unit features for `normalized_center`), island loss's spreading term
  added; regularizers without centers leave them where they are."""
  if not regularizers.uses_centers(regularizer):
    return centers_CxD
  if regularizer == 'normalized_center':
    features_BxD = heads.l2_normalize(features_BxD)
  centers = center_update(centers_CxD, features_BxD, labels_B, alpha)
  if regularizer == 'island':
    centers = centers - alpha * island_delta(centers_CxD, hparams['island_weight'])
  return centers


def objective(head, regularizer, features_BxD, logits_BxC, classifier, labels_B, centers_CxD,
              radius, hparams, step):
  """`head` cross-entropy + lam * `regularizer` -> (loss, aux).

  `logits_BxC` are the model's own (the softmax head uses them); `classifier` its
  classifier params, from which the angular heads make theirs; `hparams` the traced
  numbers (`lam` and the heads' and regularizers' own, `cl_research.core.step`). aux holds
  the loss, `softmax_loss` (the head's cross-entropy), `regularizer_loss` (before lam),
  the batch `accuracy` (margin-free logits) and the regularizer's parts.
  """
  if head != 'softmax':
    logits_BxC = heads.training_logits(head, features_BxD, classifier, labels_B, hparams,
                                       step)
  softmax = optax.softmax_cross_entropy_with_integer_labels(logits_BxC, labels_B).mean()
  term, parts = regularizers.regularizer_loss(regularizer, features_BxD, labels_B,
                                              centers_CxD, radius, hparams)
  predicted = logits_BxC if head == 'softmax' else heads.inference_logits(
      head, features_BxD, classifier)
  accuracy = jnp.mean(jnp.argmax(predicted, axis=-1) == labels_B)
  loss = softmax + hparams['lam'] * term
  return loss, {'loss': loss, 'softmax_loss': softmax, 'regularizer_loss': term,
                'accuracy': accuracy, **parts}


def joint_loss(logits_BxC, features_BxD, labels_B, centers_CxD, lam):
  """ECCV16 Eq. 5 in mean-and-mean form: softmax cross-entropy + lam * center loss.
  Returns `(loss, aux)`; aux holds the two terms and the batch accuracy."""
  loss, aux = objective('softmax', 'center', features_BxD, logits_BxC, None, labels_B,
                        centers_CxD, None, {'lam': lam}, 0)
  return loss, {'loss': loss, 'softmax_loss': aux['softmax_loss'],
                'center_loss': aux['regularizer_loss'], 'accuracy': aux['accuracy']}


def number_domains():
  """Every config.loss number with a declared domain, the heads' (margins included) and
  the regularizers': name -> (holds, the domain in words)."""
  return {**heads.number_domains(), **regularizers.NUMBER_DOMAINS}


def validate(points, loss_config):
  """Raises ConfigError where a run's head, regularizer, scale, margin or lambda cannot
  work (each run of a sweep is a point, `cl_research.configs.sweeps`), or where a number
  of `loss_config` (config.loss) is outside its domain, whichever head the runs use."""
  margins = set(heads.number_domains()) - set(heads.NUMBER_DOMAINS)
  for name, (holds, domain) in number_domains().items():
    if name in margins and name not in loss_config:
      continue  # a head registered in this process whose margin this config lacks
    value = loss_config.get(name)
    errors.check(errors.is_number(value) and holds(value),
                 f'loss.{name}={value!r}: {domain}')
  rate = loss_config.get('partial_fc_rate', 1.0)
  errors.check(errors.is_number(rate) and 0 < rate <= 1,
               f'loss.partial_fc_rate={rate!r} must be in (0, 1] (1: every class)')
  for p in points:
    heads.validate(p['head'], p['scale'], p['margin'])
    regularizers.validate(p['regularizer'], p['head'])
  for lam in {p['lam'] for p in points}:
    errors.check(errors.is_number(lam) and lam >= 0,
                 f'sweep.lam has {lam!r}: lambda must be a finite number >= 0')
  for alpha in {p['alpha'] for p in points} - {None}:
    errors.check(errors.is_number(alpha) and 0 < alpha <= 1,
                 f'sweep.alpha has {alpha!r}: alpha must be in (0, 1]')
