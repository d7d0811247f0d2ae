"""model.dtype: bfloat16 convolution stages; parameters, features, losses and centers float32."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cl_research import configs
from cl_research.core import models
from cl_research.engine import checks
from cl_research.platform import kernels
from cl_research.platform import runtime
from tests.conftest import make_trainer
from tests.conftest import synthetic_dataset
from tests.conftest import tiny_config

DATA = synthetic_dataset(num_train=64)
BATCH = {'image': jnp.asarray(DATA.train_images[:32]), 'label': jnp.asarray(DATA.train_labels[:32])}


def test_bfloat16_model_computes_its_convolutions_in_bfloat16_and_returns_float32():
  config = tiny_config(**{'model.dtype': 'bfloat16'})
  model = models.get_model(config.model, 2, 10)
  params = model.init(jax.random.PRNGKey(0), BATCH['image'])
  assert {p.dtype for p in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
  features, logits = model.apply(params, BATCH['image'])
  assert features.dtype == logits.dtype == jnp.float32
  hlo = jax.jit(model.apply).lower(params, BATCH['image']).as_text()
  assert 'bf16' in hlo and 'convolution' in hlo
  f32 = models.get_model(tiny_config().model, 2, 10)
  assert 'bf16' not in jax.jit(f32.apply).lower(params, BATCH['image']).as_text()
  reference, _ = f32.apply(params, BATCH['image'])
  # the same parameters in bfloat16 give features within bfloat16's resolution
  scale = float(jnp.max(jnp.abs(reference)))
  assert float(jnp.max(jnp.abs(features - reference))) < 0.05 * scale


def test_a_bfloat16_run_trains_and_keeps_loss_centers_and_state_float32():
  trainer = make_trainer(tiny_config(**{'model.dtype': 'bfloat16',
                                        'optimizer.learning_rate': 0.05,
                                        'optimizer.grad_clip_norm': 5.0}))
  state = trainer.init(0)
  hparams = trainer.hparams(0.1, 0.5)
  seen = []
  for _ in range(30):
    state, step_metrics = trainer.train_step(state, BATCH, hparams)
    assert step_metrics['loss'].dtype == jnp.float32
    seen.append(float(step_metrics['loss']))
  assert np.mean(seen[-5:]) < 0.5 * np.mean(seen[:3])
  assert state.centers.dtype == jnp.float32
  floats = [x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.floating)]
  assert {x.dtype for x in floats} == {jnp.dtype(jnp.float32)}


def test_bfloat16_on_cpu_runs_xlas_kernels_and_says_why():
  config = tiny_config(**{'model.dtype': 'bfloat16'})
  resolved = runtime.resolve(config)
  assert resolved.kernels == 'xla' and 'float32 only' in resolved.kernels_why
  assert resolved.dtype == 'bfloat16'
  with pytest.raises(kernels.Unavailable, match="model.dtype is 'bfloat16'"):
    kernels.resolve('onednn', 'cpu', 'bfloat16')


def test_an_unknown_dtype_is_one_clear_error():
  config = configs.digits_config()
  config.model.dtype = 'float16'
  with pytest.raises(configs.ConfigError,
                     match="model.dtype='float16' is not one of float32, bfloat16"):
    checks.validate(config)
