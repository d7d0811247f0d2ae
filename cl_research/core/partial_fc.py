"""Partial FC (An et al., "Killing Two Birds with One Stone: Efficient and Robust Training
of Face Recognition CNNs by Partial FC", CVPR 2022; insightface's `PartialFC_V2`).

With many identities the classifier's logits (B x C) and its update dominate a face
step. Partial FC computes the logits of a sample of the classes only: every class of
the batch (the positives) and random others (negatives) up to a rate r of the classes;
the loss is the head's cross-entropy over the sampled classes, and only the sampled
columns of the classifier (and their optimizer state) change, as insightface updates
only the sampled rows and their momentum.

As insightface, each of the S shards of the classifier (`parallel.classifier_shard`)
samples its own classes: the positives among them first, then negatives drawn by a
seeded random order, k = ceil(r C / S) a shard, raised where needed to min(B, C / S) so
that every positive fits (shapes are static under `jit`; insightface's sample size is
dynamic). Within a shard the sampled classes keep their order, so r = 1 samples every
class in order and equals the full classifier.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp

from cl_research.core import layout


@dataclasses.dataclass(frozen=True)
class Sample:
  index_K: jax.Array  # the sampled classes, ascending
  mask_C: jax.Array  # True for a sampled class
  labels_B: jax.Array  # each example's label as a position in index_K


def sample_size(num_classes, rate, shards, batch_size):
  """Classes sampled per shard: ceil(rate C / S), at least min(B, C / S)."""
  per_shard = num_classes // shards
  return min(per_shard, max(math.ceil(rate * num_classes / shards),
                            min(batch_size, per_shard)))


def sample(labels_B, num_classes, rate, shards, key):
  """The classes of one step (`Sample`): the positives of `labels_B` and seeded random
  negatives, `sample_size` of them on each of `shards` equal blocks of the classes."""
  per_shard = num_classes // shards
  k = sample_size(num_classes, rate, shards, labels_B.shape[0])
  positive_C = jnp.zeros((num_classes,), bool).at[labels_B].set(True)
  # positives rank first (2 > any uniform draw), the others in a random order
  rank_SxCs = jnp.where(positive_C, 2.0, jax.random.uniform(key, (num_classes,)))
  _, local_SxK = jax.lax.top_k(rank_SxCs.reshape(shards, per_shard), k)
  offsets_Sx1 = (jnp.arange(shards) * per_shard)[:, None]
  index_K = (jnp.sort(local_SxK, axis=-1) + offsets_Sx1).reshape(-1)
  mask_C = jnp.zeros((num_classes,), bool).at[index_K].set(True)
  return Sample(index_K, mask_C, jnp.searchsorted(index_K, labels_B).astype(labels_B.dtype))


def select(classifier, index_K):
  """The classifier params of the sampled classes: kernel columns (D x K), bias (K)."""
  out = {'kernel': jnp.take(classifier['kernel'], index_K, axis=1)}
  if 'bias' in classifier:
    out['bias'] = jnp.take(classifier['bias'], index_K, axis=0)
  return out


def keep_sampled(new_tree, old_tree, mask_C):
  """`new_tree` where its leaves with a class axis (`layout.class_axis`: the classifier's
  kernel and bias and the optimizer state's traces of them) keep their old values in
  the classes not sampled: they were not part of this step."""
  num_classes = mask_C.shape[0]

  def keep(path, new, old):
    axis = layout.class_axis(path, new)
    if axis is None or new.shape[axis] != num_classes:
      return new
    shape = [num_classes if a == axis else 1 for a in range(new.ndim)]
    return jnp.where(mask_C.reshape(shape), new, old)

  return jax.tree_util.tree_map_with_path(keep, new_tree, old_tree)
