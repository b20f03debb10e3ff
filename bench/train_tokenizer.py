r"""Tokenizer training throughput (clips/s) and MFU, two ways.

  python bench/train_tokenizer.py [--config=configs/demo.py] [--steps=20]
      [--config.tokenizer.batch_size=64 ...]

Times stage 1's jit-compiled update step on random clips of the config's
builder config (kny: 32x128x128, of which `tokenizer.train_frames` are
trained per step) over all local devices; no dataset needed. Prints one JSON
line: step time, clips/s and frames/s, and MFU by the analytic count of
mirai_jax/train/flops.py and by XLA's cost analysis (on a GPU/TPU). Figures:
README "Benchmarks".
"""

import json
import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import stages  # pylint: disable=g-import-not-at-top,wrong-import-position
from mirai_jax import workdir as workdir_lib  # pylint: disable=g-import-not-at-top,wrong-import-position

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(__file__), '..', 'configs', 'demo.py'))
_STEPS = flags.DEFINE_integer('steps', 20, 'Timed steps (after 2 warm-up).')


def main(_):
  config = _CONFIG.value
  mesh = workdir_lib.make_mesh(config)
  step = stages.tokenizer_step(config, mesh)
  timing = stages.time_step(step, mesh, _STEPS.value)
  b, frames = step.batch_size, step.info['train_frames']
  print(json.dumps(dict(
      benchmark='train_tokenizer', **stages.header(config, mesh),
      batch_size=b, **step.info,
      mixed_precision=config.tokenizer.mixed_precision, **timing,
      clips_per_s=round(b / timing['step_s'], 1),
      frames_per_s=round(b * frames / timing['step_s'], 1))))


if __name__ == '__main__':
  app.run(main)
