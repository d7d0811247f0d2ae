"""Verification pairs: insightface's validation packs and LFW's own `pairs.txt`.

A validation pack (`lfw.bin`, `cfp_fp.bin`, `agedb_30.bin`) is
`pickle.dump((bins, issame_list))`: 2N encoded images as consecutive pairs and N
booleans. Packs written under Python 2 need `pickle.load(f, encoding='bytes')`.
"""

import os
import pickle

import numpy as np
from PIL import Image

from cl_research.data.faces.errors import FaceDataError
from cl_research.data.faces.recordio import decode_image
from cl_research.data.faces.recordio import encode_jpeg


def resize(image_HxWx3, size_HxW):
  """`image` at `size` (height, width): a centre crop to the target's aspect ratio, then
  Pillow's bilinear resize where the size still differs (112x112 packs -> 112x96 crops
  8 px each side, as for the ECCV16 network)."""
  h, w = image_HxWx3.shape[:2]
  th, tw = size_HxW
  if (h, w) == (th, tw):
    return image_HxWx3
  if h * tw != w * th:
    if w * th > h * tw:  # too wide
      cw = round(h * tw / th)
      image_HxWx3 = image_HxWx3[:, (w - cw) // 2:(w - cw) // 2 + cw]
    else:
      ch = round(w * th / tw)
      image_HxWx3 = image_HxWx3[(h - ch) // 2:(h - ch) // 2 + ch]
  if image_HxWx3.shape[:2] == (th, tw):
    return image_HxWx3
  return np.asarray(Image.fromarray(image_HxWx3).resize((tw, th), Image.BILINEAR))


def _read_pickle(path):
  if not os.path.isfile(path):
    raise FaceDataError(f'{path}: no such validation pack')
  for encoding in ('ASCII', 'bytes'):
    try:
      with open(path, 'rb') as f:
        return pickle.load(f, encoding=encoding)
    except UnicodeDecodeError:
      continue
    except Exception as e:  # a non-pickle raises several types
      raise FaceDataError(f'{path}: not a pickle of (encoded images, issame) '
                          f'({type(e).__name__}: {str(e)[:80]})') from None
  raise FaceDataError(f'{path}: cannot be unpickled as ASCII or bytes')


def load_bin(path, image_size=None):
  """(images_2NxHxWx3 uint8, issame_N bool) of an insightface validation pack; images
  resized to `image_size` (height, width) where given or where they differ in size."""
  obj = _read_pickle(path)
  if not (isinstance(obj, (tuple, list)) and len(obj) == 2):
    raise FaceDataError(f'{path}: holds a {type(obj).__name__}, not a pair '
                        '(encoded images, issame)')
  bins, issame = obj
  try:
    issame = np.asarray(list(issame), bool)
    bins = list(bins)
  except (TypeError, ValueError):
    raise FaceDataError(f'{path}: (images, issame) are not sequences') from None
  if len(bins) != 2 * len(issame) or not len(issame):
    raise FaceDataError(f'{path}: {len(bins)} images for {len(issame)} pairs; a pack '
                        'holds 2 images per pair and at least one pair')
  images = [decode_image(bytes(np.asarray(b).tobytes()) if not isinstance(b, bytes) else b,
                         f'{path} image {i}') for i, b in enumerate(bins)]
  size = tuple(image_size) if image_size else images[0].shape[:2]
  return np.stack([resize(im, size) for im in images]), issame


def write_bin(path, images_2NxHxWx3, issame_N):
  """A validation pack as insightface's packer writes it: JPEG bytes (quality 95) of each
  image, then `pickle.dump((bins, issame_list), protocol=HIGHEST_PROTOCOL)`."""
  if len(images_2NxHxWx3) != 2 * len(issame_N):
    raise ValueError(f'{len(images_2NxHxWx3)} images for {len(issame_N)} pairs')
  bins = [encode_jpeg(im) for im in images_2NxHxWx3]
  with open(path, 'wb') as f:
    pickle.dump((bins, [bool(s) for s in issame_N]), f, protocol=pickle.HIGHEST_PROTOCOL)
  return path


def read_lfw_pairs(pairs_path, image_root, image_size=None):
  """(images_2NxHxWx3, issame_N) from LFW's `pairs.txt` (a header line `folds pairs`, then
  `name i j` for a same pair and `name1 i name2 j` for a different one) and the LFW
  image folder `image_root/<name>/<name>_<NNNN>.jpg`."""
  if not os.path.isfile(pairs_path):
    raise FaceDataError(f'{pairs_path}: no such pairs file')
  with open(pairs_path) as f:
    lines = [line.split() for line in f if line.strip()]
  images, issame = [], []
  for n, fields in enumerate(lines[1:], 2):
    if len(fields) == 3:
      files = [(fields[0], fields[1]), (fields[0], fields[2])]
    elif len(fields) == 4:
      files = [(fields[0], fields[1]), (fields[2], fields[3])]
    else:
      raise FaceDataError(f'{pairs_path}: line {n} has {len(fields)} fields; a pair is '
                          '"name i j" or "name1 i name2 j"')
    for name, number in files:
      path = os.path.join(image_root, name, f'{name}_{int(number):04d}.jpg')
      if not os.path.isfile(path):
        raise FaceDataError(f'{pairs_path}: line {n} names {path}, which does not exist')
      with open(path, 'rb') as f:
        images.append(decode_image(f.read(), path))
    issame.append(len(fields) == 3)
  if not issame:
    raise FaceDataError(f'{pairs_path}: no pairs after the header line')
  size = tuple(image_size) if image_size else images[0].shape[:2]
  return np.stack([resize(im, size) for im in images]), np.array(issame)
