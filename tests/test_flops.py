"""The analytic FLOP counts of train/flops.py against an independent count
from the traced program's shapes."""

import os
import sys

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


# ------------------------------------------------- bench/profile.py summary

def _trace_summary():
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  if root not in sys.path:
    sys.path.insert(0, root)
  from bench import trace_summary  # pylint: disable=g-import-not-at-top
  return trace_summary


def test_a_trace_is_summarised_by_kernel_kind_per_step():
  ts = _trace_summary()
  meta = [dict(ph='M', name='process_name', pid=1, args=dict(name='/host:CPU')),
          dict(ph='M', name='process_name', pid=7,
               args=dict(name='/device:GPU:0'))]
  kernel = lambda name, ts_, dur, pid=7: dict(ph='X', pid=pid, tid=1, name=name,
                                              ts=ts_, dur=dur)
  events = meta + [
      kernel('nvjet_hsh_256x128_2x1_v_bz_coopA_NNN', 0, 400),
      kernel('sm90_xmma_gemm_bf16bf16_bf16f32', 1000, 400),
      kernel('cudnn_generated_fort_native_sdpa_sm90_flash_fprop', 500, 200),
      kernel('sm90_xmma_fprop_implicit_gemm_bf16', 2000, 100),
      kernel('loop_multiply_fusion', 600, 300),  # overlaps the attention
      kernel('input_reduce_fusion', 3000, 100),
      kernel('python_step', 0, 99999, pid=1),  # host: not device time
  ]
  s = ts.summarise(events, steps=2, top=3)
  assert s['source'] == 'device'
  assert s['kernels_per_step'] == 3.0
  by = s['ms_per_step_by_kind']
  assert by == {'matmul': 0.4, 'elementwise': 0.15, 'attention': 0.1,
                'convolution': 0.05, 'reduction': 0.05}
  # busy: [0, 400) + [500, 900) + [1000, 1400) + [2000, 2100) + [3000, 3100)
  assert s['busy_ms_per_step'] == 0.7
  assert [t['name'] for t in s['top']][:2] == [
      'nvjet_hsh_256x128_2x1_v_bz_coopA_NNN', 'sm90_xmma_gemm_bf16bf16_bf16f32']
  assert len(s['top']) == 3


def test_a_cpu_trace_is_summarised_from_xla_ops_on_the_host():
  ts = _trace_summary()
  events = [dict(ph='X', pid=1, tid=1, name=n, ts=t, dur=10)
            for n, t in (('ThunkExecutor::Execute', 0), ('dot.3', 0),
                         ('copy_bitcast_fusion', 20), ('PjitFunction', 0))]
  s = ts.summarise(events, steps=1, top=5)
  assert s['source'] == 'host'
  assert sorted(t['name'] for t in s['top']) == ['copy_bitcast_fusion', 'dot.3']


def test_kernel_kinds_tell_conversions_from_convolutions():
  kind = _trace_summary().kind
  assert kind('loop_convert_fusion_10') == 'elementwise'
  assert kind('sm90_xmma_fprop_implicit_gemm_bf16') == 'convolution'
  assert kind('cudnn_generated_fort_native_sdpa_sm90_flash_fprop') == 'attention'
  assert kind('input_add_convert_reduce_fusion') == 'reduction'
  assert kind('nchwToNhwcKernel') == 'copy'
