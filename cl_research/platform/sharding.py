"""Devices and hosts: the mesh a group trains on, and `jax.distributed`.

Within a process, a group's model axis is sharded over the local devices with
`jax.shard_map` (each device trains its own members; nothing crosses devices), and a lone
run can shard its batch axis instead (GSPMD; the center update then reduces over the
global batch, not a per-device one). Across processes (`jax.distributed`), whole groups
are dealt out round-robin; each process writes its own runs and process 0 writes the
summary and the plots once all are done.
"""

import logging
import os

import jax
from jax.experimental import multihost_utils
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np

from cl_research import errors
from cl_research.core import layout

log = logging.getLogger(__name__)

SHARD_MODES = ('auto', 'model', 'batch', 'none')


def mesh_for(group_size, batch_size, parallel_config):
  """The mesh of a group: its model axis over the local devices when it has several
  members, else its batch axis; None on one device."""
  devices = jax.local_devices()
  if parallel_config.num_devices:
    devices = devices[:parallel_config.num_devices]
  mode = parallel_config.shard
  if mode == 'auto':
    mode = 'model' if group_size > 1 else 'batch'
  if len(devices) < 2 or mode == 'none':
    return None
  if mode == 'batch':
    if batch_size % len(devices):
      log.warning('batch %d does not split over %d devices: not sharded', batch_size,
                  len(devices))
      return None
    return Mesh(devices, ('batch',))
  return Mesh(devices[:min(len(devices), group_size)], ('model',))


def model_shards(mesh):
  """How many devices share a group's model axis (1 without one)."""
  return mesh.shape['model'] if mesh is not None and 'model' in mesh.axis_names else 1


def shard_models(chunk_fn, mesh):
  """Wraps `chunk_fn(states, hparams, images, labels, perms, first_epoch, start_step,
  augment_key)` so each device runs it on its slice of the model axis; data, steps and
  keys are replicated."""
  return jax.shard_map(chunk_fn, mesh=mesh,
                       in_specs=(P('model'), P('model'), P(), P(), P(), P(), P(), P()),
                       out_specs=(P('model'), P(None, 'model')), check_vma=False)


def shard_batch(batch, mesh):
  """Constrains a batch to be split over the mesh's `batch` axis (a no-op without one)."""
  if mesh is None or 'batch' not in mesh.axis_names:
    return batch
  return jax.lax.with_sharding_constraint(batch, NamedSharding(mesh, P('batch')))


def replicate(tree, mesh):
  """`tree` on every device of `mesh` (as it is without a mesh)."""
  if mesh is None:
    return tree
  return jax.device_put(tree, NamedSharding(mesh, P()))


def initialize(parallel_config):
  """Starts `jax.distributed` when asked (`parallel.distributed`, or the environment
  variables JAX reads: coordinator address, process count and id; SLURM and TPU pods
  are detected by JAX itself). Returns (process_index, process_count)."""
  if parallel_config.distributed or os.environ.get('JAX_COORDINATOR_ADDRESS'):
    if not jax.distributed.is_initialized():
      jax.config.update('jax_cpu_collectives_implementation', 'gloo')
      jax.distributed.initialize(
          coordinator_address=parallel_config.coordinator_address or None,
          num_processes=parallel_config.num_processes or None,
          process_id=(parallel_config.process_id
                      if parallel_config.process_id >= 0 else None))
  return jax.process_index(), jax.process_count()


def barrier(name):
  """Waits for every process (a no-op with one)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


# Face training: one run at a time on a ('batch', 'classes') mesh. The batch is split
# over `batch`; the classifier's columns and the centers' rows over `classes`
# (`parallel.classifier_shard` devices), so both grow with the number of identities
# without being copied to every device. GSPMD partitions the step; the center update's
# gather and scatter-add stay exact.


def face_mesh(parallel_config):
  """The mesh of a face run: the local devices as (batch, classes), `classes` of size
  `parallel.classifier_shard`; None on one device."""
  devices = jax.local_devices()
  if parallel_config.num_devices:
    devices = devices[:parallel_config.num_devices]
  shard = parallel_config.classifier_shard
  if len(devices) < 2:
    return None
  return Mesh(np.array(devices).reshape(-1, shard), ('batch', 'classes'))


def _face_spec(path, leaf):
  """Split along the leaf's class axis (`layout.class_axis`), else replicated."""
  axis = layout.class_axis(path, leaf)
  if axis is None:
    return P()
  return P(*('classes' if a == axis else None for a in range(leaf.ndim)))


def face_state_shardings(state, mesh):
  """The sharding of each leaf of a face run's TrainState on `mesh` (None: no mesh)."""
  if mesh is None:
    return None
  return jax.tree_util.tree_map_with_path(
      lambda path, leaf: NamedSharding(mesh, _face_spec(path, leaf)), state)


def put_batch(batch, mesh):
  """This process's batch as global arrays split over the mesh's `batch` axis (over
  processes too), or on the default device without a mesh."""
  if mesh is None:
    return jax.device_put(batch)
  spec = NamedSharding(mesh, P('batch'))
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(spec, x), batch)


def validate(parallel_config):
  """Raises ConfigError where `config.parallel`'s device and process fields cannot work."""
  p = parallel_config
  for name in ('max_group_size', 'num_devices', 'num_processes', 'steps_per_call',
               'local_processes'):
    errors.check(p[name] >= 0, f'parallel.{name}={p[name]!r} must be >= 0 (0: no limit / '
                 'all / from the environment)')


def validate_shard(parallel_config):
  """Raises ConfigError where `parallel.shard` (a digits group's device layout) is not a
  choice."""
  errors.check_choice(parallel_config.shard, 'parallel.shard', SHARD_MODES)


def validate_classifier_shard(parallel_config, batch_size):
  """Raises ConfigError where `parallel.classifier_shard` does not divide the devices or
  the batch does not split over the data-parallel ones."""
  shard = parallel_config.classifier_shard
  devices = parallel_config.num_devices or jax.local_device_count()
  errors.check(isinstance(shard, int) and shard >= 1 and devices % shard == 0,
               f'parallel.classifier_shard={shard!r} must be >= 1 and divide the {devices} '
               'devices')
  errors.check(batch_size % (devices // shard) == 0,
               f'batch_size={batch_size} does not split over {devices // shard} data-'
               'parallel devices')
