"""LeNets++'s convolution and PReLU on CPU through oneDNN, as XLA FFI calls.

Why not XLA's: XLA:CPU runs LeNets++'s 5x5 convolutions and PReLU's backward on one
core, below oneDNN's per-core speed, and no flag of the pip jaxlib changes that; the
measurements against XLA and PyTorch are in docs/performance.md. `csrc/onednn_kernels.cc` holds the FFI handlers, which this
module compiles on first use with the system's C++ compiler against the
`onednn-cpu-gomp` and `onednn-devel-cpu-gomp` wheels, caches, and wraps in
`jax.custom_vjp`s. Results equal XLA's to float32 rounding (tests/test_onednn.py).

Imported only through the seam, `cl_research.platform.kernels`.
"""

import ctypes
import functools
import hashlib
import importlib.metadata
import logging
import os
import pathlib
import shutil
import subprocess

import jax
import jax.numpy as jnp
import numpy as np

from cl_research import files
from cl_research.platform.kernels import Kernels
from cl_research.platform.kernels import Unavailable

log = logging.getLogger(__name__)

SOURCE = pathlib.Path(__file__).parent / 'csrc' / 'onednn_kernels.cc'
CONV_FORWARD, CONV_BACKWARD_DATA, CONV_BACKWARD_WEIGHTS = (
    'ClConvForward', 'ClConvBackwardData', 'ClConvBackwardWeights')
PRELU_FORWARD, PRELU_BACKWARD = 'ClPreluForward', 'ClPreluBackward'
TARGETS = (CONV_FORWARD, CONV_BACKWARD_DATA, CONV_BACKWARD_WEIGHTS, PRELU_FORWARD,
           PRELU_BACKWARD)
_NHWC = ('NHWC', 'HWIO', 'NHWC')


def _wheel_file(dist, parts):
  """The installed file of wheel `dist` whose path ends with `parts`, or None."""
  try:
    files = importlib.metadata.files(dist) or []
  except importlib.metadata.PackageNotFoundError:
    return None
  for f in files:
    if tuple(f.parts[-len(parts):]) == parts:
      return pathlib.Path(f.locate()).resolve()
  return None


def _build():
  """Path of the compiled FFI library, built into the cache on first use."""
  header = _wheel_file('onednn-devel-cpu-gomp', ('oneapi', 'dnnl', 'dnnl.hpp'))
  library = _wheel_file('onednn-cpu-gomp', ('libdnnl.so',))
  if header is None or library is None:
    raise Unavailable('the oneDNN wheels are not installed (pip install '
                      'onednn-cpu-gomp==2023.2.0 onednn-devel-cpu-gomp==2023.2.0; x86-64 '
                      'Linux only)')
  compiler = shutil.which(os.environ.get('CXX', 'g++'))
  if compiler is None:
    raise Unavailable(f"no C++ compiler {os.environ.get('CXX', 'g++')!r} on PATH "
                      '(apt-get install g++, or set CXX)')
  include_dirs = [header.parents[2], pathlib.Path(jax.ffi.include_dir())]
  key = hashlib.sha256(SOURCE.read_bytes() + repr(
      (jax.__version__, [str(d) for d in include_dirs], str(library))).encode()).hexdigest()
  target = files.cache_dir() / f'onednn_kernels-{key[:16]}.so'
  if target.exists():
    return target
  target.parent.mkdir(parents=True, exist_ok=True)
  # Atomic: concurrent builders (processes of one sweep) cannot leave half a library.
  with files.atomic_path(str(target)) as partial:
    command = [compiler, '-O2', '-std=c++17', '-shared', '-fPIC', str(SOURCE), '-o', partial,
               *[f'-I{d}' for d in include_dirs], f'-L{library.parent}', '-ldnnl',
               f'-Wl,-rpath,{library.parent}']
    log.info('building the oneDNN kernels: %s', ' '.join(command))
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
      last = (done.stderr.strip().splitlines() or ['(no output)'])[-1]
      raise Unavailable(f'building {SOURCE.name} failed: {last}')
  return target


@functools.cache
def register():
  """Builds and registers the FFI targets once per process; the reason it cannot, or ''."""
  try:
    lib = ctypes.cdll.LoadLibrary(str(_build()))
  except (Unavailable, OSError) as e:
    return str(e)
  for name in TARGETS:
    jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, name)), platform='cpu')
  return ''


def _call(target, result_shapes, *args, **attrs):
  reason = register()  # at trace time, so calling a kernel directly works too
  if reason:
    raise Unavailable(reason)
  # vmap over a model axis (the `vmap` group strategy) loops over the members.
  return jax.ffi.ffi_call(target, result_shapes, vmap_method='sequential')(*args, **attrs)


def _conv_call(target, shape, a, b, pad_hw):
  return _call(target, jax.ShapeDtypeStruct(shape, jnp.float32), a, b,
               pad_h=np.int64(pad_hw[0]), pad_w=np.int64(pad_hw[1]))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def onednn_conv(x_BxHxWxI, w_KxKxIxO, pad_hw):
  """Stride-1 convolution, NHWC x HWIO -> NHWC, padded `pad_hw` on both sides, f32."""
  b, h, w, _ = x_BxHxWxI.shape
  kh, kw, _, o = w_KxKxIxO.shape
  shape = (b, h + 2 * pad_hw[0] - kh + 1, w + 2 * pad_hw[1] - kw + 1, o)
  return _conv_call(CONV_FORWARD, shape, x_BxHxWxI, w_KxKxIxO, pad_hw)


def _onednn_conv_fwd(x, w, pad_hw):
  return onednn_conv(x, w, pad_hw), (x, w)


def _onednn_conv_bwd(pad_hw, residuals, dy):
  x, w = residuals
  return (_conv_call(CONV_BACKWARD_DATA, x.shape, dy, w, pad_hw),
          _conv_call(CONV_BACKWARD_WEIGHTS, w.shape, x, dy, pad_hw))


onednn_conv.defvjp(_onednn_conv_fwd, _onednn_conv_bwd)


def _symmetric_padding(padding):
  """(pad_h, pad_w) of 'VALID' or an explicit, symmetric 2-D padding, else None."""
  if isinstance(padding, str):
    return (0, 0) if padding == 'VALID' else None
  if len(padding) != 2:
    return None
  pads = [tuple(int(v) for v in p) for p in padding]
  return tuple(p[0] for p in pads) if all(p[0] == p[1] >= 0 for p in pads) else None


def onednn_conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                                rhs_dilation=None, dimension_numbers=None,
                                feature_group_count=1, precision=None, **kwargs):
  """`lax.conv_general_dilated` for flax's `nn.Conv`: oneDNN for the case it handles
  (2-D, f32, NHWC/HWIO, stride 1, no dilation or groups, symmetric explicit padding),
  XLA's for anything else."""
  pad_hw = _symmetric_padding(padding)
  handled = (lhs.ndim == 4 and lhs.dtype == rhs.dtype == jnp.float32 and pad_hw is not None
             and tuple(window_strides) == (1, 1) and feature_group_count == 1
             and all(d is None or tuple(d) == (1, 1) for d in (lhs_dilation, rhs_dilation))
             and dimension_numbers == jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape,
                                                                     _NHWC))
  if not handled:
    return jax.lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation,
                                        rhs_dilation, dimension_numbers, feature_group_count,
                                        precision=precision, **kwargs)
  return onednn_conv(lhs, rhs, pad_hw)


@jax.custom_vjp
def onednn_prelu(x_BxC, slope_C):
  """Channel-wise PReLU over the last axis (any leading axes), f32: `x` where x > 0, else
  `slope * x`. At x == 0 exactly its input gradient is `slope` (the XLA version's is 1):
  both are subgradients."""
  return _call(PRELU_FORWARD, jax.ShapeDtypeStruct(x_BxC.shape, jnp.float32), x_BxC, slope_C)


def _onednn_prelu_fwd(x, slope):
  return onednn_prelu(x, slope), (x, slope)


def _onednn_prelu_bwd(residuals, dy):
  x, slope = residuals
  shapes = (jax.ShapeDtypeStruct(x.shape, jnp.float32),
            jax.ShapeDtypeStruct(slope.shape, jnp.float32))
  return tuple(_call(PRELU_BACKWARD, shapes, x, slope, dy))


onednn_prelu.defvjp(_onednn_prelu_fwd, _onednn_prelu_bwd)


KERNELS = Kernels('onednn', onednn_conv_general_dilated, onednn_prelu)
