"""Device mesh and shardings shared by every stage that computes.

Two axes: `data` (the batch is split over it) and `fsdp` (parameters may be
split over it, FSDP-style; the batch is split over it too). With fsdp=1 the
parameters are replicated and training is plain data parallelism.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

AXES = ('data', 'fsdp')
# XLA's intra-op threads off: what split_cpu adds to XLA_FLAGS at one CPU
# device per core or more.
ONE_THREAD_FLAG = '--xla_cpu_multi_thread_eigen=false'


def usable_cores() -> int:
  """The cores this process may run on (its affinity, not the machine's)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # macOS
    return os.cpu_count() or 1


def split_cpu(devices: int) -> None:
  """Show the host's CPU as `devices` devices (config.mesh.cpu_devices; 0:
  leave jax's count, 1 unless XLA_FLAGS forces more).

  The batch is then split over them like over accelerators. At one device per
  core or more, XLA's intra-op threads are turned off as well, so that each
  device runs its share on one core: XLA:CPU's kernels for the tokenizer's
  small convolutions keep a second thread busy for a fraction of the step
  (1.35-1.45x faster tokenizer steps on the 2-core machine: README, "Beyond
  one machine" and "Benchmarks"). Must run before jax starts its backends;
  GPU and TPU devices are unaffected.
  """
  if isinstance(devices, bool) or not isinstance(devices, int) or devices < 0:
    raise ValueError(f'config.mesh.cpu_devices={devices!r}: give a whole '
                     'number of devices, 0 = as jax starts')
  if devices == 0:
    return
  try:
    jax.config.update('jax_num_cpu_devices', devices)
  except RuntimeError as e:  # jax is already running
    if len(jax.devices('cpu')) == devices:
      return
    raise ValueError(
        f'config.mesh.cpu_devices={devices}: jax already started with '
        f'{len(jax.devices("cpu"))} CPU device(s) in this process; set it '
        'before anything runs on jax (python -m mirai_jax.main does)') from e
  if devices >= usable_cores():
    os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' ' +
                               ONE_THREAD_FLAG).strip()


def one_thread_per_device() -> bool:
  """Whether XLA_FLAGS (split_cpu's, or a user's) turn XLA's intra-op threads
  off."""
  return ONE_THREAD_FLAG in os.environ.get('XLA_FLAGS', '').split()


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
