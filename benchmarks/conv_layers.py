"""python benchmarks/conv_layers.py

Where the CPU time of a LeNets++ step goes: each 5x5 convolution of the network at
batch 128, XLA's forward, input-gradient (dx) and kernel-gradient (dk) against PyTorch's
forward + backward of the same layer (oneDNN), in one process. Needs torch.
"""

import time

import jax
import numpy as np
import torch

LAYERS = [(28, 1, 32), (28, 32, 32), (14, 32, 64), (14, 64, 64), (7, 64, 128), (7, 128, 128)]
DN = ('NHWC', 'HWIO', 'NHWC')


def conv(x, w):
  return jax.lax.conv_general_dilated(x, w, (1, 1), ((2, 2), (2, 2)), dimension_numbers=DN)


def best_ms(fn, n=5, repeats=3):
  fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(n):
      fn()
    times.append((time.perf_counter() - start) / n * 1e3)
  return min(times)


def main():
  total = np.zeros(4)
  print('H  Cin Cout | XLA fwd   dx     dk  | torch fwd+bwd  (ms)')
  for h, cin, cout in LAYERS:
    x = jax.numpy.asarray(np.random.randn(128, h, h, cin).astype(np.float32))
    w = jax.numpy.asarray(np.random.randn(5, 5, cin, cout).astype(np.float32))
    fwd = jax.jit(conv)
    y = fwd(x, w)
    dx = jax.jit(lambda x, w, dy: jax.vjp(lambda x: conv(x, w), x)[1](dy))
    dk = jax.jit(lambda x, w, dy: jax.vjp(lambda w: conv(x, w), w)[1](dy))
    a = best_ms(lambda: fwd(x, w).block_until_ready())
    b = best_ms(lambda: dx(x, w, y)[0].block_until_ready()) if cin > 1 else 0.0
    c = best_ms(lambda: dk(x, w, y)[0].block_until_ready())
    xt = torch.randn(128, cin, h, h, requires_grad=cin > 1)
    wt = torch.randn(cout, cin, 5, 5, requires_grad=True)

    def torch_step():
      yt = torch.nn.functional.conv2d(xt, wt, padding=2)
      yt.backward(torch.ones_like(yt))
    d = best_ms(torch_step)
    total += [a, b, c, d]
    print(f'{h:2d} {cin:4d} {cout:4d} | {a:6.1f} {b:6.1f} {c:6.1f} | {d:6.1f}', flush=True)
  print(f'total: XLA {total[:3].sum():.0f} ms (fwd {total[0]:.0f}, dx {total[1]:.0f}, '
        f'dk {total[2]:.0f}), torch {total[3]:.0f} ms')


if __name__ == '__main__':
  main()
