"""The training split on the device(s) and the order of its batches.

The order is a pure function of (seed, step): each epoch is a permutation seeded by the
seed's data key and the epoch, drawn on the device once per epoch, and the batch at a
step is a slice of it. A resumed run therefore sees exactly the batches an
uninterrupted one would, with nothing but the step in its checkpoint.
"""

import jax
import jax.numpy as jnp

from cl_research.platform import sharding


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


class DeviceData:
  """A training split on the device(s) and its epoch orders (`epoch_permutation`),
  drawn on the device once per epoch, not once per step."""

  def __init__(self, images, labels, seed, batch_size, mesh=None):
    self.images, self.labels = sharding.replicate((jnp.asarray(images), jnp.asarray(labels)),
                                                  mesh)
    self.data_key, self.mesh = data_key_of(seed), mesh
    self.augment_key = sharding.replicate(jax.random.fold_in(self.data_key, 0xa06), mesh)
    self.steps_per_epoch = self.images.shape[0] // batch_size
    self._permute = jax.jit(epoch_permutation, static_argnums=2)
    self._cache = {}

  def permutation(self, epoch):
    if epoch not in self._cache:
      if len(self._cache) > 8:
        self._cache.pop(min(self._cache))
      perm = self._permute(self.data_key, epoch, self.images.shape[0])
      self._cache[epoch] = sharding.replicate(perm, self.mesh)
    return self._cache[epoch]
