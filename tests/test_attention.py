"""Every attention implementation on this machine computes the reference's
function (outputs and gradients, full sequences and the KV-cache path), and
the memory savers (remat, chunked loss) change no number.

On a GPU (JAX_PLATFORMS=cuda python -m pytest tests/test_attention.py) cuDNN
is compared too; on a TPU, Pallas.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mirai_jax import sample
from mirai_jax import tasks
from mirai_jax.models import attention
from mirai_jax.models import remat as remat_lib
from mirai_jax.models import tokenizer
from mirai_jax.models import transformer as transformer_lib
from mirai_jax.train import transformer as train_transformer

PLATFORM = jax.default_backend()
FAST = {'gpu': ['cudnn'], 'tpu': ['pallas']}.get(PLATFORM, [])
# The reference in float32 against each implementation in the dtypes it runs.
CASES = [('blockwise', jnp.float32), ('blockwise', jnp.bfloat16)] + [
    (name, jnp.bfloat16) for name in FAST]
TOL = {jnp.float32: 2e-5, jnp.bfloat16: 2e-2}


@pytest.fixture(autouse=True)
def _full_float32():
  # GPUs multiply float32 in TF32 by default (1e-3 relative): compare in
  # full float32.
  with jax.default_matmul_precision('highest'):
    yield


def _qkv(seed, shape, dtype):
  rng = np.random.default_rng(seed)
  return tuple(jnp.asarray(rng.normal(size=shape), dtype) for _ in range(3))


def _rel(a, b):
  a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
  return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize('name,dtype', CASES)
@pytest.mark.parametrize('length,block', [(64, 16), (100, 32), (24, 64)])
def test_outputs_and_gradients_match_the_reference(name, dtype, length, block,
                                                   monkeypatch):
  monkeypatch.setattr(attention, 'BLOCK', block)
  q, k, v = _qkv(length, (2, length, 4, 64), dtype)
  ref_in = [x.astype(jnp.float32) for x in (q, k, v)]
  # A loss that weights every output differently, so a gradient that is
  # right only on average fails.
  w = jnp.asarray(np.random.default_rng(1).normal(size=q.shape), jnp.float32)
  loss = lambda impl: lambda *a: jnp.sum(attention.attend(*a, impl).astype(
      jnp.float32) * w)
  out = attention.attend(q, k, v, name)
  ref = attention.attend(*ref_in, 'xla')
  assert out.dtype == dtype and out.shape == q.shape
  assert _rel(out, ref) < TOL[dtype]
  grads = jax.grad(loss(name), (0, 1, 2))(q, k, v)
  ref_grads = jax.grad(loss('xla'), (0, 1, 2))(*ref_in)
  for g, r in zip(grads, ref_grads):
    assert _rel(g, r) < 2 * TOL[dtype]


def test_blockwise_never_lets_a_query_see_a_later_key():
  q, k, v = _qkv(0, (1, 40, 2, 8), jnp.float32)
  out = attention.blockwise(q, k, v, 16)
  for t in (0, 15, 16, 33):  # block edges included
    k2 = k.at[:, t + 1:].set(-k[:, t + 1:] * 3)
    v2 = v.at[:, t + 1:].set(v[:, t + 1:] + 5)
    np.testing.assert_allclose(attention.blockwise(q, k2, v2, 16)[:, :t + 1],
                               out[:, :t + 1], atol=1e-6)


def test_auto_picks_per_platform_and_explicit_choices_are_checked():
  f32, bf16 = jnp.float32, jnp.bfloat16
  assert attention.resolve('auto', dtype=f32, head_dim=64, length=384,
                           platform='cpu') == 'xla'
  assert attention.resolve('auto', dtype=bf16, head_dim=64, length=2048,
                           platform='cpu') == 'blockwise'
  assert attention.resolve('auto', dtype=bf16, head_dim=64, length=2048,
                           platform='tpu') == 'pallas'
  assert attention.resolve('blockwise', dtype=f32, head_dim=64, length=8,
                           platform='cpu') == 'blockwise'
  with pytest.raises(ValueError, match='transformer.attention=cudnn needs'):
    attention.resolve('cudnn', dtype=bf16, head_dim=64, length=8,
                      platform='cpu')
  with pytest.raises(ValueError, match='mixed_precision'):
    attention.resolve('cudnn', dtype=f32, head_dim=64, length=8,
                      platform='gpu')
  with pytest.raises(ValueError, match='choose one of'):
    attention.resolve('flash', dtype=f32, head_dim=64, length=8)
  if PLATFORM == 'gpu':
    assert attention.resolve('auto', dtype=bf16, head_dim=64,
                             length=2048) == 'cudnn'


GRID = (4, 3, 4)
V = 29


def _model(**kw):
  kw.setdefault('dtype', jnp.float32)
  return transformer_lib.Transformer(codebook_size=V, grid=GRID, width=32,
                                     depth=2, heads=2, audio_channels=8, **kw)


def _setup(order, **kw):
  model = _model(**kw)
  seq = jnp.asarray(np.random.default_rng(0).integers(0, V, (2, order.perm.size)))
  params = model.init(jax.random.key(0),
                      *transformer_lib.inputs(seq, order, V))
  return model, params, seq


def _random_copy_gates(params, seed=5):
  """Copy gates that do something (they start at zero)."""
  rng = np.random.default_rng(seed)
  gate = {k: jnp.asarray(rng.normal(0, 1, v.shape), v.dtype)
          for k, v in params['params']['copy_gate'].items()}
  return {'params': dict(params['params'], copy_gate=gate)}


@pytest.mark.parametrize('name', ['blockwise'] + FAST)
def test_the_model_and_its_kv_cache_agree_with_the_reference(name, monkeypatch):
  monkeypatch.setattr(attention, 'BLOCK', 16)  # 48 tokens: 3 blocks
  order = tasks.make_order('continue', GRID, context=2)
  dtype = jnp.bfloat16 if name in FAST else jnp.float32
  ref, params, seq = _setup(order)
  model = _model(attention=name, dtype=dtype)
  inputs = transformer_lib.inputs(seq, order, V)
  tol = TOL[dtype]
  assert _rel(model.apply(params, *inputs), ref.apply(params, *inputs)) < tol
  # The cache path: a prefill of the known part, then one token at a time,
  # must give the logits of the full pass at every position.
  k, n = order.num_known, order.perm.size
  prev, prev_pos, pos, above = inputs
  part = lambda i, j: (prev[:, i:j], prev_pos[i:j], pos[i:j], above[:, i:j])
  cache = model.init_cache(2, n, dtype)
  rest, layers = transformer_lib.split_layers(params)
  logits, cache = model.apply(rest, *part(0, k), None, cache, 0, layers,
                              method=model.decode)
  steps = [logits]
  step = jax.jit(lambda cache, i, *a: model.apply(rest, *a, None, cache, i,
                                                  layers, method=model.decode))
  for i in range(k, n):
    logits, cache = step(cache, i, *part(i, i + 1))
    steps.append(logits)
  assert _rel(jnp.concatenate(steps, 1), ref.apply(params, *inputs)) < tol
  # And sampling with it draws what the uncached reference loop draws.
  known = jnp.where(jnp.arange(n) < k, seq, 0)
  if dtype == jnp.float32:
    a = sample.generate(model, params, known, order, None, jax.random.key(3),
                        temperature=0.0)
    b = sample.generate_uncached(ref, params, known, order, None,
                                 jax.random.key(3), temperature=0.0)
    np.testing.assert_array_equal(a, b)


def _loss_and_grads(model, params, seq, order, chunk=0):
  def loss(p):
    x = model.apply(p, *transformer_lib.inputs(seq, order, V), method=model.hidden)
    k = order.num_known
    targets = seq[:, k:]
    chunks = train_transformer.loss_chunks(2, targets.shape[1], V, chunk)
    above = transformer_lib.inputs(seq, order, V)[3]
    ce, right = train_transformer.cross_entropy(model, p, x[:, k:],
                                                above[:, k:], targets, chunks)
    return ce / targets.size, right
  return jax.jit(jax.value_and_grad(loss, has_aux=True))(params)


@pytest.mark.parametrize('remat', ['dots', 'full'])
def test_remat_changes_no_number(remat):
  order = tasks.make_order('continue', GRID, context=2)
  model, params, seq = _setup(order)
  (l0, r0), g0 = _loss_and_grads(model, params, seq, order)
  (l1, r1), g1 = _loss_and_grads(_model(remat=remat), params, seq, order)
  np.testing.assert_allclose(l1, l0, rtol=1e-6)
  assert r0 == r1
  for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g0)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_the_loss_in_chunks_equals_the_loss_at_once():
  order = tasks.make_order('continue', GRID, context=2)  # 24 predicted tokens
  assert train_transformer.loss_chunks(2, 24, V, chunk=5) == 6  # 6 of 4
  assert train_transformer.loss_chunks(2, 24, V, chunk=8) == 3
  assert train_transformer.loss_chunks(64, 1024, 15360) == 8  # 512 MB each
  assert train_transformer.loss_chunks(16, 256, 1000) == 1  # the demo
  # With the copy gates the chunks carry each token's hints too.
  model, params, seq = _setup(order, copy_hints=True)
  params = _random_copy_gates(params)
  (l0, r0), g0 = _loss_and_grads(model, params, seq, order)
  (l1, r1), g1 = _loss_and_grads(model, params, seq, order, chunk=8)
  np.testing.assert_allclose(l1, l0, rtol=1e-6)
  assert r0 == r1
  # Sums over other chunkings: a few float32 roundings of gradients ~1.
  for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g0)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_tokenizer_remat_changes_no_number_nor_parameter_name(remat='full'):
  kw = dict(channels=(4, 8), num_res_blocks=1, spatial=2, temporal=2)
  video = jax.random.uniform(jax.random.key(0), (2, 4, 8, 8, 3)) * 2 - 1
  base, other = tokenizer.Tokenizer(**kw), tokenizer.Tokenizer(remat=remat, **kw)
  params = jax.jit(base.init)(jax.random.key(1), video)
  assert (jax.tree.structure(jax.eval_shape(other.init, jax.random.key(1), video))
          == jax.tree.structure(params))

  def loss(model):
    return jax.jit(jax.value_and_grad(
        lambda p: jnp.mean(model.apply(p, video)[0] ** 2)))(params)
  (l0, g0), (l1, g1) = loss(base), loss(other)
  np.testing.assert_allclose(l1, l0, rtol=1e-6)
  for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g0)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_remat_and_blockwise_attention_lower_the_planned_memory():
  """XLA's plan for a training step's gradient: each saver must pay off."""
  grid = (4, 8, 8)  # 256 tokens
  order = tasks.make_order('continue', grid, context=2)
  seq = jnp.zeros((4, order.perm.size), jnp.int32)

  def planned(**kw):
    model = transformer_lib.Transformer(codebook_size=V, grid=grid, width=64,
                                        depth=3, heads=2, audio_channels=8, **kw)
    params = jax.eval_shape(lambda: model.init(
        jax.random.key(0), *transformer_lib.inputs(seq, order, V)))
    grad = jax.jit(jax.grad(lambda p: jnp.sum(model.apply(
        p, *transformer_lib.inputs(seq, order, V), method=model.hidden))))
    return grad.lower(params).compile().memory_analysis().temp_size_in_bytes

  attention.BLOCK, old = 64, attention.BLOCK
  try:
    none, dots, full = (planned(remat=r) for r in ('none', 'dots', 'full'))
    blockwise = planned(remat='full', attention='blockwise')
  finally:
    attention.BLOCK = old
  assert full < dots < none
  assert blockwise < full


def test_dots_attention_keeps_a_fused_kernel_out_of_the_backward_pass():
  # A stand-in for cuDNN's forward primitive, under its name, inside a
  # custom_vjp as in jax.nn.dot_product_attention: `dots` runs it again in
  # the backward pass, `dots_attention` keeps its output.
  from jax.extend import core as jex_core  # pylint: disable=g-import-not-at-top
  from jax.interpreters import mlir  # pylint: disable=g-import-not-at-top
  prim = jex_core.Primitive(remat_lib.FUSED_ATTENTION[0])
  prim.def_impl(jnp.sin)
  prim.def_abstract_eval(lambda x: jax.core.ShapedArray(x.shape, x.dtype))
  mlir.register_lowering(prim, mlir.lower_fun(jnp.sin, multiple_results=False))

  @jax.custom_vjp
  def fused(x):
    return prim.bind(x)

  def fwd(x):
    y = prim.bind(x)
    return y, (x,)

  fused.defvjp(fwd, lambda res, g: (g * jnp.cos(res[0]),))

  def block(x):
    return jnp.tanh(fused(x) @ x)

  def calls(name):
    g = jax.grad(lambda x: jax.checkpoint(
        block, policy=remat_lib.policy(name, 'remat'))(x).sum())
    x = jnp.linspace(0, 1, 16).reshape(4, 4)
    return str(jax.make_jaxpr(g)(x)).count(prim.name), g(x)

  (dots, g_dots), (kept, g_kept) = calls('dots'), calls('dots_attention')
  assert (dots, kept) == (2, 1)
  np.testing.assert_allclose(g_kept, g_dots, rtol=1e-6)
