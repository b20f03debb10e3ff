"""pix2pix (Isola et al. 2017) as a next-frame predictor, the baseline of the
"90 seconds after" project: a U-Net maps the last context frames to the next
frame, a conditional PatchGAN judges (context, frame) pairs; longer horizons
feed the output back (next_frame.roll).

Frames are (B, k, H, W, 3) in [-1, 1]; any H, W (padded to the U-Net's
stride inside, cropped back).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from mirai_jax.models.next_frame import pad_to
from mirai_jax.models.next_frame import stack


class UNet(nn.Module):
  """Encoder of 4x4 stride-2 convolutions, decoder of transposed ones with
  skips; dropout in the innermost decoder layers is pix2pix's only noise."""
  channels: Sequence[int] = (64, 128, 256, 512)
  dropout: float = 0.5

  @nn.compact
  def __call__(self, context, train: bool = False):
    x, (h, w) = pad_to(stack(context), 2 ** len(self.channels))
    skips = []
    for i, c in enumerate(self.channels):
      x = nn.Conv(c, (4, 4), (2, 2))(x if i == 0 else nn.leaky_relu(x, 0.2))
      # No norm on the input layer (as pix2pix) nor at the bottleneck,
      # where a map may be 1x1 and instance statistics vanish.
      if 0 < i < len(self.channels) - 1:
        x = nn.InstanceNorm()(x)
      skips.append(x)
    decoder = list(reversed(self.channels[:-1]))
    for i, (c, skip) in enumerate(zip(decoder, reversed(skips[:-1]))):
      x = nn.InstanceNorm()(nn.ConvTranspose(c, (4, 4), (2, 2))(nn.relu(x)))
      if i < 2 and self.dropout:
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
      x = jnp.concatenate([x, skip], -1)
    x = nn.ConvTranspose(3, (4, 4), (2, 2))(nn.relu(x))
    return jnp.tanh(x[:, :h, :w])


class PatchGAN(nn.Module):
  """Logits for overlapping patches of (context, frame): conditional, so
  a sharp frame that does not follow its context is still fake."""
  channels: Sequence[int] = (64, 128, 256)

  @nn.compact
  def __call__(self, context, frame):
    x = jnp.concatenate([stack(context), frame], -1)
    for i, c in enumerate(self.channels):
      x = nn.Conv(c, (4, 4), (2, 2))(x)
      x = nn.leaky_relu(nn.InstanceNorm()(x) if i else x, 0.2)
    x = nn.leaky_relu(nn.InstanceNorm()(
        nn.Conv(2 * self.channels[-1], (4, 4))(x)), 0.2)
    return nn.Conv(1, (4, 4))(x)
