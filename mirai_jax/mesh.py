"""Device mesh and shardings shared by every stage that computes.

Two axes: `data` (the batch is split over it) and `fsdp` (parameters may be
split over it, FSDP-style; the batch is split over it too). With fsdp=1 the
parameters are replicated and training is plain data parallelism.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

AXES = ('data', 'fsdp')


def make_mesh(fsdp: int = 1, devices: int = 0) -> jax.sharding.Mesh:
  """`devices` (0 = all) split as (devices / fsdp) x fsdp."""
  n = devices or jax.device_count()
  if n > jax.device_count():
    raise ValueError(f'config.mesh.devices={devices} but only '
                     f'{jax.device_count()} devices are present')
  if jax.process_count() > 1 and n != jax.device_count():
    raise ValueError(f'config.mesh.devices={devices}: a run of '
                     f'{jax.process_count()} processes uses every device; '
                     'set config.mesh.devices=0')
  if fsdp < 1 or n % fsdp:
    raise ValueError(f'config.mesh.fsdp={fsdp} does not divide the {n} '
                     'devices; use a divisor of the device count')
  # Auto axes: XLA propagates shardings from the inputs and outputs we give
  # (jax.make_mesh defaults to Explicit axes, which would need annotations
  # inside the models).
  return jax.make_mesh((n // fsdp, fsdp), AXES,
                       axis_types=(jax.sharding.AxisType.Auto,) * 2,
                       devices=jax.devices()[:n])


def round_batch(size: int, mesh: jax.sharding.Mesh) -> int:
  """`size` rounded down to a multiple of the devices (at least one each):
  the batch of a stage that only evaluates."""
  return max(mesh.size, size // mesh.size * mesh.size)


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def param_shardings(tree, mesh: jax.sharding.Mesh, min_size: int = 2 ** 14):
  """Replicated, or with fsdp > 1, each large array split along its largest
  dimension that the fsdp axis divides (small ones stay replicated)."""
  fsdp = mesh.shape['fsdp']

  def one(x):
    shape = getattr(x, 'shape', ())
    if fsdp == 1 or np.prod(shape, dtype=np.int64) < min_size:
      return replicated(mesh)
    for axis in np.argsort(shape)[::-1]:
      if shape[axis] % fsdp == 0:
        spec = [None] * len(shape)
        spec[axis] = 'fsdp'
        return NamedSharding(mesh, P(*spec))
    return replicated(mesh)

  return jax.tree.map(one, tree)
