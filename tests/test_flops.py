"""The analytic FLOP counts of train/flops.py against an independent count
from the traced program's shapes."""

import jax
import jax.numpy as jnp
import numpy as np

from mirai_jax import tasks
from mirai_jax.models import transformer as transformer_lib
from mirai_jax.train import flops


def test_conv_and_matmul_counts_follow_their_shapes():
  conv = lambda x, w: jax.lax.conv_general_dilated(
      x, w, (2, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  x, w = jnp.zeros((2, 10, 6, 3)), jnp.zeros((3, 3, 3, 5))
  assert flops.conv_flops(conv, x, w) == 2 * (2 * 5 * 6 * 5) * 9 * 3
  mm = jax.jit(lambda a, b: jax.checkpoint(jnp.dot)(a, b))  # nested programs
  assert flops.conv_flops(mm, jnp.zeros((4, 8)), jnp.zeros((8, 16))) == 2 * 4 * 8 * 16
  scanned = lambda c, ws: jax.lax.scan(lambda c, w: (c @ w, None), c, ws)[0]
  assert flops.conv_flops(scanned, jnp.zeros((4, 8)),
                          jnp.zeros((3, 8, 8))) == 3 * 2 * 4 * 8 * 8


def test_transformer_formula_matches_the_model_it_describes():
  grid, v, width, depth = (2, 4, 4), 50, 64, 3
  model = transformer_lib.Transformer(codebook_size=v, grid=grid, width=width,
                                      depth=depth, heads=4, mlp_ratio=4,
                                      audio_channels=8)
  order = tasks.make_order('continue', grid, context=1)
  seq = jnp.zeros((1, order.perm.size), jnp.int32)
  params = jax.eval_shape(lambda: model.init(jax.random.key(0),
                                             *transformer_lib.inputs(seq, order, v)))
  counted = flops.conv_flops(
      lambda p: model.apply(p, *transformer_lib.inputs(seq, order, v)), params)
  n = order.perm.size
  analytic = flops.transformer_flops(batch=1, tokens=n, predicted=n,
                                     width=width, depth=depth, mlp_ratio=4,
                                     codebook=v) / 3
  # XLA's attention computes every (query, key) pair; the formula counts the
  # causal ones only.
  masked = 4 * width * depth * (n * n - n * (n + 1) / 2)
  np.testing.assert_allclose(analytic + masked, counted, rtol=1e-9)
  # And a training step is 3x the forward pass per clip.
  assert flops.transformer_flops(batch=8, tokens=n, predicted=n, width=width,
                                 depth=depth, mlp_ratio=4, codebook=v) == (
                                     8 * 3 * analytic)


def test_tokenizer_step_counts_generator_and_discriminator():
  assert flops.tokenizer_flops(10.0, batch=4) == 120.0
  assert flops.tokenizer_flops(10.0, batch=4, disc_forward=1.0) == 144.0
