"""Flax models that return `(features, logits)`; used purely through `init`/`apply`.

Convolutions and PReLUs come from a `cl_research.core.kernels.Kernels` (default: XLA's).

`model.dtype` is the compute dtype of the convolution stages, as flax's `dtype`:
`bfloat16` computes convolutions, PReLUs and pools in bfloat16 (XLA accumulates the
convolutions in float32), while the parameters stay float32 (`param_dtype`) and the
feature layer, the classifier, the losses and the center update are float32: the
features the losses see and the centers that follow them keep float32's resolution.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from cl_research.core import kernels as kernels_lib

DTYPES = ('float32', 'bfloat16')  # model.dtype


def normalize_images(images_BxHxWx1, dtype=jnp.float32):
  """uint8 pixels -> roughly [-1, 1], as the Caffe prototxt's `(x - 127.5) * 0.0078125`;
  exact in bfloat16 too (integers up to 255, then a power of two)."""
  return ((images_BxHxWx1.astype(jnp.float32) - 127.5) / 128.0).astype(dtype)


class PReLU(nn.Module):
  """Channel-wise PReLU as in Caffe (flax's `nn.PReLU` shares one slope for all channels)."""
  kernels: kernels_lib.Kernels = kernels_lib.XLA

  @nn.compact
  def __call__(self, x):
    slope = self.param('slope', nn.initializers.constant(0.25), (x.shape[-1],))
    return self.kernels.prelu(x, slope.astype(x.dtype))


def max_pool_2x2(x_BxHxWxC):
  """2x2/2 max-pool by strided slices; an odd last row/column is dropped, as by
  `nn.max_pool` without padding (Caffe would round up: 7x7 -> 4x4, here 3x3).

  Same values and the same gradient (to the first maximum of a window, in row-major
  order) as `nn.max_pool`, whose gradient XLA:CPU computes with select-and-scatter, a
  large share of a paper-width CPU step (docs/performance.md, "Why the CPU path calls oneDNN itself").
  """
  _, h, w, _ = x_BxHxWxC.shape
  x = x_BxHxWxC[:, :h // 2 * 2, :w // 2 * 2]

  def first_max(left, right):
    return jnp.where(left >= right, left, right)
  top = first_max(x[:, 0::2, 0::2], x[:, 0::2, 1::2])
  bottom = first_max(x[:, 1::2, 0::2], x[:, 1::2, 1::2])
  return first_max(top, bottom)


class LeNetsPP(nn.Module):
  """LeNets++ of ECCV16 Table 1: three stages of (conv 5x5, PReLU) x2 + max-pool 2/2.

  `channels` defaults to the paper's (32, 64, 128); smaller widths make CPU sweeps fast.
  `feature_prelu` puts a PReLU after the feature layer, as the Caffe prototxt does.
  `kernels` runs the convolutions and PReLUs.
  """
  feature_size: int = 2
  num_classes: int = 10
  channels: Sequence[int] = (32, 64, 128)
  feature_prelu: bool = False
  classifier_bias: bool = True
  kernels: kernels_lib.Kernels = kernels_lib.XLA
  dtype: Any = jnp.float32  # the convolution stages' compute dtype

  @nn.compact
  def __call__(self, images_BxHxWx1):
    x = normalize_images(images_BxHxWx1, self.dtype)
    for width in self.channels:
      for _ in range(2):
        x = nn.Conv(width, (5, 5), padding=2, dtype=self.dtype,
                    conv_general_dilated=self.kernels.conv_general_dilated)(x)
        x = PReLU(self.kernels)(x)
      x = max_pool_2x2(x)
    x = x.reshape(x.shape[0], -1).astype(jnp.float32)
    features_BxD = nn.Dense(self.feature_size, name='feature')(x)
    if self.feature_prelu:
      features_BxD = PReLU(self.kernels, name='feature_prelu')(features_BxD)
    logits_BxC = nn.Dense(self.num_classes, use_bias=self.classifier_bias,
                          name='classifier')(features_BxD)
    return features_BxD, logits_BxC


class SeedCNN(nn.Module):
  """A Keras center-loss setup's network (`experiments/seed.py`): `Conv2D(10, (2, 2))`,
  max-pool 2x2, a ReLU feature layer, the classifier. Its convolution sets no activation
  and Keras' default is linear, so none follows it here."""
  feature_size: int = 32
  num_classes: int = 10
  classifier_bias: bool = True
  kernels: kernels_lib.Kernels = kernels_lib.XLA
  dtype: Any = jnp.float32  # the convolution's compute dtype

  @nn.compact
  def __call__(self, images_BxHxWx1):
    x = normalize_images(images_BxHxWx1, self.dtype)
    x = nn.Conv(10, (2, 2), padding='VALID', dtype=self.dtype,
                conv_general_dilated=self.kernels.conv_general_dilated)(x)
    x = max_pool_2x2(x).reshape(x.shape[0], -1).astype(jnp.float32)
    features_BxD = nn.relu(nn.Dense(self.feature_size, name='feature')(x))
    logits_BxC = nn.Dense(self.num_classes, use_bias=self.classifier_bias,
                          name='classifier')(features_BxD)
    return features_BxD, logits_BxC


def _lenets_pp(model_config, **kwargs):
  return LeNetsPP(channels=tuple(model_config.channels),
                  feature_prelu=model_config.feature_prelu, **kwargs)


def _seed_cnn(model_config, **kwargs):
  del model_config
  return SeedCNN(**kwargs)


MODELS = {'lenets_pp': _lenets_pp, 'seed_cnn': _seed_cnn}  # `model.name` -> builder
