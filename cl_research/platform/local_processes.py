"""Pinned local processes: on one CPU host, a sweep's groups dealt over fresh Pythons,
each pinned to its own cores.

Why: one quarter-width LeNets++ run does not keep two cores busy, so two processes
pinned one per core train a sweep faster than one process (docs/performance.md,
"Pinned local processes"). Fresh interpreters, not fork, so no
process inherits the parent's jax threads; the pinning comes before jax, oneDNN and
OpenMP size their thread pools from the cores they see.
"""

import logging
import os
import pickle
import subprocess
import sys
import tempfile
import time

from cl_research import files

log = logging.getLogger(__name__)


class LocalProcessError(RuntimeError):
  """A local training process failed; its own error is on stderr above."""


def available_cores():
  """The cores this process may run on (all of them where affinity is not supported)."""
  if hasattr(os, 'sched_getaffinity'):
    return sorted(os.sched_getaffinity(0))
  return list(range(os.cpu_count() or 1))


def core_sets(count):
  """This process's cores dealt into `count` contiguous sets (shared when too few)."""
  cores = available_cores()
  if count >= len(cores):
    return [[cores[i % len(cores)]] for i in range(count)]
  size, extra = divmod(len(cores), count)
  bounds = [i * size + min(i, extra) for i in range(count + 1)]
  return [cores[a:b] for a, b in zip(bounds, bounds[1:])]


# Run by `python -c` in each process: pin first, then import anything that starts threads.
_CHILD = """import importlib, os, sys
cores = [int(c) for c in sys.argv[4].split(',')]
if hasattr(os, 'sched_setaffinity'):
  os.sched_setaffinity(0, cores)
module, _, function = sys.argv[1].partition(':')
getattr(importlib.import_module(module), function)(sys.argv[2], int(sys.argv[3]), cores)
"""


def run(entry, payload, count, poll_s=0.5):
  """Calls `entry(payload_path, index, cores)` ('module:function') in `count` fresh Python
  processes, process i pinned to `core_sets(count)[i]`, and waits for all of them.

  `payload` is pickled to a temporary file each process reads (`read_payload`). If one
  process fails, the others are stopped and LocalProcessError is raised; what they
  already wrote stays.
  """
  python_path = os.pathsep.join(p for p in (str(files.PACKAGE_ROOT),
                                            os.environ.get('PYTHONPATH')) if p)
  with tempfile.TemporaryDirectory(prefix='cl_research_') as tmp:
    path = os.path.join(tmp, 'payload.pkl')
    with open(path, 'wb') as f:
      pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
    procs, sets = [], core_sets(count)
    log.info('%d local processes, pinned to cores %s', count, sets)
    try:
      for i, cores in enumerate(sets):
        env = dict(os.environ, OMP_NUM_THREADS=str(len(cores)), PYTHONPATH=python_path)
        procs.append(subprocess.Popen(
            [sys.executable, '-c', _CHILD, entry, path, str(i), ','.join(map(str, cores))],
            env=env))
      while True:
        codes = [p.poll() for p in procs]
        if None not in codes or any(codes):
          break
        time.sleep(poll_s)
      failed = [(i, p.returncode) for i, p in enumerate(procs) if p.returncode]
      if failed:
        i, code = failed[0]
        how = f'killed by signal {-code}' if code < 0 else f'exit code {code}'
        raise LocalProcessError(f'local training process {i} of {count} failed ({how}); '
                                'its own error, if any, is printed above')
    finally:
      for p in procs:
        if p.poll() is None:
          p.terminate()
      for p in procs:
        p.wait()


def read_payload(path):
  """The object `run` handed to the processes."""
  with open(path, 'rb') as f:
    return pickle.load(f)
