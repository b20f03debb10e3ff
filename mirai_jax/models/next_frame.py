"""What the pixel baselines (pix2pix.py, multiscale.py) share: the context
as channels, padding to a stride, and rolling a next-frame model forward."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def stack(frames):
  """(B, k, H, W, 3) -> (B, H, W, 3k): the context as channels."""
  b, k, h, w, c = frames.shape
  return frames.transpose(0, 2, 3, 1, 4).reshape(b, h, w, k * c)


def pad_to(x, multiple: int):
  """Edge-pads H and W up to a multiple of `multiple`; returns (x, (h, w))."""
  h, w = x.shape[1:3]
  ph, pw = -h % multiple, -w % multiple
  if ph or pw:
    x = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode='edge')
  return x, (h, w)


def roll(step: Callable, context, n: int):
  """(B, n, H, W, 3): `step` (context (B, k, H, W, 3) -> next frame) applied
  n times, each output joining the context and its oldest frame leaving."""
  def body(ctx, _):
    y = step(ctx)
    return jnp.concatenate([ctx[:, 1:], y[:, None].astype(ctx.dtype)], 1), y
  _, ys = jax.lax.scan(body, context, None, length=n)
  return ys.swapaxes(0, 1)


def to_signed(video):
  """uint8 frames -> float32 in [-1, 1], the range the generators emit."""
  return video.astype(jnp.float32) / 127.5 - 1.0


def continue_frames(apply: Callable, context, inputs: int, n: int):
  """uint8 context (B, >= inputs, H, W, 3) -> the n frames after it in
  [0, 1]: `apply` (context in [-1, 1] -> next frame) on the last `inputs`
  frames, each output fed back."""
  ctx = to_signed(context[:, context.shape[1] - inputs:])
  step = lambda c: jnp.clip(apply(c), -1.0, 1.0)
  return (roll(step, ctx, n) + 1.0) / 2.0
