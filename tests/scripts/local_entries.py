"""Entries for `local_processes.run` in tests."""

import json
import os
import time


def second_fails(payload_path, index, cores):
  """Process 1 fails at once; process 0 would write a file after 30 s unless stopped."""
  del cores
  if index == 1:
    raise SystemExit(3)
  time.sleep(30)
  with open(os.path.join(os.path.dirname(payload_path), '..', 'survived'), 'w') as f:
    f.write('not stopped')


def record_cores(payload_path, index, cores):
  """Writes the cores this process was given and the ones it runs on."""
  from cl_research.platform import local_processes  # pylint: disable=import-outside-toplevel
  out_dir = local_processes.read_payload(payload_path)
  with open(os.path.join(out_dir, f'{index}.json'), 'w') as f:
    json.dump({'cores': cores, 'affinity': sorted(os.sched_getaffinity(0)),
               'omp_threads': os.environ['OMP_NUM_THREADS']}, f)
