"""Patch discriminator (per frame, PatchGAN) and the adversarial losses."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class PatchDiscriminator(nn.Module):
  """Real/fake logits for overlapping patches of each frame."""
  channels: Sequence[int] = (32, 64, 128)

  @nn.compact
  def __call__(self, video):
    b, t = video.shape[:2]
    x = video.reshape(b * t, *video.shape[2:])
    for c in self.channels:
      x = nn.leaky_relu(nn.Conv(c, (4, 4), (2, 2))(x), 0.2)
    x = nn.Conv(1, (3, 3))(x)
    return x.reshape(b, t, *x.shape[1:])


def hinge_d_loss(real_logits, fake_logits):
  return (jnp.mean(jax.nn.relu(1.0 - real_logits)) +
          jnp.mean(jax.nn.relu(1.0 + fake_logits)))


def hinge_g_loss(fake_logits):
  return -jnp.mean(fake_logits)


def lecam(real_logits, fake_logits, ema_real, ema_fake):
  """LeCam regularisation (Tseng et al. 2021) against EMAs of the logits."""
  return (jnp.mean(jax.nn.relu(real_logits - ema_fake) ** 2) +
          jnp.mean(jax.nn.relu(ema_real - fake_logits) ** 2))
