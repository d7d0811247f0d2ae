"""The train state, the jitted train step, and compiled multi-step chunks over model groups.

One run is a group of one. A group is runs that share every shape (model, feature size,
data, batch size, steps) and the seed, and differ in the traced hyperparameters (lambda,
alpha, learning rate): their states are stacked on a leading model axis `M` and trained
together on the same batches, a controlled comparison.
"""

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from cl_research import data as datasets
from cl_research import losses
from cl_research import models
from cl_research import onednn
from cl_research import parallel

# Codes of `TrainState.diverged_what`: which quantity went non-finite first.
DIVERGED_QUANTITIES = ('', 'loss', 'features', 'centers', 'params')


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
  diverged_what: jax.Array  # index into DIVERGED_QUANTITIES


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


def make_optimizer(opt_config, num_steps):
  """SGD(momentum) or Adam with coupled L2 (Caffe's weight_decay) and the schedule, at
  unit learning rate: the step multiplies the update by the traced `learning_rate`."""
  if opt_config.name == 'sgd':
    base = optax.trace(opt_config.momentum) if opt_config.momentum else optax.identity()
  elif opt_config.name == 'adam':
    base = optax.scale_by_adam()
  else:
    raise ValueError(f'optimizer.name={opt_config.name!r} is not one of (sgd, adam)')
  clip = (optax.clip_by_global_norm(opt_config.grad_clip_norm)
          if opt_config.grad_clip_norm else optax.identity())
  schedule = relative_schedule(opt_config, num_steps)
  return optax.chain(clip, optax.add_decayed_weights(opt_config.weight_decay), base,
                     optax.scale_by_schedule(lambda step: -schedule(step)))


def make_center_optimizer(centers_config):
  """Optimizer for `gradient` mode; no weight decay on centers (as the paper)."""
  if centers_config.optimizer == 'sgd':
    return optax.sgd(centers_config.learning_rate, momentum=centers_config.momentum or None)
  if centers_config.optimizer == 'adam':
    return optax.adam(centers_config.learning_rate)
  raise ValueError(f'centers.optimizer={centers_config.optimizer!r} is not one of (sgd, adam)')


def _all_finite(tree):
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def epoch_permutation(data_key, epoch, num_examples):
  """The order of the examples in `epoch`: a permutation seeded by (data_key, epoch)."""
  return jax.random.permutation(jax.random.fold_in(data_key, epoch), num_examples)


def batch_indices_at(data_key, step, num_examples, batch_size):
  """Indices of the batch at `step` (0-based): epochs of `epoch_permutation`, last
  partial batch dropped. A pure function of the step, so a resumed run sees exactly the
  batches an uninterrupted one would."""
  per_epoch = num_examples // batch_size
  perm = epoch_permutation(data_key, step // per_epoch, num_examples)
  return batch_of_epoch(perm, step, per_epoch, batch_size)


def batch_of_epoch(perm, step, per_epoch, batch_size):
  """The slice of an epoch's order `perm` that is the batch at `step`."""
  return jax.lax.dynamic_slice_in_dim(perm, (step % per_epoch) * batch_size, batch_size)


def data_key_of(seed):
  """The data-order key of a seed (independent of the init key)."""
  return jax.random.fold_in(jax.random.key(seed), 0x0da7a)


class Trainer:
  """Holds the static parts (model, optimizers, mode) and the compiled functions.

  Swept hyperparameters (`lam`, `alpha`, `learning_rate`) are traced arguments, so one
  compilation serves every value, and a group of runs is the same step over a leading
  model axis: `jax.vmap` (`group_strategy='vmap'`), a loop inside the compiled program
  (`'map'`) or one copy of the step per member (`'unroll'`), sharded over the devices of
  `mesh` (see `cl_research.parallel`).
  """

  def __init__(self, config, feature_size, num_classes, image_shape, mesh=None):
    self.config = config
    self.kernels, _ = onednn.resolve(config.model.kernels)
    self.model = models.get_model(config.model, feature_size, num_classes, self.kernels)
    self.tx = make_optimizer(config.optimizer, config.num_steps)
    self.center_mode = config.centers.mode
    self.center_tx = (make_center_optimizer(config.centers)
                      if self.center_mode == 'gradient' else None)
    self.feature_size = feature_size
    self.num_classes = num_classes
    self.image_shape = tuple(image_shape)
    self.group_strategy = parallel.group_strategy(config.parallel.group_strategy)
    self.mesh = mesh
    self.steps_per_call, self.unrolled = parallel.steps_per_call(config.parallel.steps_per_call)
    self.train_step = jax.jit(self._train_step, donate_argnums=0)
    self.apply = jax.jit(self._apply)
    self._chunks = {}

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
        step=jnp.zeros((), jnp.int32), rng=jax.random.key_data(state_rng),
        diverged_at=jnp.zeros((), jnp.int32), diverged_what=jnp.zeros((), jnp.int32))

  def init_group(self, seeds):
    """States of several runs stacked on a leading model axis."""
    return stack([self.init(s) for s in seeds])

  def hparams(self, lam, alpha, learning_rate=None):
    """The traced hyperparameters of one run, as float32 scalars."""
    if learning_rate is None:
      learning_rate = self.config.optimizer.learning_rate
    return {'lam': jnp.float32(lam), 'alpha': jnp.float32(alpha),
            'learning_rate': jnp.float32(learning_rate)}

  def _apply(self, params, images):
    return self.model.apply({'params': params}, images)

  def _train_step(self, state, batch, hparams):
    """(state, batch, hparams) -> (state, metrics).

    Once the loss, the features, the centers or the params go non-finite, the state
    stops changing (it keeps its last finite values) and records the step and quantity.
    """
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
      (grads, center_grads), (aux, features) = jax.grad(
          loss_fn, argnums=(0, 1), has_aux=True)(state.params, state.centers)
      if self.config.centers.unscale_lambda:
        # KaiyangZhou's port: undo lam so the loss weight does not slow the centers.
        center_grads = center_grads / jnp.where(lam > 0, lam, 1.0)
      center_updates, center_opt_state = self.center_tx.update(
          center_grads, state.center_opt_state, state.centers)
      centers = optax.apply_updates(state.centers, center_updates)
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
    updates = jax.tree.map(lambda u: hparams['learning_rate'] * u, updates)
    params = optax.apply_updates(state.params, updates)

    what = jnp.select([~jnp.isfinite(aux['loss']), ~jnp.all(jnp.isfinite(features)),
                       ~_all_finite(centers), ~_all_finite(params)],
                      [1, 2, 3, 4], 0).astype(jnp.int32)
    healthy = (state.diverged_at == 0) & (what == 0)
    keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(healthy, n, o), new, old)
    newly = (state.diverged_at == 0) & (what > 0)
    new_state = state.replace(
        params=keep(params, state.params), opt_state=keep(opt_state, state.opt_state),
        centers=keep(centers, state.centers),
        center_opt_state=keep(center_opt_state, state.center_opt_state),
        step=state.step + 1,
        diverged_at=jnp.where(newly, state.step + 1, state.diverged_at),
        diverged_what=jnp.where(newly, what, state.diverged_what))
    return new_state, aux

  def _group_step(self, states, batch, hparams):
    """One step of every run of a group on the same batch."""
    if self.group_strategy == 'vmap':
      return jax.vmap(self._train_step, in_axes=(0, None, 0))(states, batch, hparams)
    if self.group_strategy == 'map':
      return jax.lax.map(lambda sh: self._train_step(sh[0], batch, sh[1]), (states, hparams))
    size = jax.tree.leaves(states)[0].shape[0]  # 'unroll': one copy of the step per member
    outs = [self._train_step(member(states, i), batch, member(hparams, i)) for i in range(size)]
    return stack([s for s, _ in outs]), stack([m for _, m in outs])

  def _chunk(self, states, hparams, images, labels, perms, first_epoch, start_step,
             augment_key, num_steps, unroll):
    """`num_steps` group steps in one compiled program; the data never leaves the device.
    `perms` holds the example order of epochs `first_epoch`, `first_epoch + 1`, ...;
    `augment_key` with the step draws the random shifts (`data.augment_shift`)."""
    batch_size = self.config.batch_size
    per_epoch = images.shape[0] // batch_size

    def body(states, step):
      idx = batch_of_epoch(perms[step // per_epoch - first_epoch], step, per_epoch,
                           batch_size)
      batch = {'image': images[idx], 'label': labels[idx]}
      if self.config.data.augment_shift:
        batch['image'] = datasets.random_shift(
            batch['image'], jax.random.fold_in(augment_key, step), self.config.data.augment_shift)
      if self.mesh is not None and 'batch' in self.mesh.axis_names:
        batch = jax.lax.with_sharding_constraint(
            batch, jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec('batch')))
      return self._group_step(states, batch, hparams)

    if num_steps == 1:
      states, step_metrics = body(states, start_step)
      return states, jax.tree.map(lambda x: x[None], step_metrics)
    return jax.lax.scan(body, states, start_step + jnp.arange(num_steps), unroll=unroll)

  def _compiled_chunk(self, num_steps):
    if num_steps not in self._chunks:
      fn = functools.partial(self._chunk, num_steps=num_steps,
                             unroll=True if self.unrolled else 1)
      if self.mesh is not None and 'model' in self.mesh.axis_names:
        fn = parallel.shard_models(fn, self.mesh)
      self._chunks[num_steps] = jax.jit(fn, donate_argnums=0)
    return self._chunks[num_steps]

  def train_chunk(self, states, hparams, data, start_step, num_steps):
    """Advances a group `num_steps` steps from `start_step`; returns (states, metrics)
    with metrics of shape (num_steps, M). `data` is a `DeviceData` (`device_data`).

    Steps run `steps_per_call` at a time, each call one compiled program (a `lax.scan`).
    On CPU the default is one step per call: XLA:CPU (jaxlib 0.10.2) ran convolution
    gradients inside a scan's loop ~10x slower, and unrolled multi-step programs 15% to
    7x slower per step, than one step per program (README, "Speed and scale").
    """
    per_call = self.steps_per_call or num_steps
    pieces = [per_call] * (num_steps // per_call) + [num_steps % per_call] * bool(
        num_steps % per_call)
    outs, done = [], 0
    for k in pieces:
      step = start_step + done
      first_epoch = step // data.steps_per_epoch
      # every epoch this call can touch (a fixed count, so one compilation per k)
      perms = jnp.stack([data.permutation(first_epoch + e)
                         for e in range(1 if k == 1 else k // data.steps_per_epoch + 2)])
      states, chunk_metrics = self._compiled_chunk(k)(
          states, hparams, data.images, data.labels, perms, jnp.int32(first_epoch),
          jnp.int32(step), data.augment_key)
      outs.append(chunk_metrics)
      done += k
    return states, jax.tree.map(lambda *xs: jnp.concatenate(xs), *outs)

  def device_data(self, images, labels, seed):
    """The training split on the device(s), with the data order of `seed`."""
    images, labels = parallel.replicate((jnp.asarray(images), jnp.asarray(labels)), self.mesh)
    return DeviceData(images, labels, data_key_of(seed), self.config.batch_size, self.mesh)

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


class DeviceData:
  """A training split on the device(s) and its epoch orders (`epoch_permutation`),
  drawn on the device once per epoch, not once per step."""

  def __init__(self, images, labels, data_key, batch_size, mesh=None):
    self.images, self.labels, self.data_key, self.mesh = images, labels, data_key, mesh
    self.augment_key = parallel.replicate(jax.random.fold_in(data_key, 0xa06), mesh)
    self.steps_per_epoch = images.shape[0] // batch_size
    self._permute = jax.jit(epoch_permutation, static_argnums=2)
    self._cache = {}

  def permutation(self, epoch):
    if epoch not in self._cache:
      if len(self._cache) > 8:
        self._cache.pop(min(self._cache))
      perm = self._permute(self.data_key, epoch, self.images.shape[0])
      self._cache[epoch] = parallel.replicate(perm, self.mesh)
    return self._cache[epoch]


def stack(trees):
  """Pytrees with equal structure -> one pytree with a leading axis."""
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def member(tree, i):
  """Member `i` of a stacked pytree."""
  return jax.tree.map(lambda x: x[i], tree)
