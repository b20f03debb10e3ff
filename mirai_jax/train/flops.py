"""Model FLOPs utilisation: XLA's cost analysis of a compiled step, divided by
step time and the chip's peak (dense bf16, from the vendors' data sheets)."""

from __future__ import annotations

from typing import Optional

import jax

# Peak dense bf16 FLOP/s per device.
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


def step_flops(jitted, *args) -> float:
  """FLOPs of one call of `jitted(*args)` as XLA counts them."""
  cost = jitted.lower(*args).compile().cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0]
  return float(cost.get('flops', 0.0)) if cost else 0.0
