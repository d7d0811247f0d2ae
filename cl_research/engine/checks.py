"""The thin top-level check: walks a config's sections before any compute and before
anything is written. Each section is checked by the module that builds from it; this
module only knows which sections a run has (the shared ones, then its task's)."""

from cl_research import errors
from cl_research.configs import sweeps
from cl_research.core import losses
from cl_research.core import optim
from cl_research.core import step
from cl_research.engine import tasks
from cl_research.evaluation import statistics
from cl_research.platform import kernels
from cl_research.platform import sharding


def validate(config):
  """Raises ConfigError on the first value of `config` that cannot work."""
  errors.check_choice(config.task, 'task', tuple(tasks.TASKS))
  points = sweeps.validate(config)
  losses.validate(points, config.loss)
  step.validate_centers(config)
  optim.validate(config.optimizer)
  statistics.validate(config.analysis)
  kernels.validate(config.model)
  sharding.validate(config.parallel)
  errors.check(config.checkpoint_every >= 0,
               f'checkpoint_every={config.checkpoint_every!r} must be >= 0 (0: off)')
  for name in ('batch_size', 'num_steps', 'log_every'):
    errors.check(config[name] >= 1, f'{name}={config[name]!r} must be >= 1')
  tasks.TASKS[config.task].validate(config, points)
