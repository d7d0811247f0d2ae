"""The seam between the models and the code that runs their convolutions and PReLUs.

Models take a `Kernels` (default `XLA`: plain `jax.lax`) and never import an
implementation. Faster implementations for one platform (oneDNN on x86-64 CPUs) live in
`cl_research.platform.kernels`, which hands the trainer a `Kernels` of its own.
"""

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Kernels:
  """One implementation of the two operations the models delegate."""
  name: str
  conv_general_dilated: Callable  # `jax.lax.conv_general_dilated`'s signature (flax nn.Conv)
  prelu: Callable  # (x_...xC, slope_C) -> x where x >= 0, else slope * x


def xla_prelu(x, slope):
  return jnp.where(x >= 0, x, slope * x)


XLA = Kernels('xla', jax.lax.conv_general_dilated, xla_prelu)
