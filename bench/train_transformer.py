r"""Transformer training throughput (tokens/s) and MFU, two ways.

  python bench/train_transformer.py [--config=configs/demo.py] [--steps=10]
      [--config.transformer.batch_size=64 ...]

Times stage 3's jit-compiled update step at the config's window (random
token grids and sound, over all local devices; no dataset needed). Prints one
JSON line: step time, tokens/s (every token of the training windows), and MFU
by the analytic count of mirai_jax/train/flops.py and by XLA's cost analysis
(on a GPU/TPU). Figures: README "Benchmarks".
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
_STEPS = flags.DEFINE_integer('steps', 10, 'Timed steps (after 2 warm-up).')


def main(_):
  config = _CONFIG.value
  mesh = workdir_lib.make_mesh(config)
  step = stages.transformer_step(config, mesh)
  timing = stages.time_step(step, mesh, _STEPS.value)
  tokens = step.batch_size * step.info['tokens_per_window']
  print(json.dumps(dict(
      benchmark='train_transformer', **stages.header(config, mesh),
      batch_size=step.batch_size, **step.info,
      mixed_precision=config.transformer.mixed_precision, **timing,
      tokens_per_s=round(tokens / timing['step_s'], 1))))


if __name__ == '__main__':
  app.run(main)
