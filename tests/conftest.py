"""Shared fixtures: tiny configs and synthetic MNIST-format data, all offline."""

import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cl_research import configs
from cl_research import data
from cl_research.data import device_batches as batches
from cl_research.data import idx
from cl_research.engine import groups
from cl_research.platform import runtime

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_on_fake_devices(script, count):
  """The JSON last printed by tests/scripts/`script`, run with `count` fake CPU devices."""
  env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={count}',
             PYTHONPATH=REPO)
  proc = subprocess.run([sys.executable, os.path.join(REPO, 'tests', 'scripts', script)],
                        env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def tiny_config(**overrides):
  """A LeNets++ config that trains in well under a second per step on CPU."""
  config = configs.apply_smoke(configs.digits_config())
  config.data.source = 'bundled'
  for path, value in overrides.items():
    node = config
    *parents, leaf = path.split('.')
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


def make_trainer(config, feature_size=2, mesh=None, image_shape=(28, 28, 1)):
  """A Trainer of `config` with this machine's resolved runtime."""
  return groups.Trainer(config, feature_size, 10, image_shape, runtime.resolve(config),
                       mesh=mesh)


def device_data(trainer, dataset, seed):
  """`dataset`'s training split on the trainer's devices, in the order of `seed`."""
  return batches.DeviceData(dataset.train_images, dataset.train_labels, seed,
                          trainer.config.batch_size, trainer.mesh)


def synthetic_dataset(num_train=256, num_test=128, seed=0):
  """Ten separable 'digit' classes: class c lights up row block c, plus noise."""
  rng = np.random.default_rng(seed)

  def make(n):
    labels = np.arange(n, dtype=np.int32) % 10
    images = rng.integers(0, 60, (n, 28, 28, 1)).astype(np.uint8)
    for i, c in enumerate(labels):
      images[i, 2 + 2 * c:4 + 2 * c, 4:24] = 255
    return images, labels

  (tr_x, tr_y), (te_x, te_y) = make(num_train), make(num_test)
  return data.Dataset(name='mnist', source='synthetic', detail='synthetic test data',
                      train_images=tr_x, train_labels=tr_y, test_images=te_x,
                      test_labels=te_y)


def write_idx(path, array):
  """Writes a uint8 array as a gzipped IDX file."""
  header = bytes([0, 0, 0x08, array.ndim]) + b''.join(
      int(s).to_bytes(4, 'big') for s in array.shape)
  with gzip.open(path, 'wb') as f:
    f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def idx_dir(tmp_path):
  """A folder with the four IDX files of a small synthetic dataset."""
  ds = synthetic_dataset(num_train=60, num_test=20)
  folder = tmp_path / 'idx'
  folder.mkdir()
  for split in ('train', 'test'):
    write_idx(os.path.join(folder, idx.IDX_FILES[f'{split}_images']),
              getattr(ds, f'{split}_images')[..., 0])
    write_idx(os.path.join(folder, idx.IDX_FILES[f'{split}_labels']),
              getattr(ds, f'{split}_labels'))
  return folder


runtime.enable_compilation_cache()  # as the command line does (same programs, same numbers)


@pytest.fixture(autouse=True)
def no_fetched_mnist(monkeypatch, tmp_path_factory):
  """Tests never see full MNIST fetched into this machine's cache (`cl_research.data.fetch`)."""
  monkeypatch.setenv('CL_RESEARCH_DATA', str(tmp_path_factory.mktemp('no_fetched_data')))


def assert_png_drawn(path, min_width=200, min_height=150):
  """`path` is a PNG of at least that many pixels whose content is a drawing: many
  colours, no single colour covering nearly all of it (a blank or one-colour canvas
  fails)."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  with Image.open(path) as image:
    assert image.format == 'PNG', path
    width, height = image.size
    assert width >= min_width and height >= min_height, (path, image.size)
    pixels = np.asarray(image.convert('RGB')).reshape(-1, 3)
  colours, counts = np.unique(pixels, axis=0, return_counts=True)
  assert len(colours) >= 16, (path, len(colours))
  assert counts.max() / len(pixels) < 0.995, (path, counts.max() / len(pixels))
