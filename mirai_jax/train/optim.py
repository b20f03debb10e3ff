"""Optimiser, schedule, EMA and the non-finite guard shared by every stage."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


SCHEDULES = ('cosine', 'wsd')


def schedule(cfg) -> optax.Schedule:
  """Linear warmup to cfg.lr, then down to cfg.lr * cfg.final_lr_ratio at
  cfg.steps: by a cosine over all the steps after the warmup ('cosine'), or
  held and then linear over the last cfg.decay_fraction of the steps ('wsd':
  warmup-stable-decay, whose held rate also suits runs cut by wall-clock
  time, as bench/tokenizer_arch.py's are; README "Stage 1")."""
  end = cfg.lr * cfg.final_lr_ratio
  if cfg.get('schedule', 'cosine') == 'cosine':
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=cfg.lr, warmup_steps=cfg.warmup_steps,
        decay_steps=max(cfg.steps, cfg.warmup_steps + 1), end_value=end)
  decay = max(1, round(cfg.steps * cfg.decay_fraction))
  hold_until = max(cfg.warmup_steps, cfg.steps - decay)
  return optax.join_schedules(
      [optax.linear_schedule(0.0, cfg.lr, max(1, cfg.warmup_steps)),
       optax.constant_schedule(cfg.lr),
       optax.linear_schedule(cfg.lr, end, max(1, cfg.steps - hold_until))],
      boundaries=[cfg.warmup_steps, hold_until])


def optimizer(cfg) -> optax.GradientTransformation:
  return optax.chain(
      optax.clip_by_global_norm(cfg.grad_clip),
      optax.adamw(schedule(cfg), b1=cfg.b1, b2=cfg.b2,
                  weight_decay=cfg.weight_decay))


def ema(old, new, decay: float):
  return optax.incremental_update(new, old, step_size=1.0 - decay)


def keep_if_finite(ok: jax.Array, new, old):
  """`new` where ok else `old`, leaf by leaf: a non-finite step changes nothing."""
  return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)
