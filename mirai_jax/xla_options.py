"""XLA compiler options set per jit-compiled function where a measurement
showed them to pay (figures: README "Benchmarks")."""

from __future__ import annotations

import jax

# XLA:GPU gives 3-D convolutions NCDHW layouts on Hopper (its layout
# assignment leaves them out of its NHWC default), so cuDNN transposes around
# each call: 25 ms of the kny tokenizer's 128 ms step on an H100, which runs
# in 93 ms with NHWC layouts (and 12 GB instead of 17.6).
CONV_NHWC = {'xla_gpu_force_conv_nhwc': True}

# XLA:CPU (jaxlib 0.10) hands single dots, reductions and 2-D convolutions to
# YNNPACK; its convolutions ran the tokenizer's training step 1.2-1.6x slower
# than Eigen's on the 2-core machine. This is that default list without the
# convolutions (XLA_FLAGS would say '-individual_convolution'; compiler
# options take only enum names): Eigen convolves, YNNPACK keeps the rest.
CPU_EIGEN_CONV = {'xla_cpu_experimental_ynn_fusion_type':
                  'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,'
                  'LIBRARY_FUSION_TYPE_REDUCE'}


def _nvidia() -> bool:
  return (jax.default_backend() == 'gpu'
          and 'nvidia' in jax.devices()[0].device_kind.lower())


def convolutions() -> dict | None:
  """`compiler_options` for functions that run the tokenizer's convolutions:
  CONV_NHWC on NVIDIA GPUs, CPU_EIGEN_CONV on CPU, nothing elsewhere."""
  if _nvidia():
    return CONV_NHWC
  return CPU_EIGEN_CONV if jax.default_backend() == 'cpu' else None
