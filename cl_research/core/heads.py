"""Classifier heads: how logits are made from features, for the cross-entropy.

Pure functions, safe under `jit`, `grad` and `vmap`; their hyperparameters (scale,
margins, SphereFace's lambda) are arrays, so they can be traced and swept without
recompiling. Gradients stay finite where a feature is parallel or antiparallel to a
class weight (cos = +-1, where arccos has an infinite derivative) and where a feature is
zero.

| head       | target logit (others: s cos theta_j)        | source                        |
| softmax    | W_y^T x + b_y (others W_j^T x + b_j)        | -                             |
| normface   | s cos theta_y                               | Wang et al. 2017 (NormFace)   |
| cosface    | s (cos theta_y - m)                         | Wang et al. 2018 (CosFace / AM-Softmax) |
| arcface    | s cos(theta_y + m)                          | Deng et al. 2019 (ArcFace)    |
| combined   | s (cos(m1 theta_y + m2) - m3)               | insightface `CombinedMarginLoss` |
| sphereface | ||x|| psi(theta_y) (others ||x|| cos theta_j) | Liu et al. 2017 (SphereFace)  |

theta_j is the angle between the feature x and the class weight W_j (a column of the
D x C classifier kernel); the margin heads normalise both, SphereFace only W.
"""

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp

from cl_research import errors

_EPS = 1e-12  # floor of squared norms: a zero vector normalises to zero, gradients finite
_COS_LIMIT = 1.0 - 1e-6  # arccos' derivative is finite inside (-1, 1)


def l2_normalize(x, axis=-1):
  """x / ||x|| along `axis`; a zero vector stays zero with a finite gradient."""
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=axis, keepdims=True), _EPS))


def safe_norm(x, axis=-1):
  """||x|| along `axis`, with a finite gradient at x = 0."""
  return jnp.sqrt(jnp.maximum(jnp.sum(x * x, axis=axis), _EPS))


def cosine_logits(features_BxD, weights_DxC):
  """cos theta (B x C) between each feature and each class weight (a column of W)."""
  return l2_normalize(features_BxD, -1) @ l2_normalize(weights_DxC, 0)


def _angle(cos):
  return jnp.arccos(jnp.clip(cos, -_COS_LIMIT, _COS_LIMIT))


def _with_target(logits_BxC, target_B, labels_B):
  onehot = jax.nn.one_hot(labels_B, logits_BxC.shape[-1], dtype=bool)
  return jnp.where(onehot, target_B[:, None], logits_BxC)


def margin_logits(cos_BxC, labels_B, scale, m1=1.0, m2=0.0, m3=0.0):
  """insightface's combined margin: s (cos(m1 theta_y + m2) - m3) for the target class,
  s cos theta_j for the others. (1, 0, 0) is NormFace, (1, 0, m) CosFace, (1, m, 0)
  ArcFace. Where m1 theta_y + m2 passes pi, cos(. + m2) would rise again and reward a
  worse angle, so the target uses insightface's linear extension
  `cos(m1 theta_y) - m2 sin(m2)` there (their `target_logit - sinmm` with
  `th = cos(pi - m)`, `mm = sin(pi - m) m`). With m1 = 1 the target comes from cos theta
  by the angle-sum formula, as insightface computes it, so it is exact at cos = +-1
  (arccos, taken only for m1 != 1, needs cos clipped inside (-1, 1))."""
  cos_y = jnp.take_along_axis(cos_BxC, labels_B[:, None], axis=-1)[:, 0]
  theta = _angle(cos_y)
  angular = m1 * theta + m2
  # m1 = 1 (ArcFace): cos(theta + m2) = cos cos m2 - sin sin m2, exact at cos = +-1
  sin_y = jnp.sqrt(jnp.maximum(1.0 - cos_y**2, _EPS))
  cos_angular = jnp.where(m1 == 1.0, cos_y * jnp.cos(m2) - sin_y * jnp.sin(m2),
                          jnp.cos(angular))
  cos_m1 = jnp.where(m1 == 1.0, cos_y, jnp.cos(m1 * theta))
  target = jnp.where(angular <= jnp.pi, cos_angular, cos_m1 - m2 * jnp.sin(m2)) - m3
  return scale * _with_target(cos_BxC, target, labels_B)


def sphereface_psi(theta, m):
  """SphereFace's psi(theta) = (-1)^k cos(m theta) - 2k, k = floor(m theta / pi):
  decreasing on [0, pi] for integer m, equal to cos theta at m = 1."""
  k = jnp.floor(m * theta / jnp.pi)
  sign = 1.0 - 2.0 * jnp.mod(k, 2.0)
  return sign * jnp.cos(m * theta) - 2.0 * k


def sphereface_lambda(step, base=1000.0, gamma=0.12, power=1.0, lambda_min=5.0):
  """The annealing weight of the official SphereFace prototxt:
  max(lambda_min, base (1 + gamma step)^(-power))."""
  return jnp.maximum(lambda_min, base * (1.0 + gamma * step) ** (-power))


def sphereface_logits(features_BxD, weights_DxC, labels_B, m, lam_a):
  """A-Softmax (Liu et al. 2017, wy1iu/sphereface): class weights normalised, no bias,
  the feature's norm kept: logits ||x|| cos theta_j, and for the target class the
  annealed `(lam_a ||x|| cos theta_y + ||x|| psi(theta_y)) / (1 + lam_a)`. As lam_a
  grows this tends to a bias-free softmax over normalised class weights."""
  norm_B = safe_norm(features_BxD)
  cos_BxC = cosine_logits(features_BxD, weights_DxC)
  cos_y = jnp.take_along_axis(cos_BxC, labels_B[:, None], axis=-1)[:, 0]
  psi = sphereface_psi(_angle(cos_y), m)
  target = norm_B * (lam_a * cos_y + psi) / (1.0 + lam_a)
  return _with_target(norm_B[:, None] * cos_BxC, target, labels_B)


@dataclasses.dataclass(frozen=True)
class Head:
  """A registered classifier head.

  `training_logits(features_BxD, classifier, labels_B, hparams, step) -> logits_BxC`:
  the logits the cross-entropy sees, margins applied; a pure function (jit-, grad- and
  vmap-safe). `classifier` is the model's classifier params: {'kernel': D x C} (and
  'bias': C for a head that is not `angular`); `hparams` the run's traced numbers:
  `scale`, `margin` (the head's own, from `config.loss[margin_field]` or the margin
  axis), `lam` and every number of `config.loss` under its own name; `step` the traced
  step. `inference_logits(features_BxD, classifier) -> logits_BxC`: margin-free logits
  whose argmax is the predicted class. `angular`: the class weights are directions (the
  classifier has no bias; plots add the features' directions). `normalized`: logits are
  s cos theta. `scaled`: it reads `hparams['scale']` (loss.scale, the scale axis).
  `margin_field`: the config.loss field of its margin, or None; `margin_domain`:
  (holds, the domain in words) of a margin value. `hyperparameters`: the config.loss
  numbers a search tunes for it (the benchmark's space), by default its scale (if
  `scaled`) and its margin field.
  """
  training_logits: Callable
  inference_logits: Callable
  angular: bool = True
  normalized: bool = True
  scaled: bool = True
  margin_field: str = None
  margin_domain: tuple = (lambda m: m >= 0, 'a margin must be a number >= 0')
  hyperparameters: tuple = ()


HEADS = {}  # name -> Head, in registration order


def register(name, training_logits, inference_logits=None, **properties):
  """Makes a head `name`, usable as `loss.head` and on the `sweep.head` axis;
  `properties` are `Head`'s fields. Without `inference_logits` the prediction is the
  nearest class weight by angle (s cos theta). Registering in the config file a run
  names (`--config path/to/my_config.py`) is enough for the command line."""
  errors.check(isinstance(name, str) and name.isidentifier(),
               f'head name {name!r} must be an identifier')
  if 'hyperparameters' not in properties:
    properties['hyperparameters'] = (('scale',) if properties.get('scaled', True) else ()) + (
        (properties['margin_field'],) if properties.get('margin_field') else ())
  HEADS[name] = Head(training_logits, inference_logits or (
      lambda features_BxD, classifier: cosine_logits(features_BxD, classifier['kernel'])),
                     **properties)
  return training_logits


def is_angular(name):
  """Whether the head `name` treats class weights as directions (no classifier bias)."""
  return HEADS[name].angular


def is_normalized(name):
  """Whether the head `name`'s logits are s cos theta."""
  return HEADS[name].normalized


def training_logits(head, features_BxD, classifier, labels_B, hparams, step):
  """The logits the cross-entropy sees during training (`Head.training_logits`)."""
  return HEADS[head].training_logits(features_BxD, classifier, labels_B, hparams, step)


def inference_logits(head, features_BxD, classifier):
  """Logits without margins, for predicting a class: the softmax layer's, cos theta for
  the normalised heads, ||x|| cos theta for SphereFace (argmax is the closest class
  weight by angle for every angular head)."""
  return HEADS[head].inference_logits(features_BxD, classifier)


def _margin_head(margins):
  """A head of insightface's combined margin: `margins(hparams)` -> (m1, m2, m3)."""
  def logits(features_BxD, classifier, labels_B, hparams, step):
    del step
    return margin_logits(cosine_logits(features_BxD, classifier['kernel']), labels_B,
                         hparams['scale'], *margins(hparams))
  return logits


def _sphereface(features_BxD, classifier, labels_B, hparams, step):
  lam_a = sphereface_lambda(step, hparams['sphereface_base'], hparams['sphereface_gamma'],
                            hparams['sphereface_power'], hparams['sphereface_lambda_min'])
  return sphereface_logits(features_BxD, classifier['kernel'], labels_B, hparams['margin'],
                           lam_a)


def _linear(features_BxD, classifier, labels_B=None, hparams=None, step=None):
  del labels_B, hparams, step
  return features_BxD @ classifier['kernel'] + classifier['bias']


register('softmax', _linear, _linear, angular=False, normalized=False, scaled=False)
register('normface', _margin_head(lambda h: (1.0, 0.0, 0.0)))
register('cosface', _margin_head(lambda h: (1.0, 0.0, h['margin'])),
         margin_field='cosface_margin')
register('arcface', _margin_head(lambda h: (1.0, h['margin'], 0.0)),
         margin_field='arcface_margin',
         margin_domain=(lambda m: 0 <= m < math.pi / 2,
                        'an angular margin must be in [0, pi/2) radians'))
register('combined', _margin_head(lambda h: (h['m1'], h['m2'], h['m3'])),
         hyperparameters=('scale', 'm2', 'm3'))  # m1 stays 1, as insightface's (1, m2, m3)
register('sphereface', _sphereface,
         lambda features_BxD, classifier: safe_norm(features_BxD)[:, None] * cosine_logits(
             features_BxD, classifier['kernel']),
         normalized=False, scaled=False, margin_field='sphereface_m',
         margin_domain=(lambda m: m >= 1 and float(m).is_integer(),
                        'm must be a positive integer (1 is plain normalised-weight '
                        'softmax; 4 is usual)'))


# config.loss's head numbers besides the margins: (holds, the domain in words). With the
# registered heads' margin fields (`number_domains`) they are checked whatever the head,
# so a value no head could use is refused before it is swept to one that does.
NUMBER_DOMAINS = {
    'scale': (lambda v: v > 0, 'the scale s must be > 0'),
    'm1': (lambda v: v > 0, 'm1 must be > 0'),
    'm2': (lambda v: 0 <= v < math.pi, 'm2 must be in [0, pi) radians'),
    'm3': (lambda v: v >= 0, 'm3 must be >= 0'),
    'sphereface_base': (lambda v: v > 0, 'the annealing base must be > 0'),
    'sphereface_gamma': (lambda v: v >= 0, 'gamma must be >= 0'),
    'sphereface_power': (lambda v: v >= 0, 'the power must be >= 0'),
    'sphereface_lambda_min': (lambda v: v >= 0, 'lambda_min must be >= 0'),
}


def number_domains():
  """config.loss's head numbers and their domains: NUMBER_DOMAINS and each registered
  head's margin field with its `margin_domain` (one declaration per margin)."""
  return {**NUMBER_DOMAINS, **{h.margin_field: h.margin_domain for h in HEADS.values()
                               if h.margin_field}}


def validate(head, scale, margin):
  """Raises ConfigError where a run's scale or margin cannot work with `head`."""
  errors.check_choice(head, 'head', HEADS)
  if scale is not None:
    errors.check(errors.is_number(scale) and scale > 0,
                 f'scale {scale!r} ({head}): the scale s must be > 0')
  if margin is None:
    return
  errors.check(errors.is_number(margin) and margin >= 0,
               f'margin {margin!r} ({head}): a margin must be a number >= 0')
  holds, domain = HEADS[head].margin_domain
  errors.check(holds(margin), f'margin {margin!r} ({head}): {domain}')
