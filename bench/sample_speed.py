r"""Sampling speed: KV-cache decoding against the uncached loop.

  python bench/sample_speed.py [--config=configs/demo.py] [--batch=1]
      [--repeats=3] [--uncached=true] [--min_rows=1]

Random weights and random known tokens at the config's window (a model's
speed does not depend on what it learned). One 'continuation' generates every
unknown token of one window: for configs/demo.py 4 latent steps = 4 frames,
for configs/kny.py 4 steps of x4 time = 16 frames. Prints one JSON line with
tokens/s and seconds per continuation for both loops (--uncached=false skips
the slow one, e.g. for large configs).
"""

import json
import os
import sys
import time

from absl import app
from absl import flags
import jax
import numpy as np
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import stages  # pylint: disable=g-import-not-at-top,wrong-import-position

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(__file__), '..', 'configs', 'demo.py'))
_BATCH = flags.DEFINE_integer('batch', 1, 'Continuations generated at once.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed calls (after 1 warm-up).')
_UNCACHED = flags.DEFINE_bool('uncached', True, 'Also time the uncached loop.')
_MIN_ROWS = flags.DEFINE_integer(
    'min_rows', None, "Rows computed at least (sample.generate's min_rows; "
    'default: 2 on GPUs, 1 elsewhere).')


def _time(fn, *args):
  jax.block_until_ready(fn(*args))  # compile
  t0 = time.perf_counter()
  for _ in range(_REPEATS.value):
    out = fn(*args)
  jax.block_until_ready(out)
  return (time.perf_counter() - t0) / _REPEATS.value, out


def main(_):
  config = _CONFIG.value
  run = stages.sampler(config, _BATCH.value, _MIN_ROWS.value)
  t_cached, a = _time(run.cached, *run.args)
  result = dict(
      benchmark='sample_speed', device=jax.devices()[0].device_kind,
      jax=jax.__version__, **run.info,
      cached_s=round(t_cached, 4),
      cached_tokens_per_s=round(run.new_tokens / t_cached, 1))
  if _UNCACHED.value:
    t_uncached, u = _time(run.uncached, *run.args)
    result.update(uncached_s=round(t_uncached, 4),
                  uncached_tokens_per_s=round(run.new_tokens / t_uncached, 1),
                  speedup=round(t_uncached / t_cached, 2),
                  same_tokens=bool((np.asarray(a) == np.asarray(u)).all()))
  print(json.dumps(result))


if __name__ == '__main__':
  app.run(main)
