r"""Where a step's time goes: a jax.profiler trace, summarised.

  python bench/profile.py --config=configs/kny.py --stage=transformer \
      [--steps=3] [--out=DIR] [--config.transformer.batch_size=...]
  python bench/profile.py --config=configs/kny.py --stage=sample [--batch=1]

Runs the stage's real step (bench/stages.py: random inputs, no dataset) a
few times untraced, then `--steps` times under `jax.profiler.trace`, and
prints one JSON line: wall time per step, the time the device was busy, the
kernels per step, the device time by kind of kernel (matrix products,
attention, convolutions, sorting, copies, the fused elementwise rest) and
the costliest kernels. With --out, the Perfetto trace is kept there
(open it at ui.perfetto.dev). Figures: README "Benchmarks".

"""

import glob
import gzip
import json
import os
import shutil
import sys
import tempfile
import time

from absl import app
from absl import flags
import jax
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import stages  # pylint: disable=g-import-not-at-top,wrong-import-position
from bench import trace_summary  # pylint: disable=g-import-not-at-top,wrong-import-position
from mirai_jax import workdir as workdir_lib  # pylint: disable=g-import-not-at-top,wrong-import-position

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(__file__), '..', 'configs', 'demo.py'))
_STAGE = flags.DEFINE_enum('stage', 'transformer',
                           ['transformer', 'tokenizer', 'sample'],
                           'A training step, or one sampled continuation.')
_STEPS = flags.DEFINE_integer('steps', 3, 'Traced steps (after 2 untraced).')
_BATCH = flags.DEFINE_integer('batch', 1, 'Rows sampled at once (sample).')
_OUT = flags.DEFINE_string('out', '', 'Folder to keep the trace in.')
_TOP = flags.DEFINE_integer('top', 12, 'Costliest kernels listed.')

def _load_trace(log_dir: str) -> tuple[list, str]:
  paths = glob.glob(os.path.join(log_dir, '**', '*.json.gz'), recursive=True)
  if not paths:
    raise RuntimeError(f'jax.profiler wrote no Perfetto trace under {log_dir}')
  path = max(paths, key=os.path.getsize)
  with gzip.open(path, 'rt') as f:
    data = json.load(f)
  return data['traceEvents'] if isinstance(data, dict) else data, path


def main(_):
  config = _CONFIG.value
  steps = _STEPS.value
  if _STAGE.value == 'sample':
    run = stages.sampler(config, _BATCH.value)
    call = lambda _: run.cached(*run.args)
    info = dict(run.info, new_tokens=run.new_tokens)
  else:
    mesh = workdir_lib.make_mesh(config)
    step = stages.STAGES[_STAGE.value](config, mesh)
    compiled = step.update.lower(step.abstract_state,
                                 step.abstract_batch).compile()
    holder = [step.make_state()]
    batches = [step.make_batch(i) for i in range(2)]

    def call(i):
      holder[0], m = compiled(holder[0], batches[i % 2])
      return m
    info = dict(batch_size=step.batch_size, **step.info,
                tflops_per_step_analytic=round(step.analytic_flops / 1e12, 4))
  for i in range(2):
    jax.block_until_ready(call(i))
  t0 = time.perf_counter()
  for i in range(steps):
    out = call(i)
  jax.block_until_ready(out)
  wall = (time.perf_counter() - t0) / steps
  log_dir = tempfile.mkdtemp(prefix='mirai_profile_')
  with jax.profiler.trace(log_dir, create_perfetto_trace=True):
    for i in range(steps):
      out = call(i)
    jax.block_until_ready(out)
  events, path = _load_trace(log_dir)
  result = dict(benchmark='profile', stage=_STAGE.value,
                device=jax.devices()[0].device_kind, jax=jax.__version__,
                **info, steps=steps, wall_ms_per_step=round(wall * 1e3, 3),
                **trace_summary.summarise(events, steps, _TOP.value))
  if _STAGE.value == 'sample':  # one decode step per token of a row
    per = run.new_tokens // _BATCH.value
    result.update(kernels_per_token=round(result['kernels_per_step'] / per, 1),
                  wall_us_per_token=round(wall * 1e6 / per, 1),
                  busy_us_per_token=round(
                      result['busy_ms_per_step'] * 1e3 / per, 1))
  if _OUT.value:
    os.makedirs(_OUT.value, exist_ok=True)
    kept = os.path.join(_OUT.value, f'trace_{_STAGE.value}.json.gz')
    shutil.copyfile(path, kept)
    result.update(trace=kept, trace_mb=round(os.path.getsize(kept) / 2**20, 1))
  shutil.rmtree(log_dir, ignore_errors=True)
  print(json.dumps(result))


if __name__ == '__main__':
  app.run(main)
