"""The one error type of a config that cannot work, and the checks that raise it.

Each builder (model, head, regularizer, optimizer, data source, task, evaluator)
validates its own config section with these; `cl_research.engine.checks` walks the
sections before any compute and before anything is written.
"""

import math


class ConfigError(ValueError):
  """A config value that cannot work; the message names it and what would be valid."""


def check(ok, message):
  """Raises ConfigError(message) unless `ok`."""
  if not ok:
    raise ConfigError(message)


def check_choice(value, name, valid):
  check(value in valid, f'{name}={value!r} is not one of {", ".join(map(str, valid))}')


def is_number(value):
  """A finite int or float (not a bool)."""
  return (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value))
