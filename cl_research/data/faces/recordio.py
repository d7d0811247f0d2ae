"""insightface's training packs (MXNet RecordIO: `train.rec` + `train.idx`), without MXNet.

The format, as dmlc-core writes it and `mxnet.recordio` packs it:
  * `train.idx`: text, one `key\\toffset` line per record (offset: the record's first byte).
  * `train.rec`: records back to back, each a uint32 magic `0xced7230a`, a uint32 whose
    low 29 bits are the part's length and top 3 bits a continuation flag, then the part,
    zero-padded to a multiple of 4 bytes. A payload holding the magic at a 4-aligned
    offset is split there into parts (flags 1 first, 2 middle, 3 last; 0 a whole record)
    and the reader puts the magic back between them.
  * a payload: the header `IfQQ` (uint32 flag, float32 label, uint64 id, uint64 id2);
    if flag > 0, `flag` float32 labels follow (and the header's label is 0); then the
    encoded image.
  * record 0: if its flag > 0, images are records 1 .. label[0] - 1 and the records from
    label[0] on hold each identity's [start, end) range; else every key is an image.
    An image's class is its label (the first element of a vector).
Nothing in the Python ecosystem reads these packs without MXNet (unmaintained since 2023),
so the reader is written here: `struct` for the framing, Pillow for the JPEGs.
"""

import io
import os
import struct

import numpy as np
from PIL import Image

from cl_research.data.faces.errors import FaceDataError

MAGIC = 0xced7230a
_MAGIC_BYTES = struct.pack('<I', MAGIC)
HEADER = struct.Struct('<IfQQ')  # flag, label, id, id2: 24 bytes
_LENGTH_BITS = 29


def _pad4(n):
  return (n + 3) // 4 * 4


def pack_payload(label, image_bytes, id_=0, id2=0):
  """A record's payload: the header (a float label, or a vector of them) and the bytes."""
  labels = np.atleast_1d(np.asarray(label, np.float32))
  if labels.size == 1 and np.ndim(label) == 0:
    return HEADER.pack(0, float(labels[0]), id_, id2) + image_bytes
  return HEADER.pack(labels.size, 0.0, id_, id2) + labels.tobytes() + image_bytes


def unpack_payload(payload, where=''):
  """(labels float32 vector, image bytes, flag) of a payload."""
  if len(payload) < HEADER.size:
    raise FaceDataError(f'{where}: a record of {len(payload)} bytes is shorter than the '
                        f'{HEADER.size}-byte header')
  flag, label, _, _ = HEADER.unpack_from(payload)
  if flag > 0:
    end = HEADER.size + 4 * flag
    return np.frombuffer(payload[HEADER.size:end], np.float32), payload[end:], flag
  return np.array([label], np.float32), payload[HEADER.size:], flag


def frame(payload):
  """The bytes of one record in the .rec file: split at 4-aligned copies of the magic
  (dmlc-core's RecordIOWriter), each part framed, the last padded to 4 bytes."""
  out, start = [], 0
  for i in range(0, len(payload) // 4 * 4, 4):
    if payload[i:i + 4] == _MAGIC_BYTES:
      flag = 1 if start == 0 else 2
      out += [_MAGIC_BYTES, struct.pack('<I', (flag << _LENGTH_BITS) | (i - start)),
              payload[start:i]]
      start = i + 4
  rest = payload[start:]
  flag = 3 if start else 0
  out += [_MAGIC_BYTES, struct.pack('<I', (flag << _LENGTH_BITS) | len(rest)), rest,
          b'\0' * (_pad4(len(rest)) - len(rest))]
  return b''.join(out)


def read_record(fd, offset, path):
  """The payload of the record at `offset` of the .rec file open as `fd` (parts joined).
  Positional reads (`os.pread`): threads can share the descriptor."""
  parts, at = [], offset
  while True:
    head = os.pread(fd, 8, at)
    if len(head) < 8:
      raise FaceDataError(f'{path}: truncated: the record at byte {offset} ends after '
                          f'{len(head)} of its 8 header bytes')
    magic, lrec = struct.unpack('<II', head)
    if magic != MAGIC:
      raise FaceDataError(f'{path}: bad magic number 0x{magic:08x} at byte {at} '
                          f'(expected 0x{MAGIC:08x}): not a RecordIO file, or the .idx '
                          'offsets are of another file')
    flag, length = lrec >> _LENGTH_BITS, lrec & ((1 << _LENGTH_BITS) - 1)
    part = os.pread(fd, length, at + 8)
    if len(part) < length:
      raise FaceDataError(f'{path}: truncated: the record at byte {offset} needs {length} '
                          f'bytes, the file has {len(part)}')
    parts.append(part)
    at += 8 + _pad4(length)
    if flag in (0, 3):
      return _MAGIC_BYTES.join(parts)


def read_index(idx_path):
  """{key: offset} of a .idx file, in file order."""
  if not os.path.isfile(idx_path):
    raise FaceDataError(f'{idx_path}: no such index file (a pack is train.rec + train.idx)')
  index = {}
  with open(idx_path) as f:
    for n, line in enumerate(f, 1):
      if not line.strip():
        continue
      fields = line.split('\t')
      try:
        index[int(fields[0])] = int(fields[1])
      except (ValueError, IndexError):
        raise FaceDataError(f'{idx_path}: line {n} is {line.strip()[:60]!r}, not '
                            '"key<TAB>offset"') from None
  if not index:
    raise FaceDataError(f'{idx_path}: the index is empty')
  return index


def decode_image(data, where=''):
  """Encoded image bytes -> HxWx3 uint8 (Pillow: JPEG, PNG, ...)."""
  try:
    with Image.open(io.BytesIO(data)) as img:
      return np.asarray(img.convert('RGB'))
  except Exception as e:  # Pillow raises several types for bad data
    raise FaceDataError(f'{where}: not a decodable image ({type(e).__name__}: {e})') from None


def encode_jpeg(image_HxWx3, quality=95):
  """insightface's packer writes JPEG at quality 95."""
  buf = io.BytesIO()
  Image.fromarray(np.asarray(image_HxWx3, np.uint8)).save(buf, format='JPEG', quality=quality)
  return buf.getvalue()


class RecordIOSource:
  """Random access to the images of an insightface pack: items are
  `{'image': HxWx3 uint8, 'label': int}`. The file is opened per process on first use,
  so the source can be handed to worker processes, and read positionally, so threads
  can share it."""

  def __init__(self, rec_path, idx_path):
    self.rec_path, self.idx_path = str(rec_path), str(idx_path)
    if not os.path.isfile(self.rec_path):
      raise FaceDataError(f'{self.rec_path}: no such file (a pack is train.rec + train.idx)')
    index = read_index(self.idx_path)
    self._offsets = index
    self._fd = None
    size = os.path.getsize(self.rec_path)
    last = max(index.values())
    if last + 8 > size:
      raise FaceDataError(f'{self.rec_path}: truncated: {self.idx_path} points at byte '
                          f'{last}, the file has {size} bytes')
    labels, _, flag = unpack_payload(self._payload(min(index)), f'{self.rec_path} record 0')
    if flag > 0:
      self.keys = list(range(1, int(labels[0])))
      self._ranges_from = int(labels[0])
    else:
      self.keys = sorted(index)
      self._ranges_from = None
    missing = [k for k in self.keys[:1] + self.keys[-1:] if k not in index]
    if missing or not self.keys:
      raise FaceDataError(f'{self.idx_path}: record 0 announces images 1..'
                          f'{len(self.keys)}, the index lacks key {missing[:1] or [1]}')

  def __getstate__(self):
    return {**self.__dict__, '_fd': None}

  def __del__(self):
    if getattr(self, '_fd', None) is not None:
      os.close(self._fd)

  def _payload(self, key):
    if self._fd is None:
      self._fd = os.open(self.rec_path, os.O_RDONLY)
    return read_record(self._fd, self._offsets[key], self.rec_path)

  def __len__(self):
    return len(self.keys)

  def label_of(self, i):
    labels, _, _ = unpack_payload(self._payload(self.keys[i]), self.rec_path)
    return int(labels[0])

  def __getitem__(self, i):
    key = self.keys[i]
    labels, image, _ = unpack_payload(self._payload(key), f'{self.rec_path} record {key}')
    return {'image': decode_image(image, f'{self.rec_path} record {key}'),
            'label': int(labels[0])}

  @property
  def num_classes(self):
    """From the `property` file beside the pack, else the identity ranges of record 0,
    else the largest label + 1 (a scan of every header)."""
    prop = os.path.join(os.path.dirname(self.rec_path), 'property')
    if os.path.isfile(prop):
      with open(prop) as f:
        return int(f.read().split(',')[0])
    if self._ranges_from is not None:
      return len(self._offsets) - self._ranges_from
    return max(self.label_of(i) for i in range(len(self))) + 1


def write_pack(folder, images, labels, quality=95):
  """Writes `train.rec`, `train.idx` and `property` as insightface's packer does: record 0
  (flag 2, labels [first range record, end]), the images 1..N as JPEG, then one record
  per identity holding its [start, end) image range. Images must be grouped by label,
  labels 0..C-1. Returns the folder."""
  labels = np.asarray(labels, int)
  if np.any(np.diff(labels) < 0):
    raise ValueError('write_pack: images must be sorted by label')
  num_classes = int(labels.max()) + 1
  first_range = len(labels) + 1
  records = [pack_payload([first_range, first_range + num_classes], b'')]
  records += [pack_payload(float(y), encode_jpeg(img, quality), id_=i + 1)
              for i, (img, y) in enumerate(zip(images, labels))]
  for c in range(num_classes):
    where = np.flatnonzero(labels == c) + 1
    records.append(pack_payload([where[0], where[-1] + 1], b''))
  os.makedirs(folder, exist_ok=True)
  offset, lines = 0, []
  with open(os.path.join(folder, 'train.rec'), 'wb') as f:
    for key, payload in enumerate(records):
      data = frame(payload)
      f.write(data)
      lines.append(f'{key}\t{offset}\n')
      offset += len(data)
  with open(os.path.join(folder, 'train.idx'), 'w') as f:
    f.writelines(lines)
  h, w = np.asarray(images[0]).shape[:2]
  with open(os.path.join(folder, 'property'), 'w') as f:
    f.write(f'{num_classes},{h},{w}')
  return folder
