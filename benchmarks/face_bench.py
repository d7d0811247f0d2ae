"""python benchmarks/face_bench.py --depths 18,50 --dtypes float32,bfloat16

Training images per second of the face backbones at 112x112: the real jitted
`step.train_step` (iResNet, softmax + center loss over `--classes` identities, SGD,
Partial FC at each of `--partial-fc-rates`), timed over `--steps` steps after one that
compiles, per depth, dtype and rate in one process, so the numbers compare with each
other; with XLA's memory of the compiled step (arguments, outputs and temporaries).
Prints one JSON line; docs/faces.md has the table of this machine's numbers.

  python benchmarks/face_bench.py --smoke          # tiny settings, seconds
"""

import argparse
import functools
import json
import time

import jax
import numpy as np

from cl_research.core.models import backbones
from cl_research import configs
from cl_research.core import step as train
def images_per_s(depth, dtype, batch, steps, classes, width, rate=1.0):
  config = configs.face_config()
  config.loss.partial_fc_rate = rate
  config.model.depth, config.model.dtype, config.model.width = depth, dtype, width
  model = backbones.get_backbone(config.model, 512, classes, False)
  setup = train.make_setup(config, model, 'softmax', 'center')
  state = train.init_state(setup, (112, 112, 3), classes, 512, 0.0, 0)
  hparams = train.hparams(config, 0.008, 0.5)
  step = jax.jit(functools.partial(train.train_step, setup), donate_argnums=0)
  rng = np.random.default_rng(0)
  batch = {'image': jax.device_put(rng.normal(size=(batch, 112, 112, 3)).astype(np.float32)),
           'label': jax.device_put(rng.integers(0, classes, batch).astype(np.int32))}
  analysis = step.lower(state, batch, hparams).compile().memory_analysis()
  memory = (analysis.temp_size_in_bytes + analysis.argument_size_in_bytes
            + analysis.output_size_in_bytes) if analysis else None
  start = time.perf_counter()
  state, _ = step(state, batch, hparams)
  jax.block_until_ready(state)
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(steps):
    state, _ = step(state, batch, hparams)
  jax.block_until_ready(state)
  seconds = time.perf_counter() - start
  return {'depth': depth, 'dtype': dtype, 'width': width, 'classes': classes,
          'partial_fc_rate': rate, 'step_memory_mb': memory and round(memory / 2**20, 1),
          'batch': batch['label'].shape[0],
          'steps': steps, 'first_step_s': round(compile_s, 1),
          'images_per_s': round(steps * batch['label'].shape[0] / seconds, 2)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--depths', default='18,50')
  parser.add_argument('--dtypes', default='float32,bfloat16')
  parser.add_argument('--batch', type=int, default=32)
  parser.add_argument('--steps', type=int, default=3)
  parser.add_argument('--classes', type=int, default=10_572)  # CASIA-WebFace
  parser.add_argument('--width', type=float, default=1.0)
  parser.add_argument('--partial-fc-rates', default='1.0')
  parser.add_argument('--smoke', action='store_true', help='iResNet-18 at 1/16 width')
  args = parser.parse_args()
  if args.smoke:
    args.depths, args.dtypes, args.batch, args.steps, args.width = '18', 'float32', 4, 1, 1 / 16
  rows = [images_per_s(int(d), t, args.batch, args.steps, args.classes, args.width,
                       float(r))
          for d in args.depths.split(',') for t in args.dtypes.split(',')
          for r in args.partial_fc_rates.split(',')]
  for r in rows:
    print(f"iresnet{r['depth']} {r['dtype']:>8} r {r['partial_fc_rate']:g}: "
          f"{r['images_per_s']:8.2f} images/s, step memory {r['step_memory_mb']} MB "
          f"(batch {r['batch']}, {r['classes']:,} classes, first step {r['first_step_s']} s)",
          flush=True)
  print(json.dumps({'backend': jax.default_backend(), 'devices': [str(d) for d in jax.devices()],
                    'rows': rows}))


if __name__ == '__main__':
  main()
