"""The network's and the centers' optimizers, and the learning-rate schedule (optax)."""

import optax

OPTIMIZERS = ('sgd', 'adam')  # `optimizer.name` and `centers.optimizer`


def relative_schedule(opt_config, num_steps):
  """The learning-rate multiplier over steps: optional linear warm-up, then x`lr_decay`
  at each fraction in `lr_decay_at`. The peak rate itself is a traced hyperparameter."""
  boundaries = {int(frac * num_steps): opt_config.lr_decay
                for frac in opt_config.lr_decay_at if 0 < int(frac * num_steps) < num_steps}
  schedule = optax.piecewise_constant_schedule(1.0, boundaries)
  warmup_steps = int(opt_config.warmup_frac * num_steps)
  if warmup_steps == 0:
    return schedule
  warmup = optax.linear_schedule(0.0, 1.0, warmup_steps)
  return optax.join_schedules([warmup, schedule], [warmup_steps])


def _momentum_or_adam(name, momentum):
  if name == 'adam':
    return optax.scale_by_adam()
  return optax.trace(momentum) if momentum else optax.identity()


def make_optimizer(opt_config, num_steps):
  """SGD(momentum) or Adam with coupled L2 (Caffe's weight_decay) and the schedule, at
  unit learning rate: the step multiplies the update by the traced `learning_rate`."""
  clip = (optax.clip_by_global_norm(opt_config.grad_clip_norm)
          if opt_config.grad_clip_norm else optax.identity())
  schedule = relative_schedule(opt_config, num_steps)
  return optax.chain(clip, optax.add_decayed_weights(opt_config.weight_decay),
                     _momentum_or_adam(opt_config.name, opt_config.momentum),
                     optax.scale_by_schedule(lambda step: -schedule(step)))


def make_center_optimizer(centers_config):
  """The centers' own optimizer in `gradient` mode; no weight decay on centers (as the
  paper)."""
  if centers_config.optimizer == 'adam':
    return optax.adam(centers_config.learning_rate)
  return optax.sgd(centers_config.learning_rate, momentum=centers_config.momentum or None)
