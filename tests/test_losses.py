"""Center loss and the ECCV16 center update against hand-computed values."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cl_research.core import losses

FEATURES = jnp.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
LABELS = jnp.array([0, 1, 0])  # class 0 twice, class 2 absent
CENTERS = jnp.array([[1.0, 1.0], [0.0, 0.0], [5.0, 5.0]])


def test_center_loss_hand_computed():
  # squared distances: |(0,-1)|^2 = 1, |(0,2)|^2 = 4, |(2,2)|^2 = 8 -> 1/2 * 13 / 3
  np.testing.assert_allclose(losses.center_loss(FEATURES, LABELS, CENTERS), 13 / 6, rtol=1e-6)


def test_center_update_hand_computed_repeated_and_absent_classes():
  new = losses.center_update(CENTERS, FEATURES, LABELS, alpha=0.5)
  # class 0: delta = ((c0 - x0) + (c0 - x2)) / (1 + 2) = ((0,1) + (-2,-2)) / 3
  # class 1: delta = (c1 - x1) / (1 + 1) = (0,-2) / 2;  class 2 absent: stays put
  expected = np.array([[1 + 0.5 * 2 / 3, 1 + 0.5 * 1 / 3], [0.0, 0.5], [5.0, 5.0]])
  np.testing.assert_allclose(new, expected, rtol=1e-6)


def test_the_gather_scatter_form_of_eq4_equals_the_one_hot_form(monkeypatch):
  rng = np.random.default_rng(0)
  centers = rng.normal(size=(40, 8)).astype(np.float32)
  features = rng.normal(size=(64, 8)).astype(np.float32)
  labels = rng.integers(0, 12, 64).astype(np.int32)  # classes 12-39 absent: they stay put
  one_hot = losses.center_update(centers, features, labels, 0.5)
  monkeypatch.setattr(losses, 'ONE_HOT_MAX_CLASSES', 0)
  scattered = losses.center_update(centers, features, labels, 0.5)
  np.testing.assert_allclose(scattered, one_hot, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(scattered)[12:], centers[12:])


def test_center_update_ijcv_eps_and_alpha_one_reaches_batch_mean():
  new = losses.center_update(CENTERS, FEATURES, LABELS, alpha=1.0, eps=1e-12)
  np.testing.assert_allclose(new[0], [2.0, 1.5], rtol=1e-6)  # mean of x0, x2
  np.testing.assert_allclose(new[1], [0.0, 2.0], rtol=1e-6)


def test_center_update_passes_no_gradient_to_features():
  grad = jax.grad(lambda f: losses.center_update(CENTERS, f, LABELS, 0.5).sum())(FEATURES)
  np.testing.assert_array_equal(grad, np.zeros_like(FEATURES))


def test_center_term_gradient_is_lam_times_x_minus_c_over_batch():
  lam = 0.3
  grad = jax.grad(lambda f: lam * losses.center_loss(f, LABELS, CENTERS))(FEATURES)
  expected = lam * (FEATURES - CENTERS[LABELS]) / FEATURES.shape[0]
  np.testing.assert_allclose(grad, expected, rtol=1e-6)


def test_joint_loss_is_softmax_plus_lam_center_with_aux():
  logits = jnp.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 3.0, 0.0]])
  loss, aux = losses.joint_loss(logits, FEATURES, LABELS, CENTERS, lam=0.5)
  softmax = optax.softmax_cross_entropy_with_integer_labels(logits, LABELS).mean()
  np.testing.assert_allclose(aux['softmax_loss'], softmax, rtol=1e-6)
  np.testing.assert_allclose(aux['center_loss'], 13 / 6, rtol=1e-6)
  np.testing.assert_allclose(loss, softmax + 0.5 * 13 / 6, rtol=1e-6)
  np.testing.assert_allclose(aux['accuracy'], 2 / 3)  # third example predicts class 1


def test_losses_vmap_over_lam_and_alpha():
  lams = jnp.array([0.0, 1.0, 2.0])
  logits = jnp.zeros((3, 3))
  loss = jax.vmap(lambda l: losses.joint_loss(logits, FEATURES, LABELS, CENTERS, l)[0])(lams)
  np.testing.assert_allclose(loss[2] - loss[1], 13 / 6, rtol=1e-5)
  alphas = jnp.array([0.0, 1.0])
  centers = jax.vmap(lambda a: losses.center_update(CENTERS, FEATURES, LABELS, a))(alphas)
  np.testing.assert_array_equal(centers[0], CENTERS)
