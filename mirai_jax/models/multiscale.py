"""The multi-scale video predictor of Mathieu, Couprie and LeCun (2016),
"Deep multi-scale video prediction beyond mean square error": a generator
per scale, coarse to fine, each refining the upsampled guess of the scale
below from the context frames at its own size; a discriminator per scale;
trained with Lp + gradient difference loss (GDL) + adversarial terms.

Frames are (B, k, H, W, 3) in [-1, 1]; any H, W (edge-padded inside to a
multiple of 2 ** (scales - 1), cropped back).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from mirai_jax.models import next_frame


def pyramid(x, scales: int) -> list:
  """(B, H, W, C) -> [x at 1/2**(scales-1), ..., x at full size], by 2x2
  averages (H and W divisible by 2 ** (scales - 1))."""
  out = [x]
  for _ in range(scales - 1):
    b, h, w, c = out[0].shape
    out.insert(0, out[0].reshape(b, h // 2, 2, w // 2, 2, c).mean((2, 4)))
  return out


def _up(x):
  b, h, w, c = x.shape
  return jax.image.resize(x, (b, 2 * h, 2 * w, c), 'bilinear')


class _Scale(nn.Module):
  """G'_k: context at this scale + the upsampled coarser guess -> a residual."""
  channels: Sequence[int]
  kernel: int

  @nn.compact
  def __call__(self, x):
    for i, c in enumerate(self.channels):
      k = self.kernel if i in (0, len(self.channels) - 1) else 3
      x = nn.relu(nn.Conv(c, (k, k))(x))
    return jnp.tanh(nn.Conv(3, (self.kernel, self.kernel))(x))


class Generator(nn.Module):
  """Returns the predicted next frame at every scale, coarse to fine (the
  last is the prediction); the losses read all of them."""
  scales: int = 4
  channels: Sequence[int] = (128, 256, 128)
  # The paper widens the kernels toward the fine scales (3 -> 7).
  kernels: Sequence[int] = (3, 5, 5, 7)

  @nn.compact
  def __call__(self, context, train: bool = False, all_scales: bool = False):  # pylint: disable=unused-argument
    """The next frame (B, H, W, 3); all_scales: the guesses at every scale,
    coarse to fine, of the frame edge-padded as `pad` does."""
    h, w = context.shape[2:4]
    x = pad(next_frame.stack(context), self.scales)
    guess, outs = None, []
    for k, xs in enumerate(pyramid(x, self.scales)):
      kernel = self.kernels[min(k, len(self.kernels) - 1)]
      if guess is None:
        guess = _Scale(self.channels, kernel)(xs)
      else:
        up = _up(guess)
        guess = up + _Scale(self.channels, kernel)(
            jnp.concatenate([xs, up], -1))
      outs.append(guess)
    return outs if all_scales else outs[-1][:, :h, :w]


def pad(x, scales: int):
  """(B, H, W, C) edge-padded so that every scale halves it exactly."""
  return next_frame.pad_to(x, 2 ** (scales - 1))[0]


class Discriminator(nn.Module):
  """One logit per (context, frame) pair at every scale: strided
  convolutions, a spatial mean, two dense layers (the paper's D_k)."""
  scales: int = 4
  channels: Sequence[int] = (64, 128, 128)
  hidden: int = 256

  @nn.compact
  def __call__(self, context, frames: list):
    x = pad(next_frame.stack(context), self.scales)
    logits = []
    for k, (xs, y) in enumerate(zip(pyramid(x, self.scales), frames)):
      z = jnp.concatenate([xs, y], -1)
      # Fewer strides at the coarse scales, so no map shrinks below 1x1.
      for i, c in enumerate(self.channels[:k + 1]):
        z = nn.relu(nn.Conv(c, (3, 3), (2, 2) if i else (1, 1))(z))
      z = nn.relu(nn.Dense(self.hidden)(z.mean((1, 2))))
      logits.append(nn.Dense(1)(z)[:, 0])
    return logits


def gdl(real, fake, alpha: float = 1.0):
  """Gradient difference loss: the image gradients of the prediction should
  match the truth's (the paper's answer to the blur that Lp rewards)."""
  def grads(x):
    return (jnp.abs(x[:, 1:] - x[:, :-1]), jnp.abs(x[:, :, 1:] - x[:, :, :-1]))
  return sum(jnp.mean(jnp.abs(gr - gf) ** alpha)
             for gr, gf in zip(grads(real), grads(fake)))
