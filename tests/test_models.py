"""The models as their sources define them, and the core's independence of CPU tricks."""


import jax
import jax.numpy as jnp
import numpy as np

from cl_research.core.models import lenets as models


def test_seed_cnn_is_the_keras_snippet_with_a_linear_convolution():
  """Keras' Conv2D(10, (2, 2)) without `activation` is linear; the feature layer is ReLU."""
  model = models.SeedCNN(feature_size=4)
  images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1)), jnp.uint8)
  params = model.init(jax.random.key(0), images)['params']
  x = models.normalize_images(images)
  conv = jax.lax.conv_general_dilated(x, params['Conv_0']['kernel'], (1, 1), 'VALID',
                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  conv = conv + params['Conv_0']['bias']
  assert (conv < 0).any()  # a ReLU here would change the answer
  pooled = models.max_pool_2x2(conv).reshape(3, -1)
  dense = params['feature']
  features = jax.nn.relu(pooled @ dense['kernel'] + dense['bias'])
  got, _ = model.apply({'params': params}, images)
  np.testing.assert_allclose(got, features, rtol=1e-5, atol=1e-5)


def test_face_resnet_initialised_as_the_prototxt():
  from cl_research.core.models import backbones  # pylint: disable=import-outside-toplevel
  model = backbones.FaceResNet(feature_size=512, num_classes=10)
  params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 112, 96, 3)))
  residual = [k for k in params['params'] if k.startswith('res') and not k.endswith('prelu')]
  assert len(residual) == 2 * (1 + 2 + 5 + 3)  # two convolutions a unit
  assert all('bias' not in params['params'][k] for k in residual)
  assert all('bias' in params['params'][k] for k in ('conv1a', 'conv1b', 'conv3', 'fc5'))
  values = model.init(jax.random.key(0), jnp.zeros((1, 112, 96, 3)))['params']
  np.testing.assert_allclose(np.std(values['res4_1']['kernel']), 0.01, rtol=0.05)
  fan_in = 3 * 3 * 64  # conv2's input: conv1b's 64 channels
  bound = np.sqrt(3 / fan_in)
  kernel = np.asarray(values['conv2']['kernel'])
  assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.9 * bound
