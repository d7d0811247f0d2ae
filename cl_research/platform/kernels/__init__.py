"""The seam between the models and the code that runs their convolutions and PReLUs.

Models take a `Kernels` (default `XLA`: plain `jax.lax`) and never import an
implementation. The CPU speed path, oneDNN called through XLA's FFI
(`cl_research.platform.kernels.onednn`), is imported only by `resolve` and `implementation`,
which `cl_research.platform.runtime` calls where the trainer of a run is built.

`model.kernels`: `xla`; `onednn` (an error where it cannot be had); `auto` = oneDNN on
a CPU backend when it builds, else XLA, with the reason logged and recorded in the
run's metadata. GPU and TPU always use XLA.
"""

import logging

from cl_research import errors
from cl_research.core import kernels as seam

log = logging.getLogger(__name__)

CHOICES = ('auto', 'xla', 'onednn')
_SAID = set()  # the dtypes whose fallback to XLA was logged


class Unavailable(RuntimeError):
  """oneDNN's kernels cannot be had here; the message says why and what would fix it."""


Kernels = seam.Kernels
XLA = seam.XLA


def implementation(name):
  """The `Kernels` of a resolved name, `xla` or `onednn`."""
  if name == 'xla':
    return XLA
  from cl_research.platform.kernels import onednn  # pylint: disable=import-outside-toplevel
  return onednn.KERNELS


def resolve(choice, backend, dtype='float32'):
  """(`xla` or `onednn`, why): what `model.kernels = choice` runs with on `backend` for
  a model computing in `dtype` (`model.dtype`).

  Builds the oneDNN library on first use (cached on disk). Raises Unavailable for an
  explicit `onednn` that cannot be had; `auto` falls back to XLA with a warning. The
  oneDNN kernels compute in float32 only, so `auto` in bfloat16 runs XLA's bfloat16
  convolutions (said once in the log and recorded).
  """
  if choice == 'xla':
    return 'xla', 'model.kernels=xla'
  if dtype != 'float32':
    if choice == 'onednn':
      raise Unavailable(f"model.kernels='onednn' computes in float32 only, model.dtype is "
                        f"{dtype!r} (use 'auto' or 'xla', or model.dtype='float32')")
    if backend == 'cpu' and dtype not in _SAID:
      _SAID.add(dtype)  # once per process
      log.warning("model.dtype=%s: the oneDNN kernels compute in float32 only; using XLA's "
                  '%s convolutions', dtype, dtype)
    return 'xla', f'XLA: the oneDNN kernels compute in float32 only, model.dtype is {dtype}'
  if backend != 'cpu':
    if choice == 'onednn':
      raise Unavailable(f"model.kernels='onednn' runs on CPU only, the backend is {backend!r} "
                        "(use 'auto' or 'xla')")
    return 'xla', f'XLA on {backend}'
  from cl_research.platform.kernels import onednn  # pylint: disable=import-outside-toplevel
  reason = onednn.register()
  if reason:
    if choice == 'onednn':
      raise Unavailable(f"model.kernels='onednn': {reason}")
    log.warning("oneDNN kernels unavailable, using XLA's (slower on CPU, same "
                'results; docs/performance.md): %s', reason)
    return 'xla', f'oneDNN unavailable: {reason}'
  return 'onednn', 'oneDNN on CPU'


def validate(model_config):
  """Raises ConfigError where `model.kernels` is not a choice."""
  errors.check_choice(model_config.kernels, 'model.kernels', CHOICES)
