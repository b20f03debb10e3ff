"""Causal self-attention, several implementations of one function.

`attend(q, k, v, implementation)` with q, k, v (B, L, heads, head_dim):

- 'xla': `jax.nn.dot_product_attention`'s XLA path, the reference. It
  materialises (B, heads, L, L) scores and keeps them for the backward pass:
  130 GB at the kny config's batch 64 x 2048 tokens.
- 'cudnn': cuDNN's fused flash attention (NVIDIA GPUs; bf16/fp16, head_dim a
  multiple of 8 and at most 128, or 256 on Hopper and newer).
- 'blockwise': flash attention written in JAX (blocks of queries against
  blocks of keys with an online softmax, and a custom backward pass that
  recomputes each block from the saved log-sum-exp). Memory O(L) instead of
  O(L^2) on every platform; blocks above the diagonal are never computed.
- 'pallas': the Pallas flash-attention kernel that ships with JAX for TPUs.

`resolve('auto', ...)` picks per platform: cuDNN on GPUs where the shapes and
dtype allow it, Pallas on TPUs, and elsewhere (CPU) the XLA reference for
short sequences and blockwise attention from `BLOCK` tokens up. Every
implementation computes the same function (tests/test_attention.py compares
outputs and gradients with the reference).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

IMPLEMENTATIONS = ('auto', 'xla', 'cudnn', 'blockwise', 'pallas')
BLOCK = 512  # blockwise: tokens per query/key block
_NEG = -1e30  # a finite -inf: exp(_NEG - m) is 0 without inf - inf NaNs


def resolve(name: str, *, dtype, head_dim: int, length: int,
            platform: str | None = None) -> str:
  """The concrete implementation `name` stands for on `platform`.

  Raises ValueError naming the config field when an explicit choice cannot
  run here (so it fails at start-up, not inside a jit trace).
  """
  platform = platform or jax.default_backend()
  if name not in IMPLEMENTATIONS:
    raise ValueError(f'config.transformer.attention={name!r}: choose one of '
                     f'{", ".join(IMPLEMENTATIONS)}')
  cudnn_ok = (platform == 'gpu' and jnp.dtype(dtype) in (jnp.bfloat16, jnp.float16)
              and head_dim % 8 == 0 and head_dim <= 128)
  if name == 'auto':
    if cudnn_ok and _is_nvidia():
      return 'cudnn'
    if platform == 'tpu':
      return 'pallas'
    return 'xla' if length < BLOCK else 'blockwise'
  if name == 'cudnn' and not cudnn_ok:
    raise ValueError(
        f'config.transformer.attention=cudnn needs an NVIDIA GPU, bf16 '
        f'(transformer.mixed_precision=True) and a head size that is a multiple '
        f'of 8 up to 128 (here: platform {platform}, {jnp.dtype(dtype).name}, '
        f'head size {head_dim}); use auto, blockwise or xla')
  if name == 'pallas' and platform != 'tpu':
    raise ValueError(f'config.transformer.attention=pallas runs on TPUs only '
                     f'(this is {platform}); use auto, blockwise or xla')
  return name


def _is_nvidia() -> bool:
  dev = jax.devices()[0]
  version = getattr(getattr(dev, 'client', None), 'platform_version', '')
  return 'cuda' in str(version).lower() or 'nvidia' in dev.device_kind.lower()


def attend(q, k, v, implementation: str = 'xla'):
  """Causal attention; q, k, v (B, L, heads, head_dim) -> (B, L, heads, head_dim)."""
  if implementation == 'xla':
    return jax.nn.dot_product_attention(q, k, v, is_causal=True,
                                        implementation='xla')
  if implementation == 'cudnn':
    # cuDNN wants some lengths even (the sampler's prefill has k + 1
    # tokens): pad at the end, where causality hides the padding.
    length = q.shape[1]
    q, k, v = _pad_to(64, q, k, v)
    return jax.nn.dot_product_attention(q, k, v, is_causal=True,
                                        implementation='cudnn')[:, :length]
  if implementation == 'blockwise':
    return blockwise(q, k, v, BLOCK)
  if implementation == 'pallas':
    return _pallas_tpu(q, k, v)
  raise ValueError(f'unknown attention implementation {implementation!r} '
                   "(resolve 'auto' first)")


def attend_cached(q, ck, cv, index):
  """Queries at positions [index, index + Lq) against a KV cache (B, N, ...)
  whose entries up to index + Lq are written: one masked XLA call (a decode
  step is a matrix-vector product, bound by reading the cache)."""
  q_pos = index + jnp.arange(q.shape[1])
  mask = jnp.arange(ck.shape[1])[None, :] <= q_pos[:, None]
  return jax.nn.dot_product_attention(q, ck.astype(q.dtype), cv.astype(q.dtype),
                                      mask=mask[None, None])


def _pad_to(multiple: int, *xs):
  """Each (B, L, ...) padded at the end of L to a multiple of `multiple`:
  in causal attention no real query sees a key after it."""
  pad = -xs[0].shape[1] % multiple
  if not pad:
    return xs
  return tuple(jnp.pad(x, ((0, 0), (0, pad)) + ((0, 0),) * (x.ndim - 2))
               for x in xs)


# ------------------------------------------------------------- blockwise
def blockwise(q, k, v, block: int = BLOCK):
  """Flash attention in plain JAX (any platform). Pads L to whole blocks:
  padded keys lie after every real query, so causality hides them."""
  b, length, h, d = q.shape
  block = min(block, length)
  n = -(-length // block)
  q, k, v = _pad_to(block, q, k, v)
  blocked = lambda x: x.reshape(b, n, block, h, d)
  out = _flash(blocked(q), blocked(k), blocked(v))
  return out.reshape(b, n * block, h, d)[:, :length]


def _scores(qi, kj, i, j, scale):
  """(B, heads, bq, bk) float32 scores of query block i against key block j."""
  s = jnp.einsum('bqhd,bkhd->bhqk', qi, kj,
                 preferred_element_type=jnp.float32) * scale
  bq, bk = qi.shape[1], kj.shape[1]
  q_pos = i * bq + jnp.arange(bq)
  k_pos = j * bk + jnp.arange(bk)
  return jnp.where(k_pos[None, :] <= q_pos[:, None], s, _NEG)


def _forward(q, k, v):
  """Blocked (B, n, blk, heads, d) -> (out like q, lse (n, B, heads, blk))."""
  b, n, blk, h, d = q.shape
  scale = d ** -0.5

  def row(i):
    qi = q[:, i]

    def body(j, carry):
      m, l, acc = carry
      s = _scores(qi, k[:, j], i, j, scale)
      m_new = jnp.maximum(m, s.max(-1))
      p = jnp.exp(s - m_new[..., None])
      c = jnp.exp(m - m_new)
      acc = acc * c[..., None] + jnp.einsum(
          'bhqk,bkhd->bhqd', p.astype(v.dtype), v[:, j],
          preferred_element_type=jnp.float32)
      return m_new, l * c + p.sum(-1), acc

    init = (jnp.full((b, h, blk), _NEG, jnp.float32),
            jnp.zeros((b, h, blk), jnp.float32),
            jnp.zeros((b, h, blk, d), jnp.float32))
    m, l, acc = jax.lax.fori_loop(0, i + 1, body, init)  # key blocks <= i
    out = (acc / l[..., None]).transpose(0, 2, 1, 3).astype(q.dtype)
    return out, m + jnp.log(l)

  out, lse = jax.lax.map(row, jnp.arange(n))  # (n, B, blk, h, d), (n, B, h, blk)
  return out.transpose(1, 0, 2, 3, 4), lse


@jax.custom_vjp
def _flash(q, k, v):
  return _forward(q, k, v)[0]


def _flash_fwd(q, k, v):
  out, lse = _forward(q, k, v)
  return out, (q, k, v, out, lse)


def _flash_bwd(res, do):
  q, k, v, out, lse = res
  b, n, blk, h, d = q.shape
  scale = d ** -0.5
  # delta_i = rowsum(dO_i * O_i): the softmax's backward without the scores.
  delta = jnp.einsum('bnqhd,bnqhd->nbhq', do.astype(jnp.float32),
                     out.astype(jnp.float32))

  def probs(i, j):
    return jnp.exp(_scores(q[:, i], k[:, j], i, j, scale) - lse[i][..., None])

  def dscores(i, j, p):
    dp = jnp.einsum('bqhd,bkhd->bhqk', do[:, i], v[:, j],
                    preferred_element_type=jnp.float32)
    return p * (dp - delta[i][..., None])

  def key_col(j):  # dK_j, dV_j from the query blocks i >= j
    def body(i, carry):
      dk, dv = carry
      p = probs(i, j)
      dv += jnp.einsum('bhqk,bqhd->bkhd', p.astype(do.dtype), do[:, i],
                       preferred_element_type=jnp.float32)
      ds = dscores(i, j, p)
      dk += jnp.einsum('bhqk,bqhd->bkhd', ds.astype(q.dtype), q[:, i],
                       preferred_element_type=jnp.float32) * scale
      return dk, dv
    zero = jnp.zeros((b, blk, h, d), jnp.float32)
    return jax.lax.fori_loop(j, n, body, (zero, zero))

  def query_row(i):  # dQ_i from the key blocks j <= i
    def body(j, dq):
      ds = dscores(i, j, probs(i, j))
      return dq + jnp.einsum('bhqk,bkhd->bqhd', ds.astype(k.dtype), k[:, j],
                             preferred_element_type=jnp.float32) * scale
    return jax.lax.fori_loop(0, i + 1, body, jnp.zeros((b, blk, h, d),
                                                       jnp.float32))

  dk, dv = jax.lax.map(key_col, jnp.arange(n))
  dq = jax.lax.map(query_row, jnp.arange(n))
  back = lambda x, like: x.transpose(1, 0, 2, 3, 4).astype(like.dtype)
  return back(dq, q), back(dk, k), back(dv, v)


_flash.defvjp(_flash_fwd, _flash_bwd)


# ---------------------------------------------------------------- Pallas
def _pallas_tpu(q, k, v):
  """JAX's Pallas TPU flash-attention kernel (layout (B, heads, L, d))."""
  from jax.experimental.pallas.ops.tpu import flash_attention as fa  # pylint: disable=g-import-not-at-top
  t = lambda x: x.transpose(0, 2, 1, 3)
  out = fa.flash_attention(t(q), t(k), t(v), causal=True,
                           sm_scale=q.shape[-1] ** -0.5)
  return t(out)

