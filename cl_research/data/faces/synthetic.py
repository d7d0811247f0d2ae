"""A generated face pack: procedural identities in the real formats, for offline tests.

Each identity is a drawing made from its own seed: an oval of a skin-like tone with a
striped texture, two eyes and a mouth, their sizes, places, tone and stripes drawn per
identity. Each image of it puts that drawing on a background of random colours, shifts
it by up to 6 px, flips it half of the time, jitters brightness and contrast and adds
Gaussian noise: what identifies a person is the shape, never the picture's colours.
The training identities go into an insightface pack (`train.rec`, `train.idx`,
`property`, by `recordio.write_pack`); the verification pairs, drawn from other
identities the network never sees, into a validation pack (`synthetic.bin`, by
`packs.write_bin`). Not faces: what it tests is the
code path (formats, pipeline, backbone, protocol), not face recognition.
"""

import hashlib
import json
import os
import shutil

import numpy as np

from cl_research import files
from cl_research.data.faces import packs
from cl_research.data.faces import recordio

SIZE = 112
VAL_NAME = 'synthetic'  # the validation pack: synthetic.bin


def _ellipse(yy, xx, cy, cx, ry, rx):
  return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def identity_drawing(seed, size=SIZE):
  """(the float HxWx3 drawing of identity `seed` on black, the mask of its oval)."""
  rng = np.random.default_rng([seed, 7919])
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) * (SIZE / size)
  image = np.zeros((size, size, 3), np.float32)
  cy, cx = 60 + rng.uniform(-5, 5), 56 + rng.uniform(-5, 5)
  face = _ellipse(yy, xx, cy, cx, rng.uniform(36, 48), rng.uniform(28, 40))
  angle, freq = rng.uniform(0, np.pi), rng.uniform(0.1, 0.4)
  stripes = 25 * np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy) + rng.uniform(0, 6))
  image[face] = np.array([200, 160, 130]) + rng.uniform(-30, 30, 3) + stripes[face][:, None]
  eye_y, eye_dx, eye_r = cy - rng.uniform(8, 16), rng.uniform(10, 18), rng.uniform(3, 6)
  for side in (-1, 1):
    image[_ellipse(yy, xx, eye_y, cx + side * eye_dx, eye_r, eye_r * 1.3)] = 40
  mouth = _ellipse(yy, xx, cy + rng.uniform(14, 22), cx + rng.uniform(-4, 4),
                   rng.uniform(2, 5), rng.uniform(6, 16))
  image[mouth] = np.array([150, 60, 60])
  return image, face


def sample_images(seed, count, rng, size=SIZE):
  """`count` uint8 images of identity `seed`: on a background of random colours, shifted,
  flipped, with brightness and contrast jittered, noisy."""
  drawing, mask = identity_drawing(seed, size)
  pad = 6
  t = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
  out = []
  for _ in range(count):
    background = rng.uniform(0, 255, 3) * (1 - t) + rng.uniform(0, 255, 3) * t
    image = np.where(mask[..., None], drawing, np.broadcast_to(background, drawing.shape))
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode='edge')
    dy, dx = rng.integers(0, 2 * pad + 1, 2)
    image = padded[dy:dy + size, dx:dx + size]
    if rng.random() < 0.5:
      image = image[:, ::-1]
    image = image * rng.uniform(0.7, 1.3) + rng.uniform(-30, 30)
    image = image + rng.normal(0, 12, image.shape)
    out.append(np.clip(image, 0, 255).astype(np.uint8))
  return out


def pairs_of(labels, num_pairs, rng):
  """Consecutive-pair index order for a validation pack: half same identity, half
  different, shuffled."""
  labels = np.asarray(labels)
  out = []
  for k in range(num_pairs):
    if k % 2 == 0:
      c = rng.choice(np.unique(labels))
      a, b = rng.choice(np.flatnonzero(labels == c), 2, replace=False)
    else:
      while True:
        a, b = rng.choice(len(labels), 2, replace=False)
        if labels[a] != labels[b]:
          break
    out.append((a, b, k % 2 == 0))
  rng.shuffle(out)
  return out


def generate(folder, identities=32, images_per_identity=16, val_identities=16,
             val_images_per_identity=8, num_pairs=400, seed=0):
  """Writes the pack and the validation pack into `folder` (atomically: a folder that
  exists is complete). Returns `folder`."""
  if os.path.exists(os.path.join(folder, 'spec.json')):
    return folder
  rng = np.random.default_rng(seed)
  images, labels = [], []
  for c in range(identities):
    images += sample_images(seed * 100_003 + c, images_per_identity, rng)
    labels += [c] * images_per_identity
  tmp = f'{folder}.tmp{os.getpid()}'
  shutil.rmtree(tmp, ignore_errors=True)
  recordio.write_pack(tmp, images, labels)
  val_images, val_labels = [], []
  for c in range(identities, identities + val_identities):
    val_images += sample_images(seed * 100_003 + c, val_images_per_identity, rng)
    val_labels += [c] * val_images_per_identity
  order = pairs_of(val_labels, num_pairs, rng)
  pair_images = [val_images[i] for a, b, _ in order for i in (a, b)]
  packs.write_bin(os.path.join(tmp, f'{VAL_NAME}.bin'), pair_images, [s for _, _, s in order])
  spec = dict(identities=identities, images_per_identity=images_per_identity,
              val_identities=val_identities, num_pairs=num_pairs, seed=seed)
  with open(os.path.join(tmp, 'spec.json'), 'w') as f:
    json.dump(spec, f)
  os.makedirs(os.path.dirname(os.path.abspath(folder)), exist_ok=True)
  try:
    os.rename(tmp, folder)
  except OSError:  # another process finished first
    shutil.rmtree(tmp, ignore_errors=True)
  return folder


def default_folder(**spec):
  """Where `generate(**spec)` caches its pack: `$CL_RESEARCH_DATA/face_synthetic/<hash>`
  (default: the cache folder's `data/`)."""
  digest = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
  return os.path.join(files.data_home(), 'face_synthetic', digest)
