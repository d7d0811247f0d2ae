"""MNIST-format datasets: the IDX files, and tfds builders that read them with numpy.

tfds' stock `mnist` / `fashion_mnist` builders cannot be prepared without TensorFlow, so
these read the IDX files with numpy and store `array_record` files, which
`as_data_source()` reads without TensorFlow. The IDX files come from `data.manual_dir`,
from `offline_idx_dir` (where `python -m cl_research.data.fetch mnist` puts MNIST, Debian's
folder for Fashion-MNIST) or from tfds' download manager.
"""

import gzip
import os
import urllib.parse

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.image_classification import mnist as tfds_mnist

from cl_research import files

DEBIAN_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist'
IDX_FILES = {
    'train_images': 'train-images-idx3-ubyte.gz',
    'train_labels': 'train-labels-idx1-ubyte.gz',
    'test_images': 't10k-images-idx3-ubyte.gz',
    'test_labels': 't10k-labels-idx1-ubyte.gz',
}


class DataError(ValueError):
  """A dataset that cannot be had, or a file that is not what it claims (every data
  route raises it: `cl_research.data`)."""


def read_idx(path):
  """Reads a (gzipped) IDX file into a numpy array; raises DataError naming the file."""
  opener = gzip.open if path.endswith('.gz') else open
  try:
    with opener(path, 'rb') as f:
      raw = f.read()
  except (OSError, EOFError) as e:
    raise DataError(f'cannot read IDX file {path}: {e}') from None
  if len(raw) < 4 or raw[:2] != b'\x00\x00' or raw[2] != 0x08:
    raise DataError(f'{path} is not an unsigned-byte IDX file (bad magic number)')
  ndim = raw[3]
  shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim))
  offset = 4 + 4 * ndim
  if len(raw) - offset != int(np.prod(shape)):
    raise DataError(f'{path} is truncated or corrupt: header says shape {shape}, '
                    f'file holds {len(raw) - offset} bytes of data')
  return np.frombuffer(raw, np.uint8, offset=offset).reshape(shape)


def offline_idx_dir(name):
  """Where IDX files are looked for when `data.manual_dir` is empty: Debian's folder for
  Fashion-MNIST; for MNIST `$CL_RESEARCH_DATA/mnist` (default: the cache folder's
  `data/mnist`), filled by `python -m cl_research.data.fetch mnist`."""
  if name == 'fashion_mnist':
    return DEBIAN_FASHION_MNIST_DIR
  return os.path.join(files.data_home(), name)


def idx_files_in(folder):
  """The four IDX paths if all exist in `folder`, gzipped or not, else None."""
  if not folder:
    return None
  paths = {}
  for key, name in IDX_FILES.items():
    found = [p for p in (os.path.join(folder, name), os.path.join(folder, name[:-3]))
             if os.path.exists(p)]
    if not found:
      return None
    paths[key] = found[0]
  return paths


class _IdxBuilder(tfds.core.GeneratorBasedBuilder):
  """A tfds builder over the four IDX files of an MNIST-format dataset."""
  VERSION = tfds.core.Version('1.0.0')
  URL = None  # where tfds' download manager fetches the IDX files from
  CLASS_NAMES = tuple(str(i) for i in range(10))

  def __init__(self, *, idx_dir=None, **kwargs):
    self._idx_dir = idx_dir
    super().__init__(file_format='array_record', **kwargs)

  def _info(self):
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
            'label': tfds.features.ClassLabel(names=list(self.CLASS_NAMES)),
        }),
        supervised_keys=('image', 'label'))

  def _split_generators(self, dl_manager):
    paths = idx_files_in(self._idx_dir) or dl_manager.download(
        {k: urllib.parse.urljoin(self.URL, v) for k, v in IDX_FILES.items()})
    return {split: self._generate_examples(str(paths[f'{split}_images']),
                                           str(paths[f'{split}_labels']))
            for split in ('train', 'test')}

  def _generate_examples(self, images_path, labels_path):
    images, labels = read_idx(images_path), read_idx(labels_path)
    check_arrays(images, labels, images_path, labels_path)
    for i, (image, label) in enumerate(zip(images, labels)):
      yield i, {'image': image[..., None], 'label': int(label)}


class ClMnist(_IdxBuilder):
  """MNIST (60k/10k), IDX files from tfds' MNIST location or a local folder."""
  URL = tfds_mnist.MNIST.URL


class ClFashionMnist(_IdxBuilder):
  """Fashion-MNIST (60k/10k), IDX files from tfds' location or a local folder."""
  URL = tfds_mnist.FashionMNIST.URL
  CLASS_NAMES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
                 'Shirt', 'Sneaker', 'Bag', 'Ankle boot')


BUILDERS = {'mnist': ClMnist, 'fashion_mnist': ClFashionMnist}


def check_arrays(images, labels, images_name, labels_name, num_classes=10):
  """Raises DataError unless images are Nx28x28 and labels N ints in [0, num_classes)."""
  if images.ndim < 3 or images.shape[1:3] != (28, 28):
    raise DataError(f'{images_name}: images have shape {images.shape}, expected Nx28x28')
  if labels.shape != (images.shape[0],):
    raise DataError(f'{labels_name}: {labels.shape[0] if labels.ndim else 0} labels for '
                    f'{images.shape[0]} images in {images_name}')
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise DataError(f'{labels_name}: label {int(labels.max())} out of range '
                    f'[0, {num_classes})')
