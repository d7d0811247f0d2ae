"""How this machine runs a config: every backend-dependent `auto` choice, resolved once
per sweep (before anything is written) and recorded in `metadata.json`.

| field                       | auto on CPU                   | auto on GPU / TPU        |
| model.kernels               | oneDNN where it builds (float32) | XLA                   |
| parallel.group_strategy     | unroll                        | vmap                     |
| parallel.max_group_size     | 1                             | 0 (no limit)             |
| parallel.steps_per_call     | 1                             | 0 (a rolled scan a chunk)|
| parallel.local_processes    | one per core (<= groups)      | 1                        |

Why the CPU column (measurements in docs/performance.md): XLA:CPU runs a step inside a
compiled loop slower than one step per call, one oneDNN LeNets++ already fills both
cores so groups gain nothing, and a quarter-width run does not, which pinned processes
use.
"""

import dataclasses
import os

import jax

from cl_research import files
from cl_research.platform import kernels as kernels_lib
from cl_research.platform import local_processes


@dataclasses.dataclass(frozen=True)
class Runtime:
  """The resolved choices; plain values, so a local process gets them in its payload."""
  backend: str
  kernels: str  # 'xla' or 'onednn'
  kernels_why: str
  dtype: str  # model.dtype: the convolution stages' compute dtype
  cpu_bf16: bool  # the CPU reports AVX512-BF16 or AMX-BF16 (bfloat16 dot products)
  group_strategy: str  # 'vmap', 'map' or 'unroll' (cl_research.engine.groups.group_step)
  max_group_size: int  # 0: no limit
  steps_per_call: int  # 0: every chunk in one call
  unroll_steps: bool  # a multi-step call unrolls its steps (CPU) or runs a rolled scan
  local_processes: int

  def for_groups(self, num_groups):
    """The same, with no more local processes than there are groups to train."""
    return dataclasses.replace(self, local_processes=max(1, min(self.local_processes,
                                                                num_groups)))

  def as_dict(self):
    return dataclasses.asdict(self)


def cpu_has_bf16():
  """Whether this CPU reports bfloat16 dot-product instructions (AVX512-BF16 or
  AMX-BF16), from /proc/cpuinfo; False where it cannot be read."""
  try:
    with open('/proc/cpuinfo') as f:
      flags = next((line.split(':', 1)[1].split() for line in f if line.startswith('flags')),
                   [])
  except OSError:
    return False
  return 'avx512_bf16' in flags or 'amx_bf16' in flags


def resolve(config):
  """The `Runtime` of `config` on this process's backend. Builds the oneDNN kernels on
  first use (cached on disk); raises `kernels.Unavailable` for an explicit
  `model.kernels=onednn` that cannot be had."""
  backend = jax.default_backend()
  cpu = backend == 'cpu'
  kernels, why = kernels_lib.resolve(config.model.kernels, backend, config.model.dtype)
  p = config.parallel
  strategy = p.get('group_strategy', 'auto')  # a task without groups of runs has none
  strategy = strategy if strategy != 'auto' else ('unroll' if cpu else 'vmap')
  if p.local_processes:
    processes = p.local_processes
  elif not cpu or jax.process_count() > 1:  # the hosts already split the groups
    processes = 1
  else:
    processes = len(local_processes.available_cores())
  return Runtime(
      backend=backend, kernels=kernels, kernels_why=why, dtype=config.model.dtype,
      cpu_bf16=cpu and cpu_has_bf16(), group_strategy=strategy,
      max_group_size=p.max_group_size or (1 if cpu else 0),
      steps_per_call=p.steps_per_call or (1 if cpu else 0),
      unroll_steps=cpu, local_processes=processes)


def enable_compilation_cache():
  """Keeps every compiled XLA program in `<cache_dir>/xla` (jax's persistent compilation
  cache), so processes that compile the same program (a sweep's pinned processes, a
  rerun, the tests' command-line runs) load it instead of compiling again
  (docs/performance.md, "Compiled programs kept on disk"). The programs are the same, so are the numbers.
  `CL_RESEARCH_XLA_CACHE=0` turns it off. Returns the folder, or '' when off."""
  if os.environ.get('CL_RESEARCH_XLA_CACHE', '1') == '0':
    return ''
  folder = str(files.cache_dir() / 'xla')
  jax.config.update('jax_compilation_cache_dir', folder)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
  return folder
