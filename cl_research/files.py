"""Where the project keeps files, and atomic writes: a kill at any moment leaves the old
complete file or the new one.

Each writer writes `.tmp-<pid>-<name>` in the same folder (same extension, so writers
that pick the format from it still work), flushes it to disk and renames it
over `path` (`os.replace` is atomic on POSIX filesystems).
"""

import contextlib
import json
import os
import pathlib

import numpy as np

# The folder that holds the `cl_research` package: the repository root in a checkout.
PACKAGE_ROOT = pathlib.Path(__file__).resolve().parents[1]


def cache_dir():
  """Compiled kernels and fetched data: `$CL_RESEARCH_CACHE`, else ~/.cache/cl_research."""
  return pathlib.Path(os.environ.get('CL_RESEARCH_CACHE') or
                      pathlib.Path.home() / '.cache' / 'cl_research')


def data_home():
  """Where fetched and generated data live: `$CL_RESEARCH_DATA`, else the cache folder's
  `data/`."""
  return os.environ.get('CL_RESEARCH_DATA') or str(cache_dir() / 'data')


@contextlib.contextmanager
def atomic_path(path):
  """Yields a temporary path to write; renames it to `path` if the block succeeds."""
  folder, name = os.path.split(path)
  tmp = os.path.join(folder, f'.tmp-{os.getpid()}-{name}')
  try:
    yield tmp
    with open(tmp, 'rb+') as f:
      os.fsync(f.fileno())
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def write_text(path, text):
  with atomic_path(path) as tmp:
    with open(tmp, 'w') as f:
      f.write(text)


def json_safe(record):
  """Numpy scalars to Python, non-finite floats to None (JSON has no NaN)."""
  out = {}
  for key, value in record.items():
    value = value.item() if isinstance(value, np.generic) else value
    out[key] = None if isinstance(value, float) and not np.isfinite(value) else value
  return out


def write_json(path, record):
  write_text(path, json.dumps(json_safe(record), indent=2) + '\n')


def read_json(path):
  """The parsed file, or None if it is missing or not valid JSON."""
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def read_jsonl(path):
  """The records of a JSON-lines file (metrics.jsonl); [] if it is missing."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def savez(path, **arrays):
  with atomic_path(path) as tmp:
    with open(tmp, 'wb') as f:
      np.savez_compressed(f, **arrays)
