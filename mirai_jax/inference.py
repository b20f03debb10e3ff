"""Trained models for inference: restored from a workdir, jitted once.

`load_tokenizer` and `load_transformer` restore the EMA parameters (and the
VQ codebook) of the newest checkpoint that restores: no optimiser state is
read, and none is built to shape it. A checkpoint trained on another dataset
than the one built now is refused. `Predictor` joins the two models: frames
and sound -> predicted frames, through a paste (`paste_change`,
`paste_between`, `paste_unchanged`) that keeps the true last context frame
(an in-between: the true keyframes' cross-fade) where nothing changes.
`load_baselines` restores the pixel baselines (pix2pix, multiscale) trained
in a workdir. tokenize, evaluate and predict use this module; it imports no
stage.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any, Callable, Optional

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from mirai_jax import checkpoint
from mirai_jax import mesh as mesh_lib
from mirai_jax import sample
from mirai_jax import tasks
from mirai_jax import workdir as workdir_lib
from mirai_jax import xla_options
from mirai_jax.data import tokens as tokens_lib
from mirai_jax.models import from_config
from mirai_jax.models import next_frame
from mirai_jax.models import tokenizer as tokenizer_lib
from mirai_jax.models import transformer as transformer_lib

PASTES = ('residual', 'block', 'none')
# What a dead zone can be chosen for (evaluate.paste_threshold_by_job): each
# task, and a rollout, a continuation fed back into itself.
JOBS = tasks.TASKS + ('rollout',)


def paste_thresholds(ev, field: str = 'config.evaluate.paste_threshold_by_job'
                     ) -> dict[str, float]:
  """{job: dead zone} for every job of JOBS: evaluate.paste_threshold,
  replaced where evaluate.paste_threshold_by_job ('interpolate:0.1,rollout:0';
  '' = none) names the job. ValueError naming `field`."""
  out = dict.fromkeys(JOBS, float(ev['paste_threshold']))
  spec = str(ev.get('paste_threshold_by_job', '') or '')
  seen = set()
  for part in filter(None, (x.strip() for x in spec.split(','))):
    job, colon, value = part.partition(':')
    try:
      t = float(value) if colon else -1.0
    except ValueError:
      t = -1.0
    if job not in JOBS or job in seen or not 0 <= t <= 1:
      raise ValueError(
          f'{field}={spec!r}: write job:threshold pairs, comma-separated, '
          f'each job once, of {", ".join(JOBS)}, with a threshold from 0 to '
          f"1 (e.g. 'interpolate:0.1,rollout:0'); got {part!r}")
    seen.add(job)
    out[job] = t
  return out


def paste_note(result: dict) -> str:
  """', paste residual > 0.2' for a result JSON whose frames had a dead
  zone (evaluate's and the rollout's table titles), else ''."""
  if result.get('paste') == 'residual' and result.get('paste_threshold'):
    return f", paste residual > {result['paste_threshold']:g}"
  return ''


@dataclasses.dataclass
class Tokenizer:
  """A restored tokenizer: uint8 frames <-> token grids."""
  model: tokenizer_lib.Tokenizer
  params: Any  # EMA parameters
  state: Any  # the VQ codebook ({} for FSQ)
  step: int

  def encode(self, video: jax.Array) -> jax.Array:
    """uint8 (B, T, H, W, 3) -> token grids (B, steps, h, w)."""
    return self.model.apply({'params': self.params, **self.state},
                            tokenizer_lib.to_float(video),
                            method=tokenizer_lib.Tokenizer.encode)[1]

  def decode(self, idx: jax.Array) -> jax.Array:
    """Token grids -> frames in [0, 1]."""
    return tokenizer_lib.to_unit(self.model.apply(
        {'params': self.params, **self.state}, idx,
        method=tokenizer_lib.Tokenizer.decode_indices))

  def decode_latents(self, z: jax.Array) -> jax.Array:
    """Latent grids (B, steps, h, w, D) -> frames in [0, 1]."""
    return tokenizer_lib.to_unit(self.model.apply(
        {'params': self.params, **self.state}, z,
        method=tokenizer_lib.Tokenizer.decode))

  def codebook(self) -> jax.Array:
    """(V, D): the latent of every token."""
    return self.model.apply({'params': self.params, **self.state},
                            method=tokenizer_lib.Tokenizer.codebook)


def load_tokenizer(config, workdir: str, spec: dict, mesh,
                   data_identity: Optional[dict] = None) -> Tokenizer:
  """The newest tokenizer checkpoint of `workdir` that restores, for clips
  of `spec` (the dataset's clip spec); identity.Changed when it was trained
  on another dataset than `data_identity`."""
  model = from_config.tokenizer(config)
  frames = config.tokenizer.train_frames or spec['frames']
  blank = jnp.zeros((1, frames, spec['height'], spec['width'], 3))
  variables = jax.eval_shape(lambda r: model.init({'params': r}, blank),
                             jax.random.key(0))
  part = {'ema_params': variables['params']}
  state = {k: v for k, v in variables.items() if k != 'params'}
  if state:
    part['model_state'] = state
  ckpt = checkpoint.Checkpoints(workdir_lib.checkpoint_dir(workdir, 'tokenizer'),
                                partial=True)
  restored, step = ckpt.restore_for_inference(
      checkpoint.abstract(part, mesh_lib.param_shardings(part, mesh)),
      label='tokenizer', dataset=data_identity,
      fix='Its tokens could let the transformer see test episodes through the '
      'tokenizer. Retrain the tokenizer in a new --workdir, or put the '
      'episode folder (or split file) back as it was.')
  return Tokenizer(model, restored['ema_params'],
                   restored.get('model_state', {}), step)


def load_transformer(config, workdir: str, records: tokens_lib.Records, mesh
                     ) -> tuple[transformer_lib.Transformer, tasks.Order, Any,
                                int]:
  """(model, order, EMA params, step) of the newest transformer checkpoint
  that restores; identity.Changed when it was trained on other token records
  (another dataset) than `records`."""
  model = from_config.transformer(config, records.grid, records.codebook_size)
  order = from_config.order(config, records.grid)
  variables = jax.eval_shape(lambda r: from_config.init_transformer(
      model, order, r, audio_len=records.audio_len,
      sample_rate=records.sample_rate, temporal=records.temporal,
      clip_steps=records.grid[0]), jax.random.key(0))
  part = {'ema_params': variables}
  ckpt = checkpoint.Checkpoints(
      workdir_lib.checkpoint_dir(workdir, 'transformer'), partial=True)
  restored, step = ckpt.restore_for_inference(
      checkpoint.abstract(part, mesh_lib.param_shardings(part, mesh)),
      label='transformer', dataset=records.dataset_identity,
      fix='It may have trained on the episodes it would now be tested on. '
      'Train it again in a new --workdir, or put the episode folder (or '
      'split file) back as it was.')
  return model, order, restored['ema_params'], step


@dataclasses.dataclass
class Baseline:
  """A restored pixel baseline: context frames -> the frames after them."""
  name: str
  step: int
  inputs: int  # the context frames it reads
  run: Callable  # (context uint8 (B, T, H, W, 3), n) -> (B, n, H, W, 3)

  def continue_frames(self, context, n: int) -> np.ndarray:
    return np.asarray(self.run(jnp.asarray(context), n))


def load_baselines(config, workdir: str, spec: dict, mesh,
                   data_identity: Optional[dict] = None
                   ) -> dict[str, Baseline]:
  """{name: Baseline} of every pixel baseline with a checkpoint in
  `workdir` (none trained: {}); refused when trained on another dataset."""
  out = {}
  for name in from_config.BASELINES:
    if workdir_lib.latest_step(workdir, name) is None:
      continue
    gen, _ = from_config.baseline(config, name)
    inputs = from_config.baseline_inputs(config, name)
    blank = jnp.zeros((1, inputs, spec['height'], spec['width'], 3))
    part = {'ema_params': jax.eval_shape(
        lambda r: gen.init(r, blank), jax.random.key(0))['params']}
    ckpt = checkpoint.Checkpoints(workdir_lib.checkpoint_dir(workdir, name),
                                  partial=True)
    restored, step = ckpt.restore_for_inference(
        checkpoint.abstract(part, mesh_lib.param_shardings(part, mesh)),
        label=name, dataset=data_identity,
        fix='It may have trained on the episodes it would now be tested on. '
        f'Train it again with --mode={name} in a new --workdir.')
    params = restored['ema_params']
    run = jax.jit(
        lambda ctx, n, gen=gen, params=params, inputs=inputs:
        next_frame.continue_frames(lambda c: gen.apply({'params': params}, c),
                                   ctx, inputs, n),
        static_argnums=1, compiler_options=xla_options.convolutions())
    out[name] = Baseline(name, step, inputs, run)
  return out


class Predictor:
  """Tokenizer + transformer, jitted once: frames and sound -> predicted frames."""

  def __init__(self, config, workdir: str, mesh, task: str = ''):
    self.config, self.mesh = config, mesh
    # Models and tokens of the dataset in use, or a clear stop: a model
    # trained on what is now the test split would flatter every number.
    _, self.records = workdir_lib.token_set(config, workdir)
    spec = self.records.clip_spec
    self.temporal = self.records.temporal
    tok = load_tokenizer(config, workdir, spec, mesh,
                         self.records.dataset_identity)
    self.tok_step = tok.step
    (self.model, self.order, self.params,
     self.step) = load_transformer(config, workdir, self.records, mesh)
    cfg = config.transformer
    if config.evaluate.paste not in PASTES:
      raise ValueError(f'config.evaluate.paste={config.evaluate.paste!r}: '
                       f'use one of {", ".join(PASTES)}')
    paste_thresholds(config.evaluate)  # a clear error before any compute
    self.frames = cfg.frames * self.temporal  # pixel frames of one window
    self.context = cfg.context * self.temporal
    self._encode = jax.jit(tok.encode,
                           compiler_options=xla_options.convolutions())
    self._decode = jax.jit(tok.decode,
                           compiler_options=xla_options.convolutions())
    self._decode_latents = jax.jit(
        tok.decode_latents, compiler_options=xla_options.convolutions())
    if config.sample.decode not in DECODES:
      raise ValueError(f'config.sample.decode={config.sample.decode!r}: use '
                       f'one of {", ".join(DECODES)}')
    self.codes = tok.codebook() if config.sample.decode == 'mean' else None

    def features(pcm, fps, use_audio):
      return self.model.apply(
          self.params, pcm, fps, self.records.sample_rate, self.temporal,
          self.records.grid[0], use_audio,
          method=self.model.audio_features)[:, :cfg.frames]

    self._features = jax.jit(features)
    self._set_task(task)

  def _set_task(self, task: str) -> None:
    trained = from_config.task_weights(self.config)
    self.task = self.job = task or next(iter(trained))
    if self.task not in trained:
      raise ValueError(f'the transformer was trained for '
                       f'{", ".join(trained)} (transformer.tasks), not '
                       f'{self.task!r}')
    self.order = from_config.order(self.config, self.records.grid, self.task)
    # Pixel frames of a window that are given, never generated: the context,
    # and for an in-between the frames of the last latent step (the last
    # keyframe, which the tokenizer encodes with the frames of its step).
    self.given = np.repeat(self.order.known_steps, self.temporal)
    # An in-between's end keyframe step (the first given step after the
    # context), or None.
    c = self.config.transformer.context
    later = np.flatnonzero(self.order.known_steps[c:])
    self.end_step = int(later[0]) + c if later.size else None
    self.token_columns = self.columns = self.carried = None
    if self.task == 'outpaint':  # given the centre columns of every frame
      _, h, w = self.records.grid
      width = self.records.clip_spec['width']
      lo, hi = self.token_columns = tasks.centre_columns(w)
      self.columns = (lo * width // w, hi * width // w)  # pixels [a, b)
      # The sides of a window's first `context` steps are its first unknown
      # positions: a widening's next window reads them as drawn (sample.py).
      self.carried = (self.order.num_known
                      + self.config.transformer.context * h * (w - (hi - lo)))
    s, order = self.config.sample, self.order

    def generate(idx, feats, prefix=None):
      """-> (token grids, latent grids to decode: the tokens' own, or their
      expectation under the model with sample.decode='mean')."""
      out = sample.generate(
          self.model, self.params, sample.known_sequence(idx, order, prefix),
          order, feats, jax.random.key(s.seed), temperature=s.temperature,
          top_k=s.top_k, top_p=s.top_p, hold_bias=s.hold_bias,
          prefix=prefix, codes=self.codes, mean_top_k=s.mean_top_k)
      if self.codes is None:
        return order.to_grid(out), None
      return order.to_grid(out[0]), order.to_grid(out[1])

    self._generate = jax.jit(generate, static_argnums=2)

  def for_task(self, task: str) -> 'Predictor':
    """The same models and weights, generating for another trained task."""
    other = copy.copy(self)
    other._set_task(task)  # pylint: disable=protected-access
    return other

  def for_rollout(self) -> 'Predictor':
    """The continuation, with the paste a rollout's frames are shown with
    (evaluate.paste_threshold_by_job)."""
    other = self.for_task('continue')
    other.job = 'rollout'
    return other

  @property
  def threshold(self) -> float:
    """The paste's dead zone for this job (`finish`)."""
    return paste_thresholds(self.config.evaluate)[self.job]

  def known_video(self, video):
    """uint8 (B, frames, H, W, 3) window -> what the encoder may see of it.
    For an in-between the frames between the keyframes become the keyframes'
    cross-fade: the tokenizer is causal in time, so the end keyframe's
    tokens would otherwise carry the frames before it, the ones to generate
    (evaluate and predict alike; the model trained on tokens of true
    windows). Other tasks read nothing after their known steps."""
    if self.end_step is None:
      return video
    i0, i1 = self.context - 1, self.end_step * self.temporal
    video = np.array(video)
    w = crossfade_weights(i1, i0, i1)[i0 + 1:, None, None, None]
    video[:, i0 + 1:i1] = (video[:, i0:i0 + 1] * (1 - w)
                           + video[:, i1:i1 + 1] * w).round().astype(np.uint8)
    return video

  def tokens(self, video):
    """uint8 (B, frames, H, W, 3) -> token grids (B, steps, h, w)."""
    return self._encode(video)

  def reconstruct(self, idx):
    return self._decode(idx)

  def audio_features(self, pcm, fps, use_audio):
    return self._features(pcm, fps, use_audio)

  def generate(self, idx, feats, prefix=None):
    """Token grids (only the known part, or the first `prefix` positions of
    the reading order, are read) -> (completed token grids, what `render`
    decodes: None, or with sample.decode='mean' the expected latents)."""
    toks, means = self._generate(idx, feats, prefix)
    return np.asarray(toks), None if means is None else np.asarray(means)

  def render(self, toks, means=None):
    """Generated token grids (and their expected latents, from `generate`)
    -> decoded frames in [0, 1] (numpy), before `finish`."""
    if means is None:
      return np.array(self._decode(jnp.asarray(toks)))
    return np.array(self._decode_latents(jnp.asarray(means)))

  def predict(self, idx, feats, real=None, still=None):
    """Predicted frames in [0, 1] (numpy); `real` holds the true context
    frames (uint8 or [0, 1]) and `still` optionally `self.still(idx)`, both
    for `finish`."""
    toks, means = self.generate(idx, feats)
    return self.finish(self.render(toks, means), toks, real, still)

  def rollout(self, real, audio, fps, use_audio, windows: int):
    """`windows` windows, each continuing from the last `context` latent
    steps generated before it (fed back as tokens, never re-encoded).

    real: uint8 (B, >= frames, H, W, 3); its first window is encoded, of
    which the context (and an in-between's end keyframe, window 0 only) is
    read, and later frames only by the paste. audio(w) -> (B, audio_len)
    int16 sound of window w's frames; fps (B,); use_audio (B,) bool.
    Returns (frames (B, context + windows * new, H, W, 3) in [0, 1], token
    grids)."""
    steps = self.config.transformer.frames
    c_steps = self.config.transformer.context
    given = self.order.known_steps
    idx = np.asarray(self.tokens(jnp.asarray(
        self.known_video(real[:, :self.frames]))))
    grids = [idx[:, :c_steps]]
    means = []  # expected latents, with sample.decode='mean'
    last = grids[0]  # the last c_steps steps so far
    fps, use_audio = jnp.asarray(fps, jnp.float32), jnp.asarray(use_audio)
    for w in range(windows):
      feats = self.audio_features(jnp.asarray(audio(w)), fps, use_audio)
      # The steps after the context are generated, except a keyframe's,
      # which are the real tokens (an in-between is one window: predict
      # and evaluate roll out continuations only).
      rest = np.where(given[None, c_steps:steps, None, None],
                      idx[:, c_steps:steps], 0)
      known = np.concatenate([last, rest], 1)
      toks, mean = self.generate(jnp.asarray(known), feats)
      grids.append(toks[:, c_steps:])
      means.append(mean if w == 0 or mean is None else mean[:, c_steps:])
      last = np.concatenate([last, grids[-1]], 1)[:, -c_steps:]
    toks = np.concatenate(grids, 1)
    frames = self.render(toks, None if self.codes is None
                         else np.concatenate(means, 1))
    total = frames.shape[1]
    return self.finish(frames, toks, real[:, :total]), toks

  def widen(self, real, audio, fps, use_audio, windows: int):
    """Outpainting over `windows` windows of a video, each window starting
    `frames - context` frames after the last and reading the sides it
    generated over its first `context` steps from the window before (so
    they do not flicker from window to window).

    real: uint8 (B, context + windows * new, H, W, 3), the true centre
    columns (`self.columns`) with anything in the sides (`mirror_sides`:
    the encoder sees a few pixels past each token). audio(w) -> (B,
    audio_len) int16 sound of window w's frames; fps (B,); use_audio (B,).
    Returns (frames (B, T, H, W, 3) in [0, 1] with the centre pasted back,
    token grids)."""
    steps, c_steps = self.config.transformer.frames, self.config.transformer.context
    new = self.frames - self.context
    fps, use_audio = jnp.asarray(fps, jnp.float32), jnp.asarray(use_audio)
    a, b = self.token_columns
    grids, means = [], []
    last, t0 = None, time.time()  # last: the last c_steps steps
    for w in range(windows):
      if w and w % 25 == 0:
        logging.info('widen: %d/%d windows (%.0f s)', w, windows,
                     time.time() - t0)
      idx = np.array(self.tokens(jnp.asarray(
          real[:, w * new:w * new + self.frames])))
      feats = self.audio_features(jnp.asarray(audio(w)), fps, use_audio)
      if last is None:
        toks, mean = self.generate(jnp.asarray(idx), feats)
        grids.append(toks)
        means.append(mean)
        last = grids[0][:, -c_steps:]
        continue
      idx[:, :c_steps, :, :a] = last[..., :a]
      idx[:, :c_steps, :, b:] = last[..., b:]
      toks, mean = self.generate(jnp.asarray(idx), feats, self.carried)
      grids.append(toks[:, c_steps:steps])
      means.append(None if mean is None else mean[:, c_steps:steps])
      last = np.concatenate([last, grids[-1]], 1)[:, -c_steps:]
    toks = np.concatenate(grids, 1)
    frames = self.render(toks, None if self.codes is None
                         else np.concatenate(means, 1))
    return self.finish(frames, toks, real[:, :frames.shape[1]]), toks

  def still(self, toks):
    """The last known step's tokens repeated over every step, decoded: what
    the decoder shows when nothing changes (numpy, [0, 1])."""
    c = self.config.transformer.context
    return np.asarray(self._decode(jnp.asarray(
        np.repeat(np.asarray(toks)[:, c - 1:c], toks.shape[1], 1))))

  def finish(self, frames, toks, real=None, still=None):
    """Decoded frames (B, T, H, W, 3) of token grids (B, steps, h, w) -> the
    frames shown, after `config.evaluate.paste` with the true context frames.

    'residual' is a codec's P-frame: the true last context frame plus what
    the decoder says changed since it, decode(toks) - decode(last step's
    tokens repeated). The tokenizer's error on everything that stays cancels,
    so a predictor is no longer capped by the tokenizer's PSNR on still
    content (README, "What the demo shows"). `still` (`self.still(toks)`)
    saves decoding it again when the caller has it: it depends only on the
    known steps. An in-between's change is measured from the cross-fade of
    its keyframes instead (`paste_between`), and a widening's from the
    centre's edge columns repeated sideways (`paste_sides`)."""
    mode = self.config.evaluate.paste
    if self.task == 'outpaint':  # the true centre, the generated sides
      if real is None:
        return frames
      return paste_sides(frames, _unit(real)[:, :frames.shape[1]],
                         *self.columns, mode == 'residual', self.threshold)
    if real is None or mode == 'none':
      return frames
    c = self.config.transformer.context
    if mode == 'block':
      return paste_unchanged(frames, toks, real, c, self.temporal)
    if still is None:
      still = self.still(toks)
    threshold = self.threshold
    if self.end_step is None:
      return paste_change(frames, still, real, c, self.temporal, threshold)
    # An in-between: the change is measured from the cross-fade of the two
    # keyframes, in pixels and through the decoder alike.
    end = np.repeat(np.asarray(toks)[:, self.end_step:self.end_step + 1],
                    toks.shape[1], 1)
    return paste_between(frames, still, np.asarray(self._decode(
        jnp.asarray(end))), real, c, self.end_step, self.temporal, threshold,
                         toks=toks)


# sample.decode: how generated tokens become frames (Predictor.render).
DECODES = ('tokens', 'mean')


def _unit(real) -> np.ndarray:
  """Frames in 0..255 (uint8 or not) or already in [0, 1] as float32 in
  [0, 1]."""
  out = np.asarray(real, np.float32)
  if np.asarray(real).dtype == np.uint8 or out.max() > 1.0:
    return out / 255.0
  return out


def _last_context_frame(real, context: int, temporal: int) -> np.ndarray:
  return _unit(real)[:, context * temporal - 1]  # (B, H, W, 3)


def mirror_sides(video: np.ndarray, a: int, b: int) -> np.ndarray:
  """(..., H, W, C) with the columns outside [a, b) replaced by the centre
  reflected at its edges (repeated when a side is wider than the centre):
  what the encoder sees where a widening's sides are unknown."""
  w = video.shape[-2]
  cols = np.arange(w)
  period = 2 * (b - a)
  k = np.mod(cols - a, period)
  src = a + np.where(k < b - a, k, period - 1 - k)
  return video[..., src, :]


def edge_sides(video: np.ndarray, a: int, b: int) -> np.ndarray:
  """(..., H, W, C) with the columns outside [a, b) replaced by the centre's
  outermost column on their side (edge replication)."""
  return video[..., np.clip(np.arange(video.shape[-2]), a, b - 1), :]


def paste_sides(frames, real, a: int, b: int, residual: bool,
                threshold: float = 0.0):
  """frames, real (B, T, H, W, 3) in [0, 1] -> frames with the true centre
  columns [a, b). With `residual` the sides are a codec's intra prediction
  from the true centre: its edge columns repeated sideways, plus what the
  decoder drew beyond the same repetition of its own decoded edge columns
  (a change under `threshold` in every channel dropped). Where the model
  extends a flat background the output is exactly the true edge colour,
  which the tokenizer alone only approximates; what it draws in the sides
  (a figure entering, a horizon's shading) is added on top."""
  if residual:
    out = _paste(frames, edge_sides(frames, a, b), edge_sides(real, a, b), 0,
                 threshold)
  else:
    out = frames.copy()
  out[..., a:b, :] = real[..., a:b, :]
  return out


def paste_change(frames, still, real, context: int, temporal: int,
                 threshold: float = 0.0):
  """frames, still (B, T, H, W, 3) in [0, 1]: the frames after the context
  become the last true context frame + (frames - still), clipped to [0, 1].
  A pixel whose change is under `threshold` in every channel keeps the last
  frame (a codec's dead zone: a changed token's decoding also moves the
  pixels around what changed by the tokenizer's error, a few hundredths
  where flat cartoon colours move by tenths)."""
  last = _last_context_frame(real, context, temporal)
  return _paste(frames, still, last[:, None], context * temporal, threshold)


def _paste(frames, still, base, k: int, threshold: float):
  """frames with frames k.. replaced by base + (frames - still), a change
  under `threshold` in every channel dropped; base broadcasts to frames."""
  out = frames.copy()
  change = frames[:, k:] - still[:, k:]
  if threshold:
    change = np.where(np.abs(change).max(-1, keepdims=True) < threshold, 0.0,
                      change)
  base = np.broadcast_to(base, frames.shape)[:, k:]
  out[:, k:] = np.clip(base + change, 0.0, 1.0)
  return out


def paste_between(frames, still0, still1, real, context: int, end: int,
                  temporal: int, threshold: float = 0.0, toks=None):
  """`paste_change` for an in-between, whose end step `end` is given: the
  frames after the context become the cross-fade of the two true keyframes
  (the last context frame and the end step's first frame) + (frames - the
  same cross-fade of still0 and still1, the decoded first and end keyframe
  steps held). Where the model draws what a cross-fade would, the output is
  exactly the cross-fade; what it moves replaces the cross-fade's double
  image there.

  With `toks` (B, steps, h, w), a codec's backward skip block: where a
  generated token repeats the end step's token at its place and not the
  last context step's, the place shows the true end keyframe. Drawings
  held on twos and threes make the in-between next to a keyframe that
  keyframe's drawing, which the cross-fade only approaches (demo 'wide',
  validation: 0.00093 against 0.00097 without it and the cross-fade's
  0.00098). The same skip towards the first keyframe measured worse
  (0.00214 against 0.00134 on 16 clips of the demo): the model holds the
  first drawing too often, and the cross-fade hedges."""
  i0, i1 = context * temporal - 1, end * temporal
  w = crossfade_weights(frames.shape[1], i0, i1)[None, :, None, None, None]
  r = _unit(real)
  base = (1 - w) * r[:, i0:i0 + 1] + w * r[:, i1:i1 + 1]
  out = _paste(frames, (1 - w) * still0 + w * still1, base,
               context * temporal, threshold)
  if toks is None:
    return out
  toks = np.asarray(toks)
  skip = ((toks == toks[:, end:end + 1]) & (toks != toks[:, context - 1:context]))
  skip[:, :context] = False
  skip[:, end:] = False
  return np.where(_blocks(skip, *frames.shape[2:4], temporal),
                  r[:, i1:i1 + 1], out)


def _blocks(mask, height: int, width: int, temporal: int) -> np.ndarray:
  """(B, steps, h, w) per-token mask -> (B, steps * temporal, height, width,
  1) per-pixel, each token covering its frames and its pixels."""
  h, w = mask.shape[2:]
  big = np.repeat(np.repeat(mask, height // h, 2), width // w, 3)
  return np.repeat(big, temporal, 1)[..., None]


def crossfade_weights(n: int, i0: int, i1: int) -> np.ndarray:
  """(n,) weight of the end keyframe (frame i1) in a linear cross-fade from
  frame i0: 0 up to i0, 1 from i1."""
  return np.clip((np.arange(n) - i0) / (i1 - i0), 0.0, 1.0).astype(np.float32)


def paste_unchanged(frames, toks, real, context: int, temporal: int):
  """frames (B, T, H, W, 3) in [0, 1]; toks (B, steps, h, w) -> frames with
  the last context frame pasted where a later step repeats the last context
  step's token (a codec's skip block)."""
  last = _last_context_frame(real, context, temporal)
  same = toks[:, context:] == toks[:, context - 1:context]  # (B, s, h, w)
  out = frames.copy()
  k = context * temporal
  big = _blocks(same, *frames.shape[2:4], temporal)
  out[:, k:] = np.where(big, last[:, None], frames[:, k:])
  return out
