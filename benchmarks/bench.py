"""python benchmarks/bench.py --json

Training throughput of the project's LeNets++ step (2-D features, batch 128, paper
center update, full width; convolution and PReLU by oneDNN on CPU when they build, and
by XLA for comparison) against a PyTorch eager reference of the same network and update, measured
in the same process; plus K-model groups (`vmap`: one batched step;
`unroll`: one copy of the step per member, in one program) against K one-model runs,
and compile time. The project's figure goes through its training path: data on the
device, shuffled and batched inside the compiled program. A script, not a
test: timings on a shared 2-core machine are noisy, so compare the ratios.

  python benchmarks/bench.py --json --skip-torch
  python benchmarks/bench.py --json --skip-torch --dtype bfloat16 --groups ''
  python benchmarks/bench.py --json --skip-torch --channels 8,16,32   # the sweep's width
  pip install torch==2.13.0   # the optional reference (CPU build)

`--dtype bfloat16` times the model in bfloat16 (`model.dtype`) and, in alternating
turns of the same run, in float32: `float32_images_per_s` and `over_float32`.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from cl_research.data import device_batches as batches
from cl_research import configs
from cl_research.engine import groups
from cl_research.platform import runtime
BATCH = 128
MODEL = {'channels': (32, 64, 128), 'dtype': 'float32'}  # set from the command line


def project_trainer(strategy='auto', kernels='auto', dtype=None):
  config = configs.digits_config()
  config.model.channels = MODEL['channels']
  config.model.kernels = kernels
  config.model.dtype = dtype or MODEL['dtype']
  config.batch_size = BATCH
  config.parallel.group_strategy = strategy
  return groups.Trainer(config, feature_size=2, num_classes=10, image_shape=(28, 28, 1),
                       runtime=runtime.resolve(config))


def fake_batch(seed=0):
  rng = np.random.default_rng(seed)
  return {'image': jnp.asarray(rng.integers(0, 256, (BATCH, 28, 28, 1), dtype=np.uint8)),
          'label': jnp.asarray(rng.integers(0, 10, BATCH).astype(np.int32))}


def fake_data(trainer, n=4096):
  rng = np.random.default_rng(0)
  return batches.DeviceData(rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8),
                          rng.integers(0, 10, n).astype(np.int32), 0, BATCH)


def time_steps(step_fn, state, num_steps):
  state = step_fn(state)
  jax.block_until_ready(state)
  start = time.perf_counter()
  for _ in range(num_steps):
    state = step_fn(state)
  jax.block_until_ready(state)
  return (time.perf_counter() - start) / num_steps


def time_group(trainer, k, num_steps):
  """Seconds per step of a K-member group through the training path (`train_chunk`:
  data on the device, shuffled and batched in the compiled program)."""
  states = trainer.init_group(list(range(k)))
  hparams = groups.stack([trainer.hparams(lam, 0.5) for lam in np.linspace(0.0, 1.0, k)])
  data = fake_data(trainer)
  step = [0]

  def advance(s):
    s, _ = trainer.train_chunk(s, hparams, data, step[0], num_steps)
    step[0] += num_steps
    return s
  return time_steps(advance, states, 1) / num_steps


def bench_project(num_steps, kernels='auto', dtype=None):
  """images/s of one model through the training path, of the bare jitted step on a
  fixed batch, and the step's compile time."""
  trainer = project_trainer(kernels=kernels, dtype=dtype)
  batch, hparams = fake_batch(), trainer.hparams(0.01, 0.5)
  state = trainer.init(0)
  start = time.perf_counter()
  compiled = trainer.train_step.lower(state, batch, hparams).compile()
  compile_s = time.perf_counter() - start
  step_s = time_steps(lambda s: compiled(s, batch, hparams)[0], state, num_steps)
  path_s = time_group(trainer, 1, num_steps)
  return BATCH / path_s, BATCH / step_s, compile_s


def bench_group(k, num_steps, strategies):
  """images/s of K models trained as one group, per strategy, against K one-model runs
  one after another (the same training path)."""
  solo_s = time_group(project_trainer(), 1, num_steps)
  out = {'sequential_images_per_s': BATCH / solo_s}
  for strategy in strategies:
    group_s = time_group(project_trainer(strategy), k, num_steps)
    out[strategy] = {'group_images_per_s': k * BATCH / group_s,
                     'speedup': (k * solo_s) / group_s}
  return out


def bench_torch(num_steps):
  import torch  # pylint: disable=import-outside-toplevel
  from torch import nn  # pylint: disable=import-outside-toplevel

  def stage(cin, cout):
    return [nn.Conv2d(cin, cout, 5, padding=2), nn.PReLU(cout),
            nn.Conv2d(cout, cout, 5, padding=2), nn.PReLU(cout), nn.MaxPool2d(2, 2)]

  torch.manual_seed(0)
  body = nn.Sequential(*stage(1, 32), *stage(32, 64), *stage(64, 128), nn.Flatten(),
                       nn.Linear(128 * 3 * 3, 2))
  head = nn.Linear(2, 10)
  params = list(body.parameters()) + list(head.parameters())
  opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4)
  centers = torch.zeros(10, 2)
  batch = fake_batch()
  images = (torch.from_numpy(np.array(batch['image'])).permute(0, 3, 1, 2).float() - 127.5) / 128
  labels = torch.from_numpy(np.asarray(batch['label'])).long()
  lam, alpha = 0.01, 0.5

  def step():
    nonlocal centers
    features = body(images)
    logits = head(features)
    center_term = 0.5 * ((features - centers[labels]) ** 2).sum(1).mean()
    loss = nn.functional.cross_entropy(logits, labels) + lam * center_term
    opt.zero_grad()
    loss.backward()
    opt.step()
    with torch.no_grad():  # ECCV16 Eq. 4
      onehot = nn.functional.one_hot(labels, 10).float()
      counts = onehot.sum(0)[:, None]
      delta = (counts * centers - onehot.T @ features.detach()) / (1 + counts)
      centers = centers - alpha * delta

  for _ in range(3):
    step()
  start = time.perf_counter()
  for _ in range(num_steps):
    step()
  return BATCH * num_steps / (time.perf_counter() - start), torch.__version__


def bench_single(num_steps, repeats, skip_torch):
  """One model: the project (oneDNN convolution when `auto` resolves to it) and PyTorch
  measured in alternating turns, `repeats` times; medians, and each turn's ratio (this
  machine's speed drifts by tens of percent within minutes)."""
  out, runs = {}, {'project': [], 'bare': [], 'torch': [], 'ratio': [], 'float32': [],
                   'over_float32': []}
  for repeat in range(repeats):
    images_per_s, bare, compile_s = bench_project(num_steps)
    runs['project'].append(images_per_s)
    runs['bare'].append(bare)
    out.setdefault('compile_s', compile_s)
    line = f'turn {repeat}: project {images_per_s:.0f} images/s (bare step {bare:.0f})'
    if MODEL['dtype'] != 'float32':
      runs['float32'].append(bench_project(num_steps, dtype='float32')[0])
      runs['over_float32'].append(images_per_s / runs['float32'][-1])
      line += ', float32 %.0f images/s' % runs['float32'][-1]
    if not skip_torch:
      torch_out = torch_in_child(num_steps)
      if 'torch_images_per_s' not in torch_out:
        print(f"torch reference skipped: {torch_out['skipped']}", flush=True)
        skip_torch = True
      else:
        out['torch_version'] = torch_out['torch_version']
        runs['torch'].append(torch_out['torch_images_per_s'])
        runs['ratio'].append(images_per_s / torch_out['torch_images_per_s'])
        line += f", torch {runs['torch'][-1]:.0f} images/s, ratio {runs['ratio'][-1]:.2f}"
    print(line, flush=True)
  out['project_images_per_s'] = float(np.median(runs['project']))
  out['project_bare_step_images_per_s'] = float(np.median(runs['bare']))
  if runs['float32']:
    out['float32_images_per_s'] = float(np.median(runs['float32']))
    out['over_float32'] = float(np.median(runs['over_float32']))
    out['over_float32_turns'] = runs['over_float32']
  if runs['torch']:
    out['torch_images_per_s'] = float(np.median(runs['torch']))
    out['project_over_torch'] = float(np.median(runs['ratio']))
    out['project_over_torch_turns'] = runs['ratio']
  if out.get('torch_version'):
    print(f"median: project {out['project_images_per_s']:.0f}, torch "
          f"{out['torch_images_per_s']:.0f} images/s, ratio {out['project_over_torch']:.2f}",
          flush=True)
  if project_trainer().runtime.kernels != 'xla':
    out['project_xla_kernels_images_per_s'] = bench_project(num_steps, 'xla')[0]
    print(f"project with XLA's kernels: {out['project_xla_kernels_images_per_s']:.0f} "
          'images/s', flush=True)
  return out


def torch_in_child(num_steps):
  """The PyTorch figure from a fresh process of this script: in the process that has run
  JAX and oneDNN, PyTorch's own thread pool measured about 35% slower (254 against 364 to
  403 images/s alone, this machine), which would flatter the project."""
  done = subprocess.run([sys.executable, __file__, '--torch-only', '--steps', str(num_steps)],
                        capture_output=True, text=True, check=False)
  lines = done.stdout.strip().splitlines()
  if done.returncode or not lines:
    return {'skipped': f'the torch child failed: {done.stderr.strip()[-300:]}'}
  return json.loads(lines[-1])


def torch_only(num_steps):
  try:
    images_per_s, version = bench_torch(num_steps)
  except ImportError:
    return {'skipped': 'torch not installed (pip install torch==2.13.0)'}
  return {'torch_images_per_s': images_per_s, 'torch_version': version}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--json', action='store_true', help='print one JSON object last')
  parser.add_argument('--skip-torch', action='store_true')
  parser.add_argument('--steps', type=int, default=20)
  parser.add_argument('--groups', default='1,2,4,8,16')
  parser.add_argument('--strategies', default='vmap,unroll',
                      help='group strategies to time (see cl_research.engine.groups.group_step)')
  parser.add_argument('--repeats', type=int, default=3,
                      help='turns of project and PyTorch for the single-model figures')
  parser.add_argument('--dtype', default='float32', choices=('float32', 'bfloat16'),
                      help='model.dtype of the project figures (bfloat16: float32 beside)')
  parser.add_argument('--channels', default='32,64,128',
                      help="LeNets++ widths: the paper's, or 8,16,32 as the CPU sweeps")
  parser.add_argument('--torch-only', action='store_true', help=argparse.SUPPRESS)
  args = parser.parse_args()
  MODEL['channels'] = tuple(int(c) for c in args.channels.split(','))
  MODEL['dtype'] = args.dtype
  if args.torch_only:
    print(json.dumps(torch_only(args.steps)))
    return
  out = {'backend': jax.default_backend(), 'devices': [str(d) for d in jax.devices()],
         'jax': jax.__version__, 'batch_size': BATCH, 'cpu_count': os.cpu_count(),
         'dtype': args.dtype, 'channels': list(MODEL['channels'])}
  auto = project_trainer().runtime
  out['kernels'], out['kernels_why'] = auto.kernels, auto.kernels_why
  out.update(bench_single(args.steps, args.repeats, args.skip_torch))
  strategies = args.strategies.split(',')
  out['groups'] = {}
  for k in (int(v) for v in args.groups.split(',') if v):
    out['groups'][k] = bench_group(k, max(2, args.steps // k), strategies)
    print(f'group K={k}: {out["groups"][k]}', flush=True)
  if 8 in out['groups']:
    out['group8_strategy'] = (auto.group_strategy if auto.group_strategy in strategies
                              else strategies[0])
    out['group8_speedup'] = out['groups'][8][out['group8_strategy']]['speedup']
  out['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  if args.json:
    print(json.dumps(out))


if __name__ == '__main__':
  main()
