"""Optimiser, schedule, EMA and the non-finite guard shared by every stage."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def schedule(cfg) -> optax.Schedule:
  """Linear warmup to cfg.lr, then cosine decay to cfg.lr * cfg.final_lr_ratio."""
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=cfg.lr, warmup_steps=cfg.warmup_steps,
      decay_steps=max(cfg.steps, cfg.warmup_steps + 1),
      end_value=cfg.lr * cfg.final_lr_ratio)


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
