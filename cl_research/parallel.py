"""Devices and hosts: the mesh a group trains on, and the split of a sweep over processes.

Within a process, a group's model axis is sharded over the local devices with
`jax.shard_map` (each device trains its own members; nothing crosses devices), and a lone
run can shard its batch axis instead (GSPMD; the center update then reduces over the
global batch, not a per-device one). Across processes (`jax.distributed`), whole groups
are dealt out round-robin; each process writes its own runs and process 0 writes the
summary and the plots once all are done. On one CPU host, whole groups can instead be
dealt out over local processes, each pinned to its own cores (`run_local_processes`).
"""

import logging
import os
import pickle
import subprocess
import sys
import tempfile
import time

import jax
from jax.experimental import multihost_utils
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

log = logging.getLogger(__name__)

GROUP_STRATEGIES = ('auto', 'vmap', 'map', 'unroll')
SHARD_MODES = ('auto', 'model', 'batch', 'none')


def group_strategy(name):
  """How a group's members share a compiled step. 'vmap': one batched step (on
  accelerators); 'map': `lax.map`, a loop in the program; 'unroll': one copy of the step
  per member. 'auto' picks 'vmap' on accelerators and 'unroll' on CPU, where XLA turns a
  vmapped convolution into a dense one K times the size (the oneDNN kernels instead loop
  over the members: 0.86x at K = 8) and runs a step inside a loop 3-10x slower (README,
  "Speed and scale")."""
  if name == 'auto':
    return 'unroll' if jax.default_backend() == 'cpu' else 'vmap'
  return name


def steps_per_call(value):
  """(steps per compiled call, unrolled?). 0 = auto: one step per call on CPU, where a
  rolled `lax.scan` ran the step ~3x slower (oneDNN kernels; ~10x with XLA's) and a
  10-step unrolled program ~10x slower per step; a rolled `lax.scan` over each chunk
  elsewhere (README, "Speed and scale")."""
  cpu = jax.default_backend() == 'cpu'
  if value == 0:
    return (1, True) if cpu else (0, False)
  return value, cpu


def max_group_size(value):
  """0 = auto: no limit on accelerators; 1 on CPU, where one run with the oneDNN kernels
  already keeps every core busy (an 8-group trained 1.00x as fast as 8 runs in turn) and
  each member adds to the compile time: README, "Speed and scale"."""
  if value == 0:
    return 1 if jax.default_backend() == 'cpu' else 0
  return value


def available_cores():
  """The cores this process may run on (all of them where affinity is not supported)."""
  if hasattr(os, 'sched_getaffinity'):
    return sorted(os.sched_getaffinity(0))
  return list(range(os.cpu_count() or 1))


def local_processes(value, num_groups):
  """How many local processes train a sweep's groups (never more than the groups).

  0 = auto: on CPU one per core, because one small run does not keep two cores busy: the
  default sweep (LeNets++ at 1/4 width) trained 1.37x as fast on two pinned processes as
  in one, and at full width, where one run fills both cores, no slower (1.02x; 2-core
  host, README "Speed and scale"). 1 on accelerators, which one process already shares
  among a group's runs, and under `jax.distributed`, where the hosts already split the
  groups.
  """
  if value == 0:
    if jax.default_backend() != 'cpu' or jax.process_count() > 1:
      return 1
    value = len(available_cores())
  return max(1, min(value, num_groups))


def core_sets(count):
  """This process's cores dealt into `count` contiguous sets (shared when too few)."""
  cores = available_cores()
  if count >= len(cores):
    return [[cores[i % len(cores)]] for i in range(count)]
  size, extra = divmod(len(cores), count)
  bounds = [i * size + min(i, extra) for i in range(count + 1)]
  return [cores[a:b] for a, b in zip(bounds, bounds[1:])]


class LocalProcessError(RuntimeError):
  """A local training process failed; its own error is on stderr above."""


# Run by `python -c` in each local process: the pinning comes before jax, oneDNN and
# OpenMP size their thread pools from the cores they see.
_CHILD = """import importlib, os, sys
cores = [int(c) for c in sys.argv[4].split(',')]
if hasattr(os, 'sched_setaffinity'):
  os.sched_setaffinity(0, cores)
module, _, function = sys.argv[1].partition(':')
getattr(importlib.import_module(module), function)(sys.argv[2], int(sys.argv[3]), cores)
"""


def run_local_processes(entry, payload, count, poll_s=0.5):
  """Calls `entry(payload_path, index, cores)` ('module:function') in `count` fresh Python
  processes, process i pinned to `core_sets(count)[i]`, and waits for all of them.

  `payload` is pickled to a temporary file each process reads. Fresh interpreters, not
  fork, so that no process inherits the parent's jax threads. If one process fails, the
  others are stopped and LocalProcessError is raised; runs already written stay (a rerun
  skips them).
  """
  package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  python_path = os.pathsep.join(p for p in (package_root, os.environ.get('PYTHONPATH')) if p)
  with tempfile.TemporaryDirectory(prefix='cl_research_') as tmp:
    path = os.path.join(tmp, 'payload.pkl')
    with open(path, 'wb') as f:
      pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
    procs, sets = [], core_sets(count)
    log.info('%d local processes, pinned to cores %s', count, sets)
    try:
      for i, cores in enumerate(sets):
        env = dict(os.environ, OMP_NUM_THREADS=str(len(cores)), PYTHONPATH=python_path)
        procs.append(subprocess.Popen(
            [sys.executable, '-c', _CHILD, entry, path, str(i), ','.join(map(str, cores))],
            env=env))
      while True:
        codes = [p.poll() for p in procs]
        if None not in codes or any(codes):
          break
        time.sleep(poll_s)
      failed = [(i, p.returncode) for i, p in enumerate(procs) if p.returncode]
      if failed:
        i, code = failed[0]
        how = f'killed by signal {-code}' if code < 0 else f'exit code {code}'
        raise LocalProcessError(f'local training process {i} of {count} failed ({how}); '
                                'its own error, if any, is printed above')
    finally:
      for p in procs:
        if p.poll() is None:
          p.terminate()
      for p in procs:
        p.wait()


def read_payload(path):
  with open(path, 'rb') as f:
    return pickle.load(f)


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
  return mesh.shape['model'] if mesh is not None and 'model' in mesh.axis_names else 1


def shard_models(chunk_fn, mesh):
  """Wraps `chunk_fn(states, hparams, images, labels, perms, first_epoch, start_step,
  augment_key)` so each device runs it on its slice of the model axis; data, steps and
  keys are replicated."""
  return jax.shard_map(chunk_fn, mesh=mesh,
                       in_specs=(P('model'), P('model'), P(), P(), P(), P(), P(), P()),
                       out_specs=(P('model'), P(None, 'model')), check_vma=False)


def replicate(tree, mesh):
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
