"""Decoder-only transformer over a token grid in any order (stage 3).

A clip's tokens (T, H, W) are read as a sequence in an order chosen by the
task (see mirai_jax/tasks.py): the known tokens first, then those to
generate. Input i carries the token at position i - 1 with that position's
(time, row, column) embedding, plus the embedding of position i, the one it
must predict (as in sigma-GPT / XLNet's two-stream idea, in one stream), and attention
scores see the offset between the two through rotary embeddings.
Because every input says where its target lies, the same weights continue a
shot, fill the frames between two keyframes or paint the sides of a 4:3 frame:
only the order and the number of known tokens change.

The audio feature of time step t is added to every input whose target lies at
step t (models/audio.py). `decode` runs the same blocks one position at a
time with a KV cache.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mirai_jax.models import attention as attention_lib
from mirai_jax.models import audio as audio_lib
from mirai_jax.models import remat as remat_lib


def rope(x, coords, base: float = 64.0):
  """Rotary embedding over (time, row, col): a third of the pairs per axis.

  x (B, L, heads, hd), coords (L, 3). Queries are rotated by the position
  they predict and keys by the position of the token they carry, so a score
  depends on the offset between the two: "the same place one step earlier"
  is one pattern for every place, whatever the reading order.
  """
  hd = x.shape[-1]
  per_axis = hd // 2 // 3
  if not per_axis:
    return x
  freqs = base ** (-jnp.arange(per_axis) / per_axis)
  angles = jnp.concatenate([coords[:, a, None] * freqs for a in range(3)], -1)
  cos, sin = jnp.cos(angles)[:, None], jnp.sin(angles)[:, None]  # (L, 1, n)
  n = 3 * per_axis
  x1, x2, rest = x[..., :n], x[..., n:2 * n], x[..., 2 * n:]
  xf1, xf2 = x1.astype(jnp.float32), x2.astype(jnp.float32)
  out1 = (xf1 * cos - xf2 * sin).astype(x.dtype)
  out2 = (xf1 * sin + xf2 * cos).astype(x.dtype)
  return jnp.concatenate([out1, out2, rest], -1)


class Attention(nn.Module):
  heads: int
  dtype: Any = jnp.float32
  implementation: str = 'xla'  # models/attention.py (resolved, not 'auto')

  @nn.compact
  def __call__(self, x, q_pos, k_pos, cache=None, index=None, prefill=False):
    d = x.shape[-1]
    qkv = nn.DenseGeneral((3, self.heads, d // self.heads), use_bias=False,
                          dtype=self.dtype, name='qkv')(x)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    q, k = rope(q, q_pos), rope(k, k_pos)
    if cache is None or prefill:
      # A whole sequence, or the prefill (the chunk at index 0 attends to
      # itself only): the fused implementation applies.
      out = attention_lib.attend(q, k, v, self.implementation)
    if cache is not None:
      # Write this chunk's keys/values at [index, index + L); a decode step
      # attends to everything written so far.
      ck = jax.lax.dynamic_update_slice_in_dim(cache[0], k.astype(cache[0].dtype),
                                               index, axis=1)
      cv = jax.lax.dynamic_update_slice_in_dim(cache[1], v.astype(cache[1].dtype),
                                               index, axis=1)
      if not prefill:
        out = attention_lib.attend_cached(q, ck, cv, index)
      cache = (ck, cv)
    out = nn.DenseGeneral(d, axis=(-2, -1), use_bias=False, dtype=self.dtype,
                          name='out')(out)
    return out, cache


class Block(nn.Module):
  """One pre-LayerNorm block, written as a scan body: (x, this layer's
  cache) -> (x, its updated cache)."""
  heads: int
  mlp_ratio: int = 4
  dropout: float = 0.0
  dtype: Any = jnp.float32
  attention: str = 'xla'

  @nn.compact
  def __call__(self, x, cache, q_pos, k_pos, index, prefill: bool,
               train: bool):
    h, cache = Attention(self.heads, self.dtype, self.attention)(
        nn.LayerNorm(dtype=self.dtype)(x), q_pos, k_pos, cache, index, prefill)
    x = x + nn.Dropout(self.dropout, deterministic=not train)(h)
    h = nn.LayerNorm(dtype=self.dtype)(x)
    h = nn.Dense(self.mlp_ratio * x.shape[-1], dtype=self.dtype)(h)
    h = nn.Dense(x.shape[-1], dtype=self.dtype)(nn.gelu(h))
    return x + nn.Dropout(self.dropout, deterministic=not train)(h), cache


class Transformer(nn.Module):
  """Logits of each target token given the inputs before it.

  Calls take `prev` (B, L) tokens (BOS = codebook_size for the first input),
  `prev_pos` / `pos` (L, 3) (time, row, col) of the previous and the target
  position of each input, `above` (B, L, 2) the tokens at each target's
  place one step earlier and at the nearest later step, where already read
  (else codebook_size), and `audio` (B, T, D) features or None (see
  `inputs`). The later token is read only with `later` (a model that fills
  in between keyframes).
  """
  codebook_size: int
  grid: tuple[int, int, int]  # (T, H, W) of the clip's token grid
  width: int = 256
  depth: int = 4
  heads: int = 4
  mlp_ratio: int = 4
  dropout: float = 0.0
  audio_channels: int = 128
  audio_layers: int = 2
  dtype: Any = jnp.float32
  attention: str = 'xla'  # a resolved models/attention.py implementation
  remat: str = 'none'  # models/remat.py POLICIES
  unroll: int = 1  # layers per scan iteration (depth: straight-line code)
  later: bool = False  # read the later token of `above` (tasks.later_index)
  # A learned bias towards copying the tokens of `above` (pointer-generator
  # style): one gate per hinted token, a function of the final hidden state.
  copy_hints: bool = False

  def setup(self):
    init = nn.initializers.normal(0.02)
    self.embed = nn.Embed(self.codebook_size + 1, self.width, embedding_init=init)
    # The token at the target's place one step earlier (codebook_size: none
    # read yet): copying it is most of video prediction, and attention alone
    # was slow to find it in unseen episodes.
    self.embed_above = nn.Embed(self.codebook_size + 1, self.width,
                                embedding_init=init)
    # An in-between's place in the end keyframe: where the drawing is going.
    # Attention alone left the frame before a held keyframe far from it.
    if self.later:
      self.embed_later = nn.Embed(self.codebook_size + 1, self.width,
                                  embedding_init=init)
    # Separate tables for "where the input token was" and "where to predict".
    self.pos_in = [nn.Embed(n, self.width, embedding_init=init,
                            name=f'pos_in_{a}') for a, n in zip('thw', self.grid)]
    self.pos_out = [nn.Embed(n, self.width, embedding_init=init,
                             name=f'pos_out_{a}') for a, n in zip('thw', self.grid)]
    self.audio = audio_lib.AudioEncoder(self.width, self.audio_channels,
                                        self.audio_layers, dtype=self.dtype)
    policy = remat_lib.policy(self.remat, 'config.transformer.remat')
    block = Block
    if self.remat != 'none':
      # prefill and train are Python bools (self counts as argument 0).
      # Skipping the CSE barrier is safe only with one layer per scan
      # iteration (jax.checkpoint's docs); with several, keep it.
      block = nn.remat(Block, policy=policy, prevent_cse=self.unroll > 1,
                       static_argnums=(6, 7))
    # The layers as one scan over stacked parameters: compiled once, and the
    # backward pass keeps only what each layer's remat policy saves (XLA
    # cannot move a scan's recomputation, as it can with unrolled layers).
    self.blocks = nn.scan(
        block, variable_axes={'params': 0},
        split_rngs={'params': True, 'dropout': True},
        in_axes=(0, nn.broadcast, nn.broadcast, nn.broadcast, nn.broadcast,
                 nn.broadcast), length=self.depth, unroll=self.unroll)(
                     self.heads, self.mlp_ratio, self.dropout, self.dtype,
                     self.attention)
    self.norm = nn.LayerNorm(dtype=self.dtype)
    self.head = nn.Dense(self.codebook_size, dtype=self.dtype)
    if self.copy_hints:
      # Most tokens of a video repeat the one at their place a step earlier
      # (or, between keyframes, the end keyframe's); the head must otherwise
      # learn to turn a hint's embedding back into the same code. With the
      # gates the demo's 400 steps reach a validation loss of 0.683 instead
      # of 0.756 (README, Stage 3). Zero at first: training starts from the
      # plain head.
      self.copy_gate = nn.Dense(2 if self.later else 1, dtype=self.dtype,
                                kernel_init=nn.initializers.zeros)

  def audio_features(self, pcm, fps, sample_rate: int, temporal: int,
                     steps: int, use_audio):
    """(B, steps, width) features of the clip's first `steps` latent steps."""
    return self.audio(pcm, fps, sample_rate, temporal, steps, use_audio)

  def _inputs(self, prev, prev_pos, pos, above, audio):
    x = self.embed(prev) + self.embed_above(above[..., 0])
    if self.later:
      x += self.embed_later(above[..., 1])
    for i in range(3):
      x += self.pos_in[i](prev_pos[..., i]) + self.pos_out[i](pos[..., i])
    if audio is not None:
      x += jnp.take(audio, pos[..., 0], axis=1)
    return x.astype(self.dtype)

  def logits(self, x, above=None):
    """Final hidden states (..., width) and their inputs' `above` (..., 2)
    -> float32 logits (..., codebook). With `copy_hints`, each hinted token's
    logit gains its gate (no token is hinted where `above` holds BOS)."""
    h = self.norm(x)
    out = self.head(h).astype(jnp.float32)
    if not self.copy_hints:
      return out
    if above is None:
      raise ValueError('a Transformer with copy_hints=True needs `above` '
                       'for its logits')
    gates = self.copy_gate(h).astype(jnp.float32)
    codes = jnp.arange(self.codebook_size)
    for j in range(gates.shape[-1]):
      out += gates[..., j:j + 1] * (above[..., j:j + 1] == codes)
    return out

  def hidden(self, prev, prev_pos, pos, above, audio=None, train: bool = False):
    """The final hidden state of every input (B, L, width), before `logits`:
    training applies the output layer only where a token is predicted."""
    x = self._inputs(prev, prev_pos, pos, above, audio)
    x, _ = self.blocks(x, None, pos, prev_pos, None, False, train)
    return x

  def __call__(self, prev, prev_pos, pos, above, audio=None,
               train: bool = False):
    return self.logits(self.hidden(prev, prev_pos, pos, above, audio, train),
                       above)

  def decode(self, prev, prev_pos, pos, above, audio, cache, index, layers):
    """Inputs [index, index + L) with the KV cache -> (logits, cache).

    Apply with the parameters of `split_layers`: `layers` holds each layer's
    own arrays and `cache` one (k, v) per layer, so that a decode step
    updates each cache in place (a scan over stacked layers would copy the
    whole stacked cache at every step).
    """
    x = self._inputs(prev, prev_pos, pos, above, audio)
    prefill = isinstance(index, int) and index == 0
    block = Block(self.heads, self.mlp_ratio, 0.0, self.dtype, self.attention,
                  parent=None)
    new = []
    for params, c in zip(layers, cache):
      x, c = block.apply({'params': params}, x, c, pos, prev_pos, index,
                         prefill, False)
      new.append(c)
    return self.logits(x, above), new

  def init_cache(self, batch: int, length: int, dtype=jnp.float32):
    """Keys and values of every layer: a list of (k, v), each (B, length,
    heads, head size)."""
    hd = self.width // self.heads
    z = jnp.zeros((batch, length, self.heads, hd), dtype)
    return [(z, z) for _ in range(self.depth)]


def split_layers(params):
  """(params without the blocks, [layer 0's params, layer 1's, ...]): the
  scanned blocks' stacked arrays cut once per layer, for `decode`."""
  rest = dict(params['params'])
  blocks = rest.pop('blocks')
  depth = jax.tree.leaves(blocks)[0].shape[0]
  return {'params': rest}, [jax.tree.map(lambda a, i=i: a[i], blocks)
                            for i in range(depth)]


def inputs(seq: jax.Array, order, bos: int):
  """The model inputs of a full sequence in `order` (a tasks.Order): (prev
  tokens, prev pos, target pos, (B, L, 2) the tokens one step above each
  target and at the nearest later step, or `bos` where none is read yet)."""
  coords = jnp.asarray(order.coords)
  prev = jnp.concatenate([jnp.full_like(seq[:, :1], bos), seq[:, :-1]], 1)
  prev_pos = jnp.concatenate([jnp.zeros_like(coords[:1]), coords[:-1]], 0)
  idx = order.hint_index  # (L, 2)
  above = jnp.where(idx >= 0, seq[:, np.maximum(idx, 0)], bos)
  return prev, prev_pos, coords, above
