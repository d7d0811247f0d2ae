"""The jitted train step: learns, keeps lam/alpha traced, moves centers in both modes."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cl_research.core import losses
from cl_research.core import step as train
from cl_research.data import device_batches as batches
from cl_research.engine import groups
from tests.conftest import device_data
from tests.conftest import make_trainer as trainer_of
from tests.conftest import synthetic_dataset
from tests.conftest import tiny_config

DATA = synthetic_dataset(num_train=64)
BATCH = {'image': jnp.asarray(DATA.train_images[:32]), 'label': jnp.asarray(DATA.train_labels[:32])}


def make_trainer(**overrides):
  return trainer_of(tiny_config(**overrides))


@pytest.mark.parametrize('mode', ['paper', 'gradient'])
def test_train_step_lowers_loss_on_a_fixed_batch(mode):
  trainer = make_trainer(**{'centers.mode': mode, 'centers.optimizer': 'adam',
                            'centers.learning_rate': 0.05, 'optimizer.learning_rate': 0.05,
                            'optimizer.grad_clip_norm': 5.0})
  state = trainer.init(0)
  hparams = trainer.hparams(0.1, 0.5)
  losses_seen = []
  for _ in range(30):
    state, step_metrics = trainer.train_step(state, BATCH, hparams)
    losses_seen.append(float(step_metrics['loss']))
  assert np.mean(losses_seen[-5:]) < 0.5 * np.mean(losses_seen[:3])
  assert int(state.step) == 30


def test_changing_lam_and_alpha_does_not_retrace():
  trainer = make_trainer()
  state = trainer.init(0)
  for lam, alpha in [(0.0, 0.5), (0.1, 0.5), (1.0, 0.2), (0.003, 1.0)]:
    state, _ = trainer.train_step(state, BATCH, trainer.hparams(lam, alpha))
  assert trainer.train_step._cache_size() == 1  # pylint: disable=protected-access


def test_paper_mode_moves_centers_by_eq4_on_the_same_forward_pass():
  trainer = make_trainer()
  state = trainer.init(0)
  features, _ = trainer.apply(state.params, BATCH['image'])
  expected = losses.center_update(state.centers, features, BATCH['label'], 0.5)
  new_state, _ = trainer.train_step(state, BATCH, trainer.hparams(0.1, 0.5))
  np.testing.assert_allclose(new_state.centers, expected, rtol=1e-5, atol=1e-6)
  assert not np.allclose(new_state.centers, 0.0)


def test_paper_mode_centers_ignore_lam():
  trainer = make_trainer()
  state = trainer.init(0)
  a, _ = trainer.train_step(trainer.init(0), BATCH, trainer.hparams(0.0, 0.5))
  b, _ = trainer.train_step(state, BATCH, trainer.hparams(1.0, 0.5))
  np.testing.assert_allclose(a.centers, b.centers, rtol=1e-6)


def test_gradient_mode_moves_centers_with_their_own_optimizer():
  trainer = make_trainer(**{'centers.mode': 'gradient', 'centers.optimizer': 'sgd',
                            'centers.learning_rate': 0.5})
  state = trainer.init(0)
  # Start the centers away from zero so the gradient lam * (c - x) / B is non-trivial.
  state = state.replace(centers=jnp.ones_like(state.centers))
  features, _ = trainer.apply(state.params, BATCH['image'])
  lam = 0.5
  grad = jax.grad(lambda c: lam * losses.center_loss(features, BATCH['label'], c))(state.centers)
  expected = np.asarray(state.centers - 0.5 * grad)  # the step donates `state`
  new_state, _ = trainer.train_step(state, BATCH, trainer.hparams(lam, 0.5))
  np.testing.assert_allclose(new_state.centers, expected, rtol=1e-4, atol=1e-6)
  assert not np.allclose(new_state.centers, 1.0)


def test_gradient_mode_unscale_lambda_makes_center_step_independent_of_lam():
  trainer = make_trainer(**{'centers.mode': 'gradient', 'centers.unscale_lambda': True})
  state = trainer.init(0).replace(centers=jnp.ones((10, 2)))
  small, _ = trainer.train_step(state, BATCH, trainer.hparams(0.01, None))
  state = trainer.init(0).replace(centers=jnp.ones((10, 2)))
  big, _ = trainer.train_step(state, BATCH, trainer.hparams(1.0, None))
  np.testing.assert_allclose(small.centers, big.centers, rtol=1e-4)


def test_unscale_lambda_is_kaiyangzhous_center_step():
  """KaiyangZhou/pytorch-center-loss: loss = w * sum_i ||x_i - c_yi||^2 / B, the centers'
  grad multiplied by 1/w, then SGD at lr_cent; our lam = 2 w."""
  lr_cent, lam = 0.5, 0.3
  trainer = make_trainer(**{'centers.mode': 'gradient', 'centers.unscale_lambda': True,
                            'centers.learning_rate': lr_cent})
  state = trainer.init(0).replace(centers=jnp.asarray(
      np.random.default_rng(0).normal(size=(10, 2)), jnp.float32))
  centers = np.asarray(state.centers, np.float64)
  x, _ = trainer.apply(state.params, BATCH['image'])
  x, y = np.asarray(x, np.float64), np.asarray(BATCH['label'])
  w = lam / 2
  grad = np.zeros_like(centers)  # d/dc of w * sum ||x - c_y||^2 / B, times 1/w
  for i in range(len(y)):
    grad[y[i]] += w * 2 * (centers[y[i]] - x[i]) / len(y) / w
  expected = centers - lr_cent * grad
  new_state, _ = trainer.train_step(state, BATCH, trainer.hparams(lam, None))
  np.testing.assert_allclose(new_state.centers, expected, rtol=1e-4, atol=1e-5)


def test_the_state_counts_the_steps_the_clip_engaged():
  for clip, engaged in ((1e-3, 3), (1e6, 0)):
    trainer = make_trainer(**{'optimizer.grad_clip_norm': clip})
    state = trainer.init(0)
    grads, _, _, _, _ = train.loss_and_grads(trainer.setup, state, BATCH,
                                          trainer.hparams(0.1, 0.5))
    norms = []
    for _ in range(3):
      state, aux = trainer.train_step(state, BATCH, trainer.hparams(0.1, 0.5))
      norms.append(float(aux['grad_norm']))
    assert int(state.clipped_steps) == engaged
    np.testing.assert_allclose(norms[0], float(optax.global_norm(grads['params'])), rtol=1e-5)
    np.testing.assert_allclose(float(state.grad_norm_sum), sum(norms), rtol=1e-5)


def test_same_seed_same_state_different_seed_differs():
  trainer = make_trainer()
  a, b, c = trainer.init(3), trainer.init(3), trainer.init(4)
  leaves = lambda s: jax.tree_util.tree_leaves(s.params)
  assert all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(b)))
  assert not all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(c)))


def test_batch_indices_cover_each_epoch_once():
  key = batches.data_key_of(0)
  seen = [np.asarray(batches.batch_indices_at(key, s, 100, 32)) for s in range(6)]
  first_epoch = np.concatenate(seen[:3])
  assert len(np.unique(first_epoch)) == 96
  assert not np.array_equal(np.sort(first_epoch), np.sort(np.concatenate(seen[3:])))
  again = [np.asarray(batches.batch_indices_at(batches.data_key_of(0), s, 100, 32))
           for s in range(6)]
  assert all(np.array_equal(a, b) for a, b in zip(seen, again))


def test_random_shifts_train_inside_the_compiled_chunk():
  """`data.augment_shift` shifts each batch on the device: the chunk trains, the run is
  reproducible, and it differs from the run without shifts."""
  dataset = synthetic_dataset()

  def train(shift):
    trainer = trainer_of(tiny_config(**{'data.augment_shift': shift}))
    states = trainer.init_group([0])
    hparams = groups.stack([trainer.hparams(0.01, 0.5)])
    states, aux = trainer.train_chunk(states, hparams, device_data(trainer, dataset, 0), 0, 4)
    return np.asarray(aux['loss']), np.asarray(states.centers)

  shifted, again, plain = train(2), train(2), train(0)
  assert np.isfinite(shifted[0]).all()
  np.testing.assert_array_equal(shifted[0], again[0])
  assert not np.array_equal(shifted[0][1:], plain[0][1:])
