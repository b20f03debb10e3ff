"""Checks of a run's config and folders, made before any compute.

`validate(config, stages)` checks every field of configs/demo.py and
configs/kny.py (ranges, names, fields that must agree) and raises one
errors.UserError listing every wrong field as the user types it:

  --config.transformer.steps=-5: must be an integer >= 1

`startup(config, workdir, stages)` checks that the folders the stages write
can be written and hold a checkpoint. Without them a wrong value surfaced
minutes later inside grain, a jit trace or a finished evaluation.
Fields a config does not have are skipped: configs may be older or smaller.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp

from mirai_jax import errors
from mirai_jax import inference
from mirai_jax import storage
from mirai_jax import tasks
from mirai_jax import workdir as workdir_lib
from mirai_jax.build import clips
from mirai_jax.models import attention
from mirai_jax.models import remat
from mirai_jax.models import tokenizer as tokenizer_lib
from mirai_jax.train import optim

_MISSING = object()


# ------------------------------------------------------------ Field rules

@dataclasses.dataclass(frozen=True)
class Number:
  """A number (an integer if `integer`) in a range; open ends excluded."""
  lo: Optional[float] = None
  hi: Optional[float] = None
  integer: bool = False
  lo_open: bool = False
  hi_open: bool = False

  def __call__(self, v) -> Optional[str]:
    ok = (isinstance(v, (int, float)) and not isinstance(v, bool)
          and math.isfinite(v) and (not self.integer or v == int(v))
          and self._above(v) and self._below(v))
    return None if ok else f'must be {self.text()}'

  def _above(self, v) -> bool:
    return self.lo is None or v > self.lo or (v == self.lo and not self.lo_open)

  def _below(self, v) -> bool:
    return self.hi is None or v < self.hi or (v == self.hi and not self.hi_open)

  def text(self) -> str:
    kind = 'an integer' if self.integer else 'a number'
    if self.lo is not None and self.hi is not None:
      return (f'{kind} in {"(" if self.lo_open else "["}{_num(self.lo)}, '
              f'{_num(self.hi)}{")" if self.hi_open else "]"}')
    if self.lo is not None:
      return f'{kind} {">" if self.lo_open else ">="} {_num(self.lo)}'
    return kind


@dataclasses.dataclass(frozen=True)
class OneOf:
  names: Sequence[str]

  def __call__(self, v) -> Optional[str]:
    if v in self.names:
      return None
    return f'must be one of {", ".join(self.names)}'


@dataclasses.dataclass(frozen=True)
class Ints:
  """A non-empty tuple of integers, each >= lo."""
  lo: int

  def __call__(self, v) -> Optional[str]:
    ok = (isinstance(v, (tuple, list)) and len(v) > 0 and all(
        isinstance(x, int) and not isinstance(x, bool) and x >= self.lo
        for x in v))
    return None if ok else (f'must be a non-empty tuple of integers >= '
                            f'{self.lo}, e.g. (8,5,5,5)')


def _zero_or_at_least(n: int):
  def rule(v) -> Optional[str]:
    ok = isinstance(v, int) and not isinstance(v, bool) and (v == 0 or v >= n)
    return None if ok else f'must be 0 (all) or an integer >= {n}'
  return rule


def _bool(v) -> Optional[str]:
  return None if isinstance(v, bool) else 'must be True or False'


def _text(v) -> Optional[str]:
  return None if isinstance(v, str) else 'must be a string'


def _task_weights(v) -> Optional[str]:
  try:
    tasks.parse_weights(v, field='')
  except ValueError as e:
    return str(e).split(': ', 1)[-1]
  return None


def _paste_thresholds(v) -> Optional[str]:
  if not isinstance(v, str):
    return 'must be a string'
  try:
    inference.paste_thresholds(
        dict(paste_threshold=0.0, paste_threshold_by_job=v), field='')
  except ValueError as e:
    return str(e).removeprefix(f'={v!r}: ')
  return None


def _task_or_main(v) -> Optional[str]:
  if v == '' or v in tasks.TASKS:
    return None
  return f"must be '' (the main task) or one of {', '.join(tasks.TASKS)}"


def _num(x: float) -> str:
  return str(int(x)) if x == int(x) else str(x)


COUNT = Number(1, integer=True)  # steps, sizes, layers: at least one
NONNEG = Number(0, integer=True)  # 0 means "off", "all" or "default"
UNIT = Number(0, 1, hi_open=True)  # decays, dropout, Adam betas
NONNEG_REAL = Number(0)
POSITIVE = Number(0, lo_open=True)
SPLITS = ('train', 'validation', 'test')


def _optimiser(stage: str) -> dict:
  """The training fields every stage shares (train/optim.py, train/loop.py)."""
  return {
      f'{stage}.batch_size': COUNT, f'{stage}.steps': COUNT,
      f'{stage}.lr': POSITIVE, f'{stage}.final_lr_ratio': Number(0, 1),
      f'{stage}.schedule': OneOf(optim.SCHEDULES),
      f'{stage}.decay_fraction': Number(0, 1, lo_open=True),
      f'{stage}.warmup_steps': NONNEG, f'{stage}.weight_decay': NONNEG_REAL,
      f'{stage}.b1': UNIT, f'{stage}.b2': UNIT, f'{stage}.grad_clip': POSITIVE,
      f'{stage}.ema': UNIT, f'{stage}.log_every': COUNT,
      f'{stage}.checkpoint_every': COUNT, f'{stage}.keep': COUNT,
      f'{stage}.eval_every': NONNEG, f'{stage}.eval_batches': COUNT,
      f'{stage}.eval_batch_size': COUNT, f'{stage}.mixed_precision': _bool,
      f'{stage}.remat': OneOf(tuple(remat.POLICIES)),
  }


def _baseline(stage: str) -> dict:
  """The fields both pixel baselines share."""
  return {**_optimiser(stage), f'{stage}.inputs': NONNEG,
          f'{stage}.disc_lr': POSITIVE,
          f'{stage}.adversarial_weight': NONNEG_REAL}


def _rules() -> dict[str, Callable[[Any], Optional[str]]]:
  return {
      'seed': NONNEG,
      'data.episodes': _text, 'data.data_dir': _text,
      'data.builder_config': OneOf(builder_configs()),
      'data.split_file': _text, 'data.workers': NONNEG,
      'data.rebuild': _bool,
      'data.beam_runner': _text, 'data.beam_options': _text,
      'data.synthetic.num_episodes': NONNEG, 'data.synthetic.seed': NONNEG,
      'mesh.devices': NONNEG, 'mesh.fsdp': COUNT, 'mesh.cpu_devices': NONNEG,
      'input.worker_count': NONNEG, 'input.flip': _bool,
      # Stage 1 (models/tokenizer.py, models/quantizers.py).
      'tokenizer.channels': Ints(1), 'tokenizer.num_res_blocks': NONNEG,
      'tokenizer.patch': COUNT, 'tokenizer.spatial': COUNT,
      'tokenizer.temporal': COUNT, 'tokenizer.temporal_kernel': COUNT,
      'tokenizer.norm': OneOf(('group', 'none')),
      'tokenizer.conv': OneOf(tokenizer_lib.CONVS),
      'tokenizer.decoder_stem': OneOf(tokenizer_lib.STEMS),
      'tokenizer.pixel_layers': OneOf(tokenizer_lib.PIXEL_LAYERS),
      'tokenizer.layout': OneOf(tokenizer_lib.LAYOUTS),
      'tokenizer.quantizer': OneOf(('fsq', 'vq')),
      # A level of 1 or 2 has no room to round into (a division by zero,
      # an arctanh outside its domain).
      'tokenizer.fsq_levels': Ints(3),
      'tokenizer.vq_codes': Number(2, integer=True),
      'tokenizer.vq_dim': COUNT, 'tokenizer.vq_commitment': NONNEG_REAL,
      'tokenizer.train_frames': NONNEG,
      'tokenizer.loss.recon': OneOf(('l1', 'l2')),
      'tokenizer.loss.recon_weight': NONNEG_REAL,
      'tokenizer.loss.perceptual_weight': NONNEG_REAL,
      'tokenizer.loss.perceptual_weights': _text,
      'tokenizer.loss.adversarial_weight': NONNEG_REAL,
      'tokenizer.loss.adversarial_start': NONNEG,
      'tokenizer.loss.disc_channels': Ints(1),
      'tokenizer.loss.disc_lr': POSITIVE,
      'tokenizer.loss.lecam_weight': NONNEG_REAL,
      **_optimiser('tokenizer'),
      # Stage 3 (models/transformer.py, tasks.py, models/attention.py).
      'transformer.tasks': _task_weights,
      'transformer.frames': COUNT, 'transformer.context': COUNT,
      'transformer.width': COUNT, 'transformer.depth': COUNT,
      'transformer.heads': COUNT, 'transformer.mlp_ratio': POSITIVE,
      'transformer.dropout': UNIT, 'transformer.audio_channels': COUNT,
      'transformer.copy_hints': _bool,
      'transformer.audio_layers': NONNEG,
      'transformer.audio_dropout': Number(0, 1),
      'transformer.attention': OneOf(attention.IMPLEMENTATIONS),
      'transformer.unroll': COUNT,
      'transformer.loss_chunk': NONNEG,
      'transformer.summary_clips': NONNEG,
      **_optimiser('transformer'),
      # The pixel baselines (train/baseline.py, models/pix2pix.py,
      # models/multiscale.py).
      **_baseline('pix2pix'), **_baseline('multiscale'),
      'pix2pix.channels': Ints(1), 'pix2pix.disc_channels': Ints(1),
      'pix2pix.dropout': UNIT, 'pix2pix.l1_weight': NONNEG_REAL,
      'multiscale.scales': COUNT, 'multiscale.channels': Ints(1),
      'multiscale.kernels': Ints(1), 'multiscale.disc_channels': Ints(1),
      'multiscale.disc_hidden': COUNT,
      'multiscale.recon': OneOf(('l1', 'l2')),
      'multiscale.recon_weight': NONNEG_REAL,
      'multiscale.gdl_weight': NONNEG_REAL,
      'multiscale.gdl_alpha': POSITIVE,
      # Sampling (sample.py): a negative temperature samples the least
      # likely tokens, a top_p above 1 means nothing.
      'sample.temperature': NONNEG_REAL, 'sample.top_k': NONNEG,
      'sample.top_p': Number(0, 1, lo_open=True), 'sample.seed': NONNEG,
      'sample.hold_bias': NONNEG_REAL,
      'sample.decode': OneOf(inference.DECODES), 'sample.mean_top_k': NONNEG,
      'evaluate.split': OneOf(SPLITS), 'evaluate.batch_size': COUNT,
      # The audio ablation gives each clip the sound of another.
      'evaluate.max_clips': _zero_or_at_least(2),
      'evaluate.paste': OneOf(inference.PASTES),
      'evaluate.paste_threshold': Number(0, 1),
      'evaluate.paste_threshold_by_job': _paste_thresholds,
      'evaluate.rollout': Number(0, integer=True),
      'evaluate.lpips': _bool, 'evaluate.fvd_clips': NONNEG,
      'predict.video': _text, 'predict.start': Number(),
      'predict.windows': COUNT, 'predict.out': _text, 'predict.scale': COUNT,
      'predict.task': _task_or_main,
      'predict.first': _text, 'predict.last': _text, 'predict.sound': _text,
      'predict.fps': Number(0), 'predict.seconds': Number(0),
      'preview.split': OneOf(SPLITS), 'preview.num_clips': COUNT,
      'preview.cols': COUNT, 'preview.scale': COUNT,
  }


# Only checked when synthetic episodes are rendered (kny sets them to 0).
_SYNTHETIC = {
    'data.synthetic.seconds': POSITIVE,
    'data.synthetic.height': Number(16, integer=True),
    'data.synthetic.width': Number(16, integer=True),
    'data.synthetic.scenery': _bool,
    'data.synthetic.hills': _bool,
}


def unchecked(config, prefix: str = '') -> list[str]:
  """Fields of `config` without a rule here (tests keep this empty for the
  shipped configs, so a new field comes with its check)."""
  known = set(_rules()) | set(_SYNTHETIC) | {'stages', 'workdir'}
  out = []
  for key, value in config.items():
    path = prefix + key
    if hasattr(value, 'items'):
      out += unchecked(value, path + '.')
    elif path not in known:
      out.append(path)
  return out


def builder_configs() -> list[str]:
  return list(clips.NAMED)


# ------------------------------------------------------------ Validation

@dataclasses.dataclass
class Problems:
  """Wrong fields as `--config.path=value: why`, reported all at once."""
  config: Any
  lines: list[str] = dataclasses.field(default_factory=list)
  fields: set[str] = dataclasses.field(default_factory=set)

  def add(self, field: str, why: str) -> None:
    value = get(self.config, field)
    self.lines.append(f'--config.{field}={show(value)}: {why}')
    self.fields.add(field)

  def ok(self, *fields: str) -> bool:
    """Whether these fields exist and passed their own rules."""
    return not (set(fields) & self.fields) and all(
        get(self.config, f) is not _MISSING for f in fields)

  def raise_if_any(self) -> None:
    if len(self.lines) == 1:
      raise errors.UserError(self.lines[0])
    if self.lines:
      raise errors.UserError(f'{len(self.lines)} config values to fix:\n  '
                             + '\n  '.join(self.lines))


def get(config, path: str):
  node = config
  for key in path.split('.'):
    try:
      if key not in node:
        return _MISSING
      node = node[key]
    except TypeError:
      return _MISSING
  return node


def show(value) -> str:
  """A value as it is typed after --config.x=."""
  if isinstance(value, (tuple, list)):
    return '(' + ','.join(show(v) for v in value) + (',)' if len(value) == 1
                                                     else ')')
  return str(value)


def validate(config, stages: Sequence[str] = ()) -> None:
  """Raises errors.UserError naming every wrong field of `config`; `stages`
  adds the checks of files and devices only those stages need."""
  p = Problems(config)
  rules = dict(_rules())
  if isinstance(get(config, 'data.synthetic.num_episodes'), int) and get(
      config, 'data.synthetic.num_episodes') > 0:
    rules.update(_SYNTHETIC)
  for field, rule in rules.items():
    value = get(config, field)
    if value is not _MISSING:
      why = rule(value)
      if why:
        p.add(field, why)
  for check in AGREEMENTS:
    check(p, config, tuple(stages))
  p.raise_if_any()


# ----------------------------------------------- Fields that must agree

def _even_frames(p: Problems, c, stages) -> None:
  del stages
  if p.ok('data.synthetic.height', 'data.synthetic.width') and get(
      c, 'data.synthetic.num_episodes'):
    for f in ('data.synthetic.height', 'data.synthetic.width'):
      if get(c, f) % 2:
        p.add(f, 'must be even (H.264 video)')


def _beam(p: Problems, c, stages) -> None:
  del stages
  if p.ok('data.beam_options', 'data.beam_runner') and (
      get(c, 'data.beam_options') and not get(c, 'data.beam_runner')):
    p.add('data.beam_options', 'needs --config.data.beam_runner too (e.g. '
          'DirectRunner)')


def _clip(c):
  return clips.NAMED[get(c, 'data.builder_config')][1]


def _tokenizer(p: Problems, c, stages) -> None:
  del stages
  t = 'tokenizer.'
  if not p.ok('data.builder_config', t + 'channels', t + 'patch',
              t + 'spatial', t + 'temporal', t + 'train_frames'):
    return
  spec, cfg = _clip(c), c.tokenizer
  name = f'data.builder_config={c.data.builder_config}'
  if cfg.spatial % cfg.patch:
    p.add(t + 'patch', f'must divide tokenizer.spatial={cfg.spatial}')
    return
  try:  # the model's own check: powers of 2, enough levels of channels
    tokenizer_lib._levels(  # pylint: disable=protected-access
        cfg.channels, cfg.spatial // cfg.patch, cfg.temporal)
  except ValueError as e:
    field = ('channels' if 'channels' in str(e) else 'temporal'
             if cfg.temporal & (cfg.temporal - 1) else 'spatial')
    note = (f' (the convolutions\' share: spatial / patch = '
            f'{cfg.spatial // cfg.patch})' if cfg.patch > 1 else '')
    p.add(t + field, f'{e}{note}')
    return
  if spec.height % cfg.spatial or spec.width % cfg.spatial:
    p.add(t + 'spatial', f'must divide the {spec.height}x{spec.width} '
          f'frames of {name}')
  if spec.frames % cfg.temporal:
    p.add(t + 'temporal', f'must divide the {spec.frames} frames per clip '
          f'of {name}')
  frames = cfg.train_frames
  if frames and (frames % cfg.temporal or frames > spec.frames):
    p.add(t + 'train_frames', f'must be 0 (whole clips) or a multiple of '
          f'tokenizer.temporal={cfg.temporal} up to the {spec.frames} frames '
          f'per clip of {name}')


def _perceptual(p: Problems, c, stages) -> None:
  f = 'tokenizer.loss.perceptual_weights'
  weight = 'tokenizer.loss.perceptual_weight'
  if 'tokenizer' not in stages or not p.ok(f, weight):
    return
  path = get(c, f)
  if get(c, weight) <= 0:
    return  # the file is not read
  if not path:
    p.add(f, 'give the .npz of feature-network weights (see '
          'mirai_jax/models/perceptual.py), or set perceptual_weight=0')
  elif not storage.is_url(path) and not os.path.isfile(storage.expand(path)):
    p.add(f, 'no such file')


def _transformer(p: Problems, c, stages) -> None:
  t = 'transformer.'
  if not p.ok('data.builder_config', 'tokenizer.spatial', 'tokenizer.temporal',
              t + 'frames', t + 'context', t + 'tasks', t + 'width',
              t + 'heads'):
    return
  spec, cfg, spatial = _clip(c), c.transformer, c.tokenizer.spatial
  if spec.height % spatial or spec.width % spatial:
    return  # reported above: no token grid to check against
  steps = spec.frames // c.tokenizer.temporal
  grid = (cfg.frames, spec.height // spatial, spec.width // spatial)
  if cfg.frames > steps:
    p.add(t + 'frames', f'must be at most {steps}, the latent steps of a '
          f'clip of data.builder_config={c.data.builder_config}')
  else:
    for task in tasks.parse_weights(cfg.tasks):
      try:  # tasks.py's own check of the known part against the window
        tasks.known_mask(task, grid, cfg.context)
      except ValueError as e:
        p.add(t + 'context', f'{task}: {e} (transformer.frames={cfg.frames})')
  if cfg.width % cfg.heads:
    p.add(t + 'width', f'must be a multiple of transformer.heads={cfg.heads}')
  trained = tasks.parse_weights(cfg.tasks)
  if 'predict' not in stages or not p.ok('predict.task', 'predict.first',
                                          'predict.last'):
    return
  pictures = get(c, 'predict.first') or get(c, 'predict.last')
  for field in ('predict.first', 'predict.last'):
    if pictures and not get(c, field):
      p.add(field, 'give both keyframe pictures (predict.first and '
            'predict.last)')
  wanted = (get(c, 'predict.task') or ('interpolate' if pictures else '')
            or next(iter(trained)))
  if wanted not in trained:
    p.add('predict.task', f'{wanted!r} was not trained (transformer.tasks='
          f'{cfg.tasks!r})' + (': two keyframe pictures need a model trained '
                               'to fill in' if pictures else ''))


def _sample(p: Problems, c, stages) -> None:
  del stages
  if not p.ok('sample.top_k', 'sample.mean_top_k', 'tokenizer.quantizer',
              'tokenizer.fsq_levels', 'tokenizer.vq_codes'):
    return
  t = c.tokenizer
  codes = math.prod(t.fsq_levels) if t.quantizer == 'fsq' else t.vq_codes
  for field in ('top_k', 'mean_top_k'):
    if c.sample[field] > codes:
      p.add(f'sample.{field}', f'must be at most the {codes} codes of the '
            'tokenizer (0 = all)')


def _files(p: Problems, c, stages) -> None:
  """Input files named by the config, when a stage reads them."""
  wanted = (('data.split_file', 'data'), ('predict.video', 'predict'),
            ('predict.first', 'predict'), ('predict.last', 'predict'),
            ('predict.sound', 'predict'))
  for field, stage in wanted:
    path = get(c, field)
    if (stage in stages and p.ok(field) and path and not storage.is_url(path)
        and not os.path.isfile(storage.expand(path))):
      p.add(field, 'no such file')


def _devices(p: Problems, c, stages) -> None:
  """The mesh (mesh.py) and the batches split over it, for the
  stages that build one. Asks jax for the devices: call after
  jax.distributed.initialize."""
  if not set(stages) & {'tokenizer', 'tokenize', 'transformer', 'evaluate',
                        'predict'} or not p.ok('mesh.devices', 'mesh.fsdp'):
    return
  have, devices, fsdp = jax.device_count(), c.mesh.devices, c.mesh.fsdp
  n = devices or have
  if n > have:
    p.add('mesh.devices', f'only {have} device(s) here; 0 = all')
    return
  if n % fsdp:
    p.add('mesh.fsdp', f'must divide the {n} device(s) of the mesh')
    return
  for stage in ('tokenizer', 'transformer'):
    field = f'{stage}.batch_size'
    if stage in stages and p.ok(field) and get(c, field) % n:
      p.add(field, f'must be a multiple of the {n} devices of the mesh')
  if 'transformer' in stages and p.ok('transformer.eval_batch_size') and (
      c.transformer.eval_batch_size % n):
    p.add('transformer.eval_batch_size',
          f'must be a multiple of the {n} devices of the mesh')


def _attention(p: Problems, c, stages) -> None:
  """models/attention.py's refusal of an implementation this platform
  cannot run (cudnn on a CPU, pallas off a TPU)."""
  if not {'transformer', 'evaluate', 'predict'} & set(stages) or not p.ok(
      'transformer.attention', 'transformer.width', 'transformer.heads',
      'transformer.mixed_precision'):
    return
  t = c.transformer
  try:
    attention.resolve(t.attention, dtype=jnp.bfloat16 if t.mixed_precision
                      else jnp.float32, head_dim=t.width // t.heads, length=1)
  except ValueError as e:
    # Its message starts with the field; the line gives it already.
    p.add('transformer.attention',
          re.sub(r'^config\.transformer\.attention=\S+?:? ', '', str(e)))


def _baselines(p: Problems, c, stages) -> None:
  """A baseline reads at most the context every method is given."""
  del stages
  if not p.ok('tokenizer.temporal', 'transformer.context'):
    return
  context = c.transformer.context * c.tokenizer.temporal
  for name in ('pix2pix', 'multiscale'):
    if name in c and p.ok(f'{name}.inputs') and c[name].inputs > context:
      p.add(f'{name}.inputs', f'must be at most {context}, the context frames '
            'evaluate gives every method (transformer.context x '
            'tokenizer.temporal); 0 = all of them')


AGREEMENTS = (_even_frames, _beam, _tokenizer, _perceptual, _transformer,
              _sample, _files, _devices, _attention, _baselines)


# ----------------------------------------------------------- Folders

def outputs(config, workdir: str,
            stages: Sequence[str]) -> list[tuple[str, str]]:
  """(folder, flag naming it) of what each stage writes."""
  out = [(workdir, '--workdir')]
  for stage in ('evaluate', 'report'):
    if stage in stages:
      out.append((os.path.join(workdir, stage), '--workdir'))
  if 'predict' in stages:
    custom = get(config, 'predict.out')
    out.append((custom, '--config.predict.out') if custom else
               (os.path.join(workdir, 'predict'), '--workdir'))
  return out


def checkpoint_bytes(config, stage: str) -> Optional[int]:
  """Bytes of one checkpoint of `stage`'s train state (parameters, Adam
  moments, EMA), from shapes alone; None when they cannot be worked out."""
  # Here, not at the top: prepare.py checks folders without the training
  # stack's imports.
  # pylint: disable=g-import-not-at-top
  from mirai_jax.train import tokenizer
  from mirai_jax.train import transformer
  # pylint: enable=g-import-not-at-top
  try:
    if stage == 'transformer':
      make_state = transformer.setup(
          config, workdir_lib.expected_records(config))[-1]
    else:
      spec = dataclasses.asdict(_clip(config))
      frames = config.tokenizer.train_frames or spec['frames']
      make_state = tokenizer.setup(config, spec, frames).make_state
    shapes = jax.eval_shape(make_state, jax.random.key(0))
  except Exception:  # pylint: disable=broad-except
    return None  # the stage itself says what is wrong
  return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(shapes))


def startup(config, workdir: str, stages: Sequence[str]) -> None:
  """Before the first stage: every output folder writable, and room for
  one checkpoint of each training stage (orbax writes the new one before
  it deletes the oldest)."""
  for folder, flag in outputs(config, workdir, stages):
    storage.writable(folder, flag)
  for stage in ('tokenizer', 'transformer'):
    if stage in stages:
      size = checkpoint_bytes(config, stage)
      if size:
        storage.free_space(os.path.join(workdir, stage), int(size * 1.1) + 2 ** 24,
                   f'one {stage} checkpoint', '--workdir')
