"""Quantizers: VQ with an EMA codebook and dead-code restarts, and FSQ.

Both map continuous latents (..., D) to (quantized latents, indices, aux),
with straight-through gradients, and know nothing of training loops: the VQ
codebook lives in the `vq` variable collection, updated when `train=True`
(pass `mutable=['vq']` and an rng named 'restart').
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def codebook_stats(indices: jax.Array, size: int) -> dict[str, jax.Array]:
  """Perplexity and fraction of codes used in a batch of indices."""
  counts = jnp.bincount(indices.reshape(-1), length=size)
  p = counts / jnp.maximum(counts.sum(), 1)
  entropy = -jnp.sum(jnp.where(p > 0, p * jnp.log(p), 0.0))
  return dict(perplexity=jnp.exp(entropy), usage=jnp.mean(counts > 0))


class VectorQuantizerEMA(nn.Module):
  """VQ-VAE quantizer with an EMA codebook (VideoGPT) and dead-code restarts.

  Codes whose EMA usage falls below `restart_threshold` are moved onto
  random latents of the current batch, VideoGPT's fix for codebook collapse.
  """
  num_codes: int = 1024
  dim: int = 64
  decay: float = 0.99
  commitment: float = 0.25
  restart_threshold: float = 1.0
  eps: float = 1e-5

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = False):
    flat = z.reshape(-1, self.dim).astype(jnp.float32)
    init = lambda: jax.random.normal(self.make_rng('params'),
                                     (self.num_codes, self.dim)) * 0.1
    embed = self.variable('vq', 'embed', init)
    size = self.variable('vq', 'cluster_size', jnp.ones, (self.num_codes,))
    embed_sum = self.variable('vq', 'embed_sum', lambda: embed.value.copy())
    codes = embed.value
    dist = (jnp.sum(flat ** 2, 1, keepdims=True) - 2 * flat @ codes.T +
            jnp.sum(codes ** 2, 1)[None])
    idx = jnp.argmin(dist, axis=1)
    zq = codes[idx]
    if train and not self.is_initializing():
      onehot = jax.nn.one_hot(idx, self.num_codes, dtype=jnp.float32)
      n = onehot.sum(0)
      new_size = self.decay * size.value + (1 - self.decay) * n
      new_sum = self.decay * embed_sum.value + (1 - self.decay) * onehot.T @ flat
      total = new_size.sum()
      smoothed = (new_size + self.eps) / (total + self.num_codes * self.eps) * total
      new_embed = new_sum / smoothed[:, None]
      # Restarts: dead codes jump to random latents of this batch.
      dead = new_size < self.restart_threshold
      pick = jax.random.randint(self.make_rng('restart'), (self.num_codes,), 0,
                                flat.shape[0])
      fresh = jax.lax.stop_gradient(flat[pick])
      embed.value = jnp.where(dead[:, None], fresh, new_embed)
      embed_sum.value = jnp.where(dead[:, None], fresh, new_sum)
      size.value = jnp.where(dead, 1.0, new_size)
    commit = self.commitment * jnp.mean(
        (flat - jax.lax.stop_gradient(zq)) ** 2)
    zq = flat + jax.lax.stop_gradient(zq - flat)  # straight-through
    idx = idx.reshape(z.shape[:-1])
    aux = dict(commitment=commit, **codebook_stats(idx, self.num_codes))
    return zq.reshape(z.shape).astype(z.dtype), idx, aux

  def decode_indices(self, idx: jax.Array) -> jax.Array:
    return self.get_variable('vq', 'embed')[idx]

  @property
  def codebook_size(self) -> int:
    return self.num_codes


def _round_ste(x):
  return x + jax.lax.stop_gradient(jnp.round(x) - x)


class FSQ(nn.Module):
  """Finite scalar quantization (Mentzer et al. 2023): no codebook to collapse.

  Each of the D = len(levels) channels is bounded and rounded to one of
  levels[i] values; the code index is their mixed-radix number.
  """
  levels: Sequence[int] = (8, 5, 5, 5)

  @property
  def dim(self) -> int:
    return len(self.levels)

  @property
  def codebook_size(self) -> int:
    return int(np.prod(self.levels))

  def _bound(self, z):
    levels = jnp.asarray(self.levels, jnp.float32)
    half = (levels - 1) * (1 - 1e-3) / 2
    offset = jnp.where(levels % 2 == 0, 0.5, 0.0)
    shift = jnp.arctanh(offset / half)
    return jnp.tanh(z + shift) * half - offset

  def __call__(self, z: jax.Array, train: bool = False):
    del train
    levels = jnp.asarray(self.levels, jnp.float32)
    half_width = jnp.floor(levels / 2)
    q = _round_ste(self._bound(z.astype(jnp.float32)))
    zq = q / half_width
    idx = self._to_index(q + half_width)
    aux = dict(commitment=jnp.zeros(()), **codebook_stats(idx, self.codebook_size))
    return zq.astype(z.dtype), idx, aux

  def _to_index(self, digits):
    basis = np.concatenate([[1], np.cumprod(self.levels[:-1])]).astype(np.int32)
    return jnp.sum(digits.astype(jnp.int32) * basis, axis=-1)

  def decode_indices(self, idx: jax.Array) -> jax.Array:
    basis = np.concatenate([[1], np.cumprod(self.levels[:-1])]).astype(np.int32)
    levels = jnp.asarray(self.levels, jnp.int32)
    digits = (idx[..., None] // basis) % levels
    half_width = jnp.floor(levels / 2)
    return (digits - half_width) / half_width
