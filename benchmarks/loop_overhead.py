"""python benchmarks/loop_overhead.py

XLA:CPU and training loops: the same train step of the sweep's LeNets++ (1/4 width,
batch 64) as one jitted call per step, inside a rolled `lax.scan`, and as the project's
`train_chunk` with 1, 2 and 10 steps per compiled program. The measurements behind
`parallel.steps_per_call`'s CPU default (docs/performance.md, "Loops on XLA:CPU").
"""

import functools


import time

import jax
import numpy as np

from cl_research.data import device_batches as batches
from cl_research import configs
from cl_research.engine import groups
from cl_research.platform import runtime
from cl_research.core import step as train
STEPS = 40


def per_step_ms(fn):
  fn(4)
  start = time.perf_counter()
  fn(STEPS)
  return (time.perf_counter() - start) / STEPS * 1e3


def main():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 255, (4000, 28, 28, 1), dtype=np.uint8)
  labels = rng.integers(0, 10, 4000).astype(np.int32)
  config = configs.apply_cpu(configs.digits_config())
  trainer = groups.Trainer(config, 2, 10, (28, 28, 1), runtime.resolve(config))
  hparams = trainer.hparams(0.1, 0.5)
  batch = {'image': images[:64], 'label': labels[:64]}

  def jitted(n):
    state = trainer.init(0)
    for _ in range(n):
      state, _ = trainer.train_step(state, batch, hparams)
    jax.block_until_ready(state)

  step = functools.partial(train.train_step, trainer.setup)
  scanned = jax.jit(lambda s, n: jax.lax.scan(lambda s, _: step(s, batch, hparams), s, None,
                                              length=n), static_argnums=1)

  def rolled(n):
    jax.block_until_ready(scanned(trainer.init(0), n))

  print(f'one jitted step per call: {per_step_ms(jitted):.1f} ms/step', flush=True)
  print(f'rolled lax.scan:          {per_step_ms(rolled):.1f} ms/step', flush=True)
  for per_call in (1, 2, 10):
    config.parallel.steps_per_call = per_call
    chunked = groups.Trainer(config, 2, 10, (28, 28, 1), runtime.resolve(config))
    data = batches.DeviceData(images, labels, 0, config.batch_size)

    def chunk(n, chunked=chunked, data=data):
      states = chunked.init_group([0])
      jax.block_until_ready(chunked.train_chunk(states, groups.stack([hparams]), data, 0, n))
    print(f'train_chunk, {per_call:2d} steps per program: {per_step_ms(chunk):.1f} ms/step',
          flush=True)


if __name__ == '__main__':
  main()
