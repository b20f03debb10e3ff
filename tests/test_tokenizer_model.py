"""The tokenizer model and its quantizers (pure functions, no training loop)."""

import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mirai_jax import xla_options
from mirai_jax.models import quantizers
from mirai_jax.models import tokenizer


ARCHS = [(conv, layout) for conv in tokenizer.CONVS
         for layout in tokenizer.LAYOUTS]


# The default architecture with both quantizers at every compression in
# time; the others (FSQ) per frame and at x4 in time, where their temporal
# convolutions and unfolding matter; and issue 16's candidate (VQ,
# '2+1d'/'latent', patch 2) with a pointwise decoder stem and with linear
# pixel layers.
@pytest.mark.parametrize(
    'quantizer,conv,layout,temporal,patch,extra',
    [(q, '3d', 'uniform', t, p, {}) for q in ('fsq', 'vq')
     for t, p in ((1, 1), (2, 1), (4, 2))]
    + [('fsq', c, l, t, p, {}) for c, l in ARCHS[1:]
       for t, p in ((1, 1), (4, 2))]
    + [('vq', '2+1d', 'latent', 4, 2, dict(decoder_stem='pointwise')),
       ('vq', '2+1d', 'latent', 4, 2, dict(pixel_layers='linear'))])
def test_tokens_of_past_frames_ignore_the_future(quantizer, temporal, patch,
                                                 conv, layout, extra):
  model = tokenizer.Tokenizer(channels=(8, 8, 8), spatial=4, patch=patch,
                              temporal=temporal, temporal_kernel=3,
                              quantizer=quantizer, vq_codes=64, vq_dim=4,
                              conv=conv, layout=layout, **extra)
  rng = jax.random.key(0)
  video = jax.random.uniform(rng, (1, 8, 16, 16, 3)) * 2 - 1
  variables = model.init(rng, video)
  encode = jax.jit(lambda v: model.apply(variables, v,
                                         method=tokenizer.Tokenizer.encode))
  _, idx, _ = encode(video)
  assert idx.shape == (1, 8 // temporal, 4, 4)
  for cut in range(1, 8):  # change every frame from `cut` on
    changed = video.at[:, cut:].set(-video[:, cut:])
    _, idx2, _ = encode(changed)
    past = cut // temporal  # latent steps made only of frames < cut
    np.testing.assert_array_equal(idx[:, :past], idx2[:, :past])
    if cut % temporal == 0 and cut < 8:
      assert not np.array_equal(idx[:, past:], idx2[:, past:])
  # And the decoder: frames of a latent step come from it and earlier ones.
  zq, _, _ = encode(video)
  frames = model.apply(variables, zq, method=tokenizer.Tokenizer.decode)
  zq2 = zq.at[:, -1].set(0.0)
  frames2 = model.apply(variables, zq2, method=tokenizer.Tokenizer.decode)
  np.testing.assert_allclose(frames[:, :8 - temporal], frames2[:, :8 - temporal],
                             atol=1e-6)


# Every architecture at x4 in time; with space-to-depth and per-frame
# kernels ('2+1d' is then '3d') the two layouts only.
@pytest.mark.parametrize(
    'conv,layout,spatial,temporal,patch,kt',
    [(c, l, 4, 4, 1, 3) for c, l in ARCHS]
    + [('3d', l, 8, 2, 2, 1) for l in tokenizer.LAYOUTS])
def test_architectures_round_trip_shapes(conv, layout, spatial, temporal,
                                         patch, kt):
  model = tokenizer.Tokenizer(channels=(8, 16, 16, 16), spatial=spatial,
                              patch=patch, temporal=temporal,
                              temporal_kernel=kt, num_res_blocks=2,
                              conv=conv, layout=layout)
  video = jnp.zeros((2, 8, 32, 32, 3))
  variables = model.init(jax.random.key(0), video)
  recon, idx, _ = model.apply(variables, video)
  assert recon.shape == video.shape
  assert idx.shape == (2, 8 // temporal, 32 // spatial, 32 // spatial)
  assert model.apply(variables, idx,
                     method=tokenizer.Tokenizer.decode_indices).shape == video.shape


def test_default_architecture_is_unchanged():
  """Old checkpoints restore: the defaults build today's parameters."""
  def count(**kw):
    shapes = jax.eval_shape(tokenizer.Tokenizer(**kw).init, jax.random.key(0),
                            jnp.zeros((1, 8, 16, 16, 3)))
    return sum(x.size for x in jax.tree.leaves(shapes['params']))
  assert count() == 4892167
  small = dict(channels=(8, 8, 8), spatial=4, temporal=4, temporal_kernel=3,
               num_res_blocks=2)
  assert count(**small) == count(**small, conv='3d', layout='uniform') == 55447
  # A pointwise decoder stem: the (3, 3, 3) kernel of the first decoder
  # convolution (FSQ's 4 dimensions -> 8 channels here) becomes 1x1x1.
  assert count(**small, decoder_stem='pointwise') == 55447 - 26 * 4 * 8
  # Linear pixel layers: the encoder's first (3, 3, 3) kernel (3 -> 8) and
  # the decoder's last (1, 3, 3) one (8 -> 3) become 1x1x1.
  assert (count(**small, pixel_layers='linear')
          == 55447 - 26 * 3 * 8 - 8 * 8 * 3)


@pytest.mark.parametrize('field,value', [('conv', '2d'), ('layout', 'flat'),
                                         ('decoder_stem', 'dense'),
                                         ('pixel_layers', 'dense')])
def test_unknown_architecture_names_the_field(field, value):
  model = tokenizer.Tokenizer(channels=(8, 8, 8), **{field: value})
  with pytest.raises(ValueError, match=f'tokenizer.{field} must be one of'):
    model.init(jax.random.key(0), jnp.zeros((1, 1, 16, 16, 3)))


def test_fsq_straight_through_gradient_and_indices():
  fsq = quantizers.FSQ((8, 5, 5, 5))
  z = jax.random.normal(jax.random.key(1), (64, 4)) * 2
  zq, idx, aux = fsq.apply({}, z)
  assert idx.min() >= 0 and idx.max() < 1000
  levels = np.array([8, 5, 5, 5])
  half = np.floor(levels / 2)
  assert np.all(np.abs(np.asarray(zq)) <= 1 + 1e-6)
  np.testing.assert_allclose(np.round(np.asarray(zq) * half), np.asarray(zq) * half,
                             atol=1e-5)
  # Indices decode back to the same codes.
  np.testing.assert_allclose(fsq.apply({}, idx, method=quantizers.FSQ.decode_indices),
                             zq, atol=1e-6)
  # The gradient skips the rounding: it is the bound's derivative / half width.
  g = jax.grad(lambda z: jnp.sum(fsq.apply({}, z)[0] * 3.0))(z)
  gb = jax.grad(lambda z: jnp.sum(fsq.apply({}, z, method=quantizers.FSQ._bound)
                                  / half * 3.0))(z)
  np.testing.assert_allclose(g, gb, rtol=1e-5)
  assert np.all(np.asarray(g) > 0)
  assert 0 < aux['usage'] <= 1 and aux['perplexity'] > 1


def test_vq_straight_through_gradient_commitment_and_ema():
  vq = quantizers.VectorQuantizerEMA(num_codes=16, dim=4, decay=0.5,
                                     restart_threshold=0.0)
  z = jax.random.normal(jax.random.key(2), (32, 4))
  variables = vq.init({'params': jax.random.key(3)}, z)
  (zq, idx, aux), _ = vq.apply(variables, z, train=True, mutable=['vq'],
                               rngs={'restart': jax.random.key(4)})
  codes = variables['vq']['embed']
  np.testing.assert_allclose(zq, codes[idx], rtol=1e-5, atol=1e-6)
  # Straight-through: d(sum(zq * w))/dz = w.
  w = jax.random.normal(jax.random.key(5), z.shape)
  g = jax.grad(lambda z: jnp.sum(vq.apply(variables, z)[0] * w))(z)
  np.testing.assert_allclose(g, w, rtol=1e-6)
  # Commitment pulls z towards its code.
  gc = jax.grad(lambda z: vq.apply(variables, z)[2]['commitment'])(z)
  np.testing.assert_allclose(gc, 2 * 0.25 * (z - codes[idx]) / z.size, rtol=1e-4)
  # EMA: each used code moves towards the mean of its latents.
  _, new = vq.apply(variables, z, train=True, mutable=['vq'],
                    rngs={'restart': jax.random.key(4)})
  used = np.unique(np.asarray(idx))
  for k in used:
    mean = np.asarray(z)[np.asarray(idx) == k].mean(0)
    before = np.linalg.norm(np.asarray(codes[k]) - mean)
    after = np.linalg.norm(np.asarray(new['vq']['embed'][k]) - mean)
    assert after < before


def test_vq_restarts_dead_codes_on_batch_latents():
  vq = quantizers.VectorQuantizerEMA(num_codes=8, dim=2, decay=0.9,
                                     restart_threshold=0.5)
  z = jnp.full((16, 2), 5.0) + jax.random.normal(jax.random.key(6), (16, 2)) * 0.01
  variables = vq.init({'params': jax.random.key(7)}, z)
  assert np.abs(np.asarray(variables['vq']['embed'])).max() < 1
  for step in range(10):  # usage of unused codes decays 0.9 per step
    _, new = vq.apply(variables, z, train=True, mutable=['vq'],
                      rngs={'restart': jax.random.key(step)})
    variables = {**variables, **new}
  embed = np.asarray(variables['vq']['embed'])
  # The codes no latent chose died and were moved onto batch latents (~5).
  assert np.sum(np.abs(embed - 5.0).max(1) < 0.1) >= 7


def test_the_gpu_convolution_options_are_valid_xla_options():
  # XLA checks option names on any backend: one the pinned jax does not
  # know fails here rather than on a user's GPU.
  conv = jax.jit(lambda x, k: jax.lax.conv_general_dilated(
      x, k, (1, 1, 1), 'SAME', dimension_numbers=('NDHWC', 'DHWIO', 'NDHWC')),
                 compiler_options=xla_options.CONV_NHWC)
  x, k = jnp.ones((1, 2, 4, 4, 3)), jnp.ones((1, 3, 3, 3, 2))
  assert conv(x, k).shape == (1, 2, 4, 4, 2)
  assert xla_options.convolutions() == xla_options.CPU_EIGEN_CONV  # on CPU
  with pytest.raises(Exception, match='xla_gpu_force_conv_nhwx'):
    jax.jit(lambda x: x + 1,
            compiler_options={'xla_gpu_force_conv_nhwx': True})(1.0)


@pytest.mark.parametrize('kernel,stride,size,padding', [
    ((4, 4), 2, (32, 32), ((1, 2), (1, 2))),  # the latent layout's, even
    ((4, 4), 2, (7, 9), ((1, 2), (1, 2))),  # odd sides: cut, not read
    ((2, 2), 2, (5, 6), ((0, 1), (0, 1))),
    ((4, 8), 4, (13, 17), ((1, 2), (3, 4)))])
def test_blocked_convolution_is_the_strided_one(kernel, stride, size, padding):
  x = jax.random.normal(jax.random.key(0), (2, *size, 5))
  ref = nn.Conv(6, kernel, (stride, stride), padding=padding)
  blocked = tokenizer.BlockedConv(6, kernel, stride, padding)
  params = ref.init(jax.random.key(1), x)
  # The same parameters, so a checkpoint of either restores into the other.
  assert (jax.tree.map(jnp.shape, params)
          == jax.tree.map(jnp.shape, blocked.init(jax.random.key(1), x)))
  params = jax.tree.map(  # a nonzero bias too
      lambda a: a + 0.1 * jax.random.normal(jax.random.key(2), a.shape),
      params)
  def loss(mod):
    return lambda p, x: jnp.sum(jnp.sin(mod.apply(p, x)))
  np.testing.assert_allclose(blocked.apply(params, x), ref.apply(params, x),
                             atol=2e-5)
  got = jax.jit(jax.grad(loss(blocked), argnums=(0, 1)))(params, x)
  want = jax.jit(jax.grad(loss(ref), argnums=(0, 1)))(params, x)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, w, atol=1e-4)


def test_factorised_convolves_over_time_first_where_it_strides_in_time():
  """Striding in time, the temporal convolution runs first at the input's
  width, the spatial one on the frames it leaves; else space first."""
  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 8, 6))
  strided = tokenizer.Factorised(10, (4, 4, 4), (2, 2, 2))
  params = strided.init(jax.random.key(0), x)['params']
  assert params['TemporalConv_0']['kernel'].shape == (4 * 6, 6)
  assert params['CausalConv_0']['Conv_0']['kernel'].shape == (4, 4, 6, 10)
  frames = tokenizer.TemporalConv(6, 4, 2).apply(
      {'params': params['TemporalConv_0']}, x)
  assert frames.shape == (2, 4, 8, 8, 6)
  want = tokenizer.CausalConv(10, (1, 4, 4), (1, 2, 2)).apply(
      {'params': params['CausalConv_0']}, frames)
  np.testing.assert_allclose(strided.apply({'params': params}, x), want,
                             atol=1e-5)
  plain = tokenizer.Factorised(10, (3, 3, 3), mid=7)
  params = plain.init(jax.random.key(0), x)['params']
  assert params['CausalConv_0']['Conv_0']['kernel'].shape == (3, 3, 6, 7)
  assert params['TemporalConv_0']['kernel'].shape == (3 * 7, 10)


def test_the_latent_layout_blocks_its_strided_convolutions():
  model = tokenizer.Tokenizer(channels=(8, 8, 8), spatial=4, temporal=4,
                              patch=2, conv='2+1d', layout='latent')
  video = jax.ShapeDtypeStruct((1, 4, 16, 16, 3), jnp.float32)
  variables = jax.eval_shape(model.init, jax.random.key(0), video)
  grad = jax.grad(lambda v, x: jnp.sum(model.apply(v, x)[0]))
  hlo = jax.jit(grad).lower(variables, video).as_text()
  # The x2 spatial level is a stride-1 convolution over 2x2 blocks: no
  # convolution of the training step strides or dilates its input.
  assert 'stablehlo.convolution' in hlo
  assert 'stride = [2, 2]' not in hlo and 'lhs_dilate = [2, 2]' not in hlo


# A convolution (wide enough for YNNPACK to take) and a matrix product,
# compiled with the options given as an argument (or none); prints a
# digest of the program without names and metadata, its YNNPACK calls and
# whether the convolution is left to XLA (Eigen).
_PROGRAM = """
import hashlib, re, sys
import jax, jax.numpy as jnp
def f(x, w, m):
  y = jax.lax.conv_general_dilated(
      x, w, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  return jnp.tanh(y).reshape(-1, 64) @ m
x, w, m = jnp.ones((4, 16, 16, 64)), jnp.ones((3, 3, 64, 64)), jnp.ones((64, 64))
hlo = jax.jit(f, compiler_options=eval(sys.argv[1])).lower(
    x, w, m).compile().as_text()
hlo = re.sub(r'[.][0-9]+', '', re.sub(r'metadata=[{][^}]*[}]', '', hlo))
entry = hlo[hlo.index('ENTRY'):]
print(hashlib.sha1(hlo.encode()).hexdigest(), hlo.count('__ynn_fusion'),
      ' convolution(' in entry)
"""


def _compiled(options, xla_flags: str):
  env = dict(os.environ, XLA_FLAGS=xla_flags)
  proc = subprocess.run([sys.executable, '-c', _PROGRAM, repr(options)],
                        env=env, text=True, capture_output=True, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  digest, fusions, by_xla = proc.stdout.split()
  return digest, int(fusions), by_xla == 'True'


def test_cpu_options_are_jaxlibs_default_without_ynnpack_convolutions():
  eigen = _compiled(xla_options.CPU_EIGEN_CONV, '')
  # What XLA_FLAGS' '-individual_convolution' makes of jaxlib's default
  # list: the same program, so only the convolution moved.
  assert eigen == _compiled(
      None, '--xla_cpu_experimental_ynn_fusion_type=-individual_convolution')
  # Eigen's convolution is XLA's own instruction; YNNPACK kept the rest.
  assert eigen[2] and eigen[1] > 0
  default = _compiled(None, '')
  assert not default[2] and default[0] != eigen[0]
