"""Image transforms of the in-memory datasets: fitting stored images to the model
(`to_model_input`) and the random shifts of `data.augment_shift` (`random_shift`)."""

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

MAX_NATIVE_SIDE = 64  # larger images are resized to this unless data.image_size says


def to_model_input(images_NxHxWxC, channels=0, image_size=0):
  """The module docstring's two rules: channels, then size (bilinear, per image)."""
  x = images_NxHxWxC[..., :3] if images_NxHxWxC.shape[-1] == 4 else images_NxHxWxC
  if channels == 1 and x.shape[-1] == 3:
    x = np.round(x @ np.array([0.299, 0.587, 0.114]))[..., None].clip(0, 255).astype(np.uint8)
  elif channels == 3 and x.shape[-1] == 1:
    x = np.repeat(x, 3, axis=-1)
  h, w = x.shape[1:3]
  size = image_size or (MAX_NATIVE_SIDE if max(h, w) > MAX_NATIVE_SIDE else 0)
  if size and (h, w) != (size, size):
    resized = [np.asarray(Image.fromarray(im.squeeze(-1) if im.shape[-1] == 1 else im)
                          .resize((size, size), Image.BILINEAR)) for im in x]
    x = np.stack(resized).reshape(len(x), size, size, x.shape[-1])
  return x


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
