"""Tasks: what differs between kinds of experiment; `cl_research.engine.loop` runs them all.

`config.task` names one of `TASKS`; this is the one place that choice is read. A task
(built from the config, and optionally an in-memory dataset) provides:

  prepare(runtime, points)   load and check its data (errors before anything is written)
  data_record()              what metadata.json says of the data
  group_points(points)       the sweep's points in groups that train together
  for_groups(runtime)        the runtime once the processes are dealt
  start(group, paths)        a group in training (below)
  describe_run(point)        the result fields that describe a run's data and model
  result_metrics             the metric keys every result carries (None if unmeasured)
  write_summary(workdir, points, results)   summary.csv, statistics, plots of the sweep
  table_columns(results)     what the command prints per run
  outputs_made               the main picture it writes, for the command's last line

and a group in training provides `states` (stacked on a leading member axis), `cadences`
(steps where it observes), `checkpoint_name`, `resume(step, extra)`,
`begin(states, step)`, `advance(states, step, num_steps) -> (states, aux)`,
`observe(states, step)`, `checkpoint_extra()`, `close()`, `evaluate(i, state, diverged)`,
`training_record(i, state, last, diverged)` and `write_files(i, point, result, artifacts,
paths)`. Adding a family of datasets means writing one task module.
"""

from cl_research.engine.tasks import digits
from cl_research.engine.tasks import faces

TASKS = {'digits': digits.DigitsTask, 'faces': faces.FacesTask}


def for_config(config, dataset=None):
  """The task `config.task` names (`dataset`: an in-memory dataset for the digits task)."""
  return TASKS[config.task](config, dataset)
