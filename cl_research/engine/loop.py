"""The one training loop: a group of runs from its first step to its result records.

Every task (`cl_research.engine.tasks`) trains through `train_group`; the loop owns what
is common to all of them and never asks which task it runs:
  * the step cadence: training advances in chunks that end where something is due
    (logging, checkpoints, the task's own cadences such as snapshots or evaluations);
  * metrics.jsonl per run, with the task's observations at the chunk ends, and the same
    scalars (and the task's images) as TensorBoard event files in the run's folder;
  * orbax checkpoints of the group's states (with the task's resumable extras, e.g. the
    input pipeline's iterator state) and resuming from them;
  * stopping a group whose runs have all diverged;
  * the progress bar;
  * the result record of each run (`result.json`), whose task-specific part the task
    supplies.
"""

import logging
import time

import jax
import numpy as np
import tqdm

from cl_research import files
from cl_research import outputs
from cl_research.configs import sweeps
from cl_research.core import step as step_lib
from cl_research.engine import checkpoints
from cl_research.engine import groups

log = logging.getLogger(__name__)


def chunk_ends(num_steps, cadences):
  """Steps where a chunk of training ends: every multiple of each cadence (0: never) and
  the last step."""
  ends = {num_steps}
  for every in cadences:
    if every:
      ends.update(range(every, num_steps, every))
  return sorted(ends)


def _write_logs(logs, aux, observed, step, end, diverged_at, log_every, num_steps):
  """Writes the due steps of a chunk (`aux`: {name: (steps, M)}) to each run's log; the
  chunk's last step carries the task's observations too. A diverged run logs nothing
  past the step where it diverged."""
  for t in range(end - step):
    s = step + t + 1
    due = step_lib.is_due(s, log_every, num_steps)
    for i, run_log in enumerate(logs):
      if diverged_at[i] and s > diverged_at[i]:
        continue
      record = {k: float(v[t, i]) for k, v in aux.items()} if due else {}
      if s == end:
        record.update(observed[i])
      if record:
        run_log.write(s, record)


def train_group(task, group, workdir, metadata, progress):
  """Trains the runs of `group` (points of the sweep) together, resuming from their
  checkpoint if one exists, and writes each run's result.json. Returns the results."""
  start = time.perf_counter()
  config = task.config
  names = [sweeps.run_name(p) for p in group]
  paths = [outputs.run_paths(workdir, n).create() for n in names]
  run = task.start(group, paths)
  ckpt = checkpoints.GroupCheckpoints(outputs.checkpoint_dir(workdir, run.checkpoint_name))
  step, states, extra = ckpt.restore(run.states, names)
  if step:
    log.info('%s: resumed at step %d', run.checkpoint_name, step)
  run.resume(step, extra)
  # TensorBoard events come from one process per run: the one that trains it, or
  # process 0 where every process trains the run
  events = config.tensorboard and (jax.process_index() == 0 or not run.spans_processes)
  logs = [outputs.RunLog(p.metrics, step, events=events) for p in paths]
  for run_log, record in zip(logs, run.begin(states, step)):
    if record:
      run_log.write(step, record)
  progress.update(step * len(group))
  cadences = (config.log_every, config.checkpoint_every) + run.cadences
  for end in (e for e in chunk_ends(config.num_steps, cadences) if e > step):
    states, aux = run.advance(states, step, end - step)
    diverged_at = np.asarray(jax.device_get(states.diverged_at))
    observed = run.observe(states, end)
    _write_logs(logs, aux, observed, step, end, diverged_at, config.log_every,
                config.num_steps)
    for run_log, images in zip(logs, run.images(end)):
      for tag, image in images.items():
        run_log.image(end, tag, image)
    progress.update((end - step) * len(group))
    step = end
    if diverged_at[:len(group)].all():
      log.warning('%s: every run diverged; stopping at step %d', run.checkpoint_name, step)
      progress.update((config.num_steps - step) * len(group))
      break
    if step_lib.is_due(step, config.checkpoint_every, config.num_steps):
      ckpt.save(step, states, names, len(group), extra=run.checkpoint_extra())
  run.close()
  for run_log in logs:
    run_log.close()
  wall_s = (time.perf_counter() - start) / len(group)
  return [write_result(task, run, i, point, groups.member(states, i), logs[i].last, wall_s,
                       metadata, paths[i]) for i, point in enumerate(group)]


def write_result(task, run, i, point, state, last, wall_s, metadata, paths):
  """Evaluates member `i` of a trained group and writes its result.json: the point, the
  status (a run whose state or final features are not finite has diverged, and records
  no metric), every metric key of the task (None where unmeasured), the last logged
  losses, what the task adds, and the wall time."""
  start = time.perf_counter()
  config = task.config
  name = sweeps.run_name(point)
  diverged_at = int(state.diverged_at)
  quantity = step_lib.diverged_quantity(state.diverged_code)
  measured, artifacts = run.evaluate(i, state, diverged=bool(diverged_at))
  if measured is None and not diverged_at:  # finite training, non-finite evaluation
    diverged_at, quantity = config.num_steps, 'features'
  if diverged_at:  # the numbers of a diverged run mean nothing: record none of them
    log.warning('run %s diverged: %s non-finite at step %d', name, quantity, diverged_at)
    measured = {}
  result = {
      'name': name, **point, 'status': 'diverged' if diverged_at else 'complete',
      'diverged_step': diverged_at or None, 'diverged_quantity': quantity or None,
      **task.describe_run(point), 'num_steps': config.num_steps, 'dtype': config.model.dtype,
      **dict.fromkeys(task.result_metrics), **measured,
      'final_loss': last.get('loss'), 'final_softmax_loss': last.get('softmax_loss'),
      'final_regularizer_loss': last.get('regularizer_loss'),
      **run.training_record(i, state, last, diverged=bool(diverged_at)),
  }
  run.write_files(i, point, result, artifacts, paths)
  result['wall_s'] = round(wall_s + time.perf_counter() - start, 2)
  result['metadata'] = metadata
  files.write_json(paths.result, result)
  return result


def progress_bar(total_steps, show):
  return tqdm.tqdm(total=total_steps, unit='step', mininterval=1.0, dynamic_ncols=True,
                   disable=not show or not total_steps)


def train_groups(task, workdir, run_groups, metadata, show_progress=True, cores=None):
  """Trains and writes every run of `run_groups` in this process, one group after
  another."""
  total = sum(len(g) for g in run_groups)
  with progress_bar(total * task.config.num_steps, show_progress) as progress:
    done = 0
    for group in run_groups:
      progress.set_description(progress_label(group, done, total, cores))
      train_group(task, group, workdir, metadata, progress)
      done += len(group)


def progress_label(group, done_before, total, cores):
  """What a progress bar shows while `group` trains: 'lam=0.1 d=3, run 3 of 5, core 0'
  (with the head, regularizer and held-out classes where they are not the defaults)."""
  lams = ','.join(f"{p['lam']:g}" for p in group)
  first = done_before + 1
  runs = (f'run {first} of {total}' if len(group) == 1 else
          f'runs {first}-{done_before + len(group)} of {total}')
  where = f", core{'s' if len(cores) > 1 else ''} {','.join(map(str, cores))}" if cores else ''
  loss = sweeps.describe_point({k: v for k, v in group[0].items()
                                if k in ('head', 'regularizer', 'holdout')})
  loss = f', {loss}' if loss else ''
  return f"lam={lams} d={group[0]['feature_size']}{loss}, {runs}{where}"
