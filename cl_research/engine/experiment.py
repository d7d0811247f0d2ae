"""`train_and_evaluate(config, workdir)`: every run of a sweep, its outputs and summary.

The CLI (`cl_research.run`), the tests and the notebooks all call this one function. The
task of `config.task` (`cl_research.engine.tasks`) loads its data and groups the sweep's
points; `cl_research.engine.loop` trains each group. Groups are dealt out over hosts and
over pinned local processes; every file is written atomically; a rerun on the same
workdir skips finished runs and resumes interrupted groups from their last checkpoint.
What the workdir holds: `cl_research.outputs`.
"""

import dataclasses
import logging
from typing import Any

import cl_research
from cl_research import files
from cl_research import outputs
from cl_research.configs import sweeps
from cl_research.engine import checks
from cl_research.engine import loop
from cl_research.engine import tasks
from cl_research.outputs import provenance
from cl_research.platform import local_processes
from cl_research.platform import runtime as runtime_lib
from cl_research.platform import sharding

log = logging.getLogger(__name__)


def deal_in_blocks(run_groups, count):
  """`count` shares of consecutive groups, sizes within one of each other: groups of a
  feature size sit together in sweep order, so a process compiles fewer train steps."""
  bounds = [i * len(run_groups) // count for i in range(count + 1)]
  return [run_groups[a:b] for a, b in zip(bounds, bounds[1:])]


@dataclasses.dataclass(frozen=True)
class Payload:
  """What the parent hands its local processes (`local_processes.run`)."""
  task: Any
  workdir: str
  groups_per_process: list  # process i trains groups_per_process[i]
  metadata: dict


def train_share(payload_path, index, cores):
  """Entry of local process `index`: trains its share of the groups; only process 0
  shows a progress bar."""
  payload = local_processes.read_payload(payload_path)
  cl_research.setup_logging(f'process {index}')
  runtime_lib.enable_compilation_cache()
  metadata = {**payload.metadata, 'local_process': {'index': index, 'cores': cores}}
  loop.train_groups(payload.task, payload.workdir, payload.groups_per_process[index],
                    metadata, show_progress=index == 0, cores=cores)


def train_and_evaluate(config, workdir, dataset=None):
  """Runs every point of `config.sweep` and writes all outputs under `workdir`; returns
  the results (one dict per run, in sweep order). `dataset`: an in-memory dataset for
  the digits task (default: `data.load(config.data)`). Raises ConfigError, DataError,
  FaceDataError or `kernels.Unavailable` before writing anything.
  """
  checks.validate(config)
  task = tasks.for_config(config, dataset)
  process, num_processes = sharding.initialize(config.parallel)
  runtime = runtime_lib.resolve(config)
  points = sweeps.expand_runs(config)
  task.prepare(runtime, points)
  if process == 0:
    outputs.prepare_workdir(config, workdir)
  sharding.barrier('workdir-ready')
  mine = task.group_points(points)[process::num_processes]
  unfinished = [[p for p in g if outputs.finished_result(
      outputs.run_paths(workdir, sweeps.run_name(p))) is None] for g in mine]
  unfinished = [g for g in unfinished if g]
  skipped = sum(len(g) for g in mine) - sum(len(g) for g in unfinished)
  if skipped:
    log.info('%d finished runs found in %s: not retrained', skipped, workdir)
  runtime = runtime.for_groups(len(unfinished))
  task.for_groups(runtime)
  metadata = provenance.metadata(config, task.data_record(), runtime)
  if process == 0:
    files.write_json(outputs.workdir_file(workdir, 'metadata.json'), metadata)
  count = runtime.local_processes
  if count > 1:
    local_processes.run('cl_research.engine.experiment:train_share',
                        Payload(task, workdir, deal_in_blocks(unfinished, count), metadata),
                        count)
  else:
    loop.train_groups(task, workdir, unfinished, metadata, show_progress=process == 0)
  sharding.barrier('runs-done')
  results = [outputs.finished_result(outputs.run_paths(workdir, sweeps.run_name(p)))
             for p in points]
  if process == 0:
    task.write_summary(workdir, points, results)
  sharding.barrier('summary-written')
  return results
