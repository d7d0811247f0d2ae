"""The network's and the centers' optimizers, and the learning-rate schedule (optax)."""

import jax
import jax.numpy as jnp
import optax

from cl_research import errors

OPTIMIZERS = ('sgd', 'adam')  # `optimizer.name` and `centers.optimizer`
LR_SCHEDULES = ('step', 'linear')  # `optimizer.lr_schedule`
CLIP_SCOPES = ('all', 'backbone')  # `optimizer.clip_scope`: what the gradient clip sees


def relative_schedule(opt_config, num_steps):
  """The learning-rate multiplier over steps: x`lr_decay` at each fraction of `num_steps`
  in `lr_decay_at` (`lr_schedule='step'`, Caffe's multistep) or linearly from 1 to 0
  at `num_steps` (`'linear'`, insightface's), times an optional linear warm-up over the
  first `warmup_frac`. The decays fall at their fractions whatever the warm-up
  (`optax.join_schedules` would shift them by its length). The peak rate itself is a
  traced hyperparameter."""
  if opt_config.lr_schedule == 'linear':
    decays = optax.linear_schedule(1.0, 0.0, num_steps)
  else:
    decays = _step_decays(opt_config, num_steps)
  warmup_steps = int(opt_config.warmup_frac * num_steps)
  if warmup_steps == 0:
    return decays
  warmup = optax.linear_schedule(0.0, 1.0, warmup_steps)  # 1 after warmup_steps
  return lambda step: warmup(step) * decays(step)


def _step_decays(opt_config, num_steps):
  boundaries = {int(frac * num_steps): opt_config.lr_decay
                for frac in opt_config.lr_decay_at if 0 < int(frac * num_steps) < num_steps}
  return optax.piecewise_constant_schedule(1.0, boundaries)


def decay_mask(params, decay_biases):
  """Which params weight decay applies to. The Caffe LeNets++ prototxt (ydwen/caffe-face
  `mnist_example/mnist_train_test.prototxt`) sets `decay_mult: 0` on every bias and
  leaves the weights and the PReLU slopes at Caffe's default `decay_mult: 1`; the
  centers are never decayed. `decay_biases=True` decays every param. (The prototxt also
  gives biases `lr_mult: 2`; here every param learns at the same rate.)"""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: decay_biases or getattr(path[-1], 'key', None) != 'bias', params)


def clip_mask(params, scope):
  """Which params the gradient clip sees: every one (`all`), or all but the classifier
  (`backbone`, insightface's `clip_grad_norm_(backbone.parameters(), 5)`: with 10k+
  identities the classifier's gradient would otherwise shrink the backbone's step)."""
  return {k: jax.tree.map(lambda _, keep=(scope == 'all' or k != 'classifier'): keep, v)
          for k, v in params.items()}


def clipped_norm(grads, scope):
  """The global norm the clip compares with `grad_clip_norm`: of the params it sees."""
  mask = clip_mask(grads, scope)
  return optax.global_norm(jax.tree.map(lambda g, m: g if m else jnp.zeros((), g.dtype),
                                        grads, mask))


def _momentum_or_adam(name, momentum):
  if name == 'adam':
    return optax.scale_by_adam()
  return optax.trace(momentum) if momentum else optax.identity()


def make_optimizer(opt_config, num_steps):
  """SGD(momentum) or Adam with coupled L2 (Caffe's weight_decay, on the params
  `decay_mask` picks) and the schedule, at unit learning rate: the step multiplies the
  update by the traced `learning_rate`. The gradient clip sees the loss's gradient only,
  before weight decay, over the params of `optimizer.clip_scope` (`clip_mask`)."""
  clip = (optax.masked(optax.clip_by_global_norm(opt_config.grad_clip_norm),
                       lambda params: clip_mask(params, opt_config.clip_scope))
          if opt_config.grad_clip_norm else optax.identity())
  schedule = relative_schedule(opt_config, num_steps)
  mask = lambda params: decay_mask(params, opt_config.decay_biases)
  return optax.chain(clip, optax.add_decayed_weights(opt_config.weight_decay, mask),
                     _momentum_or_adam(opt_config.name, opt_config.momentum),
                     optax.scale_by_schedule(lambda step: -schedule(step)))


def make_center_optimizer(centers_config):
  """The centers' own optimizer in `gradient` mode; no weight decay on centers (as the
  paper)."""
  if centers_config.optimizer == 'adam':
    return optax.adam(centers_config.learning_rate)
  return optax.sgd(centers_config.learning_rate, momentum=centers_config.momentum or None)


def validate(optimizer_config):
  """Raises ConfigError where `config.optimizer` cannot work."""
  o = optimizer_config
  errors.check_choice(o.name, 'optimizer.name', OPTIMIZERS)
  errors.check(o.learning_rate > 0, f'optimizer.learning_rate={o.learning_rate!r} must be > 0')
  errors.check(o.grad_clip_norm >= 0,
               f'optimizer.grad_clip_norm={o.grad_clip_norm!r} must be >= 0 (0: off)')
  errors.check(0 <= o.warmup_frac < 1,
               f'optimizer.warmup_frac={o.warmup_frac!r} must be in [0, 1)')
  errors.check_choice(o.lr_schedule, 'optimizer.lr_schedule', LR_SCHEDULES)
  errors.check_choice(o.clip_scope, 'optimizer.clip_scope', CLIP_SCOPES)
