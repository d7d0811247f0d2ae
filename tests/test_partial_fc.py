"""Partial FC: the sample, r = 1 equal to the full classifier, only sampled columns and
their momentum moving, and 100,000 classes sharded over 4 fake devices."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cl_research import configs
from cl_research.core import partial_fc
from cl_research.core import step as train
from cl_research.core.models import lenets as models
from tests.conftest import run_on_fake_devices

NUM_CLASSES, BATCH = 40, 8


def test_sample_keeps_every_positive_and_its_size_per_shard():
  labels = jnp.array([3, 3, 17, 39, 20, 0, 21, 5])
  s = partial_fc.sample(labels, NUM_CLASSES, 0.25, 2, jax.random.key(0))
  index = np.asarray(s.index_K)
  assert len(index) == 2 * 8  # max(ceil(0.25 * 40 / 2), min(B, 20)) a shard
  assert np.all(np.diff(index) > 0) and np.sum(index < 20) == 8  # sorted, 8 a shard
  assert set(np.asarray(labels).tolist()) <= set(index.tolist())
  np.testing.assert_array_equal(index[np.asarray(s.labels_B)], labels)
  assert int(s.mask_C.sum()) == 16 and bool(np.all(np.asarray(s.mask_C)[index]))
  other = partial_fc.sample(labels, NUM_CLASSES, 0.25, 2, jax.random.key(1))
  assert not np.array_equal(index, np.asarray(other.index_K))  # seeded negatives


def _setup_and_state(head, rate, regularizer='center'):
  config = configs.face_config()
  config.optimizer.learning_rate, config.optimizer.momentum = 0.05, 0.9
  config.loss.partial_fc_rate = rate
  model = models.SeedCNN(feature_size=8, num_classes=NUM_CLASSES,
                         classifier_bias=head == 'softmax')
  setup = train.make_setup(config, model, head, regularizer)
  state = train.init_state(setup, (16, 16, 1), NUM_CLASSES, 8, 0.05, 0)
  return config, setup, state


def _steps(setup, state, config, n=3, seed=0):
  hparams = train.hparams(config, 0.1, 0.5, scale=16.0, margin=0.3)
  step = jax.jit(functools.partial(train.train_step, setup))
  rng = np.random.default_rng(seed)
  for _ in range(n):
    batch = {'image': rng.integers(0, 256, (BATCH, 16, 16, 1)).astype(np.uint8),
             'label': rng.integers(0, NUM_CLASSES, BATCH).astype(np.int32)}
    state, aux = step(state, batch, hparams)
  return state, aux


@pytest.mark.parametrize('head', ['softmax', 'arcface'])
def test_rate_that_samples_every_class_equals_the_full_classifier(head):
  config, setup, state = _setup_and_state(head, 1.0)
  full, full_aux = _steps(setup, state, config)
  sampled_setup = dataclasses.replace(setup, partial_fc_rate=0.999)  # k = C: sampled path
  assert partial_fc.sample_size(NUM_CLASSES, 0.999, 1, BATCH) == NUM_CLASSES
  sampled, sampled_aux = _steps(sampled_setup, state, config)
  for a, b in zip(jax.tree.leaves(full.params), jax.tree.leaves(sampled.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(float(full_aux['loss']), float(sampled_aux['loss']), rtol=1e-5)


def test_only_sampled_columns_and_their_momentum_move():
  config, setup, state = _setup_and_state('arcface', 0.25)
  after, _ = _steps(setup, state, config, n=1)
  rng = np.random.default_rng(0)  # _steps' first batch: its images, then its labels
  rng.integers(0, 256, (BATCH, 16, 16, 1))
  labels = rng.integers(0, NUM_CLASSES, BATCH)
  key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), 0)
  s = partial_fc.sample(jnp.asarray(labels, jnp.int32), NUM_CLASSES, 0.25, 1, key)
  moved = np.any(np.asarray(after.params['classifier']['kernel'])
                 != np.asarray(state.params['classifier']['kernel']), axis=0)
  np.testing.assert_array_equal(moved, np.asarray(s.mask_C))
  traces = [x for p, x in jax.tree_util.tree_flatten_with_path(after.opt_state)[0]
            if 'classifier' in jax.tree_util.keystr(p) and x.ndim == 2]
  assert traces and all(np.array_equal(np.any(np.asarray(t) != 0, axis=0),
                                       np.asarray(s.mask_C)) for t in traces)


@pytest.mark.e2e
def test_100k_classes_partial_fc_trains_on_4_fake_devices():
  out = run_on_fake_devices('partial_fc_check.py', 4)
  assert out['mesh'] == {'batch': 1, 'classes': 4}
  assert out['finite'] and out['losses'][-1] < out['losses'][0] * 1.5
  assert out['sampled_per_step'] == 4 * 2_500
  assert out['moved_columns'] <= 3 * out['sampled_per_step']  # 3 steps
  assert out['memory']['0.1'] < out['memory']['1.0']
