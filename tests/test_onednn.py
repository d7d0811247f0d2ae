"""oneDNN's convolution and PReLU (cl_research/kernels/onednn.py) and the strided max-pool
against XLA's."""

import json
import os
import platform
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cl_research.core import kernels as seam
from cl_research.core.models import lenets as models
from cl_research.platform import kernels
from cl_research.platform.kernels import onednn

DN = ('NHWC', 'HWIO', 'NHWC')
# The oneDNN wheels are declared for x86-64 Linux only; there the kernel must build.
ONEDNN_PLATFORM = platform.system() == 'Linux' and platform.machine() == 'x86_64'
needs_onednn = pytest.mark.skipif(not ONEDNN_PLATFORM, reason='oneDNN wheels: x86-64 Linux')


def _random(shape, seed):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


@needs_onednn
def test_onednn_builds_here():
  assert kernels.resolve('auto', 'cpu') == ('onednn', 'oneDNN on CPU')


@needs_onednn
@pytest.mark.parametrize('shape_x, shape_w, pad', [
    ((3, 9, 9, 2), (5, 5, 2, 4), 2),     # LeNets++ layer, odd size
    ((2, 7, 7, 16), (5, 5, 16, 32), 2),  # the 7x7 stage, blocked channel counts
    ((4, 28, 28, 1), (2, 2, 1, 10), 0),  # the seed CNN's VALID 2x2
    ((2, 6, 8, 3), (3, 3, 3, 5), 1),     # non-square
])
def test_onednn_matches_xla_value_and_gradients(shape_x, shape_w, pad):
  x, w = _random(shape_x, 0), _random(shape_w, 1)
  padding = ((pad, pad), (pad, pad))
  cotangent = _random(jax.eval_shape(
      lambda: jax.lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=DN)).shape, 2)

  def loss(fn):
    return lambda x, w: jnp.sum(fn(x, w) * cotangent)
  xla = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=DN)
  fast = jax.jit(lambda x, w: onednn.onednn_conv(x, w, (pad, pad)))
  np.testing.assert_allclose(fast(x, w), xla(x, w), rtol=1e-5, atol=1e-4)
  for got, want in zip(jax.grad(loss(fast), (0, 1))(x, w), jax.grad(loss(xla), (0, 1))(x, w)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


@needs_onednn
def test_flax_conv_takes_onednn_only_where_it_applies():
  x = _random((2, 8, 8, 3), 0)
  for kwargs in ({'padding': 2}, {'padding': 'VALID'}, {'padding': 'SAME'},
                 {'padding': 1, 'strides': 2}):
    layer = nn.Conv(4, (3, 3), **kwargs)
    params = layer.init(jax.random.key(0), x)
    fast = nn.Conv(4, (3, 3), conv_general_dilated=onednn.onednn_conv_general_dilated, **kwargs)
    np.testing.assert_allclose(fast.apply(params, x), layer.apply(params, x), rtol=1e-5,
                               atol=1e-5)
  lowered = jax.jit(lambda p: nn.Conv(4, (3, 3), padding=1, conv_general_dilated=(
      onednn.onednn_conv_general_dilated)).apply(p, x)).lower(params).as_text()
  assert onednn.CONV_FORWARD in lowered


@needs_onednn
def test_vmapped_members_equal_solo():
  x, w = _random((2, 9, 9, 3), 0), _random((3, 5, 5, 3, 4), 1)
  together = jax.vmap(lambda w: onednn.onednn_conv(x, w, (2, 2)))(w)
  for i in range(3):
    np.testing.assert_allclose(together[i], onednn.onednn_conv(x, w[i], (2, 2)), rtol=1e-6)


@pytest.mark.e2e
@needs_onednn
def test_lenets_onednn_equals_xla():
  images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (6, 28, 28, 1)), jnp.uint8)
  ref = models.LeNetsPP(channels=(4, 8, 8), feature_prelu=True, kernels=seam.XLA)
  params = ref.init(jax.random.key(0), images)

  def grads(model):
    return jax.grad(lambda p: jnp.sum(model.apply(p, images)[1] ** 2))(params)
  want = grads(ref)
  got = grads(models.LeNetsPP(channels=(4, 8, 8), feature_prelu=True, kernels=onednn.KERNELS))
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * float(jnp.abs(w).max()))


@needs_onednn
@pytest.mark.parametrize('shape', [(4, 7, 7, 16), (5, 3)])
def test_onednn_prelu_matches_xla_value_and_gradients(shape):
  x, slope = _random(shape, 0), jnp.abs(_random(shape[-1:], 1))
  cotangent = _random(shape, 2)

  def loss(fn):
    return lambda x, s: jnp.sum(fn(x, s) * cotangent)
  np.testing.assert_allclose(jax.jit(onednn.onednn_prelu)(x, slope), seam.xla_prelu(x, slope),
                             rtol=1e-6)
  got = jax.jit(jax.grad(loss(onednn.onednn_prelu), (0, 1)))(x, slope)
  for g, w in zip(got, jax.grad(loss(seam.xla_prelu), (0, 1))(x, slope)):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_max_pool_2x2_equals_nn_max_pool_with_ties():
  x = _random((2, 7, 9, 3), 0)
  x = x.at[:, :4, :4].set(0.5)  # whole windows of ties: the gradient goes to the first
  cotangent = _random((2, 3, 4, 3), 1)
  ref = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))
  np.testing.assert_array_equal(models.max_pool_2x2(x), ref(x))
  grad = lambda f: jax.grad(lambda x: jnp.sum(f(x) * cotangent))(x)
  np.testing.assert_array_equal(grad(models.max_pool_2x2), grad(ref))


@pytest.mark.e2e
def test_unavailable_onednn_is_a_one_line_error_and_auto_falls_back_on_record(tmp_path):
  env = dict(os.environ, CXX='no-such-compiler', CL_RESEARCH_CACHE=str(tmp_path / 'cache'),
             JAX_PLATFORMS='cpu')
  workdir = tmp_path / 'run'
  done = subprocess.run([sys.executable, '-m', 'cl_research.run', '--config', 'sweep:smoke',
                         '--config.model.kernels=onednn', '--workdir', str(workdir)],
                        capture_output=True, text=True, env=env, check=False)
  assert done.returncode == 2, done.stderr
  errors = [l for l in done.stderr.splitlines() if l.startswith('error:')]
  assert len(errors) == 1 and "model.kernels='onednn'" in errors[0], done.stderr
  assert not workdir.exists()
  if ONEDNN_PLATFORM:
    assert "no C++ compiler 'no-such-compiler'" in errors[0]
  auto = subprocess.run([sys.executable, '-c', 'import json; from cl_research.platform import kernels; '
                         "print(json.dumps(kernels.resolve('auto', 'cpu')))"],
                        capture_output=True, text=True, env=env, check=True)
  impl, why = json.loads(auto.stdout.splitlines()[-1])
  assert impl == 'xla' and why.startswith('oneDNN unavailable:'), why
