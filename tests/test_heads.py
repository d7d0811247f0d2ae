"""The classifier heads against hand-computed values, their special cases, and finite
gradients where arccos and the norm have none."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cl_research.core import heads
from cl_research.core import losses

# Two features and three class weights (columns) at known angles.
W = jnp.array([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # directions 0, 90, 180 degrees
X = jnp.array([[2.0, 0.0], [1.0, 1.0]])  # 0 and 45 degrees, norms 2 and sqrt 2
Y = jnp.array([0, 1])


def test_cosine_logits_hand_computed():
  cos = losses.cosine_logits(X, 3.0 * W)  # the weights' norms do not matter
  r = math.sqrt(0.5)
  np.testing.assert_allclose(cos, [[1.0, 0.0, -1.0], [r, r, -r]], atol=1e-6)


def test_margin_heads_hand_computed():
  cos = losses.cosine_logits(X, W)
  s, m = 10.0, 0.3
  r = math.sqrt(0.5)
  cosface = losses.margin_logits(cos, Y, s, m3=m)
  np.testing.assert_allclose(cosface, s * np.array([[1 - m, 0, -1], [r, r - m, -r]]),
                             atol=1e-5)
  arcface = losses.margin_logits(cos, Y, s, m2=m)
  # targets: theta 0 -> cos(0.3); theta 45 degrees -> cos(pi/4 + 0.3)
  np.testing.assert_allclose(arcface[:, :][0, 0], s * math.cos(0.3), rtol=1e-4)
  np.testing.assert_allclose(arcface[1, 1], s * math.cos(math.pi / 4 + 0.3), rtol=1e-5)
  np.testing.assert_allclose(arcface[1, [0, 2]], s * np.array([r, -r]), rtol=1e-6)


def test_arcface_uses_insightfaces_linear_extension_past_pi():
  """theta + m > pi: insightface's `cos theta - sin(pi - m) m`, not cos(theta + m)."""
  m = 0.5
  cos_y = math.cos(math.pi - 0.2)  # theta = pi - 0.2, theta + m > pi
  out = losses.margin_logits(jnp.array([[cos_y, 0.0]]), jnp.array([0]), 1.0, m2=m)
  np.testing.assert_allclose(out[0, 0], cos_y - math.sin(math.pi - m) * m, rtol=1e-5)


@pytest.mark.parametrize('m1, m2, m3, head', [(1.0, 0.0, 0.0, 'normface'),
                                             (1.0, 0.3, 0.0, 'arcface'),
                                             (1.0, 0.0, 0.3, 'cosface')])
def test_the_combined_margin_reduces_to_each_head(m1, m2, m3, head):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(16, 3)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(3, 5)), jnp.float32)
  y = jnp.asarray(rng.integers(0, 5, 16))
  hparams = {'scale': 16.0, 'margin': 0.3, 'm1': m1, 'm2': m2, 'm3': m3}
  combined = heads.training_logits('combined', x, {'kernel': w}, y, hparams, 0)
  single = heads.training_logits(head, x, {'kernel': w}, y, hparams, 0)
  np.testing.assert_allclose(combined, single, rtol=1e-5, atol=1e-5)


def test_sphereface_psi_is_cos_at_m1_and_decreasing_for_m4():
  theta = jnp.linspace(0.0, math.pi, 1001)
  np.testing.assert_allclose(heads.sphereface_psi(theta, 1.0), jnp.cos(theta), atol=1e-6)
  psi = np.asarray(heads.sphereface_psi(theta, 4.0))
  assert np.all(np.diff(psi) < 1e-6) and psi[0] == pytest.approx(1.0)
  assert psi[-1] == pytest.approx(-7.0, abs=1e-4)  # k = 3 at pi: -cos(4 pi) - 6


def test_sphereface_hand_computed_and_its_annealing_limit():
  lam_a = 2.0
  out = losses.sphereface_logits(X, W, Y, 4.0, lam_a)
  # example 1: theta_y = 45 degrees, 4 theta = pi -> k = 1, psi = -cos(pi) - 2 = -1
  r = math.sqrt(0.5)
  norm = math.sqrt(2.0)
  np.testing.assert_allclose(out[1, 1], norm * (lam_a * r - 1.0) / (1 + lam_a), rtol=1e-5)
  np.testing.assert_allclose(out[1, [0, 2]], norm * np.array([r, -r]), rtol=1e-5)
  np.testing.assert_allclose(out[0, 0], 2.0, rtol=1e-5)  # theta 0: psi = 1
  # lam_a -> infinity: a bias-free softmax over normalised class weights
  limit = losses.sphereface_logits(X, W, Y, 4.0, 1e9)
  np.testing.assert_allclose(limit, X @ heads.l2_normalize(W, 0), rtol=1e-5, atol=1e-6)
  assert float(heads.sphereface_lambda(0)) == 1000.0
  assert float(heads.sphereface_lambda(10_000)) == 5.0


@pytest.mark.parametrize('head', heads.HEADS)
def test_gradients_stay_finite_at_cos_plus_minus_one_and_at_a_zero_feature(head):
  w = jnp.array([[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]])
  x = jnp.array([[3.0, 0.0], [-2.0, 0.0], [0.0, 0.0]])  # parallel, antiparallel, zero
  y = jnp.array([0, 0, 1])
  classifier = {'kernel': w, 'bias': jnp.zeros(3)}
  hparams = {'scale': 30.0, 'margin': 4.0 if head == 'sphereface' else 0.5, 'm1': 1.5,
             'm2': 0.2, 'm3': 0.1, 'sphereface_base': 1000.0, 'sphereface_gamma': 0.12,
             'sphereface_power': 1.0, 'sphereface_lambda_min': 5.0}

  def loss(x, classifier):
    logits = heads.training_logits(head, x, classifier, y, hparams, 100)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
  grads = jax.grad(loss, argnums=(0, 1))(x, classifier)
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads)), head


def test_heads_trace_their_numbers_under_vmap():
  cos = losses.cosine_logits(X, W)
  margins = jnp.array([0.0, 0.2, 0.4])
  out = jax.jit(jax.vmap(lambda m: losses.margin_logits(cos, Y, 10.0, m2=m)))(margins)
  for i, m in enumerate([0.0, 0.2, 0.4]):
    np.testing.assert_allclose(out[i], losses.margin_logits(cos, Y, 10.0, m2=m), rtol=1e-6)
