"""The learning-rate schedule and weight decay as the Caffe solver and prototxt define them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cl_research import configs
from cl_research.core import optim
from cl_research.core.models import lenets as models
from tests.conftest import tiny_config


@pytest.mark.parametrize('warmup_frac', [0.0, 0.1])
def test_decays_fall_at_their_fractions_whatever_the_warmup(warmup_frac):
  config = tiny_config(**{'optimizer.warmup_frac': warmup_frac})
  schedule = optim.relative_schedule(config.optimizer, 10_000)
  value = lambda step: float(schedule(jnp.int32(step)))
  assert value(4_999) == pytest.approx(1.0) and value(5_000) == pytest.approx(0.8)
  assert value(7_999) == pytest.approx(0.8) and value(8_000) == pytest.approx(0.64)
  if warmup_frac:
    assert value(0) == 0.0 and value(500) == pytest.approx(0.5)
    assert value(1_000) == pytest.approx(1.0)


def test_weight_decay_spares_biases_as_the_caffe_prototxt():
  model = models.LeNetsPP(channels=(2, 2, 2), feature_prelu=True)
  shapes = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1), jnp.uint8))['params']
  params = jax.tree.map(jnp.ones_like, shapes)
  for decay_biases in (False, True):
    config = tiny_config(**{'optimizer.decay_biases': decay_biases,
                            'optimizer.momentum': 0.0, 'optimizer.weight_decay': 0.1})
    tx = optim.make_optimizer(config.optimizer, 100)
    updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
    names = set()
    for path, update in jax.tree_util.tree_flatten_with_path(updates)[0]:
      name = path[-1].key
      names.add(name)
      decayed = name != 'bias' or decay_biases  # weights and PReLU slopes always
      np.testing.assert_allclose(update, -0.1 if decayed else 0.0, err_msg=str(path))
    assert names == {'kernel', 'bias', 'slope'}


@pytest.mark.parametrize('scope', optim.CLIP_SCOPES)
def test_clip_scope_backbone_leaves_the_classifier_gradient_unclipped(scope):
  config = configs.digits_config().optimizer
  config.name, config.momentum, config.weight_decay = 'sgd', 0.0, 0.0
  config.grad_clip_norm, config.clip_scope = 1.0, scope
  tx = optim.make_optimizer(config, num_steps=10)
  params = {'conv': {'kernel': jnp.ones((3, 3))}, 'classifier': {'kernel': jnp.ones((4, 2))}}
  grads = {'conv': {'kernel': jnp.full((3, 3), 10.0)},
           'classifier': {'kernel': jnp.full((4, 2), 100.0)}}
  updates, _ = tx.update(grads, tx.init(params), params)
  backbone = np.asarray(-updates['conv']['kernel'])
  classifier = np.asarray(-updates['classifier']['kernel'])
  if scope == 'backbone':  # the backbone alone has norm 1 after the clip
    np.testing.assert_allclose(np.linalg.norm(backbone), 1.0, rtol=1e-5)
    np.testing.assert_allclose(classifier, 100.0, rtol=1e-6)
    np.testing.assert_allclose(float(optim.clipped_norm(grads, scope)), 30.0, rtol=1e-5)
  else:  # one global norm over both
    total = np.sqrt(np.sum(backbone**2) + np.sum(classifier**2))
    np.testing.assert_allclose(total, 1.0, rtol=1e-5)
    assert classifier[0, 0] < 1.0
