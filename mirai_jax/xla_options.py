"""XLA compiler options set per jit-compiled function where a measurement
showed them to pay (figures: README "Benchmarks")."""

from __future__ import annotations

import jax

# XLA:GPU gives 3-D convolutions NCDHW layouts on Hopper (its layout
# assignment leaves them out of its NHWC default), so cuDNN transposes around
# each call: 25 ms of the kny tokenizer's 128 ms step on an H100, which runs
# in 93 ms with NHWC layouts (and 12 GB instead of 17.6).
CONV_NHWC = {'xla_gpu_force_conv_nhwc': True}


def _nvidia() -> bool:
  return (jax.default_backend() == 'gpu'
          and 'nvidia' in jax.devices()[0].device_kind.lower())


def convolutions() -> dict | None:
  """`compiler_options` for functions that run the tokenizer's convolutions:
  CONV_NHWC on NVIDIA GPUs, nothing elsewhere."""
  return CONV_NHWC if _nvidia() else None
