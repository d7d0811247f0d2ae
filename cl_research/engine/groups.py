"""Groups of runs trained together, in compiled chunks of steps.

A group is runs that share every shape (model, feature size, data, batch size, steps),
the seed, the head and the regularizer, and differ in their traced hyperparameters:
their states are stacked on a leading model axis `M` and trained together on the same
batches, a controlled comparison (`group_step`). `Trainer` compiles the step and the
chunks of steps for one setup; the data and its order stay on the device
(`cl_research.data.device_batches`).
"""

import functools

import jax
import jax.numpy as jnp

from cl_research import errors
from cl_research.core import models
from cl_research.core import step as train
from cl_research.data import device_batches as batches
from cl_research.data import images as image_ops
from cl_research.platform import kernels as kernels_lib
from cl_research.platform import sharding

GROUP_STRATEGIES = ('auto', 'vmap', 'map', 'unroll')  # `parallel.group_strategy`


def group_step(setup, strategy, states, batch, hparams):
  """One step of every run of a group on the same batch. `vmap`: one batched step;
  `map`: `lax.map`, a loop in the program; `unroll`: one copy of the step per member."""
  step = functools.partial(train.train_step, setup)
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
      batch['image'] = image_ops.random_shift(
          batch['image'], jax.random.fold_in(augment_key, step), augment_shift)
    return group_step(setup, strategy, states, sharding.shard_batch(batch, mesh), hparams)

  if num_steps == 1:
    states, step_aux = body(states, start_step)
    return states, jax.tree.map(lambda x: x[None], step_aux)
  return jax.lax.scan(body, states, start_step + jnp.arange(num_steps), unroll=unroll)


class Trainer:
  """The compiled functions of one setup (model, optimizers, head, regularizer, feature
  size, mesh).

  `runtime` is a resolved `cl_research.platform.runtime.Runtime`: kernels, group strategy and
  steps per call. `head` and `regularizer` default to `config.loss`'s. Groups train
  through `train_chunk`, sharded over `mesh`'s devices.
  """

  def __init__(self, config, feature_size, num_classes, image_shape, runtime, mesh=None,
               head=None, regularizer=None):
    self.config = config
    self.runtime = runtime
    head = head or config.loss.head
    model = models.get_model(config.model, feature_size, num_classes,
                             kernels_lib.implementation(runtime.kernels), head=head)
    self.setup = train.make_setup(config, model, head, regularizer or config.loss.regularizer)
    self.feature_size = feature_size
    self.num_classes = num_classes
    self.image_shape = tuple(image_shape)
    self.mesh = mesh
    self.train_step = jax.jit(functools.partial(train.train_step, self.setup),
                              donate_argnums=0)
    self.apply = jax.jit(functools.partial(train.predict, model, head))
    self._chunks = {}

  def init(self, seed):
    """A fresh state from `seed` (`init_state`), op by op: each op compiles once per
    process and shape, which costs less over a sweep than one program per Trainer."""
    return train.init_state(self.setup, self.image_shape, self.num_classes, self.feature_size,
                      self.config.centers.init_scale, seed)

  def init_group(self, seeds):
    """States of several runs stacked on a leading model axis."""
    return stack([self.init(s) for s in seeds])

  def hparams(self, lam, alpha, learning_rate=None, scale=None, margin=None):
    """The traced hyperparameters of one run, as float32 scalars: its point's (a None,
    for a value the run does not use: 0) and the rest of `config.loss`'s numbers."""
    return train.hparams(self.config, lam, alpha, learning_rate, scale, margin)

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
    return train.in_batches(lambda x: self.apply(params, x), images, batch_size)


def stack(trees):
  """Pytrees with equal structure -> one pytree with a leading axis."""
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def member(tree, i):
  """Member `i` of a stacked pytree."""
  return jax.tree.map(lambda x: x[i], tree)


def validate(parallel_config):
  """Raises ConfigError where `parallel.group_strategy` is not a choice."""
  errors.check_choice(parallel_config.group_strategy, 'parallel.group_strategy',
                      GROUP_STRATEGIES)
