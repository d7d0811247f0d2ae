"""python benchmarks/bf16_probe.py

Can this CPU run bfloat16 convolutions faster than float32? Prints the CPU's bfloat16
instruction flags, then oneDNN's own forward convolutions of the paper-width LeNets++
layers in float32 and bfloat16 (bfloat16 inputs, float32 accumulation), each with the
implementation oneDNN picks (`benchmarks/onednn_bf16_probe.cc`, built with the same
oneDNN wheels as `cl_research.platform.kernels.onednn`), and the convolution XLA:CPU compiles for
bfloat16 inputs. A script, not a test.

  python benchmarks/bf16_probe.py [--repeats 10]
"""

import argparse
import json
import pathlib
import subprocess
import tempfile

import jax
import jax.numpy as jnp

from cl_research.platform import runtime
from cl_research.platform.kernels import onednn

SOURCE = pathlib.Path(__file__).with_name('onednn_bf16_probe.cc')


def cpu_flags():
  with open('/proc/cpuinfo') as f:
    flags = next(line.split(':', 1)[1].split() for line in f if line.startswith('flags'))
  return sorted(f for f in flags if 'bf16' in f or f.startswith(('avx512', 'amx')))


def xla_bf16_conv_ops():
  """The ops XLA:CPU compiles a bfloat16 convolution into (converts show it runs f32)."""
  x = jnp.ones((8, 28, 28, 8), jnp.bfloat16)
  w = jnp.ones((5, 5, 8, 16), jnp.bfloat16)
  conv = jax.jit(lambda x, w: jax.lax.conv_general_dilated(
      x, w, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC')))
  text = conv.lower(x, w).compile().as_text()
  return [line.split('=', 1)[1].split(' convolution(')[0].strip()
          for line in text.splitlines() if ' convolution(' in line]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[2])
  parser.add_argument('--repeats', type=int, default=10)
  args = parser.parse_args()
  header = onednn._wheel_file('onednn-devel-cpu-gomp', ('oneapi', 'dnnl', 'dnnl.hpp'))  # pylint: disable=protected-access
  library = onednn._wheel_file('onednn-cpu-gomp', ('libdnnl.so',))  # pylint: disable=protected-access
  print(json.dumps({'cpu_bf16': runtime.cpu_has_bf16(), 'cpu_flags': cpu_flags(),
                    'xla_cpu_bf16_convolution': xla_bf16_conv_ops()}))
  with tempfile.TemporaryDirectory() as tmp:
    binary = pathlib.Path(tmp) / 'probe'
    subprocess.run(['g++', '-O2', '-std=c++17', str(SOURCE), '-o', str(binary),
                    f'-I{header.parents[2]}', f'-L{library.parent}', '-ldnnl',
                    f'-Wl,-rpath,{library.parent}'], check=True)
    subprocess.run([str(binary), str(args.repeats)], check=True)


if __name__ == '__main__':
  main()
