"""Random-access face sources besides RecordIO: image folders and tfds identity datasets.

Every source has `__len__`, `__getitem__(i) -> {'image': HxWx3 uint8, 'label': int}` and
`num_classes`: what Grain's `MapDataset.source` takes (`cl_research.data.stream`).
"""

import os

import numpy as np

from cl_research.data.faces.errors import FaceDataError
from cl_research.data.faces.recordio import decode_image

# torchvision's ImageFolder extensions
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')


class _ListedIdentities:
  """A source that lists every example's identity up front: `labels` (one int per
  example, 0..C-1) and `class_names` (C names)."""

  @property
  def num_classes(self):
    return len(self.class_names)

  def __len__(self):
    return len(self.labels)


class ImageFolderSource(_ListedIdentities):
  """`root/<identity>/<image>` as torchvision's ImageFolder: identities are the
  sub-folders in sorted order (label = position), images their files with an image
  extension, sorted. `class_names` holds the folder names."""

  def __init__(self, root):
    self.root = str(root)
    if not os.path.isdir(self.root):
      raise FaceDataError(f'{self.root}: no such folder (expected root/<identity>/<image>)')
    self.class_names = tuple(sorted(
        d for d in os.listdir(self.root) if os.path.isdir(os.path.join(self.root, d))))
    self.paths, labels = [], []
    for label, name in enumerate(self.class_names):
      folder = os.path.join(self.root, name)
      images = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
      self.paths += [os.path.join(folder, f) for f in images]
      labels += [label] * len(images)
    self.labels = np.array(labels, np.int64)
    if not self.paths:
      raise FaceDataError(f'{self.root}: no images (files ending in '
                          f'{", ".join(IMAGE_EXTENSIONS)}) in any sub-folder '
                          f'({len(self.class_names)} sub-folders)')

  def __getitem__(self, i):
    with open(self.paths[i], 'rb') as f:
      return {'image': decode_image(f.read(), self.paths[i]), 'label': int(self.labels[i])}


# tfds datasets with identity labels: name -> the feature that holds the identity
TFDS_IDENTITY_KEYS = {'lfw': 'label', 'celeb_a': 'identity/Identity_No',
                      'vgg_face2': 'label'}


def _feature(example, key):
  for part in key.split('/'):
    example = example[part]
  return example


class TfdsIdentitySource(_ListedIdentities):
  """A tfds dataset's split as a face source (`tfds.data_source`: random access over
  ArrayRecord, no TensorFlow at read time). Identities are the values of `label_key`
  (default `TFDS_IDENTITY_KEYS[name]`), renumbered 0..C-1 in sorted order (LFW's are
  names, CelebA's numbers from 1)."""

  def __init__(self, name, split='train', data_dir=None, label_key=None):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    self.name, self.split = name, split
    key = label_key or TFDS_IDENTITY_KEYS.get(name)
    if key is None:
      raise FaceDataError(f'tfds dataset {name!r}: no known identity feature; give '
                          f'data.label_key (known: {", ".join(TFDS_IDENTITY_KEYS)})')
    if name not in tfds.list_builders(with_community_datasets=False):
      raise FaceDataError(f'tfds dataset {name!r}: this tensorflow-datasets has no such '
                          'builder; for VGGFace2 point face:folder at its extracted '
                          'train/ folder (root/<identity>/<image>)')
    try:
      self._source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except Exception as e:  # tfds raises assorted errors for unprepared data
      raise FaceDataError(f'tfds dataset {name!r} split {split!r} is not prepared in '
                          f'{data_dir or "~/tensorflow_datasets"} as ArrayRecord '
                          f'({type(e).__name__}); prepare it with `tfds build {name} '
                          '--file_format=array_record` (vgg_face2: manual download)') from None
    raw = [_feature(self._source[i], key) for i in range(len(self._source))]
    raw = [r.decode() if isinstance(r, bytes) else r for r in raw]
    identities = sorted(set(raw))
    self.class_names = tuple(str(c) for c in identities)
    index = {c: i for i, c in enumerate(identities)}
    self.labels = np.array([index[r] for r in raw], np.int64)

  def __getitem__(self, i):
    image = np.asarray(self._source[i]['image'])
    if image.ndim == 2 or image.shape[-1] == 1:
      image = np.repeat(image.reshape(image.shape[:2] + (1,)), 3, axis=-1)
    return {'image': image, 'label': int(self.labels[i])}
