r"""Transformer training throughput (tokens/s) and, on an accelerator, MFU.

  python bench/train_transformer.py [--config=configs/demo.py] [--steps=10]
      [--config.transformer.batch_size=64 ...]

Times the jit-compiled update step of stage 3 on random token grids and
random sound over all local devices (no dataset needed). Prints one JSON line;
tokens_per_s counts every token of the training windows.
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
from mirai_jax.train import transformer  # pylint: disable=g-import-not-at-top,wrong-import-position

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(__file__), '..', 'configs', 'demo.py'))
_STEPS = flags.DEFINE_integer('steps', 10, 'Timed steps (after 2 warm-up).')


def main(_):
  config = _CONFIG.value
  cfg = config.transformer
  meta = transformer.meta_from_config(config)
  mesh = mesh_lib.make_mesh(config.mesh.fsdp, config.mesh.devices)
  model, order, tx, make_state = transformer.setup(config, meta)
  abstract = jax.eval_shape(make_state, jax.random.key(0))
  shardings = mesh_lib.param_shardings(abstract, mesh)
  state = jax.jit(make_state, out_shardings=shardings)(jax.random.key(0))
  update = jax.jit(transformer.make_update(config, model, order, tx, meta),
                   donate_argnums=0,
                   out_shardings=(shardings, mesh_lib.replicated(mesh)))
  rng = np.random.default_rng(0)
  b = cfg.batch_size
  batch = pipeline.to_global(dict(
      tokens=rng.integers(0, meta['codebook_size'], (b, *meta['grid']),
                          dtype=np.int32),
      audio=rng.integers(-3000, 3000, (b, meta['audio_len']), dtype=np.int16),
      has_audio=np.ones(b, bool), fps=np.full(b, 24000 / 1001, np.float32)),
      mesh)
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
  n_params = sum(x.size for x in jax.tree.leaves(state.params))
  print(json.dumps(dict(
      benchmark='train_transformer', device=jax.devices()[0].device_kind,
      devices=mesh.size, batch_size=b, tokens_per_window=int(order.perm.size),
      params_m=round(n_params / 1e6, 2), mixed_precision=cfg.mixed_precision,
      step_s=round(dt, 4), tokens_per_s=round(b * order.perm.size / dt, 1),
      tflops_per_step=round(step_flops / 1e12, 4),
      mfu=round(step_flops / dt / (peak * mesh.size), 4) if peak else None)))


if __name__ == '__main__':
  app.run(main)
