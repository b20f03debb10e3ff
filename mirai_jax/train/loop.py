"""The train loop every stage shares: steps, logging, checkpoints, evals.

A stage builds its mesh, input, model, update step and evaluation, then
hands them to `run`, which resumes from the latest checkpoint (same batches,
same losses as if never stopped) and stops loudly on a NaN/inf step.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from absl import logging
import jax

from mirai_jax.data import pipeline
from mirai_jax.train import checkpoint


def restore_or_init(ckpt: checkpoint.Checkpoints, abstract_state, shardings,
                    make_state: Callable, seed: int, data_iter):
  """(state, first step): the latest checkpoint, or a fresh state at step 0."""
  if ckpt.latest_step() is not None:
    return ckpt.restore(checkpoint.abstract(abstract_state, shardings),
                        data_iter)
  return make_state(jax.random.key(seed)), 0


def run(name: str, cfg, config, *, state, start: int, update: Callable,
        data_iter, mesh, ckpt: checkpoint.Checkpoints, writer,
        evaluate: Callable[[int, Any], dict], show: tuple[str, ...]) -> dict:
  """Steps start+1..cfg.steps of `update` on batches of `data_iter`.

  Logs every cfg.log_every steps (the `show` metrics on the progress line),
  checkpoints every cfg.checkpoint_every, calls evaluate(step, state) every
  cfg.eval_every and at the end; returns the last evaluation. Closes `ckpt`
  and `writer`.
  """

  def check_finite(step):
    if int(state.nonfinite):
      raise FloatingPointError(
          f'{name}: the loss or its gradients became NaN/inf (by step '
          f'{step}); stopped. Those steps were not applied, and the last good '
          f'checkpoint (step {ckpt.latest_step()}) in {ckpt.directory} is '
          f'intact. Lower config.{name}.lr or raise grad_clip, then rerun.')

  result = {}
  try:
    t0 = time.time()
    for step in range(start, cfg.steps):
      batch = pipeline.to_global(next(data_iter), mesh)
      state, m = update(state, batch)
      done = step + 1
      if done % cfg.log_every == 0 or done == cfg.steps:
        check_finite(done)
        values = writer.scalars(done, {f'train/{k}': v for k, v in m.items()})
        writer.progress(done, {k: values[f'train/{k}'] for k in show})
      if done % cfg.checkpoint_every == 0 or done == cfg.steps:
        check_finite(done)
        ckpt.save(done, state, data_iter, config.to_dict())
      if cfg.eval_every and (done % cfg.eval_every == 0 or done == cfg.steps):
        result = evaluate(done, state)
    if start >= cfg.steps:
      result = evaluate(start, state)
    logging.info('%s: %d steps in %.0f s', name, cfg.steps - start,
                 time.time() - t0)
  finally:
    ckpt.close()
    writer.close()
  return result
