"""The two training steps as the benchmarks time and size them.

Each `*_step(config, mesh)` builds the stage's real jit-compiled update (the
one `train/tokenizer.py` or `train/transformer.py` runs) at the config's clip
spec (the builder config's size and frames, the stage's `train_frames` or
window), with random inputs: no dataset, no ffmpeg. It returns a `Step`
holding the jitted update, the abstract state and batch (for compiling
without allocating) and the analytic FLOPs of one step.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from mirai_jax import mesh as mesh_lib
from mirai_jax import sample
from mirai_jax import video_io
from mirai_jax import workdir as workdir_lib
from mirai_jax import xla_options
from mirai_jax.data import pipeline
from mirai_jax.train import flops
from mirai_jax.train import loop
from mirai_jax.train import tokenizer
from mirai_jax.train import transformer


@dataclasses.dataclass
class Step:
  name: str
  update: Any  # jitted (state, batch) -> (state, metrics), state donated
  make_state: Callable[[], Any]  # the real, sharded initial state
  abstract_state: Any
  make_batch: Callable[[int], dict]  # seed -> global batch on the mesh
  abstract_batch: dict
  batch_size: int
  analytic_flops: float  # per step (flops.py)
  info: dict  # what the JSON line reports about the stage
  xla_flops: Callable[[Any], float] = flops.xla_flops  # compiled step -> FLOPs


def _abstract(batch: dict, mesh) -> dict:
  sharding = pipeline.data_sharding(mesh)
  return {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=sharding)
          for k, v in batch.items()}


def _jit(update, abstract_state, mesh, compiler_options=None):
  """(jitted update, its state shardings, the abstract state placed with
  them: what `lower` needs to compile for the mesh without allocating)."""
  shardings = mesh_lib.param_shardings(abstract_state, mesh)
  placed = jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      abstract_state, shardings)
  return (loop.jit_update(update, shardings, mesh, compiler_options),
          shardings, placed)


def tokenizer_step(config, mesh, batch_size: int = 0) -> Step:
  cfg = config.tokenizer
  b = batch_size or cfg.batch_size
  spec = workdir_lib.expected_records(config).clip_spec
  frames = cfg.train_frames or spec['frames']
  parts = tokenizer.setup(config, spec, frames)
  abstract = jax.eval_shape(parts.make_state, jax.random.key(0))
  update, shardings, placed = _jit(tokenizer.make_update(cfg, parts, frames, 0),
                                   abstract, mesh, xla_options.convolutions())
  shape = (b, spec['frames'], spec['height'], spec['width'], 3)

  def make_batch(seed):
    rng = np.random.default_rng(seed)
    return pipeline.to_global(
        {'video': rng.integers(0, 255, shape, dtype=np.uint8)}, mesh)

  clip = jnp.zeros((1, frames, spec['height'], spec['width'], 3))
  params = abstract.params
  fwd = flops.conv_flops(lambda p, v: parts.model.apply(
      {'params': p, **abstract.model_state}, v), params, clip)
  disc = (flops.conv_flops(lambda p, v: parts.disc.apply({'params': p}, v),
                           abstract.disc_params, clip)
          if parts.adversarial else 0.0)
  return Step(
      'tokenizer', update,
      lambda: jax.jit(parts.make_state, out_shardings=shardings)(
          jax.random.key(0)),
      placed, make_batch,
      _abstract({'video': jax.ShapeDtypeStruct(shape, np.uint8)}, mesh),
      b, flops.tokenizer_flops(fwd, batch=b, disc_forward=disc),
      dict(clip=f"{spec['frames']}x{spec['height']}x{spec['width']}",
           train_frames=frames, channels=list(cfg.channels),
           conv=cfg.get('conv', '3d'), layout=cfg.get('layout', 'uniform'),
           params_m=round(sum(int(np.prod(x.shape)) for x in
                              jax.tree.leaves(params)) / 1e6, 2),
           remat=cfg.get('remat', 'none')))


def transformer_step(config, mesh, batch_size: int = 0) -> Step:
  cfg = config.transformer
  b = batch_size or cfg.batch_size
  records = workdir_lib.expected_records(config)
  model, order, tx, make_state = transformer.setup(config, records)
  abstract = jax.eval_shape(make_state, jax.random.key(0))
  update, shardings, placed = _jit(transformer.make_update(
      config, model, order, tx, records), abstract, mesh)
  shapes = dict(tokens=((b, *records.grid), np.int32),
                audio=((b, records.audio_len), np.int16),
                has_audio=((b,), np.bool_), fps=((b,), np.float32))

  def make_batch(seed):
    rng = np.random.default_rng(seed)
    return pipeline.to_global(dict(
        tokens=rng.integers(0, records.codebook_size, shapes['tokens'][0],
                            dtype=np.int32),
        audio=rng.integers(-3000, 3000, shapes['audio'][0], dtype=np.int16),
        has_audio=np.ones(b, bool),
        fps=np.full(b, video_io.FILM_RATE, np.float32)), mesh)

  n = int(order.perm.size)
  analytic = flops.transformer_flops(
      batch=b, tokens=n, predicted=n - int(order.num_known), width=cfg.width,
      depth=cfg.depth, mlp_ratio=cfg.mlp_ratio,
      codebook=records.codebook_size)
  n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(abstract.params))

  def xla_flops(_):
    # XLA counts a loop body once: count the step with the layer scan
    # unrolled, before optimisation (no second compile).
    unrolled = model.clone(unroll=cfg.depth)
    fn = transformer.make_update(config, unrolled, order, tx, records)
    return flops.xla_flops(jax.jit(fn).lower(placed, shapes_abstract))

  shapes_abstract = _abstract({k: jax.ShapeDtypeStruct(*v)
                               for k, v in shapes.items()}, mesh)
  return Step(
      'transformer', update,
      lambda: jax.jit(make_state, out_shardings=shardings)(jax.random.key(0)),
      placed, make_batch,
      shapes_abstract, b, analytic,
      dict(tokens_per_window=n, known=int(order.num_known),
           params_m=round(n_params / 1e6, 2), attention=model.attention,
           remat=model.remat), xla_flops)


STAGES = {'tokenizer': tokenizer_step, 'transformer': transformer_step}


@dataclasses.dataclass
class Sampler:
  cached: Any  # jitted (params, known, feats) -> completed sequences
  uncached: Any  # the reference loop, same signature and draws
  args: tuple  # (params, known, feats): random weights, tokens and sound
  new_tokens: int  # tokens generated per call, all rows together
  info: dict


def sampler(config, batch: int, min_rows: int | None = None) -> Sampler:
  """One continuation of the config's window (every unknown token), with
  random weights and known tokens: a model's speed does not depend on what
  it learned. `min_rows`: sample.generate's (None: its default)."""
  cfg, s = config.transformer, config.sample
  records = workdir_lib.expected_records(config)
  model, order, _, make_state = transformer.setup(config, records)
  params = jax.jit(make_state)(jax.random.key(0)).ema_params
  rng = np.random.default_rng(0)
  known = sample.known_sequence(rng.integers(
      0, records.codebook_size, (batch, cfg.frames, *records.grid[1:])), order)
  feats = jnp.asarray(rng.normal(size=(batch, cfg.frames, cfg.width)),
                      model.dtype)
  kw = dict(temperature=s.temperature, top_k=s.top_k, top_p=s.top_p)
  cached = jax.jit(lambda p, q, f: sample.generate(
      model, p, q, order, f, jax.random.key(0), min_rows=min_rows, **kw))
  uncached = jax.jit(lambda p, q, f: sample.generate_uncached(
      model, p, q, order, f, jax.random.key(0), **kw))
  return Sampler(
      cached, uncached, (params, known, feats),
      batch * (order.perm.size - order.num_known),
      dict(batch=batch, attention=model.attention,
           tokens_per_window=int(order.perm.size), known=int(order.num_known),
           frames_per_continuation=(cfg.frames - cfg.context) * records.temporal,
           mixed_precision=cfg.mixed_precision, top_k=s.top_k,
           min_rows=min_rows))


def time_step(step: Step, mesh, steps: int, warmup: int = 2) -> dict:
  """Seconds per step after `warmup` steps, with both MFU counts."""
  compiled = step.update.lower(step.abstract_state, step.abstract_batch).compile()
  xla = step.xla_flops(compiled)
  plan = compiled.memory_analysis()
  state = step.make_state()
  batches = [step.make_batch(i) for i in range(2)]
  for i in range(warmup):
    state, m = compiled(state, batches[i % 2])
  jax.block_until_ready(m)
  t0 = time.perf_counter()
  for i in range(steps):
    state, m = compiled(state, batches[i % 2])
  jax.block_until_ready(m)
  dt = (time.perf_counter() - t0) / steps
  stats = jax.devices()[0].memory_stats() or {}
  gib = lambda x: round(x / 2 ** 30, 2) if x else None
  return dict(step_s=round(dt, 4),
              planned_gb=gib(plan.argument_size_in_bytes
                             + plan.output_size_in_bytes
                             + plan.temp_size_in_bytes
                             - plan.alias_size_in_bytes),
              device_peak_gb=gib(stats.get('peak_bytes_in_use')),
              tflops_per_step_analytic=round(step.analytic_flops / 1e12, 4),
              tflops_per_step_xla=round(xla / 1e12, 4),
              mfu_analytic=flops.mfu(step.analytic_flops, dt, mesh.size),
              mfu_xla=flops.mfu(xla, dt, mesh.size),
              loss=round(float(m['loss']), 4))


def header(config, mesh) -> dict:
  return dict(device=jax.devices()[0].device_kind, devices=mesh.size,
              jax=jax.__version__)
