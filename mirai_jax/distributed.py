"""Joining a multi-process run (several hosts of a TPU slice or GPU cluster).

Every process runs the same command. `initialize` connects them through
JAX's distributed runtime before any other JAX call; afterwards
jax.devices() lists the devices of all processes, each process feeds its own
rows of every global batch (data/pipeline.py), and all of them take part in
every Orbax save while process 0 alone writes logs, metrics and samples.

How the processes find each other, in order:
  1. --coordinator_address / --num_processes / --process_id (all three), or
     the environment variables JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES,
     JAX_PROCESS_ID;
  2. --distributed=on: JAX's own detection (Cloud TPU VM metadata, SLURM,
     Open MPI, Kubernetes);
  3. --distributed=auto (the default): as 2 when SLURM or Open MPI report
     more than one task; otherwise a single process, nothing to join.
"""

from __future__ import annotations

import os
import time
from typing import Optional

from absl import logging
import jax
import orbax.checkpoint as ocp

MODES = ('auto', 'on', 'off')

# How long a process waits at `meet` for the others: on a loaded host one
# process can compile or restore minutes after another.
MEET_TIMEOUT_S = 30 * 60

_meetings = 0


def _task_count() -> int:
  """Processes a SLURM or Open MPI launcher started (1 outside them)."""
  for name in ('SLURM_NTASKS', 'SLURM_STEP_NUM_TASKS', 'OMPI_COMM_WORLD_SIZE'):
    value = os.environ.get(name, '')
    if value.isdigit():
      return int(value)
  return 1


def initialize(mode: str = 'auto', coordinator_address: str = '',
               num_processes: Optional[int] = None,
               process_id: Optional[int] = None) -> bool:
  """Joins the run's other processes if there are any; True if it did."""
  if mode not in MODES:
    raise ValueError(f'--distributed={mode!r}: use one of {", ".join(MODES)}')
  env = os.environ.get
  address = coordinator_address or env('JAX_COORDINATOR_ADDRESS', '')
  if num_processes is None and env('JAX_NUM_PROCESSES', '').isdigit():
    num_processes = int(env('JAX_NUM_PROCESSES'))
  if process_id is None and env('JAX_PROCESS_ID', '').isdigit():
    process_id = int(env('JAX_PROCESS_ID'))
  given = [address, num_processes, process_id]
  if mode == 'off':
    return False
  if any(x not in ('', None) for x in given):
    if any(x in ('', None) for x in given):
      raise ValueError(
          'a multi-process run needs all of --coordinator_address (host:port '
          'of process 0), --num_processes and --process_id, or the variables '
          f'JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID; got '
          f'address={address!r}, num_processes={num_processes}, '
          f'process_id={process_id}')
    if not 0 <= process_id < num_processes:
      raise ValueError(f'--process_id={process_id} must be in 0..'
                       f'{num_processes - 1} (--num_processes={num_processes})')
    jax.distributed.initialize(address, num_processes, process_id)
  elif mode == 'on' or _task_count() > 1:
    jax.distributed.initialize()
  else:
    return False
  logging.info('process %d of %d: %d local devices, %d in all',
               jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count())
  return True


def meet(name: str, timeout_s: int = MEET_TIMEOUT_S) -> None:
  """Waits until every process of the run has reached `meet(name)`; nothing
  with one process.

  Call it before the first run of a program with collectives. On CPU each
  new program opens its own Gloo connections at its first run and gives up
  after a fixed 30 s if a process is late (`Gloo context initialization
  failed: DEADLINE_EXCEEDED`): compiling, restoring or reading the first
  batch can take one process that much longer than another. This barrier is
  the coordination service's, which waits `timeout_s` and runs no program.
  Every process must call the same meetings in the same order.
  """
  global _meetings
  if jax.process_count() == 1:
    return
  _meetings += 1
  key = f'mirai_jax {_meetings}: {name}'
  t0 = time.time()
  try:
    ocp.multihost.get_barrier_sync_fn()(key=key, timeout_ms=timeout_s * 1000)
  except Exception as e:  # pylint: disable=broad-except
    raise RuntimeError(
        f'process {jax.process_index()} of {jax.process_count()} waited '
        f'{time.time() - t0:.0f} s at "{name}" for the other processes, which '
        'did not come: one of them stopped or is stuck. Its log says why; '
        f'rerun all of them together. ({e})') from e
  if time.time() - t0 >= 1:
    logging.info('waited %.0f s for the other processes at "%s"',
                 time.time() - t0, name)
