"""A frame-causal convolutional video tokenizer (VideoGPT / MAGVIT family).

Video (B, T, H, W, 3) in [-1, 1] -> latents (B, T/t, H/s, W/s, D) -> tokens.
Every convolution is causal in time (padded on the past side only) and every
normalisation works frame by frame, so the tokens of latent step j depend on
frames < (j + 1) * t only: context frames can be tokenized without the frames
to be predicted.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from mirai_jax.models import quantizers
from mirai_jax.models import remat as remat_lib

def _res_block(remat: str):
  """ResBlock, or ResBlock under jax.checkpoint with the named policy.
  The parameter names are the same either way (blocks are named explicitly),
  so a checkpoint restores whatever the setting."""
  chosen = remat_lib.policy(remat, 'config.tokenizer.remat')
  if remat == 'none':
    return ResBlock
  return nn.remat(ResBlock, policy=chosen, prevent_cse=True)


class BlockedConv(nn.Module):
  """nn.Conv with stride s and kernels k*s wide, computed as a stride-1
  convolution with k-wide kernels of the input's s x s blocks (space to
  depth). The same function and parameters (kernel (kh, kw, in, out), bias):
  a strided convolution's input gradient is a convolution of the output
  gradient dilated with zeros, which XLA:CPU ran 2.4x slower than the
  forward pass in the ~21M tokenizer of issue 16."""
  features: int
  kernel: Sequence[int]  # (kh, kw), multiples of the stride
  stride: int
  padding: Sequence[Sequence[int]]  # ((top, bottom), (left, right))
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    (kh, kw), s = self.kernel, self.stride
    _, h, w, c = x.shape
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (kh, kw, c, self.features))
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    (top, bottom), (left, right) = self.padding
    oh = (h + top + bottom - kh) // s + 1
    ow = (w + left + right - kw) // s + 1
    # The rows and columns the outputs read, whole blocks (kh, kw are
    # multiples of s): padding past them is cut, never read.
    x = jnp.pad(x, ((0, 0), (top, max(s * (oh - 1) + kh - h - top, 0)),
                    (left, max(s * (ow - 1) + kw - w - left, 0)), (0, 0)))
    x = space_to_depth(x[:, None, :s * (oh - 1) + kh, :s * (ow - 1) + kw], s)
    kernel = kernel.reshape(kh // s, s, kw // s, s, c, self.features)
    kernel = kernel.transpose(0, 2, 1, 3, 4, 5).reshape(
        kh // s, kw // s, s * s * c, self.features)
    y = jax.lax.conv_general_dilated(
        x[:, 0].astype(self.dtype), kernel.astype(self.dtype), (1, 1),
        'VALID', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    return y + bias.astype(self.dtype)


def _blockable(kernel, strides) -> bool:
  """Whether a 2-D convolution can be a BlockedConv: the same stride > 1
  in both directions, dividing both kernel sides."""
  (kh, kw), (sh, sw) = kernel, strides
  return sh == sw > 1 and kh % sh == 0 and kw % sw == 0


class CausalConv(nn.Module):
  features: int
  kernel: Sequence[int] = (3, 3, 3)
  strides: Sequence[int] = (1, 1, 1)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    kt, kh, kw = self.kernel
    padding = (((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2))
    if kt == 1 and self.strides[0] == 1:
      # Frame by frame: a 2-D convolution over (B*T) frames runs 2-3x faster
      # than the same 1x3x3 kernel as a 3-D convolution on CPU.
      b, t = x.shape[:2]
      frames = x.reshape(b * t, *x.shape[2:])
      strides = tuple(self.strides[1:])
      if _blockable((kh, kw), strides):  # named as nn.Conv's: one checkpoint
        y = BlockedConv(self.features, (kh, kw), strides[0], padding,
                        self.dtype, name='Conv_0')(frames)
      else:
        y = nn.Conv(self.features, (kh, kw), strides, padding=padding,
                    dtype=self.dtype)(frames)
      return y.reshape(b, t, *y.shape[1:])
    # kt - st frames of the past (replicating the first frame): output j sees
    # inputs up to j * st + st - 1 and nothing later.
    pad_t = max(kt - self.strides[0], 0)
    if pad_t:
      x = jnp.concatenate([jnp.repeat(x[:, :1], pad_t, axis=1), x], axis=1)
    return nn.Conv(self.features, tuple(self.kernel), tuple(self.strides),
                   padding=((0, 0),) + padding, dtype=self.dtype)(x)


class TemporalConv(nn.Module):
  """Causal convolution over time alone, as one matrix product over `kernel`
  shifted copies of the input: XLA's 3-D convolutions run at a fraction of
  its matrix products' speed on CPU."""
  features: int
  kernel: int = 3
  stride: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    kt, st = self.kernel, self.stride
    w = self.param('kernel', nn.initializers.lecun_normal(),
                   (kt * x.shape[-1], self.features))
    b = self.param('bias', nn.initializers.zeros, (self.features,))
    pad_t = max(kt - st, 0)  # the past only, as CausalConv
    if pad_t:
      x = jnp.concatenate([jnp.repeat(x[:, :1], pad_t, axis=1), x], axis=1)
    steps = (x.shape[1] - kt) // st + 1
    taps = [x[:, i:i + st * (steps - 1) + 1:st] for i in range(kt)]
    x = jnp.concatenate(taps, axis=-1).astype(self.dtype)
    return x @ w.astype(self.dtype) + b.astype(self.dtype)


class Factorised(nn.Module):
  """(2+1)-D: a 2-D (kh, kw) convolution over frames to `mid` channels
  (0: `features`), then a causal (kt,) convolution over time. About
  (kh*kw + kt) / (kt*kh*kw) of the 3-D kernel's arithmetic, and both halves
  are operations XLA runs fast.

  Where it strides in time the order turns: the temporal convolution first,
  at the input's width, then the spatial one at the reduced frame rate
  (`mid` unused), which halves the spatial half's work; at the ~21M size of
  issue 16 the step took 11 % less time (README, "Stage 1")."""
  features: int
  kernel: Sequence[int] = (3, 3, 3)
  strides: Sequence[int] = (1, 1, 1)
  dtype: Any = jnp.float32
  mid: int = 0

  @nn.compact
  def __call__(self, x):
    kt, kh, kw = self.kernel
    st, sh, sw = self.strides
    if st > 1:
      x = TemporalConv(x.shape[-1], kt, st, dtype=self.dtype)(x)
      return CausalConv(self.features, (1, kh, kw), (1, sh, sw),
                        dtype=self.dtype)(x)
    x = CausalConv(self.mid or self.features, (1, kh, kw), (1, sh, sw),
                   dtype=self.dtype)(x)
    return TemporalConv(self.features, kt, st, dtype=self.dtype)(x)


def st_conv(kind: str, features: int, kernel, strides=(1, 1, 1),
            dtype: Any = jnp.float32, mid: int = 0) -> nn.Module:
  """A space-time convolution of `kind` ('3d' or '2+1d'); kernels one frame
  deep are 2-D convolutions either way."""
  if kind == '3d' or kernel[0] == 1:
    return CausalConv(features, tuple(kernel), tuple(strides), dtype=dtype)
  return Factorised(features, tuple(kernel), tuple(strides), dtype=dtype,
                    mid=mid)


def depth_to_time(x, st):
  """(B, T, H, W, st*C) -> (B, T*st, H, W, C): the st frames of step j come
  from step j's channels only."""
  b, t, h, w, c = x.shape
  x = x.reshape(b, t, h, w, st, c // st).transpose(0, 1, 4, 2, 3, 5)
  return x.reshape(b, t * st, h, w, c // st)


class FrameNorm(nn.Module):
  """GroupNorm over each frame alone (statistics never cross time).

  kind='none' skips it: small tokenizers on flat-coloured frames learned
  faster without normalisation in our CPU runs.
  """
  kind: str = 'group'
  channels_per_group: int = 16

  @nn.compact
  def __call__(self, x):
    if self.kind == 'none':
      return x
    if self.kind != 'group':
      raise ValueError(f"tokenizer.norm must be 'group' or 'none', got {self.kind!r}")
    b, t = x.shape[:2]
    c = x.shape[-1]
    groups = max(1, c // self.channels_per_group)
    y = nn.GroupNorm(num_groups=math.gcd(groups, c), dtype=x.dtype)(
        x.reshape(b * t, *x.shape[2:]))
    return y.reshape(x.shape)


class ResBlock(nn.Module):
  features: int
  temporal_kernel: int = 3
  norm: str = 'group'
  dtype: Any = jnp.float32
  conv: str = '3d'

  @nn.compact
  def __call__(self, x):
    k = (self.temporal_kernel, 3, 3)
    h = st_conv(self.conv, self.features, k, dtype=self.dtype)(
        nn.swish(FrameNorm(self.norm)(x)))
    h = st_conv(self.conv, self.features, k, dtype=self.dtype)(
        nn.swish(FrameNorm(self.norm)(h)))
    if x.shape[-1] != self.features:
      x = CausalConv(self.features, (1, 1, 1), dtype=self.dtype)(x)
    return x + h


def space_to_depth(x, p):
  b, t, h, w, c = x.shape
  x = x.reshape(b, t, h // p, p, w // p, p, c).transpose(0, 1, 2, 4, 3, 5, 6)
  return x.reshape(b, t, h // p, w // p, p * p * c)


def depth_to_space(x, p):
  b, t, h, w, c = x.shape
  x = x.reshape(b, t, h, w, p, p, c // (p * p)).transpose(0, 1, 2, 4, 3, 5, 6)
  return x.reshape(b, t, h * p, w * p, c // (p * p))


def _levels(channels, spatial, temporal):
  ns, nt = int(math.log2(spatial)), int(math.log2(temporal))
  if 2 ** ns != spatial or 2 ** nt != temporal:
    raise ValueError(f'tokenizer compression must be powers of 2, got '
                     f'spatial={spatial}, temporal={temporal}')
  if max(ns, nt) > len(channels) - 1:
    raise ValueError(f'tokenizer.channels needs at least {max(ns, nt) + 1} '
                     f'levels for spatial x{spatial}, temporal x{temporal}')
  return [(2 if i < nt else 1, 2 if i < ns else 1)
          for i in range(len(channels) - 1)]


def _stack_conv(m, features, kernel, strides=(1, 1, 1), mid=0):
  """A convolution of the Encoder's or Decoder's `conv` kind and dtype."""
  return st_conv(m.conv, features, kernel, strides, m.dtype, mid)


def _stack_block(m, features, n):
  """The Encoder's or Decoder's n-th residual block (named, so checkpoints
  restore whatever `remat` is)."""
  return _res_block(m.remat)(features, m.temporal_kernel, m.norm, m.dtype,
                             conv=m.conv, name=f'ResBlock_{n}')


class Encoder(nn.Module):
  channels: Sequence[int]
  num_res_blocks: int
  spatial: int
  temporal: int
  latent_dim: int
  temporal_kernel: int = 3
  patch: int = 1
  norm: str = 'group'
  dtype: Any = jnp.float32
  remat: str = 'none'
  conv: str = '3d'  # Tokenizer.conv
  layout: str = 'uniform'  # Tokenizer.layout
  pixel_layers: str = 'conv'  # Tokenizer.pixel_layers

  _conv = _stack_conv
  _block = _stack_block

  @nn.compact
  def __call__(self, x):
    kt = self.temporal_kernel
    if self.patch > 1:  # pixels of a patch side by side as channels
      x = space_to_depth(x, self.patch)
    k = (1, 1, 1) if self.pixel_layers == 'linear' else (kt, 3, 3)
    x = self._conv(self.channels[0], k)(x)
    downs = _levels(self.channels, self.spatial, self.temporal)
    down = (self._downsample_first if self.layout == 'latent'
            else self._uniform)
    x = nn.swish(FrameNorm(self.norm)(down(x, downs)))
    return CausalConv(self.latent_dim, (1, 1, 1), dtype=self.dtype)(x)

  def _uniform(self, x, downs):
    kt = self.temporal_kernel
    n = 0
    for i, c in enumerate(self.channels):
      for _ in range(self.num_res_blocks):
        x = self._block(c, n)(x)
        n += 1
      if i < len(downs):
        st, ss = downs[i]
        x = self._conv(self.channels[i + 1], (max(kt, st), 3, 3),
                       (st, ss, ss))(x)
    return x

  def _downsample_first(self, x, downs):
    """VideoGPT's order: strided convolutions (4 wide where they halve, as its
    4x4x4 stride-2 ones) straight down to the latent grid, then all the
    residual blocks there, where a position costs 1/(s*s*t) of a pixel's."""
    kt = self.temporal_kernel
    for i, (st, ss) in enumerate(downs):
      ks = 4 if ss > 1 else 3
      x = nn.swish(FrameNorm(self.norm)(x))
      x = self._conv(self.channels[i + 1],
                     (max(kt, 2 * st) if st > 1 else kt, ks, ks),
                     (st, ss, ss))(x)
    for n in range(self.num_res_blocks):
      x = self._block(self.channels[-1], n)(x)
    return x


class Decoder(nn.Module):
  channels: Sequence[int]
  num_res_blocks: int
  spatial: int
  temporal: int
  temporal_kernel: int = 3
  patch: int = 1
  norm: str = 'group'
  dtype: Any = jnp.float32
  remat: str = 'none'
  conv: str = '3d'  # Tokenizer.conv
  layout: str = 'uniform'  # Tokenizer.layout
  stem: str = 'conv'  # Tokenizer.decoder_stem
  pixel_layers: str = 'conv'  # Tokenizer.pixel_layers

  _conv = _stack_conv
  _block = _stack_block

  @nn.compact
  def __call__(self, z):
    kt = self.temporal_kernel
    ups = _levels(self.channels, self.spatial, self.temporal)[::-1]
    chans = list(self.channels)[::-1]
    if self.stem == 'pointwise':
      x = CausalConv(chans[0], (1, 1, 1), dtype=self.dtype)(z)
    else:
      x = self._conv(chans[0], (kt, 3, 3))(z)
    up = self._upsample_last if self.layout == 'latent' else self._uniform
    x = up(x, ups, chans)
    x = nn.swish(FrameNorm(self.norm)(x))
    k = 1 if self.pixel_layers == 'linear' else 3
    x = CausalConv(3 * self.patch ** 2, (1, k, k), dtype=self.dtype)(x)
    return depth_to_space(x, self.patch) if self.patch > 1 else x

  def _uniform(self, x, ups, chans):
    kt = self.temporal_kernel
    n = 0
    for i, c in enumerate(chans):
      for _ in range(self.num_res_blocks):
        x = self._block(c, n)(x)
        n += 1
      if i < len(ups):
        st, ss = ups[i]
        nxt = chans[i + 1]
        if st > 1:  # depth-to-time: frames of step j come from latent j only
          x = self._conv(nxt * st, (kt, 3, 3))(x)
          b, t, h, w, _ = x.shape
          x = x.reshape(b, t, h, w, st, nxt).transpose(0, 1, 4, 2, 3, 5)
          x = x.reshape(b, t * st, h, w, nxt)
        if ss > 1:
          b, t, h, w, c_ = x.shape
          x = jax.image.resize(x, (b, t, h * ss, w * ss, c_), 'nearest')
          x = CausalConv(nxt, (1, 3, 3), dtype=self.dtype)(x)
    return x

  def _upsample_last(self, x, ups, chans):
    """The encoder's `latent` layout mirrored: the residual blocks on the
    latent grid, then each level one convolution there to (st*ss*ss) times
    the next level's channels, unfolded into frames (of step j: from latents
    j and earlier only) and pixels (sub-pixel convolution: no work at the
    finer resolution)."""
    for n in range(self.num_res_blocks):
      x = self._block(chans[0], n)(x)
    for (st, ss), nxt in zip(ups, chans[1:]):
      x = nn.swish(FrameNorm(self.norm)(x))
      x = self._conv(nxt * st * ss * ss, (self.temporal_kernel, 3, 3),
                     mid=x.shape[-1])(x)
      if st > 1:
        x = depth_to_time(x, st)
      if ss > 1:
        x = depth_to_space(x, ss)
    return x


CONVS = ('3d', '2+1d')
LAYOUTS = ('uniform', 'latent')
STEMS = ('conv', 'pointwise')
PIXEL_LAYERS = ('conv', 'linear')


class Tokenizer(nn.Module):
  """Encoder -> quantizer -> decoder. Pure: no files, no flags."""
  channels: Sequence[int] = (64, 128, 128)
  num_res_blocks: int = 1
  patch: int = 1  # space-to-depth before the convolutions (part of `spatial`)
  spatial: int = 4
  temporal: int = 1
  temporal_kernel: int = 3
  norm: str = 'group'  # 'group' (per frame) or 'none'
  quantizer: str = 'fsq'  # 'fsq' or 'vq'
  fsq_levels: Sequence[int] = (8, 5, 5, 5)
  vq_codes: int = 1024
  vq_dim: int = 32
  vq_commitment: float = 0.25
  dtype: Any = jnp.float32  # compute dtype; parameters stay float32
  remat: str = 'none'  # models/remat.py POLICIES, per residual block
  # '3d': full (kt, 3, 3) convolutions; '2+1d': each a 2-D convolution over
  # frames then a causal one over time (Factorised).
  conv: str = '3d'
  # 'uniform': residual blocks at every level, full resolution included;
  # 'latent': strided convolutions down first, the blocks on the latent grid
  # only, the decoder mirrored (VideoGPT's order).
  layout: str = 'uniform'
  # The decoder's first layer: 'conv' (a (kt, 3, 3) convolution of the
  # latents) or 'pointwise' (VideoGPT's 1x1x1: with 256-wide codes the
  # 3x3 one is 14 % of the forward arithmetic of issue 16's 1.1M model).
  decoder_stem: str = 'conv'
  # The layers at patch resolution, the encoder's first and the decoder's
  # last: 'conv' ((kt, 3, 3) and (1, 3, 3) convolutions) or 'linear' (each
  # patch mapped alone, a ViT's patch embedding and its transpose; with few
  # channels at the finest grid these convolutions are XLA:CPU's slowest).
  pixel_layers: str = 'conv'

  def setup(self):
    for field, allowed in (('conv', CONVS), ('layout', LAYOUTS),
                           ('decoder_stem', STEMS),
                           ('pixel_layers', PIXEL_LAYERS)):
      if getattr(self, field) not in allowed:
        raise ValueError(f'tokenizer.{field} must be one of {allowed}, got '
                         f'{getattr(self, field)!r}')
    if self.quantizer == 'fsq':
      self.quant = quantizers.FSQ(tuple(self.fsq_levels))
    elif self.quantizer == 'vq':
      self.quant = quantizers.VectorQuantizerEMA(
          self.vq_codes, self.vq_dim, commitment=self.vq_commitment)
    else:
      raise ValueError(f"tokenizer.quantizer must be 'fsq' or 'vq', got "
                       f'{self.quantizer!r}')
    if self.spatial % self.patch:
      raise ValueError(f'tokenizer.patch={self.patch} must divide '
                       f'tokenizer.spatial={self.spatial}')
    convs = self.spatial // self.patch
    self.encoder = Encoder(self.channels, self.num_res_blocks, convs,
                           self.temporal, self.quant.dim, self.temporal_kernel,
                           self.patch, self.norm, self.dtype, self.remat,
                           self.conv, self.layout, self.pixel_layers)
    self.decoder = Decoder(self.channels, self.num_res_blocks, convs,
                           self.temporal, self.temporal_kernel, self.patch,
                           self.norm, self.dtype, self.remat, self.conv,
                           self.layout, self.decoder_stem, self.pixel_layers)

  @property
  def codebook_size(self) -> int:
    return (int(math.prod(self.fsq_levels)) if self.quantizer == 'fsq'
            else self.vq_codes)

  def encode(self, video, train: bool = False):
    """video (B, T, H, W, 3) in [-1, 1] -> (quantized latents, indices, aux)."""
    z = self.encoder(video.astype(self.dtype))
    return self.quant(z.astype(jnp.float32), train=train)

  def decode(self, zq):
    return self.decoder(zq.astype(self.dtype)).astype(jnp.float32)

  def decode_indices(self, idx):
    return self.decode(self.quant.decode_indices(idx))

  def codebook(self):
    """(V, D): the quantized latent of every index."""
    return self.quant.decode_indices(jnp.arange(self.codebook_size))

  def __call__(self, video, train: bool = False):
    zq, idx, aux = self.encode(video, train)
    return self.decode(zq), idx, aux


def to_float(video: jax.Array) -> jax.Array:
  """uint8 [0, 255] -> float32 [-1, 1]: what the tokenizer reads."""
  return video.astype(jnp.float32) / 127.5 - 1.0


def to_unit(video: jax.Array) -> jax.Array:
  """The tokenizer's [-1, 1] output -> [0, 1] pixels."""
  return jnp.clip((video + 1.0) / 2.0, 0.0, 1.0)
