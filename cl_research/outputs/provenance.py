"""Where a result came from: package versions, backend and devices, git commit, data."""

import importlib.metadata
import os
import platform
import subprocess

import jax

from cl_research import files

PACKAGES = ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'numpy', 'scikit-learn',
            'tensorflow-datasets', 'grain', 'pillow', 'ml-collections', 'matplotlib',
            'onednn-cpu-gomp', 'cl_research')


def package_versions():
  versions = {}
  for name in PACKAGES:
    try:
      versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      versions[name] = None
  return versions


def machine():
  """The CPU in words ('2 cores, Intel(R) Xeon(R) Processor (AVX-512, AMX)'): numbers
  move across CPU types, so every page names the one its runs used."""
  model, flags = platform.processor() or platform.machine(), set()
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        key, _, value = line.partition(':')
        if key.strip() == 'model name':
          model = value.strip()
        elif key.strip() == 'flags':
          flags = set(value.split())
          break
  except OSError:
    pass
  isa = [name for flag, name in (('avx512f', 'AVX-512'), ('amx_tile', 'AMX'))
         if flag in flags] or (['AVX2'] if 'avx2' in flags else [])
  cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
  return f'{cores} cores, {model}' + (f' ({", ".join(isa)})' if isa else '')


def git_commit():
  """HEAD of the checkout the package runs from (with '+dirty' for local changes)."""
  here = str(files.PACKAGE_ROOT)
  try:
    head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=here, capture_output=True,
                          text=True, timeout=10, check=True).stdout.strip()
    dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                           cwd=here, capture_output=True, text=True, timeout=10).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return None
  return head + ('+dirty' if dirty else '')


def metadata(config, dataset, runtime):
  """What a figure needs to be traced back to its code, machine and data. `dataset`: a
  `data.Dataset`, or a dict describing streamed data; `runtime`: the resolved
  `cl_research.platform.runtime.Runtime` the runs train with."""
  if isinstance(dataset, dict):
    data = dataset
  else:
    data = {'name': dataset.name, 'source': dataset.source, 'detail': dataset.detail,
            'files': dataset.location, 'num_train': int(len(dataset.train_labels)),
            'num_test': int(len(dataset.test_labels))}
  return {
      'packages': package_versions(),
      'runtime': runtime.as_dict(),
      'python': platform.python_version(),
      'machine': machine(),
      'backend': jax.default_backend(),
      'devices': [str(d) for d in jax.devices()],
      'process_count': jax.process_count(),
      'compilation_cache': jax.config.jax_compilation_cache_dir or None,
      'git_commit': git_commit(),
      'data': data,
      'seeds': {'init_and_data_order': sorted(set(config.sweep.seed) |
                                              set(config.sweep_extra.seed)),
                'evals': {name: s.seed for name, s in config.evals.items() if 'seed' in s}},
  }
