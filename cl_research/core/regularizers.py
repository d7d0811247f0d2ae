"""Feature regularizers, added to a head's cross-entropy with weight `lam`.

Each is a pure function returning the mean over the batch of a per-example term, so
`lam` means what it means for center loss (`cl_research.losses`); island loss adds a
term on the centers alone. Centers live in the train state and follow `centers.mode`
(ECCV16 Eq. 4, `losses.paper_center_update`, or their own optimizer); ring loss's radius
is learned by gradient descent at the network's learning rate.

| regularizer        | term (per example, mean over the batch)              | the paper's weights |
| center             | 1/2 ||x - c_y||^2                                    | lam = ECCV16's lambda |
| contrastive_center | 1/2 ||x - c_y||^2 / (sum_{j != y} ||x - c_j||^2 + delta) | lam = Qi & Su's lambda x batch size (their loss sums over the batch) |
| ring               | 1/2 (||x|| - R)^2, R learned                         | lam = Zheng et al.'s lambda |
| git                | 1/2 ||x - c_y||^2 + g sum_{j != y} 1 / (1 + ||x - c_j||^2) | lam = lambda_C, g = lambda_G / lambda_C |
| island             | 1/2 ||x - c_y||^2 (+ i sum_j sum_{k != j} (cos(c_j, c_k) + 1) once) | lam = lambda, i = lambda_1 |
| normalized_center  | 1/2 ||x/||x|| - c_y/||c_y|| ||^2 = 1 - cos(x, c_y)   | for the angular heads |
"""

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from cl_research import errors
from cl_research.core import heads


@dataclasses.dataclass(frozen=True)
class Regularizer:
  """A registered regularizer.

  `term(features_BxD, labels_B, centers_CxD, radius, hparams) -> (term, parts)`: a pure
  function (jit-, grad- and vmap-safe) returning the scalar term before `lam` (a mean
  over the batch, so `lam` keeps center loss's meaning) and a dict of scalar parts for
  the logs ({} if none). `centers_CxD` are the train state's centers (C x D), `radius`
  ring loss's learned scalar, `hparams` the run's traced numbers: `lam`, `scale`,
  `margin` and every number of `config.loss` under its own name (a field a config adds
  to `config.loss` arrives too, traced: sweeping it never recompiles).
  `uses_centers`: the train state's centers follow `centers.mode` for it (ECCV16 Eq. 4
  toward the batch's class means, or their own optimizer); `angular_only`: only with the
  heads whose class weights are directions (`heads.is_angular`). `hyperparameters`: the
  config.loss numbers a search tunes for it besides `lam` (and `alpha`, for centers that
  follow ECCV16's update).
  """
  term: Callable
  uses_centers: bool = True
  angular_only: bool = False
  hyperparameters: tuple = ()


REGULARIZERS = {}  # name -> Regularizer, in registration order


def register(name, term, *, uses_centers=True, angular_only=False, hyperparameters=()):
  """Makes `term` (the signature of `Regularizer.term`) the regularizer `name`, usable as
  `loss.regularizer` and on the `sweep.regularizer` axis. Registering in the config file
  a run names (`--config path/to/my_config.py`) is enough for the command line."""
  errors.check(isinstance(name, str) and name.isidentifier(),
               f'regularizer name {name!r} must be an identifier')
  REGULARIZERS[name] = Regularizer(term, uses_centers, angular_only, tuple(hyperparameters))
  return term


def uses_centers(name):
  """Whether the regularizer `name` has centers in the train state that move."""
  return REGULARIZERS[name].uses_centers


def center_loss(features_BxD, labels_B, centers_CxD):
  """`1/2 * mean_i ||x_i - c_{y_i}||^2` (ECCV16 Eq. 2 divided by the batch size).

  Its gradient w.r.t. x_i is `(x_i - c_{y_i}) / B` (Eq. 3 over B).
  """
  diff_BxD = features_BxD - centers_CxD[labels_B]
  return 0.5 * jnp.mean(jnp.sum(diff_BxD**2, axis=-1))


def _squared_distances(features_BxD, centers_CxD):
  """||x_i - c_j||^2 for every example and center (B x C), as ||x||^2 + ||c||^2 - 2 x.c
  (clipped at 0 against rounding): memory B x C, never the B x C x D of differences
  (2.8 GB at B 128, C 10,572, D 512; 100k identities would not fit)."""
  cross_BxC = features_BxD @ centers_CxD.T
  norms_B = jnp.sum(features_BxD ** 2, axis=-1)
  norms_C = jnp.sum(centers_CxD ** 2, axis=-1)
  return jnp.maximum(norms_B[:, None] + norms_C[None, :] - 2.0 * cross_BxC, 0.0)


def contrastive_center_loss(features_BxD, labels_B, centers_CxD, delta=1.0):
  """Qi & Su, "Contrastive-center loss for deep neural networks" (ICIP 2017), averaged
  over the batch: 1/2 ||x - c_y||^2 / (sum_{j != y} ||x - c_j||^2 + delta). Pulls
  toward the own center relative to the distance to the others. Its centers: in
  `centers.mode=paper` ECCV16's Eq. 4 (toward the batch's class means, no push); in
  `centers.mode=gradient` the gradient of this loss, which also pushes the other
  classes' centers away from each feature. Qi & Su learn the centers from their loss's
  gradient, so `gradient` is the rule of their paper; the paper's exact center step
  size was not available to check here."""
  d_BxC = _squared_distances(features_BxD, centers_CxD)
  onehot = jax.nn.one_hot(labels_B, centers_CxD.shape[0], dtype=d_BxC.dtype)
  own = jnp.sum(d_BxC * onehot, axis=-1)
  others = jnp.sum(d_BxC * (1.0 - onehot), axis=-1)
  return jnp.mean(0.5 * own / (others + delta))


def ring_loss(features_BxD, radius):
  """Zheng et al., "Ring loss: convex feature normalization" (CVPR 2018), averaged over
  the batch: 1/2 (||x|| - R)^2 with R learned (`radius`, the train state's; started at
  the first batch's mean norm). Their loss is lambda / (2m) sum_i (||x_i|| - R)^2, so
  `lam` is their lambda."""
  return 0.5 * jnp.mean((heads.safe_norm(features_BxD) - radius) ** 2)


def git_push(features_BxD, labels_B, centers_CxD):
  """Git loss's push term (Calefati et al. 2018), averaged over the batch:
  sum_{j != y} 1 / (1 + ||x - c_j||^2)."""
  d_BxC = _squared_distances(features_BxD, centers_CxD)
  onehot = jax.nn.one_hot(labels_B, centers_CxD.shape[0], dtype=d_BxC.dtype)
  return jnp.mean(jnp.sum((1.0 - onehot) / (1.0 + d_BxC), axis=-1))


def island_pairs(centers_CxD):
  """Island loss's center term (Cai et al. 2018): sum_j sum_{k != j} (cos(c_j, c_k) + 1).
  With u_j the unit centers, sum_{j != k} u_j.u_k = ||sum_j u_j||^2 - sum_j ||u_j||^2, so
  the term costs C x D, never the C x C cosines (40 GB at 100k identities). A zero
  center has u = 0 (cosine 0 with every other)."""
  unit_CxD = heads.l2_normalize(centers_CxD)
  c = centers_CxD.shape[0]
  return (jnp.sum(jnp.sum(unit_CxD, axis=0) ** 2) - jnp.sum(unit_CxD ** 2)
          + c * (c - 1.0))


def normalized_center_loss(features_BxD, labels_B, centers_CxD):
  """Center loss on L2-normalised features and centers, averaged over the batch:
  1/2 ||x/||x|| - c_y/||c_y|| ||^2 = 1 - cos(x, c_y) (NormFace's C-contrastive form)."""
  return center_loss(heads.l2_normalize(features_BxD), labels_B,
                     heads.l2_normalize(centers_CxD))


def regularizer_loss(name, features_BxD, labels_B, centers_CxD, radius, hparams):
  """The regularizer `name`'s term (before `lam`) and its parts for the logs."""
  return REGULARIZERS[name].term(features_BxD, labels_B, centers_CxD, radius, hparams)


def _center_plus(push_name, push, weight_name):
  def term(features_BxD, labels_B, centers_CxD, radius, hparams):
    del radius
    pushed = push(features_BxD, labels_B, centers_CxD)
    center = center_loss(features_BxD, labels_B, centers_CxD)
    return center + hparams[weight_name] * pushed, {push_name: pushed}
  return term


register('none', lambda x, y, c, r, h: (jnp.zeros((), x.dtype), {}), uses_centers=False)
register('center', lambda x, y, c, r, h: (center_loss(x, y, c), {}))
register('contrastive_center', lambda x, y, c, r, h: (
    contrastive_center_loss(x, y, c, h['contrastive_delta']), {}),
         hyperparameters=('contrastive_delta',))
register('ring', lambda x, y, c, r, h: (ring_loss(x, r), {}), uses_centers=False)
register('git', _center_plus('git_push', git_push, 'git_weight'),
         hyperparameters=('git_weight',))
register('island', _center_plus('island_pairs', lambda x, y, c: island_pairs(c),
                                'island_weight'), hyperparameters=('island_weight',))
register('normalized_center', lambda x, y, c, r, h: (normalized_center_loss(x, y, c), {}),
         angular_only=True)


# config.loss's regularizer numbers: (holds, the domain in words), checked whatever the
# regularizer.
NUMBER_DOMAINS = {
    'contrastive_delta': (lambda v: v > 0, 'delta must be > 0 (it keeps the ratio finite)'),
    'git_weight': (lambda v: v >= 0, 'the push weight must be >= 0'),
    'island_weight': (lambda v: v >= 0, 'lambda_1 must be >= 0'),
}


def validate(regularizer, head):
  """Raises ConfigError where `regularizer` is unknown or cannot go with `head`."""
  errors.check_choice(regularizer, 'regularizer', REGULARIZERS)
  errors.check(not REGULARIZERS[regularizer].angular_only or heads.is_angular(head),
               f"regularizer {regularizer!r} with head {head!r}: it is for the angular "
               f"heads ({', '.join(h for h in heads.HEADS if heads.is_angular(h))}); with "
               f"{head!r} use 'center'")
