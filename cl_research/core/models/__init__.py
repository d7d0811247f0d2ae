"""Every network, built by one factory from `config.model`.

`get_model(model_config, feature_size, num_classes, kernels, head)` returns a
flax module whose `__call__(images_BxHxWxC uint8)` gives `(features_BxD, logits_BxC)`;
images are normalised inside the model. The digits networks (`lenets`: LeNets++ and the
seed CNN) run their convolutions through a `core.kernels.Kernels`; the face backbones
(`backbones`: iResNet, the ECCV16 Face-ResNet) carry BatchNorm statistics and run XLA's.
"""

import jax.numpy as jnp

from cl_research import errors
from cl_research.core import heads
from cl_research.core import kernels as kernels_lib
from cl_research.core.models import backbones
from cl_research.core.models import lenets

DTYPES = lenets.DTYPES
DIGITS_MODELS = tuple(lenets.MODELS)
FACE_MODELS = backbones.BACKBONES
MODELS = DIGITS_MODELS + FACE_MODELS


def get_model(model_config, feature_size, num_classes, kernels=kernels_lib.XLA,
              head='softmax'):
  """The model named by `model_config.name`, for `head`: the classifier has a bias per
  `model_config.classifier_bias`, except for an angular head (`heads.is_angular`: its
  class weights are directions, with no bias)."""
  classifier_bias = model_config.classifier_bias and not heads.is_angular(head)
  if model_config.name in FACE_MODELS:
    return backbones.get_backbone(model_config, feature_size, num_classes, classifier_bias)
  return lenets.MODELS[model_config.name](
      model_config, feature_size=feature_size, num_classes=num_classes,
      classifier_bias=classifier_bias, kernels=kernels, dtype=jnp.dtype(model_config.dtype))


def input_size(model_config):
  """(height, width) a face backbone takes; None for the digits networks (any size)."""
  return backbones.INPUT_SIZE.get(model_config.name)


def validate(model_config, valid_names):
  """Raises ConfigError where `config.model` cannot build one of `valid_names`."""
  m = model_config
  errors.check_choice(m.name, 'model.name', valid_names)
  errors.check_choice(m.dtype, 'model.dtype', DTYPES)
  if m.name == 'iresnet':
    errors.check(m.depth in backbones.IRESNET_BLOCKS, f'model.depth={m.depth!r} is not one '
                 f'of {", ".join(map(str, backbones.IRESNET_BLOCKS))}')
  if m.name in FACE_MODELS:
    errors.check(errors.is_number(m.width) and m.width > 0,
                 f'model.width={m.width!r} must be > 0')
