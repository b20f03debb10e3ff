"""The models a run config describes: one place that reads config.tokenizer
and config.transformer into modules, for training and inference alike."""

from __future__ import annotations

import jax.numpy as jnp

from mirai_jax import tasks
from mirai_jax.models import attention as attention_lib
from mirai_jax.models import multiscale
from mirai_jax.models import pix2pix
from mirai_jax.models import tokenizer as tokenizer_lib
from mirai_jax.models import transformer as transformer_lib


def tokenizer(config) -> tokenizer_lib.Tokenizer:
  t = config.tokenizer
  return tokenizer_lib.Tokenizer(
      channels=tuple(t.channels), num_res_blocks=t.num_res_blocks,
      patch=t.patch, spatial=t.spatial, temporal=t.temporal,
      temporal_kernel=t.temporal_kernel, norm=t.norm,
      quantizer=t.quantizer, fsq_levels=tuple(t.fsq_levels),
      vq_codes=t.vq_codes, vq_dim=t.vq_dim, vq_commitment=t.vq_commitment,
      dtype=jnp.bfloat16 if t.mixed_precision else jnp.float32,
      remat=t.get('remat', 'none'), conv=t.get('conv', '3d'),
      layout=t.get('layout', 'uniform'),
      decoder_stem=t.get('decoder_stem', 'conv'),
      pixel_layers=t.get('pixel_layers', 'conv'))


def transformer(config, grid, codebook_size: int
                ) -> transformer_lib.Transformer:
  """The transformer over windows of token grids `grid` (steps, h, w) of a
  tokenizer with `codebook_size` codes (data/tokens.Records)."""
  cfg = config.transformer
  clip_steps, h, w = grid
  # Here rather than deep inside a jit trace.
  if not 0 < cfg.frames <= clip_steps:
    raise ValueError(f'config.transformer.frames={cfg.frames} must be 1..'
                     f'{clip_steps}, the latent steps of a tokenized clip')
  if cfg.width % cfg.heads:
    raise ValueError(f'config.transformer.width={cfg.width} must be a multiple '
                     f'of transformer.heads={cfg.heads}')
  dtype = jnp.bfloat16 if cfg.mixed_precision else jnp.float32
  return transformer_lib.Transformer(
      codebook_size=codebook_size, grid=(cfg.frames, h, w),
      width=cfg.width, depth=cfg.depth, heads=cfg.heads,
      mlp_ratio=cfg.mlp_ratio, dropout=cfg.dropout,
      audio_channels=cfg.audio_channels, audio_layers=cfg.audio_layers,
      dtype=dtype, remat=cfg.get('remat', 'none'), unroll=cfg.get('unroll', 1),
      later='interpolate' in task_weights(config), copy_hints=cfg.copy_hints,
      attention=attention_lib.resolve(
          cfg.get('attention', 'auto'), dtype=dtype,
          head_dim=cfg.width // cfg.heads, length=cfg.frames * h * w))


def task_weights(config) -> dict[str, float]:
  """{task: weight} the transformer trains on; the first is its main task."""
  return tasks.parse_weights(config.transformer.tasks)


def order(config, grid, task: str | None = None) -> tasks.Order:
  """The reading order (known tokens first) of `task` (default: the
  config's main task) over the training window."""
  cfg = config.transformer
  _, h, w = grid
  task = task or next(iter(task_weights(config)))
  return tasks.make_order(task, (cfg.frames, h, w), cfg.context)


def init_transformer(model: transformer_lib.Transformer, order: tasks.Order,
                     rng, *, audio_len: int, sample_rate: int, temporal: int,
                     clip_steps: int):
  """The transformer's variables, initialised on a blank batch of one clip
  (`audio_len` samples of sound, `clip_steps` latent steps)."""

  def init(module):
    b = 1
    feats = module.audio_features(
        jnp.zeros((b, audio_len), jnp.int16), jnp.full((b,), 24.0),
        sample_rate, temporal, clip_steps, jnp.ones((b,), bool))
    seq = jnp.zeros((b, order.perm.size), jnp.int32)
    return module(*transformer_lib.inputs(seq, order, module.codebook_size),
                  feats[:, :module.grid[0]])

  return model.init(rng, method=init)


BASELINES = ('pix2pix', 'multiscale')  # pixel next-frame predictors


def window_frames(config) -> tuple[int, int]:
  """(context frames, frames) of the transformer's window in pixels: what
  every method is given and asked for in evaluate."""
  temporal = config.tokenizer.temporal
  return (config.transformer.context * temporal,
          config.transformer.frames * temporal)


def baseline_inputs(config, name: str) -> int:
  """Context frames baseline `name` reads (its `inputs`, or all of the
  transformer's)."""
  context = window_frames(config)[0]
  inputs = config[name].inputs or context
  if inputs > context:
    raise ValueError(f'config.{name}.inputs={inputs} is more than the '
                     f'{context} context frames evaluate gives every method '
                     '(transformer.context x tokenizer.temporal); lower it')
  return inputs


def baseline(config, name: str):
  """(generator, discriminator or None) of pixel baseline `name`."""
  c = config[name]
  adversarial = c.adversarial_weight > 0
  if name == 'pix2pix':
    return (pix2pix.UNet(tuple(c.channels), c.dropout),
            pix2pix.PatchGAN(tuple(c.disc_channels)) if adversarial else None)
  if name == 'multiscale':
    return (multiscale.Generator(c.scales, tuple(c.channels), tuple(c.kernels)),
            multiscale.Discriminator(c.scales, tuple(c.disc_channels),
                                     c.disc_hidden) if adversarial else None)
  raise ValueError(f'unknown baseline {name!r}; known: {BASELINES}')
