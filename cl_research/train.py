"""The train state, the pure train step, and groups of runs trained in compiled chunks.

The step is `train_step(setup, state, batch, hparams)`: `setup` holds what is static
(model, optimizers, center mode: changing it recompiles), `hparams` the traced numbers
(`lam`, `alpha`, `learning_rate`: changing them does not). It is composed of named
pieces: `loss_and_grads`, `update_centers` (one rule per center mode), `update_params`
and `guard_divergence`.

A group is runs that share every shape (model, feature size, data, batch size, steps)
and the seed, and differ in their hparams: their states are stacked on a leading model
axis `M` and trained together on the same batches, a controlled comparison
(`group_step`). `Trainer` compiles the step and the chunks of steps for one setup.
"""

import dataclasses
import functools
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from cl_research import batches
from cl_research import data as datasets
from cl_research import kernels as kernels_lib
from cl_research import losses
from cl_research import models
from cl_research import optim
from cl_research import sharding

CENTER_MODES = ('paper', 'gradient')
GROUP_STRATEGIES = ('auto', 'vmap', 'map', 'unroll')
# What went non-finite first; `TrainState.diverged_code` k > 0 names DIVERGED_QUANTITIES[k - 1].
DIVERGED_QUANTITIES = ('loss', 'features', 'centers', 'params')


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training, as one pytree (vmap- and shard-friendly)."""
  params: Any
  opt_state: Any
  centers: jax.Array  # CxD
  center_opt_state: Any  # () in `paper` mode
  step: jax.Array
  rng: jax.Array  # raw uint32 key data (checkpointable), for stochastic layers
  diverged_at: jax.Array  # 0 while finite; else the step whose update went non-finite
  diverged_code: jax.Array  # 0 while finite; else 1 + index into DIVERGED_QUANTITIES
  grad_norm_sum: jax.Array  # sum over healthy steps of the pre-clip gradient norm
  grad_norm_max: jax.Array  # and its largest value
  clipped_steps: jax.Array  # healthy steps whose gradient the clip shrank


def diverged_quantity(code):
  """The name of a divergence code ('' for 0)."""
  return DIVERGED_QUANTITIES[int(code) - 1] if int(code) else ''


@dataclasses.dataclass(frozen=True)
class StepSetup:
  """The static parts of the train step."""
  model: nn.Module
  tx: optax.GradientTransformation
  center_mode: str  # one of CENTER_MODES
  center_tx: Any  # an optax.GradientTransformation in `gradient` mode, else None
  unscale_lambda: bool  # `gradient` mode: the centers' step of KaiyangZhou's port
  grad_clip_norm: float  # the clip inside `tx` (0: none), to count when it engages


def make_setup(config, model):
  gradient = config.centers.mode == 'gradient'
  return StepSetup(model=model, tx=optim.make_optimizer(config.optimizer, config.num_steps),
                   center_mode=config.centers.mode,
                   center_tx=optim.make_center_optimizer(config.centers) if gradient else None,
                   unscale_lambda=config.centers.unscale_lambda,
                   grad_clip_norm=config.optimizer.grad_clip_norm)


def loss_and_grads(setup, state, batch, lam):
  """The joint loss at `state` on `batch`: (grads of the params, grads of the centers or
  None in `paper` mode, aux of `losses.joint_loss`, the batch's features)."""
  images, labels = batch['image'], batch['label']

  def loss_fn(params, centers):
    features, logits = setup.model.apply({'params': params}, images)
    loss, aux = losses.joint_loss(logits, features, labels, centers, lam)
    return loss, (aux, features)

  if setup.center_mode == 'paper':
    grads, (aux, features) = jax.grad(loss_fn, has_aux=True)(state.params, state.centers)
    return grads, None, aux, features
  (grads, center_grads), (aux, features) = jax.grad(
      loss_fn, argnums=(0, 1), has_aux=True)(state.params, state.centers)
  return grads, center_grads, aux, features


def update_centers(setup, state, features, labels, center_grads, hparams):
  """(centers, center_opt_state) after one step.

  `paper`: ECCV16 Eq. 4 with alpha on the features of this forward pass. `gradient`:
  the centers' optimizer on their gradient, `lam * sum_i (c - x_i) / B` per center
  (summed over its examples), so a plain SGD step is `lr * lam * sum_i (c - x_i) / B`
  and centers never move at lam 0; alpha plays no part. With `unscale_lambda`, the
  step of KaiyangZhou/pytorch-center-loss: their loss has no 1/2 and weight
  `lam_theirs = lam / 2`, and they divide the centers' gradient by it, so the gradient
  becomes `2 sum_i (c - x_i) / B` and `centers.learning_rate` is their `lr_cent`.
  """
  if setup.center_mode == 'paper':
    return (losses.center_update(state.centers, features, labels, hparams['alpha']),
            state.center_opt_state)
  if setup.unscale_lambda:
    lam = hparams['lam']
    center_grads = center_grads * jnp.where(lam > 0, 2.0 / lam, 0.0)
  updates, center_opt_state = setup.center_tx.update(center_grads, state.center_opt_state,
                                                     state.centers)
  return optax.apply_updates(state.centers, updates), center_opt_state


def update_params(setup, state, grads, learning_rate):
  """(params, opt_state) after one step of the network's optimizer at `learning_rate`."""
  updates, opt_state = setup.tx.update(grads, state.opt_state, state.params)
  updates = jax.tree.map(lambda u: learning_rate * u, updates)
  return optax.apply_updates(state.params, updates), opt_state


def _all_finite(tree):
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def divergence_code(loss, features, centers, params):
  """0 if all are finite, else 1 + the index in DIVERGED_QUANTITIES of the first that is not."""
  finite = [jnp.isfinite(loss), jnp.all(jnp.isfinite(features)), _all_finite(centers),
            _all_finite(params)]
  return jnp.select([~f for f in finite], list(range(1, len(finite) + 1)), 0).astype(jnp.int32)


GUARDED_FIELDS = ('params', 'opt_state', 'centers', 'center_opt_state', 'grad_norm_sum',
                  'grad_norm_max', 'clipped_steps')


def guard_divergence(state, updated, code):
  """`updated` (the state after a step) where the run is healthy; else `state` with its
  step advanced and, the first time, the step and `code` of the divergence recorded: a
  diverged run keeps its last finite values."""
  healthy = (state.diverged_at == 0) & (code == 0)
  diverges_now = (state.diverged_at == 0) & (code > 0)
  keep_if_healthy = lambda new, old: jax.tree.map(lambda n, o: jnp.where(healthy, n, o),
                                                  new, old)
  return state.replace(
      **{f: keep_if_healthy(getattr(updated, f), getattr(state, f)) for f in GUARDED_FIELDS},
      step=state.step + 1,
      diverged_at=jnp.where(diverges_now, state.step + 1, state.diverged_at),
      diverged_code=jnp.where(diverges_now, code, state.diverged_code))


def train_step(setup, state, batch, hparams):
  """(setup, state, batch, hparams) -> (state, aux): one step of one run, pure. aux holds
  `losses.joint_loss`'s terms and `grad_norm`, the network gradient's global norm before
  the clip; the state counts the steps the clip engaged."""
  grads, center_grads, aux, features = loss_and_grads(setup, state, batch, hparams['lam'])
  centers, center_opt_state = update_centers(setup, state, features, batch['label'],
                                             center_grads, hparams)
  params, opt_state = update_params(setup, state, grads, hparams['learning_rate'])
  grad_norm = optax.global_norm(grads)
  clipped = (grad_norm > setup.grad_clip_norm) if setup.grad_clip_norm else False
  aux = {**aux, 'grad_norm': grad_norm}
  updated = state.replace(params=params, opt_state=opt_state, centers=centers,
                          center_opt_state=center_opt_state,
                          grad_norm_sum=state.grad_norm_sum + grad_norm,
                          grad_norm_max=jnp.maximum(state.grad_norm_max, grad_norm),
                          clipped_steps=state.clipped_steps + jnp.int32(clipped))
  code = divergence_code(aux['loss'], features, centers, params)
  return guard_divergence(state, updated, code), aux


def group_step(setup, strategy, states, batch, hparams):
  """One step of every run of a group on the same batch. `vmap`: one batched step;
  `map`: `lax.map`, a loop in the program; `unroll`: one copy of the step per member."""
  step = functools.partial(train_step, setup)
  if strategy == 'vmap':
    return jax.vmap(step, in_axes=(0, None, 0))(states, batch, hparams)
  if strategy == 'map':
    return jax.lax.map(lambda sh: step(sh[0], batch, sh[1]), (states, hparams))
  size = jax.tree.leaves(states)[0].shape[0]
  outs = [step(member(states, i), batch, member(hparams, i)) for i in range(size)]
  return stack([s for s, _ in outs]), stack([m for _, m in outs])


def train_steps(setup, strategy, batch_size, augment_shift, mesh, num_steps, unroll,
                states, hparams, images, labels, perms, first_epoch, start_step, augment_key):
  """`num_steps` group steps in one program; the data never leaves the device. `perms`
  holds the example order of epochs `first_epoch`, `first_epoch + 1`, ...;
  `augment_key` with the step draws the random shifts (`data.augment_shift`).
  Returns (states, aux with a leading step axis)."""
  per_epoch = images.shape[0] // batch_size

  def body(states, step):
    idx = batches.batch_of_epoch(perms[step // per_epoch - first_epoch], step, per_epoch, batch_size)
    batch = {'image': images[idx], 'label': labels[idx]}
    if augment_shift:
      batch['image'] = datasets.random_shift(
          batch['image'], jax.random.fold_in(augment_key, step), augment_shift)
    return group_step(setup, strategy, states, sharding.shard_batch(batch, mesh), hparams)

  if num_steps == 1:
    states, step_aux = body(states, start_step)
    return states, jax.tree.map(lambda x: x[None], step_aux)
  return jax.lax.scan(body, states, start_step + jnp.arange(num_steps), unroll=unroll)


def init_state(setup, image_shape, num_classes, feature_size, init_scale, seed):
  """A fresh TrainState from `seed`: params, and centers uniform in +-`init_scale` (0:
  zeros, the Caffe layer's default; 0.05: a Keras `Embedding`'s default)."""
  init_rng, centers_rng, state_rng = jax.random.split(jax.random.key(seed), 3)
  dummy = jnp.zeros((1,) + tuple(image_shape), jnp.uint8)
  params = setup.model.init(init_rng, dummy)['params']
  centers = jax.random.uniform(centers_rng, (num_classes, feature_size), jnp.float32,
                               -init_scale, init_scale)
  return TrainState(
      params=params, opt_state=setup.tx.init(params), centers=centers,
      center_opt_state=setup.center_tx.init(centers) if setup.center_tx else (),
      step=jnp.zeros((), jnp.int32), rng=jax.random.key_data(state_rng),
      diverged_at=jnp.zeros((), jnp.int32), diverged_code=jnp.zeros((), jnp.int32),
      grad_norm_sum=jnp.zeros((), jnp.float32), grad_norm_max=jnp.zeros((), jnp.float32),
      clipped_steps=jnp.zeros((), jnp.int32))


class Trainer:
  """The compiled functions of one setup (model, optimizers, feature size, mesh).

  `runtime` is a resolved `cl_research.runtime.Runtime`: kernels, group strategy and
  steps per call. Groups train through `train_chunk`, sharded over `mesh`'s devices.
  """

  def __init__(self, config, feature_size, num_classes, image_shape, runtime, mesh=None):
    self.config = config
    self.runtime = runtime
    model = models.get_model(config.model, feature_size, num_classes,
                             kernels_lib.implementation(runtime.kernels))
    self.setup = make_setup(config, model)
    self.feature_size = feature_size
    self.num_classes = num_classes
    self.image_shape = tuple(image_shape)
    self.mesh = mesh
    self.train_step = jax.jit(functools.partial(train_step, self.setup), donate_argnums=0)
    self.apply = jax.jit(lambda params, images: model.apply({'params': params}, images))
    self._chunks = {}

  def init(self, seed):
    """A fresh state from `seed` (`init_state`), op by op: each op compiles once per
    process and shape, which costs less over a sweep than one program per Trainer."""
    return init_state(self.setup, self.image_shape, self.num_classes, self.feature_size,
                      self.config.centers.init_scale, seed)

  def init_group(self, seeds):
    """States of several runs stacked on a leading model axis."""
    return stack([self.init(s) for s in seeds])

  def hparams(self, lam, alpha, learning_rate=None):
    """The traced hyperparameters of one run, as float32 scalars (alpha None, as in
    `gradient` mode where it plays no part: 0)."""
    if learning_rate is None:
      learning_rate = self.config.optimizer.learning_rate
    return {'lam': jnp.float32(lam), 'alpha': jnp.float32(alpha or 0.0),
            'learning_rate': jnp.float32(learning_rate)}

  def _compiled_chunk(self, num_steps):
    if num_steps not in self._chunks:
      fn = functools.partial(
          train_steps, self.setup, self.runtime.group_strategy, self.config.batch_size,
          self.config.data.augment_shift, self.mesh, num_steps,
          True if self.runtime.unroll_steps else 1)
      if self.mesh is not None and 'model' in self.mesh.axis_names:
        fn = sharding.shard_models(fn, self.mesh)
      self._chunks[num_steps] = jax.jit(fn, donate_argnums=0)
    return self._chunks[num_steps]

  def train_chunk(self, states, hparams, data, start_step, num_steps):
    """Advances a group `num_steps` steps from `start_step`; returns (states, aux) with
    aux of shape (num_steps, M). `data` is a `batches.DeviceData`. Steps run
    `runtime.steps_per_call` at a time (0: all), each call one compiled program."""
    per_call = self.runtime.steps_per_call or num_steps
    pieces = [per_call] * (num_steps // per_call) + [num_steps % per_call] * bool(
        num_steps % per_call)
    outs, done = [], 0
    for k in pieces:
      step = start_step + done
      first_epoch = step // data.steps_per_epoch
      # every epoch this call can touch (a fixed count, so one compilation per k)
      perms = jnp.stack([data.permutation(first_epoch + e)
                         for e in range(1 if k == 1 else k // data.steps_per_epoch + 2)])
      states, chunk_aux = self._compiled_chunk(k)(
          states, hparams, data.images, data.labels, perms, jnp.int32(first_epoch),
          jnp.int32(step), data.augment_key)
      outs.append(chunk_aux)
      done += k
    return states, jax.tree.map(lambda *xs: jnp.concatenate(xs), *outs)

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


def stack(trees):
  """Pytrees with equal structure -> one pytree with a leading axis."""
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def member(tree, i):
  """Member `i` of a stacked pytree."""
  return jax.tree.map(lambda x: x[i], tree)
