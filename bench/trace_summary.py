"""A Chrome/Perfetto trace of jax.profiler, summarised per step: the device
time by kind of kernel and the costliest kernels (bench/profile.py)."""

import collections
import re

# Kernel name -> kind, first match wins (cuBLAS/CUTLASS/Triton GEMMs, cuDNN
# attention and convolutions, XLA's fusions). Lowercase names.
KINDS = (
    ('attention', r'sdpa|fmha|flash|attn|attention'),
    ('convolution', r'convolution|fprop|dgrad|wgrad|implicit|conv(?!ert)'),
    ('matmul', r'gemm|nvjet|xmma|cutlass|cublas|matmul|dot'),
    ('sort/top-k', r'sort|topk|top_k|radix|select_k'),
    ('copy', r'memcpy|memset|copy|transpose|nchwtonhwc|nhwctonchw'),
    ('reduction', r'reduce|reduction'),
    ('elementwise', r'fusion|loop_|input_|concatenate|dynamic'),
)


def kind(name: str) -> str:
  low = name.lower()
  for k, pattern in KINDS:
    if re.search(pattern, low):
      return k
  return 'other'


def _union(spans):
  """Total length covered by (start, end) intervals."""
  total, end = 0.0, float('-inf')
  for a, b in sorted(spans):
    if b > end:
      total += b - max(a, end)
      end = b
  return total


def summarise(events, steps: int, top: int) -> dict:
  """Chrome-trace events -> device time per step by kernel kind and name.

  Device events are those of processes named like '/device:GPU:0' (or TPU);
  a CPU run has none and is summarised from the host's XLA op events, so
  that the script is testable without an accelerator.
  """
  names = {e['pid']: e.get('args', {}).get('name', '')
           for e in events if e.get('ph') == 'M' and e.get('name') == 'process_name'}
  device = {p for p, n in names.items() if re.search(r'/device:(gpu|tpu)', n, re.I)}
  source = 'device' if device else 'host'
  spans = [e for e in events if e.get('ph') == 'X' and 'dur' in e
           and (e['pid'] in device if device else True)]
  if not device:  # host: keep XLA's per-op events, not the Python ones
    spans = [e for e in spans if re.search(r'fusion|dot|conv|copy|sort',
                                           e['name'], re.I)
             and not e['name'].startswith('ThunkExecutor')]
  by_name = collections.defaultdict(lambda: [0.0, 0])
  by_kind = collections.defaultdict(float)
  for e in spans:
    by_name[e['name']][0] += e['dur']
    by_name[e['name']][1] += 1
    by_kind[kind(e['name'])] += e['dur']
  ms = lambda us: round(us / 1e3 / steps, 3)
  busy = _union([(e['ts'], e['ts'] + e['dur']) for e in spans])
  ranked = sorted(by_name.items(), key=lambda kv: -kv[1][0])[:top]
  return dict(
      source=source, kernels_per_step=round(len(spans) / steps, 1),
      busy_ms_per_step=ms(busy),
      ms_per_step_by_kind={k: ms(v) for k, v in
                           sorted(by_kind.items(), key=lambda kv: -kv[1])},
      top=[dict(name=n[:90], ms_per_step=ms(t), per_step=round(c / steps, 1))
           for n, (t, c) in ranked])
