"""Model FLOPs utilisation, counted two ways.

- `xla_flops`: XLA's cost analysis of the compiled step. It counts what the
  compiled program does, recomputation (remat), masked attention blocks and
  the optimiser included, and on GPUs it cannot see inside cuDNN's fused
  attention.
- `transformer_flops` / `tokenizer_flops`: the analytic count of the model's
  own arithmetic (a multiply-add is 2 FLOPs; a training step is the forward
  pass plus a backward pass of twice its cost, so 3x the forward), the
  convention of the PaLM and Chinchilla papers. Recomputation is not counted:
  it is a cost of the implementation, not work the model needs.

MFU = FLOPs per step / step time / (devices x the chip's peak dense bf16).
"""

from __future__ import annotations

import math
from typing import Optional

import jax

# Peak dense bf16 FLOP/s per device (vendors' data sheets, no sparsity).
PEAK_BF16 = {
    'H200': 989e12, 'H100': 989e12, 'A100': 312e12, 'L4': 121e12,
    'TPU v4': 275e12, 'TPU v5 lite': 197e12, 'TPU v5e': 197e12,
    'TPU v5p': 459e12, 'TPU v6 lite': 918e12,
}


def peak_flops(device: Optional[jax.Device] = None) -> Optional[float]:
  kind = (device or jax.devices()[0]).device_kind
  for name, peak in PEAK_BF16.items():
    if name.lower() in kind.lower():
      return peak
  return None  # CPUs and unknown chips: no MFU


def xla_flops(compiled) -> float:
  """FLOPs of one call of a compiled function as XLA counts them."""
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0]
  return float(cost.get('flops', 0.0)) if cost else 0.0


def step_flops(jitted, *args) -> float:
  """XLA's count for `jitted(*args)` (compiles it)."""
  return xla_flops(jitted.lower(*args).compile())


def transformer_flops(*, batch: int, tokens: int, predicted: int, width: int,
                      depth: int, mlp_ratio: int, codebook: int,
                      audio_flops: float = 0.0) -> float:
  """One training step of models/transformer.py, analytically.

  Per token and layer the matrix products hold 4·w² (qkv and out) +
  2·r·w² (MLP) weights: N_blocks = depth·(4 + 2r)·w². The output layer
  (w x codebook) runs on the `predicted` tokens only. Causal attention does
  QKᵀ and AV over the keys at or before each query: 2·2·w FLOPs per
  (query, key) pair, L(L+1)/2 pairs. Embeddings are gathers, and norms and
  activations are elementwise: not counted.

    forward = 2·N_blocks·L + 2·w·V·M + 4·w·depth·L(L+1)/2  (per clip)
    step    = 3 · batch · forward  (+ the audio encoder's, given)
  """
  n_blocks = depth * (4 + 2 * mlp_ratio) * width ** 2
  pairs = tokens * (tokens + 1) / 2
  forward = (2 * n_blocks * tokens + 2 * width * codebook * predicted
             + 4 * width * depth * pairs)
  return 3 * batch * forward + audio_flops


def conv_flops(fn, *args) -> float:
  """Forward FLOPs of the convolutions and matrix products in `fn(*args)`,
  counted from the shapes in its jaxpr: a convolution does
  2 · (output elements) · (kernel volume) · (input channels per group)."""
  jaxpr = jax.make_jaxpr(fn)(*args)
  return _count(jaxpr.jaxpr)


def _count(jaxpr) -> float:
  total = 0.0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == 'conv_general_dilated':
      out = eqn.outvars[0].aval.shape
      rhs = eqn.invars[1].aval.shape
      dn = eqn.params['dimension_numbers']
      window = math.prod(rhs[i] for i in dn.rhs_spec[2:])
      total += 2.0 * math.prod(out) * window * rhs[dn.rhs_spec[1]]
    elif name == 'dot_general':
      (contract, _), _ = eqn.params['dimension_numbers']
      lhs = eqn.invars[0].aval.shape
      total += 2.0 * math.prod(eqn.outvars[0].aval.shape) * math.prod(
          lhs[i] for i in contract)
    # Nested programs (jit, remat, custom_vjp, scan bodies, cond branches).
    times = eqn.params.get('length', 1) if name == 'scan' else 1
    for p in eqn.params.values():
      for sub in (p if isinstance(p, (tuple, list)) else (p,)):
        sub = getattr(sub, 'jaxpr', sub)
        if hasattr(sub, 'eqns'):
          total += times * _count(sub)
  return total


def tokenizer_flops(forward: float, *, batch: int, disc_forward: float = 0.0
                    ) -> float:
  """One training step of stage 1 from per-clip forward counts.

  The generator: 3·forward. With the adversarial loss the discriminator runs
  on the reconstruction for the generator's loss (forward + backward to its
  input: 2·D) and on real and fake clips for its own update (forward +
  weight gradients: 2·2·D), 6·D in all.
  """
  return batch * (3 * forward + 6 * disc_forward)


def mfu(flops_per_step: float, step_s: float, devices: int = 1
        ) -> Optional[float]:
  peak = peak_flops()
  if not peak or not step_s:
    return None
  return round(flops_per_step / step_s / (peak * devices), 4)
