"""The train loop every stage shares: steps, logging, checkpoints, evals.

A stage builds its mesh, input, model and update step; `start` lays the
state out over the mesh and resumes it from the latest checkpoint (same
batches, same losses as if never stopped, walking back past damaged
checkpoints) and `jit_update` compiles the step for that layout. `run` then
steps, logs, checkpoints and evaluates, stops loudly on a NaN/inf step, and
on SIGTERM (a preemption notice) or Ctrl-C saves at the next step boundary
and exits.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Any, Callable, Optional

from absl import logging
import jax
from jax.experimental import multihost_utils

from mirai_jax import checkpoint
from mirai_jax import distributed
from mirai_jax import mesh as mesh_lib
from mirai_jax import workdir as workdir_lib
from mirai_jax.data import pipeline

# The conventional exit statuses of a process ended by SIGTERM and by Ctrl-C
# (SIGINT): schedulers and retry loops read 143 as "preempted", not as
# success or a crash.
PREEMPTED_EXIT_CODE = 143
INTERRUPTED_EXIT_CODE = 130


class Preempted(Exception):
  """Training stopped on SIGTERM or Ctrl-C after saving a checkpoint."""

  def __init__(self, message: str, exit_code: int = PREEMPTED_EXIT_CODE):
    super().__init__(message)
    self.exit_code = exit_code


class Preemption:
  """Whether a preemption notice (SIGTERM) or a Ctrl-C has arrived, as of a
  given step.

  With several processes the notice goes through JAX's coordination service
  (its own SIGTERM handler): every process answers True at the same step even
  when only one was signalled, so they all take part in the save. With one
  process Python handlers set a flag; a second Ctrl-C aborts at once.
  """

  def __init__(self):
    self._requested = None  # the signal that asked to stop
    self._old = {}
    if (jax.process_count() == 1
        and threading.current_thread() is threading.main_thread()):
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._old[sig] = signal.signal(sig, self._handler)

  def _handler(self, signum, frame):  # pylint: disable=unused-argument
    if signum == signal.SIGINT:
      if self._requested is not None:
        raise KeyboardInterrupt
      print('\nCtrl-C: stopping after this step and saving a checkpoint '
            '(Ctrl-C again aborts at once, losing the steps since the last '
            'checkpoint)', file=sys.stderr, flush=True)
    self._requested = signum

  def reached(self, step: int) -> bool:
    if jax.process_count() > 1:
      return multihost_utils.reached_preemption_sync_point(step)
    return self._requested is not None

  @property
  def interrupted(self) -> bool:
    return self._requested == signal.SIGINT

  def close(self) -> None:
    for sig, old in self._old.items():
      signal.signal(sig, old)
    self._old = {}


def _flat(tree: dict, prefix: str = '') -> dict:
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flat(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out


def start(name: str, config, workdir: str, make_state: Callable, mesh,
          dataset: Optional[dict] = None):
  """(state, first step, checkpoints, state shardings) of stage `name`:
  the state laid out over `mesh` (mesh.param_shardings), restored from
  <workdir>/<name>/checkpoints or made by `make_state(rng)` at step 0."""
  abstract = jax.eval_shape(make_state, jax.random.key(0))
  shardings = mesh_lib.param_shardings(abstract, mesh)
  ckpt = checkpoint.Checkpoints(workdir_lib.checkpoint_dir(workdir, name),
                                config[name].keep)
  state, step = restore_or_init(
      name, config, ckpt, abstract, shardings,
      jax.jit(make_state, out_shardings=shardings), dataset=dataset)
  return state, step, ckpt, shardings


def jit_update(update: Callable, shardings, mesh,
               compiler_options: Optional[dict] = None) -> Callable:
  """`update` compiled for the mesh: the state (donated) stays laid out as
  `shardings`, the metrics come back replicated."""
  return jax.jit(update, donate_argnums=0,
                 out_shardings=(shardings, mesh_lib.replicated(mesh)),
                 compiler_options=compiler_options)


def restore_or_init(name: str, config, ckpt: checkpoint.Checkpoints,
                    abstract_state, shardings, make_state: Callable,
                    dataset: Optional[dict] = None):
  """(state, first step): the latest checkpoint, placed with `shardings`
  whatever layout it was saved from, or a fresh state at step 0.

  A workdir written by a config with another model, or trained on another
  dataset than `dataset` (an identity, data/identity.py), fails here, from
  the checkpoint's metadata, before any compute: with the arrays and the
  config fields that differ, or with what changed in the dataset.
  """
  if ckpt.latest_step() is None:
    return make_state(jax.random.key(config.seed)), 0

  def check(step):
    bad = ckpt.shape_mismatches(abstract_state, step)
    if not bad:
      ckpt.require_dataset(
          step, dataset, name,
          'Training on from it would validate or test on episodes it may '
          'have trained on. Use a new --workdir for the new dataset, or put '
          'the episode folder (or split file) back as it was.')
      return
    try:
      saved = _flat(ckpt.saved_config(step).get(name, {}))
    except Exception:  # pylint: disable=broad-except
      saved = {}
    now = _flat(config[name].to_dict())
    diff = [f'  config.{name}.{k}: checkpoint {saved.get(k)!r}, now {now.get(k)!r}'
            for k in sorted(saved.keys() | now.keys())
            if str(saved.get(k)) != str(now.get(k))]
    raise checkpoint.ConfigMismatch(
        f'{ckpt.directory} (step {step}) was written by a config with another '
        f'{name} model, so training cannot resume from it:\n  '
        + '\n  '.join(bad[:6]) + (f'\n  ... {len(bad) - 6} more' if len(bad) > 6 else '')
        + ('\nConfig fields that differ from the checkpoint\'s:\n' + '\n'.join(diff)
           if diff else '')
        + '\nSet those fields back, or use a new --workdir (or delete that '
        'directory to start again).')

  # A damaged newest step costs the steps since the one before, not the run.
  return ckpt.restore_newest(checkpoint.abstract(abstract_state, shardings),
                             label=name, check=check, set_aside=True)


def run(name: str, config, *, state, start: int, update: Callable,
        data_iter, mesh, ckpt: checkpoint.Checkpoints, writer,
        evaluate: Callable[[int, Any], dict], show: tuple[str, ...],
        dataset: Optional[dict] = None) -> dict:
  """Steps start+1..config.<name>.steps of `update` on batches of `data_iter`.

  Logs every cfg.log_every steps (the `show` metrics on the progress line),
  checkpoints every cfg.checkpoint_every, calls evaluate(step, state) every
  cfg.eval_every and at the end; returns the last evaluation. On SIGTERM it
  saves the step just finished and raises Preempted. Each checkpoint also
  keeps `dataset`, the identity of the data it trained on. Closes `ckpt`
  and `writer`.
  """
  cfg = config[name]

  def check_finite(step):
    if int(state.nonfinite):
      raise FloatingPointError(
          f'{name}: the loss or its gradients became NaN/inf (by step '
          f'{step}); stopped. Those steps were not applied, and the last good '
          f'checkpoint (step {ckpt.latest_step()}) in {ckpt.directory} is '
          f'intact. Lower config.{name}.lr or raise grad_clip, then rerun.')

  result = {}
  preemption = Preemption()
  try:
    t0 = time.time()
    for step in range(start, cfg.steps):
      batch = pipeline.to_global(next(data_iter), mesh)
      if step == start and jax.process_count() > 1:
        # Compiled ahead so that all processes run the first step together
        # (distributed.meet); the call below reuses this compilation.
        update.lower(state, batch).compile()
        distributed.meet(f'{name}: step {step + 1} compiled')
      state, m = update(state, batch)
      done = step + 1
      if done % cfg.log_every == 0 or done == cfg.steps:
        check_finite(done)
        values = writer.scalars(done, {f'train/{k}': v for k, v in m.items()})
        writer.progress(done, {k: values[f'train/{k}'] for k in show})
      # Asked every step: with several processes this is the collective
      # that agrees on the step at which all of them stop.
      stop = preemption.reached(done)
      if done % cfg.checkpoint_every == 0 or done == cfg.steps or stop:
        check_finite(done)
        ckpt.save(done, state, dict(config.to_dict(),
                                    **{checkpoint.DATASET_KEY: dataset}),
                  force=stop)
      if stop:
        ckpt.wait()
        why = ('interrupted (Ctrl-C)' if preemption.interrupted
               else 'preempted (SIGTERM)')
        raise Preempted(
            f'{name}: {why}; saved step {done} in {ckpt.directory}. Run the '
            'same command again to resume.',
            INTERRUPTED_EXIT_CODE if preemption.interrupted
            else PREEMPTED_EXIT_CODE)
      if cfg.eval_every and (done % cfg.eval_every == 0 or done == cfg.steps):
        result = evaluate(done, state)
    if start >= cfg.steps:
      result = evaluate(start, state)
    logging.info('%s: %d steps in %.0f s', name, cfg.steps - start,
                 time.time() - t0)
  finally:
    preemption.close()
    ckpt.close()
    writer.close()
  return result
