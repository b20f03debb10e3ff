r"""Tokenizer training throughput (clips/s) and, on an accelerator, MFU.

  python bench/train_tokenizer.py [--config=configs/demo.py] [--steps=20]
      [--config.tokenizer.batch_size=64 ...]

Times the jit-compiled update step of stage 1 on random 20x64x64 clips over
all local devices (no dataset needed). Prints one JSON line.
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
from mirai_jax.data import pipeline  # pylint: disable=g-import-not-at-top,wrong-import-position
from mirai_jax.train import flops  # pylint: disable=g-import-not-at-top,wrong-import-position
from mirai_jax.train import mesh as mesh_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from mirai_jax.train import tokenizer  # pylint: disable=g-import-not-at-top,wrong-import-position

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(__file__), '..', 'configs', 'demo.py'))
_STEPS = flags.DEFINE_integer('steps', 20, 'Timed steps (after 2 warm-up).')


def main(_):
  config = _CONFIG.value
  cfg = config.tokenizer
  spec = dict(frames=20, height=64, width=64)
  frames = cfg.train_frames or spec['frames']
  mesh = mesh_lib.make_mesh(config.mesh.fsdp, config.mesh.devices)
  parts = tokenizer.setup(config, spec, frames)
  abstract = jax.eval_shape(parts.make_state, jax.random.key(0))
  shardings = mesh_lib.param_shardings(abstract, mesh)
  state = jax.jit(parts.make_state, out_shardings=shardings)(jax.random.key(0))
  update = jax.jit(tokenizer.make_update(cfg, parts, frames, 0),
                   donate_argnums=0,
                   out_shardings=(shardings, mesh_lib.replicated(mesh)))
  rng = np.random.default_rng(0)
  batch = pipeline.to_global({'video': rng.integers(
      0, 255, (cfg.batch_size, spec['frames'], 64, 64, 3), dtype=np.uint8)}, mesh)
  step_flops = flops.step_flops(update, state, batch)
  for _ in range(2):
    state, m = update(state, batch)
  jax.block_until_ready(m)
  t0 = time.perf_counter()
  for _ in range(_STEPS.value):
    state, m = update(state, batch)
  jax.block_until_ready(m)
  dt = (time.perf_counter() - t0) / _STEPS.value
  peak = flops.peak_flops()
  n = mesh.size
  print(json.dumps(dict(
      benchmark='train_tokenizer', device=jax.devices()[0].device_kind,
      devices=n, batch_size=cfg.batch_size, train_frames=frames,
      channels=list(cfg.channels), mixed_precision=cfg.mixed_precision,
      step_s=round(dt, 4), clips_per_s=round(cfg.batch_size / dt, 1),
      frames_per_s=round(cfg.batch_size * frames / dt, 1),
      tflops_per_step=round(step_flops / 1e12, 4),
      mfu=round(step_flops / dt / (peak * n), 4) if peak else None)))


if __name__ == '__main__':
  app.run(main)
