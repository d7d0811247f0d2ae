"""Where the classes lie in a TrainState's leaves: the classifier's D x C kernel along
axis 1, its bias (C) along axis 0, the centers' C x D rows along axis 0, and the
optimizer's traces of each in the same place (they share the shapes). Sharding splits
these leaves over the `classes` devices along that axis (`platform.sharding`); Partial
FC keeps the classes a step did not sample along it (`core.partial_fc`)."""

import jax


def class_axis(path, leaf):
  """The axis of `leaf` (at `path` of a TrainState, or of its params or optimizer state)
  that indexes classes, or None for a leaf without one."""
  key = jax.tree_util.keystr(path)
  ndim = getattr(leaf, 'ndim', 0)
  if "['classifier']" in key:
    return {2: 1, 1: 0}.get(ndim)
  if key.startswith(('.centers', '.center_opt_state')) and ndim == 2:
    return 0
  return None
