"""Run under XLA_FLAGS=--xla_force_host_platform_device_count=4 by tests/test_parallel.py:
trains a 4-member group sharded over 4 devices and a lone run with its batch sharded,
and the same on 1 device; prints the largest differences as JSON. The group trains 5
steps: the vmapped and the sharded programs sum in other orders, and from about the
sixth step training amplifies that to 1e-3 in the first convolution's traces."""

import json

import jax
import numpy as np

from cl_research.engine import groups
from cl_research.platform import sharding
from tests.conftest import device_data
from tests.conftest import make_trainer
from tests.conftest import synthetic_dataset
from tests.conftest import tiny_config

DATA = synthetic_dataset(num_train=128)


def run(num_devices, lams, strategy, steps=5):
  config = tiny_config(**{'parallel.num_devices': num_devices, 'parallel.group_strategy':
                          strategy, 'optimizer.learning_rate': 0.05})
  mesh = sharding.mesh_for(len(lams), config.batch_size, config.parallel)
  trainer = make_trainer(config, mesh=mesh)
  states = trainer.init_group([0] * len(lams))
  hparams = groups.stack([trainer.hparams(lam, 0.5) for lam in lams])
  data = device_data(trainer, DATA, 0)
  states, metrics = trainer.train_chunk(states, hparams, data, 0, steps)
  return (None if mesh is None else dict(mesh.shape)), jax.device_get((states, metrics))


def max_diff(a, b):
  """Largest difference of any leaf, relative to that leaf's largest magnitude."""
  return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))) /
                   (np.max(np.abs(np.asarray(y, np.float64))) + 1e-6))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def main():
  out = {'devices': len(jax.devices())}
  lams = (0.0, 0.01, 0.1, 1.0)
  mesh4, group4 = run(4, lams, 'vmap')
  _, group1 = run(1, lams, 'vmap')
  out['model_mesh'] = mesh4
  out['model_axis_max_diff'] = max_diff(group4, group1)
  mesh_b, lone4 = run(4, (0.1,), 'unroll', steps=2)
  _, lone1 = run(1, (0.1,), 'unroll', steps=2)
  out['batch_mesh'] = mesh_b
  # two steps: splitting the batch reorders float sums, and training amplifies that
  # (~1% in momentum traces after 6 steps); a center update on each device's quarter
  # batch instead of the global one would differ at once
  pick = lambda r: (r[0].params, r[0].centers, r[1])
  out['batch_axis_max_diff'] = max_diff(pick(lone4), pick(lone1))
  print(json.dumps(out))


if __name__ == '__main__':
  main()
