"""The feature regularizers against hand-computed values, and their centers and radius
in the train step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cl_research.core import losses
from cl_research.core import regularizers
from tests.conftest import make_trainer
from tests.conftest import synthetic_dataset
from tests.conftest import tiny_config

FEATURES = jnp.array([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])
LABELS = jnp.array([0, 1, 0])
CENTERS = jnp.array([[1.0, 1.0], [0.0, 0.0], [5.0, 5.0]])
# squared distances ||x_i - c_j||^2, rows i, columns j
D = np.array([[1.0, 1.0, 41.0], [2.0, 4.0, 34.0], [13.0, 25.0, 5.0]])


def test_contrastive_center_hand_computed():
  delta = 1.0
  own = D[[0, 1, 2], [0, 1, 0]]
  others = D.sum(1) - own
  expected = np.mean(0.5 * own / (others + delta))
  np.testing.assert_allclose(losses.contrastive_center_loss(FEATURES, LABELS, CENTERS),
                             expected, rtol=1e-6)


def test_ring_hand_computed():
  norms = np.array([1.0, 2.0, 5.0])
  np.testing.assert_allclose(losses.ring_loss(FEATURES, 2.0),
                             np.mean(0.5 * (norms - 2.0) ** 2), rtol=1e-6)


def test_git_push_and_island_pairs_hand_computed():
  own = D[[0, 1, 2], [0, 1, 0]]
  push = np.mean((1.0 / (1.0 + D)).sum(1) - 1.0 / (1.0 + own))
  np.testing.assert_allclose(regularizers.git_push(FEATURES, LABELS, CENTERS), push,
                             rtol=1e-6)
  c = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])  # cos: 0, -1, 0 between pairs
  np.testing.assert_allclose(regularizers.island_pairs(jnp.asarray(c)),
                             2 * ((0 + 1) + (-1 + 1) + (0 + 1)), rtol=1e-6)


def test_normalized_center_is_one_minus_cosine():
  x = jnp.array([[2.0, 0.0], [0.0, 3.0]])
  c = jnp.array([[1.0, 1.0], [0.0, 5.0]])
  expected = np.mean([1 - np.sqrt(0.5), 0.0])
  np.testing.assert_allclose(regularizers.normalized_center_loss(x, jnp.array([0, 1]), c),
                             expected, rtol=1e-6)


def test_island_paper_update_spreads_the_centers_apart():
  c = jnp.array([[1.0, 0.1], [1.0, -0.1], [-1.0, 0.0]])
  x = jnp.zeros((0, 2))  # no examples: Eq. 4 moves nothing, only the island term acts
  moved = losses.paper_center_update('island', c, x, jnp.zeros((0,), int), 0.5,
                                     {'island_weight': 1.0})
  before = float(regularizers.island_pairs(c))
  assert float(regularizers.island_pairs(moved)) < before


DATA = synthetic_dataset(num_train=64)
BATCH = {'image': jnp.asarray(DATA.train_images[:32]), 'label': jnp.asarray(DATA.train_labels[:32])}


def test_ring_radius_starts_at_the_first_batch_norm_and_is_learned():
  trainer = make_trainer(tiny_config(**{'loss.regularizer': 'ring'}))
  state = trainer.init(0)
  features, _ = trainer.apply(state.params, BATCH['image'])
  first = float(jnp.mean(jnp.linalg.norm(features, axis=1)))
  hparams = trainer.hparams(1.0, None)
  state, _ = trainer.train_step(state, BATCH, hparams)
  assert abs(float(state.radius) - first) < 0.05 * first  # one small step from the start
  radii = [float(state.radius)]
  for _ in range(5):
    state, _ = trainer.train_step(state, BATCH, hparams)
    radii.append(float(state.radius))
  assert len(set(radii)) == len(radii)  # R moves every step


@pytest.mark.parametrize('regularizer', ['contrastive_center', 'git', 'island',
                                         'normalized_center'])
def test_center_based_regularizers_move_their_centers_in_both_modes(regularizer):
  for mode in ('paper', 'gradient'):
    trainer = make_trainer(tiny_config(**{'loss.regularizer': regularizer,
                                          'loss.head': 'normface', 'centers.mode': mode}))
    state = trainer.init(0).replace(centers=jnp.ones((10, 2)))
    new, aux = trainer.train_step(state, BATCH, trainer.hparams(0.5, 0.5, scale=10.0))
    assert not np.allclose(new.centers, 1.0), (regularizer, mode)
    assert np.isfinite(float(aux['regularizer_loss']))


@pytest.mark.parametrize('name', ['center', 'contrastive_center', 'git', 'island'])
def test_regularizers_at_100k_identities_stay_within_2_gib(name):
  """Value and gradients (features and centers) at C = 100,000, D = 512, B = 64: XLA's
  own accounting of the compiled program (arguments, outputs, temporaries) under 2 GiB;
  a B x C x D tensor of differences alone would be 13 GB."""
  b, c, d = 64, 100_000, 512
  hparams = {'contrastive_delta': 1.0, 'git_weight': 10.0, 'island_weight': 10.0}

  def term(features_BxD, centers_CxD, labels_B):
    value, _ = regularizers.regularizer_loss(name, features_BxD, labels_B, centers_CxD,
                                             0.0, hparams)
    return value

  grad_fn = jax.jit(jax.value_and_grad(term, argnums=(0, 1)))
  features = jax.random.normal(jax.random.key(0), (b, d))
  centers = jax.random.normal(jax.random.key(1), (c, d))
  labels = jnp.arange(b) * 7
  compiled = grad_fn.lower(features, centers, labels).compile()
  memory = compiled.memory_analysis()
  total = (memory.temp_size_in_bytes + memory.argument_size_in_bytes
           + memory.output_size_in_bytes)
  assert total < 2 * 2**30, f'{name}: {total / 2**30:.2f} GiB'
  value, (g_features, g_centers) = compiled(features, centers, labels)
  assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(g_features)))
  assert np.all(np.isfinite(np.asarray(g_centers)))
