"""The streaming input pipeline for data that does not fit in memory (faces), with Grain.

`MapDataset.source(source)[process::processes]` (one shard per `jax` process), a seeded
shuffle that changes every epoch, endless repetition, a per-example random horizontal
flip and the resize to the network's input, normalisation `(x - 127.5) / 128`, and
fixed-size batches (this process's share of the global batch). Every random choice is
a function of the seed and the example's position in the stream, so the iterator's
state (`get_state()`, a small dict saved with the checkpoint) is all a resumed run needs
to continue with the same batches. Worker processes decode in parallel
(`data.workers`); 0 decodes in threads of this process. MNIST and Fashion-MNIST stay on
the device (`cl_research.data.device_batches`).
"""

import dataclasses

from absl import flags
import grain
import jax
import numpy as np

from cl_research.data import faces


def normalize(images_uint8):
  """uint8 pixels -> float32 `(x - 127.5) / 128`, the ECCV16 prototxt's scale (insightface
  divides by 127.5: the same up to 0.4%)."""
  return (np.asarray(images_uint8, np.float32) - 127.5) / 128.0


@dataclasses.dataclass(frozen=True)
class Augment:
  """One example -> the network's input: resized to `size` (height, width), mirrored
  with probability one half when `flip`, normalised."""
  size: tuple
  flip: bool = True

  def __call__(self, example, rng):
    image = faces.resize(np.asarray(example['image']), self.size)
    if self.flip and rng.random() < 0.5:
      image = image[:, ::-1]
    return {'image': normalize(image), 'label': np.int32(example['label'])}


def dataset(source, batch_size, seed, size, flip=True, process_index=None,
            process_count=None):
  """The endless stream of batches of `source` for this process: a `grain.MapDataset`
  whose element k is the k-th batch. `batch_size` is the global batch; each of the
  `process_count` processes (default: jax's) reads its own shard of the examples and
  makes batches of `batch_size / process_count`."""
  index = jax.process_index() if process_index is None else process_index
  count = jax.process_count() if process_count is None else process_count
  if batch_size % count:
    raise ValueError(f'batch_size={batch_size} does not split over {count} processes')
  ds = grain.MapDataset.source(source)[index::count]
  ds = ds.seed(seed).shuffle().repeat(None)
  ds = ds.random_map(Augment(tuple(size), flip))
  return ds.batch(batch_size // count, drop_remainder=True)


def iterator(ds, workers=0, threads=4, prefetch=8):
  """An iterator over `ds` with `get_state()` / `set_state()`: `workers` processes
  decode batches ahead (0: `threads` threads of this process read `prefetch` ahead)."""
  it_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=threads,
                                               prefetch_buffer_size=prefetch))
  if workers:
    if not flags.FLAGS.is_parsed():  # grain's workers read absl flags (their defaults here)
      flags.FLAGS.mark_as_parsed()
    it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
  return iter(it_ds)
