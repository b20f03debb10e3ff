"""Sampling from the transformer: one jit-compiled loop with a KV cache.

The known tokens (the first `order.num_known` of the sequence) go through the
model in one prefill call; then `lax.fori_loop` generates one position per
iteration, reading only the new input and the cached keys/values. Position i
is drawn with the key `fold_in(rng, i)`, so a seed gives the same tokens
whatever the batch layout, and the uncached reference loop (kept for tests
and the benchmark) draws exactly what the cached one does.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mirai_jax.models.transformer import inputs
from mirai_jax.models.transformer import split_layers
from mirai_jax.tasks import Order


def filter_logits(logits: jax.Array, top_k: int = 0, top_p: float = 1.0
                  ) -> jax.Array:
  """Logits outside the top k / the top-p nucleus set to -inf."""
  if top_k:
    kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
    logits = jnp.where(logits < kth, -jnp.inf, logits)
  if top_p < 1.0:
    s = jnp.sort(logits, axis=-1)[..., ::-1]
    probs = jax.nn.softmax(s, axis=-1)
    keep = (jnp.cumsum(probs, axis=-1) - probs) < top_p  # at least the best
    cutoff = jnp.min(jnp.where(keep, s, jnp.inf), axis=-1, keepdims=True)
    logits = jnp.where(logits < cutoff, -jnp.inf, logits)
  return logits


def choose(rng, logits, temperature: float, top_k: int, top_p: float,
           above=None, hold_bias: float = 0.0):
  """(B, V) logits -> (B,) tokens; temperature 0 is greedy. `hold_bias` is
  added to the logit of `above` (B,), the token at the same place one step
  earlier (codebook_size = none): a prior for anime's held drawings, which
  trades a change the model is unsure of for the stillness that costs
  nothing when it is wrong (README, "Sampling")."""
  if hold_bias and above is not None:
    logits = logits + hold_bias * jax.nn.one_hot(above, logits.shape[-1],
                                                 dtype=logits.dtype)
  if temperature == 0:
    return jnp.argmax(logits, -1).astype(jnp.int32)
  logits = filter_logits(logits / temperature, top_k, top_p)
  return jax.random.categorical(rng, logits, -1).astype(jnp.int32)


def _above_at(seq, order: Order, i, bos: int):
  """(B, 1, 2) tokens one step above position i (traced i) and at its
  nearest later step read (models/transformer.py `inputs`), or bos."""
  j = jnp.asarray(order.hint_index)[i]
  tok = seq[:, jnp.maximum(j, 0)]  # (B, 2)
  return jnp.where(j >= 0, tok, bos)[:, None]


def compute_params(params, dtype):
  """Weight matrices in the compute dtype, once, rather than converted from
  float32 again at every step of the loop (bf16 halves the bytes a decode
  step reads). Norms, biases and embedding tables stay as they are."""
  if jnp.dtype(dtype) == jnp.float32:
    return params
  return jax.tree_util.tree_map_with_path(
      lambda path, x: x.astype(dtype) if getattr(path[-1], 'key', '') == 'kernel'
      else x, params)


def generate(model, params, seq, order: Order, audio=None, rng=None, *,
             temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
             hold_bias: float = 0.0, cache_dtype=None,
             min_rows: int | None = None, prefix: int | None = None,
             codes=None, mean_top_k: int = 0):
  """seq (B, N) in reading order, known part filled -> (B, N) completed.

  With `codes` (V, D), the tokenizer's latent of every token, it returns
  (tokens, means): means (B, N, D) holds the latent of each token read and,
  at each generated position, the latent expected under the model's
  distribution there (`expected_latent` over `mean_top_k` tokens), for
  `sample.decode='mean'`.

  Positions < order.num_known are never written; nor those < `prefix`
  (default num_known), which the model reads as if it had drawn them (a
  widening carries the sides it generated over a window's first steps,
  the first unknown positions of its order, into the next window). The KV
  cache is kept in
  `cache_dtype` (default: the model's compute dtype, bf16 in mixed precision).
  Fewer than `min_rows` rows (default 2 on GPUs, else 1) are padded with
  copies of the last: XLA:GPU computes the vector-matrix products of a single
  row as multiply + reduce kernels that read the weights slowly, and two rows
  make them matrix products (a kny continuation on an H100: 0.86 s for one
  row, 0.77 s for two). Each row's tokens are the same either way.
  """
  rng = jax.random.key(0) if rng is None else rng
  b, n = seq.shape
  if min_rows is None:
    min_rows = 2 if jax.default_backend() == 'gpu' else 1
  if b < min_rows:
    pad = lambda x: jnp.concatenate([x] + [x[-1:]] * (min_rows - b), 0)
    out = generate(model, params, pad(seq), order,
                   None if audio is None else pad(audio), rng,
                   temperature=temperature, top_k=top_k, top_p=top_p,
                   hold_bias=hold_bias, cache_dtype=cache_dtype, min_rows=1,
                   prefix=prefix, codes=codes, mean_top_k=mean_top_k)
    return jax.tree.map(lambda x: x[:b], out)
  k = order.num_known if prefix is None else prefix
  if not order.num_known <= k < n:
    raise ValueError(f'prefix={prefix}: between the {order.num_known} known '
                     f'tokens and the sequence length {n}')
  seq = seq.astype(jnp.int32)
  bos = model.codebook_size
  prev, prev_pos, pos, above = inputs(seq, order, bos)
  cache = model.init_cache(b, n, cache_dtype or model.dtype)
  params, layers = split_layers(compute_params(params, model.dtype))
  pick = functools.partial(choose, temperature=temperature, top_k=top_k,
                           top_p=top_p, hold_bias=hold_bias)
  # Inputs 0..k only read known tokens (above[:, :k + 1] points below k).
  logits, cache = model.apply(params, prev[:, :k + 1], prev_pos[:k + 1],
                              pos[:k + 1], above[:, :k + 1], audio, cache, 0,
                              layers, method=model.decode)
  seq = seq.at[:, k].set(pick(jax.random.fold_in(rng, k), logits[:, -1],
                              above=above[:, k, 0]))
  means = jnp.zeros((b, n, 0))  # carried empty without codes
  if codes is not None:  # the tokens' latents; generated places: their means
    codes = jnp.asarray(codes, jnp.float32)
    means = codes[seq].at[:, k].set(
        expected_latent(logits[:, -1], codes, mean_top_k))

  def body(i, carry):
    seq, means, cache = carry
    up = _above_at(seq, order, i, bos)
    logits, cache = model.apply(
        params, jax.lax.dynamic_slice_in_dim(seq, i - 1, 1, 1),
        jax.lax.dynamic_slice_in_dim(prev_pos, i, 1, 0),
        jax.lax.dynamic_slice_in_dim(pos, i, 1, 0),
        up, audio, cache, i, layers, method=model.decode)
    tok = pick(jax.random.fold_in(rng, i), logits[:, 0], above=up[:, 0, 0])
    if codes is not None:
      means = jax.lax.dynamic_update_slice_in_dim(
          means, expected_latent(logits[:, 0], codes, mean_top_k)[:, None],
          i, 1)
    return (jax.lax.dynamic_update_slice_in_dim(seq, tok[:, None], i, 1),
            means, cache)

  seq, means, _ = jax.lax.fori_loop(k + 1, n, body, (seq, means, cache))
  return seq if codes is None else (seq, means)


def expected_latent(logits, codes, top_k: int = 0):
  """(B, V) logits, (V, D) latents -> (B, D): the mean of the token's latent
  under the model's distribution (temperature 1, no hold bias), over its
  `top_k` most likely tokens (0 = all). Decoded, it is near the frame of
  least expected squared error where the model is unsure (the average of
  the drawings it weighs), where the drawn token commits to one of them. The
  long tail of unlikely tokens, each far from the likely ones in latent
  space, would pull every place's mean off its code and blur what the model
  is sure of: a small `top_k` keeps the mean among the likely drawings."""
  p = jax.nn.softmax(filter_logits(logits.astype(jnp.float32), top_k), -1)
  return p @ jnp.asarray(codes, jnp.float32)


def generate_uncached(model, params, seq, order: Order, audio=None, rng=None,
                      *, temperature: float = 1.0, top_k: int = 0,
                      top_p: float = 1.0, hold_bias: float = 0.0,
                      prefix: int | None = None):
  """The same draws as `generate`, running the whole sequence every step."""
  rng = jax.random.key(0) if rng is None else rng
  seq = seq.astype(jnp.int32)
  pick = functools.partial(choose, temperature=temperature, top_k=top_k,
                           top_p=top_p, hold_bias=hold_bias)

  def body(i, seq):
    ins = inputs(seq, order, model.codebook_size)
    logits = model.apply(params, *ins, audio)
    logits = jax.lax.dynamic_index_in_dim(logits, i, 1, keepdims=False)
    up = jax.lax.dynamic_index_in_dim(ins[3], i, 1, keepdims=False)
    tok = pick(jax.random.fold_in(rng, i), logits, above=up[:, 0])
    return jax.lax.dynamic_update_slice_in_dim(seq, tok[:, None], i, 1)

  start = order.num_known if prefix is None else prefix
  return jax.lax.fori_loop(start, seq.shape[1], body, seq)


def known_sequence(tokens: np.ndarray | jax.Array, order: Order,
                   prefix: int | None = None):
  """(B, T, H, W) tokens -> (B, N) reading order with the unknown part (the
  positions from `prefix`, default num_known, on) zeroed."""
  seq = order.to_sequence(tokens)
  keep = np.arange(seq.shape[1]) < (order.num_known if prefix is None else prefix)
  return jnp.where(keep, seq, 0).astype(jnp.int32)
