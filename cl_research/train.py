"""The train state, the jitted train step, and one training run from config to outputs."""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from cl_research import losses
from cl_research import models


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training, as one pytree (vmap- and shard-friendly)."""
  params: Any
  opt_state: Any
  centers: jax.Array  # CxD
  center_opt_state: Any  # () in `paper` mode
  step: jax.Array
  rng: jax.Array


def learning_rate_schedule(opt_config, num_steps):
  """Optional linear warm-up, then x`lr_decay` at each fraction in `lr_decay_at`."""
  boundaries = {int(frac * num_steps): opt_config.lr_decay
                for frac in opt_config.lr_decay_at if 0 < int(frac * num_steps) < num_steps}
  schedule = optax.piecewise_constant_schedule(opt_config.learning_rate, boundaries)
  warmup_steps = int(opt_config.warmup_frac * num_steps)
  if warmup_steps == 0:
    return schedule
  warmup = optax.linear_schedule(0.0, opt_config.learning_rate, warmup_steps)
  return optax.join_schedules([warmup, schedule], [warmup_steps])


def make_optimizer(opt_config, num_steps):
  """SGD(momentum) or Adam, with coupled L2 as Caffe's weight_decay, and the schedule."""
  schedule = learning_rate_schedule(opt_config, num_steps)
  if opt_config.name == 'sgd':
    base = optax.sgd(schedule, momentum=opt_config.momentum or None)
  elif opt_config.name == 'adam':
    base = optax.adam(schedule)
  else:
    raise ValueError(f'optimizer.name={opt_config.name!r} is not one of (sgd, adam)')
  clip = (optax.clip_by_global_norm(opt_config.grad_clip_norm)
          if opt_config.grad_clip_norm else optax.identity())
  return optax.chain(clip, optax.add_decayed_weights(opt_config.weight_decay), base)


def make_center_optimizer(centers_config):
  """Optimizer for `gradient` mode; no weight decay on centers (as the paper)."""
  if centers_config.optimizer == 'sgd':
    return optax.sgd(centers_config.learning_rate, momentum=centers_config.momentum or None)
  if centers_config.optimizer == 'adam':
    return optax.adam(centers_config.learning_rate)
  raise ValueError(f'centers.optimizer={centers_config.optimizer!r} is not one of (sgd, adam)')


class Trainer:
  """Holds the static parts (model, optimizers, mode) and the compiled functions.

  Swept hyperparameters (`lam`, `alpha`) are traced arguments of `train_step`, so one
  compilation serves every value.
  """

  def __init__(self, config, feature_size, num_classes, image_shape):
    self.config = config
    self.model = models.get_model(config.model, feature_size, num_classes)
    self.tx = make_optimizer(config.optimizer, config.num_steps)
    self.center_mode = config.centers.mode
    self.center_tx = (make_center_optimizer(config.centers)
                      if self.center_mode == 'gradient' else None)
    self.feature_size = feature_size
    self.num_classes = num_classes
    self.image_shape = tuple(image_shape)
    self.train_step = jax.jit(self._train_step, donate_argnums=0)
    self.apply = jax.jit(self._apply)

  def init(self, seed):
    """A fresh state from `seed`: params, and centers uniform in +-`centers.init_scale`
    (0: zeros, the Caffe layer's default; 0.05: a Keras `Embedding`'s default)."""
    init_rng, centers_rng, state_rng = jax.random.split(jax.random.key(seed), 3)
    dummy = jnp.zeros((1,) + self.image_shape, jnp.uint8)
    params = self.model.init(init_rng, dummy)['params']
    scale = self.config.centers.init_scale
    centers = jax.random.uniform(centers_rng, (self.num_classes, self.feature_size),
                                 jnp.float32, -scale, scale)
    return TrainState(
        params=params, opt_state=self.tx.init(params), centers=centers,
        center_opt_state=self.center_tx.init(centers) if self.center_tx else (),
        step=jnp.zeros((), jnp.int32), rng=state_rng)

  def _apply(self, params, images):
    return self.model.apply({'params': params}, images)

  def _train_step(self, state, batch, hparams):
    """(state, batch, hparams) -> (state, metrics). hparams: {'lam', 'alpha'} arrays."""
    images, labels = batch['image'], batch['label']
    lam = hparams['lam']

    def loss_fn(params, centers):
      features, logits = self._apply(params, images)
      loss, aux = losses.joint_loss(logits, features, labels, centers, lam)
      return loss, (aux, features)

    if self.center_mode == 'paper':
      grads, (aux, features) = jax.grad(loss_fn, has_aux=True)(state.params, state.centers)
      centers = losses.center_update(state.centers, features, labels, hparams['alpha'])
      center_opt_state = state.center_opt_state
    else:
      (grads, center_grads), (aux, _) = jax.grad(
          loss_fn, argnums=(0, 1), has_aux=True)(state.params, state.centers)
      if self.config.centers.unscale_lambda:
        # KaiyangZhou's port: undo lam so the loss weight does not slow the centers.
        center_grads = center_grads / jnp.where(lam > 0, lam, 1.0)
      center_updates, center_opt_state = self.center_tx.update(
          center_grads, state.center_opt_state, state.centers)
      centers = optax.apply_updates(state.centers, center_updates)
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(params=params, opt_state=opt_state, centers=centers,
                              center_opt_state=center_opt_state, step=state.step + 1)
    return new_state, aux

  def features_and_logits(self, params, images, batch_size=1000):
    """Runs the model over a whole split in fixed-size batches (one compilation)."""
    n = images.shape[0]
    pad = (-n) % batch_size
    padded = np.concatenate([images, np.zeros((pad,) + images.shape[1:], images.dtype)])
    outs = [self.apply(params, padded[i:i + batch_size])
            for i in range(0, len(padded), batch_size)]
    features = np.concatenate([np.asarray(f) for f, _ in outs])[:n]
    logits = np.concatenate([np.asarray(l) for _, l in outs])[:n]
    return features, logits


def hparams_of(lam, alpha):
  """The traced hyperparameters of one run, as float32 scalars."""
  return {'lam': jnp.float32(lam), 'alpha': jnp.float32(alpha)}


def batch_indices(rng_seed, num_examples, batch_size, num_steps):
  """Yields index arrays: epochs of a seeded permutation, last partial batch dropped."""
  rng = np.random.default_rng(rng_seed)
  per_epoch = num_examples // batch_size
  step = 0
  while step < num_steps:
    perm = rng.permutation(num_examples)
    for b in range(per_epoch):
      if step >= num_steps:
        return
      yield perm[b * batch_size:(b + 1) * batch_size]
      step += 1
