"""Softmax cross-entropy plus center loss (Wen et al., ECCV 2016), as pure functions.

Convention used throughout this project (the Caffe release's, which keeps the paper's
lambda): both terms are means over the batch,

    L = mean_i CE(logits_i, y_i) + lam * 1/2 * mean_i ||x_i - c_{y_i}||^2.

Mapping from other conventions to this project's `lam`:
  * ECCV16 as written (sums over the batch for both terms): same lam.
  * IJCV19, `1/(2m) sum_i ||x_i - c_{y_i}||^2`: same lam.
  * KaiyangZhou/pytorch-center-loss (no 1/2, mean over the batch): lam = 2 * theirs.
  * The Keras snippet this project grew from (per-sample `sum (x - c)^2`, no 1/2,
    loss weights 1 : w): lam = 2 * w, e.g. w = 0.2 -> lam = 0.4.

Every function works under `jit`, `grad` and `vmap`; none holds state.
"""

import jax
import jax.numpy as jnp
import optax


def center_loss(features_BxD, labels_B, centers_CxD):
  """`1/2 * mean_i ||x_i - c_{y_i}||^2` (ECCV16 Eq. 2 divided by the batch size).

  Its gradient w.r.t. x_i is `(x_i - c_{y_i}) / B` (Eq. 3 over B).
  """
  diff_BxD = features_BxD - centers_CxD[labels_B]
  return 0.5 * jnp.mean(jnp.sum(diff_BxD**2, axis=-1))


def center_update(centers_CxD, features_BxD, labels_B, alpha, eps=1.0):
  """ECCV16 Eq. 4: move each center toward the mean of its class in the batch.

  delta_c_j = sum_i [y_i = j] (c_j - x_i) / (eps + n_j),  c_j <- c_j - alpha * delta_c_j.

  `eps = 1` is the paper's rule; IJCV19 uses `eps = 1e-5`. Classes absent from the
  batch (n_j = 0) have delta 0 and stay put. Features are treated as constants. lam
  does not enter: in the paper the center step is independent of the loss weight.
  """
  features_BxD = jax.lax.stop_gradient(features_BxD)
  num_classes = centers_CxD.shape[0]
  onehot_BxC = jax.nn.one_hot(labels_B, num_classes, dtype=features_BxD.dtype)
  counts_C = onehot_BxC.sum(axis=0)
  feature_sums_CxD = onehot_BxC.T @ features_BxD
  delta_CxD = (counts_C[:, None] * centers_CxD - feature_sums_CxD) / (eps + counts_C[:, None])
  return centers_CxD - alpha * delta_CxD


def joint_loss(logits_BxC, features_BxD, labels_B, centers_CxD, lam):
  """ECCV16 Eq. 5 in mean-and-mean form. Returns `(loss, aux)`.

  aux holds the two terms and the batch accuracy, each a scalar.
  """
  softmax = optax.softmax_cross_entropy_with_integer_labels(logits_BxC, labels_B).mean()
  center = center_loss(features_BxD, labels_B, centers_CxD)
  accuracy = jnp.mean(jnp.argmax(logits_BxC, axis=-1) == labels_B)
  loss = softmax + lam * center
  return loss, {'loss': loss, 'softmax_loss': softmax, 'center_loss': center,
                'accuracy': accuracy}
