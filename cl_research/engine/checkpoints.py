"""Orbax checkpoints of a group's train states, so an interrupted sweep resumes exactly.

The train state holds everything that changes (params, optimizer states, centers, step,
divergence record); the data order is a pure function of (seed, step), so the state and
the step are all a resumed run needs. Each group checkpoints on its own (processes of a
distributed sweep train different groups), so orbax runs with this process as its only
participant. Orbax writes into a temporary folder and renames it when complete; a kill
mid-save leaves the previous checkpoint.
"""

import logging
import os

import jax
import numpy as np
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


class GroupCheckpoints:
  """The checkpoints of one group under `directory`, with its members' names."""

  def __init__(self, directory):
    self.directory = os.path.abspath(directory)
    self._manager = None

  def manager(self):
    if self._manager is None:
      me = jax.process_index()
      options = ocp.CheckpointManagerOptions(
          max_to_keep=2, enable_async_checkpointing=False, create=False,
          multiprocessing_options=ocp.options.MultiprocessingOptions(
              primary_host=me, active_processes={me}))
      os.makedirs(self.directory, exist_ok=True)
      self._manager = ocp.CheckpointManager(self.directory, options=options)
    return self._manager

  def save(self, step, states, names, num_real, extra=None):
    """Saves the real members' states (padding dropped) and `extra` (JSON: what the task
    needs beyond the states to resume, e.g. a streaming pipeline's iterator state)."""
    real = jax.tree.map(lambda x: x[:num_real], states)
    self.manager().save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(real),
        meta=ocp.args.JsonSave({'names': list(names), 'extra': extra})))
    self.manager().wait_until_finished()

  def restore(self, states, names):
    """(step, states, extra) from the latest checkpoint holding every member of `names`;
    (0, states, None) when there is none. `states` gives shapes and padding."""
    if not os.path.isdir(self.directory):
      return 0, states, None
    step = self.manager().latest_step()
    if step is None:
      return 0, states, None
    meta = self.manager().restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore()))['meta']
    saved = meta['names']
    if not set(names) <= set(saved):
      log.warning('checkpoint in %s is of other runs: starting afresh', self.directory)
      return 0, states, None
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct((len(saved),) + x.shape[1:], x.dtype), states)
    restored = self.manager().restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract)))['state']
    rows = [saved.index(n) for n in names]
    rows += [rows[0]] * (jax.tree.leaves(states)[0].shape[0] - len(rows))
    states = jax.tree.map(lambda x: x[np.array(rows)], restored)
    return int(step), states, meta.get('extra')
