"""python benchmarks/conv_layers.py

Where the CPU time of a LeNets++ step goes: each 5x5 convolution of the network at
batch 128, forward + input gradient + kernel gradient, by XLA's convolution, by oneDNN
through the project's FFI kernel (`cl_research/kernels/onednn.py`) and by PyTorch (which also uses
oneDNN), in one process. Run it under `taskset -c 0` too: XLA's time for the 28x28 and
14x14 layers does not change with one core, i.e. XLA runs them on one core. Needs torch.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import torch

from cl_research.platform import kernels
from cl_research.platform.kernels import onednn

LAYERS = [(28, 1, 32), (28, 32, 32), (14, 32, 64), (14, 64, 64), (7, 64, 128), (7, 128, 128)]
DN = ('NHWC', 'HWIO', 'NHWC')


def best_ms(fn, n=5, repeats=3):
  fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(n):
      fn()
    times.append((time.perf_counter() - start) / n * 1e3)
  return min(times)


def jax_layer_ms(conv_fn, x, w):
  """Forward + the gradients the training step needs (no input gradient for 1 channel)."""
  argnums = (0, 1) if x.shape[-1] > 1 else (1,)
  step = jax.jit(jax.grad(lambda x, w: jnp.sum(conv_fn(x, w)), argnums))
  return best_ms(lambda: jax.block_until_ready(step(x, w)))


def main():
  impl, why = kernels.resolve('auto', jax.default_backend())
  print(f'devices {jax.devices()}; oneDNN: {why}')
  total = np.zeros(3)
  print('H  Cin Cout |   XLA  oneDNN  torch   (ms, forward + backward)')
  for h, cin, cout in LAYERS:
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(128, h, h, cin)).astype(np.float32))
    w = jnp.asarray(rng.normal(size=(5, 5, cin, cout)).astype(np.float32))
    a = jax_layer_ms(lambda x, w: jax.lax.conv_general_dilated(
        x, w, (1, 1), ((2, 2), (2, 2)), dimension_numbers=DN), x, w)
    b = jax_layer_ms(lambda x, w: onednn.onednn_conv(x, w, (2, 2)), x, w) \
        if impl == 'onednn' else float('nan')
    xt = torch.randn(128, cin, h, h, requires_grad=cin > 1)
    wt = torch.randn(cout, cin, 5, 5, requires_grad=True)

    def torch_step():
      yt = torch.nn.functional.conv2d(xt, wt, padding=2)
      yt.backward(torch.ones_like(yt))
    c = best_ms(torch_step)
    total += [a, b, c]
    print(f'{h:2d} {cin:4d} {cout:4d} | {a:6.1f} {b:6.1f} {c:6.1f}', flush=True)
  print(f'total: XLA {total[0]:.0f} ms, oneDNN {total[1]:.0f} ms, torch {total[2]:.0f} ms '
        f'(torch threads: {torch.get_num_threads()})')


if __name__ == '__main__':
  main()
