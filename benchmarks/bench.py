"""python benchmarks/bench.py --json

Training throughput of the project's LeNets++ step (2-D features, batch 128, paper
center update, full width) against a PyTorch eager reference of the same network and
update, measured in the same process; plus K-model groups (the step `jax.vmap`-ed over
K states and lambdas) against K sequential steps, and compile time. A script, not a
test: timings on a shared 2-core machine are noisy, so compare the ratios.

  python benchmarks/bench.py --json --skip-torch
  pip install torch==2.13.0   # the optional reference (CPU build)
"""

import argparse
import json
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np

from cl_research import configs
from cl_research import train

BATCH = 128


def project_trainer(channels=(32, 64, 128)):
  config = configs.base_config()
  config.model.channels = channels
  return train.Trainer(config, feature_size=2, num_classes=10, image_shape=(28, 28, 1))


def fake_batch(seed=0):
  rng = np.random.default_rng(seed)
  return {'image': jnp.asarray(rng.integers(0, 256, (BATCH, 28, 28, 1), dtype=np.uint8)),
          'label': jnp.asarray(rng.integers(0, 10, BATCH).astype(np.int32))}


def time_steps(step_fn, state, num_steps):
  state = step_fn(state)
  jax.block_until_ready(state)
  start = time.perf_counter()
  for _ in range(num_steps):
    state = step_fn(state)
  jax.block_until_ready(state)
  return (time.perf_counter() - start) / num_steps


def bench_project(num_steps):
  trainer = project_trainer()
  batch, hparams = fake_batch(), train.hparams_of(0.01, 0.5)
  state = trainer.init(0)
  start = time.perf_counter()
  compiled = trainer.train_step.lower(state, batch, hparams).compile()
  compile_s = time.perf_counter() - start
  seconds = time_steps(lambda s: compiled(s, batch, hparams)[0], state, num_steps)
  return BATCH / seconds, compile_s


def bench_group(k, num_steps):
  """images/s of K models trained together by vmap, and of the same K one after another."""
  trainer = project_trainer()
  batch = fake_batch()
  states = jax.vmap(trainer.init)(jnp.arange(k))
  hparams = jax.vmap(train.hparams_of)(jnp.linspace(0.0, 1.0, k), jnp.full(k, 0.5))
  step = trainer._train_step  # pylint: disable=protected-access
  group_step = jax.jit(jax.vmap(step, in_axes=(0, None, 0)))
  group_s = time_steps(lambda s: group_step(s, batch, hparams)[0], states, num_steps)
  solo_s = time_steps(lambda s: trainer.train_step(s, batch, train.hparams_of(0.1, 0.5))[0],
                      trainer.init(0), num_steps)
  return {'group_images_per_s': k * BATCH / group_s, 'sequential_images_per_s': BATCH / solo_s,
          'speedup': (k * solo_s) / group_s}


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


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--json', action='store_true', help='print one JSON object last')
  parser.add_argument('--skip-torch', action='store_true')
  parser.add_argument('--steps', type=int, default=20)
  parser.add_argument('--groups', default='1,2,4,8,16')
  args = parser.parse_args()
  out = {'backend': jax.default_backend(), 'devices': [str(d) for d in jax.devices()],
         'jax': jax.__version__, 'batch_size': BATCH}
  out['project_images_per_s'], out['compile_s'] = bench_project(args.steps)
  print(f"project: {out['project_images_per_s']:.0f} images/s, compile {out['compile_s']:.1f} s",
        flush=True)
  if not args.skip_torch:
    try:
      out['torch_images_per_s'], out['torch_version'] = bench_torch(args.steps)
      out['project_over_torch'] = out['project_images_per_s'] / out['torch_images_per_s']
      print(f"torch {out['torch_version']}: {out['torch_images_per_s']:.0f} images/s", flush=True)
    except ImportError:
      print('torch not installed: reference skipped (pip install torch==2.13.0)', flush=True)
  out['groups'] = {}
  for k in (int(v) for v in args.groups.split(',')):
    out['groups'][k] = bench_group(k, max(2, args.steps // k))
    print(f'group K={k}: {out["groups"][k]}', flush=True)
  if 8 in out['groups']:
    out['group8_speedup'] = out['groups'][8]['speedup']
  out['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  if args.json:
    print(json.dumps(out))


if __name__ == '__main__':
  main()
