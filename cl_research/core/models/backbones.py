"""Face backbones: insightface's iResNet and the ECCV16 Face-ResNet, returning
`(features, logits)` like `cl_research.core.models.lenets`.

Inputs are normalised images, `(x - 127.5) / 128` (`cl_research.data.stream.normalize`),
BxHxWx3 float. `model.dtype` is the compute dtype of the convolution stages (flax's
`dtype`); parameters, the embedding, the classifier and the losses stay float32.
BatchNorm statistics live in the `batch_stats` collection (`TrainState.batch_stats`):
`train=True` normalises with the batch's statistics and updates the running ones.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from cl_research.core.models.lenets import PReLU

IRESNET_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3)}
IRESNET_WIDTHS = (64, 128, 256, 512)


def scaled(widths, factor):
  """Channel counts times `model.width` (at least 1 each)."""
  return tuple(max(1, round(w * factor)) for w in widths)


def _batch_norm(train, dtype, **kwargs):
  # torch's BatchNorm defaults, which insightface keeps: momentum 0.1 (flax: 0.9), eps 1e-5
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                      dtype=dtype, **kwargs)


class IBasicBlock(nn.Module):
  """BN - conv3x3 - BN - PReLU - conv3x3(stride) - BN, plus the shortcut (conv1x1(stride)
  + BN where the shape changes)."""
  width: int
  stride: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train):
    conv = lambda w, k, s, name: nn.Conv(w, (k, k), strides=s, padding=k // 2,
                                         use_bias=False, dtype=self.dtype, name=name)
    y = _batch_norm(train, self.dtype, name='bn1')(x)
    y = conv(self.width, 3, 1, 'conv1')(y)
    y = _batch_norm(train, self.dtype, name='bn2')(y)
    y = PReLU(name='prelu')(y)
    y = conv(self.width, 3, self.stride, 'conv2')(y)
    y = _batch_norm(train, self.dtype, name='bn3')(y)
    if self.stride != 1 or x.shape[-1] != self.width:
      x = conv(self.width, 1, self.stride, 'downsample_conv')(x)
      x = _batch_norm(train, self.dtype, name='downsample_bn')(x)
    return y + x


class IResNet(nn.Module):
  """insightface's iResNet (`backbones/iresnet.py`) for 112x112 faces: stem conv3x3 +
  BN + PReLU, four stages each halving the size, then BN, flatten (512x7x7), a linear
  embedding and a BatchNorm whose scale is fixed at 1. `width` scales every stage's
  channels (1: the reference; 1/8 trains on a CPU in a minute)."""
  depth: int = 50
  feature_size: int = 512
  num_classes: int = 1000
  width: float = 1.0
  classifier_bias: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images_BxHxWx3, train=False):
    widths = scaled(IRESNET_WIDTHS, self.width)
    x = images_BxHxWx3.astype(self.dtype)
    x = nn.Conv(widths[0], (3, 3), padding=1, use_bias=False, dtype=self.dtype,
                name='conv1')(x)
    x = _batch_norm(train, self.dtype, name='bn1')(x)
    x = PReLU(name='prelu')(x)
    for stage, (width, blocks) in enumerate(zip(widths, IRESNET_BLOCKS[self.depth])):
      for b in range(blocks):
        x = IBasicBlock(width, 2 if b == 0 else 1, self.dtype,
                        name=f'layer{stage + 1}_{b}')(x, train)
    x = _batch_norm(train, self.dtype, name='bn2')(x)
    x = x.reshape(x.shape[0], -1).astype(jnp.float32)
    x = nn.Dense(self.feature_size, name='fc')(x)
    features_BxD = _batch_norm(train, jnp.float32, use_scale=False, name='features')(x)
    logits_BxC = nn.Dense(self.num_classes, use_bias=self.classifier_bias,
                          name='classifier')(features_BxD)
    return features_BxD, logits_BxC


# Caffe's `xavier` filler with its defaults: uniform in +-sqrt(3 / fan_in).
CAFFE_XAVIER = nn.initializers.variance_scaling(1.0, 'fan_in', 'uniform')


class FaceResNet(nn.Module):
  """The ECCV16 face network (`face_example/face_train_test.prototxt`) for 112x96 faces:
  27 convolutions, all 3x3 with PReLU and no BatchNorm. conv1a, conv1b, then stages of
  residual units (two padded convolutions and an identity shortcut), 1/2/5/3 of them;
  conv1b and each later stage's entry convolution are unpadded and followed by a 2x2
  max-pool (112x96 -> 5x4x512 before fc5); fc5 (`feature_size`, 512) is the feature.
  As the prototxt: the residual units' convolutions start from a gaussian of std 0.01
  and have no bias (the prototxt's bias has `lr_mult: 0` and a constant-0 filler, so it
  stays 0); every other convolution, fc5 and the classifier start from Caffe's xavier
  filler (uniform, variance 1 / fan_in) with biases at 0; PReLU slopes start at 0.25."""
  feature_size: int = 512
  num_classes: int = 10572
  widths: Sequence[int] = (32, 64, 128, 256, 512)
  units: Sequence[int] = (1, 2, 5, 3)
  classifier_bias: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images_BxHxWx3, train=False):
    del train  # no BatchNorm, no dropout
    def conv(w, pad, name, residual=False):
      return nn.Conv(w, (3, 3), padding=pad, dtype=self.dtype, name=name,
                     use_bias=not residual,
                     kernel_init=(nn.initializers.normal(0.01) if residual else CAFFE_XAVIER))
    x = images_BxHxWx3.astype(self.dtype)
    x = PReLU(name='prelu1a')(conv(self.widths[0], 0, 'conv1a')(x))
    x = PReLU(name='prelu1b')(conv(self.widths[1], 0, 'conv1b')(x))
    x = nn.max_pool(x, (2, 2), (2, 2))
    for stage, units in enumerate(self.units):
      width = self.widths[stage + 1]
      if stage:
        x = PReLU(name=f'prelu{stage + 1}')(conv(width, 0, f'conv{stage + 1}')(x))
        x = nn.max_pool(x, (2, 2), (2, 2))
      for u in range(units):
        y = PReLU(name=f'res{stage + 2}_{2 * u + 1}_prelu')(
            conv(width, 1, f'res{stage + 2}_{2 * u + 1}', residual=True)(x))
        y = PReLU(name=f'res{stage + 2}_{2 * u + 2}_prelu')(
            conv(width, 1, f'res{stage + 2}_{2 * u + 2}', residual=True)(y))
        x = x + y
    x = x.reshape(x.shape[0], -1).astype(jnp.float32)
    features_BxD = nn.Dense(self.feature_size, kernel_init=CAFFE_XAVIER, name='fc5')(x)
    logits_BxC = nn.Dense(self.num_classes, use_bias=self.classifier_bias,
                          kernel_init=CAFFE_XAVIER, name='classifier')(features_BxD)
    return features_BxD, logits_BxC


BACKBONES = ('iresnet', 'face_resnet')  # model.name of the face experiments
INPUT_SIZE = {'iresnet': (112, 112), 'face_resnet': (112, 96)}  # height, width


def get_backbone(model_config, feature_size, num_classes, classifier_bias):
  """The backbone named by `model_config.name` (`iresnet` at `model_config.depth` and
  `width`, or `face_resnet`)."""
  dtype = jnp.dtype(model_config.dtype)
  if model_config.name == 'iresnet':
    return IResNet(depth=model_config.depth, feature_size=feature_size,
                   num_classes=num_classes, width=model_config.width,
                   classifier_bias=classifier_bias, dtype=dtype)
  return FaceResNet(feature_size=feature_size, num_classes=num_classes,
                    widths=scaled(FaceResNet.widths, model_config.width),
                    classifier_bias=classifier_bias, dtype=dtype)
