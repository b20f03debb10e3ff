"""`--mode=evaluate`: how good are the predicted frames, and does sound help?

For every clip of `evaluate.split` the transformer continues the first
`transformer.context` latent steps of the clip's first window; the predicted
frames are compared with the true ones at each future frame (PSNR, SSIM, MSE
with dm-pix, pixels in [0, 1]) side by side with

  copy_last         the last context frame repeated (the classic baseline)
  copy_last_tokens  the last context step's tokens repeated and decoded: the
                    same copy through the tokenizer (shares the model's ceiling)
  reconstruction    the tokenizer's own reconstruction of the true frames
                    (the ceiling any token predictor can reach)
  mismatched_audio  the same model given the soundtrack of another clip
  no_audio          the same model with the sound switched off

On synthetic episodes (their ground truth JSON beside the episode folder) the
MSE inside the talking mouth's box is reported too: the mouth follows the
loudness of the speech, so there the future is predictable only from sound.
evaluate.paste says how predicted tokens become frames (`Predictor.finish`):
'residual' adds the decoded change to the true last frame, 'block' keeps the
true last frame wherever a token repeats, 'none' shows the plain decoding.
The reconstruction row goes through the same step, so it stays the ceiling;
with a paste, copy_last_tokens is exactly copy_last and is left out.
Writes <workdir>/evaluate/<split>.json and prints a table.
"""

from __future__ import annotations

import fractions
import functools
import json
import os
import time

from absl import logging
import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np

from mirai_jax import checks
from mirai_jax import sample
from mirai_jax import storage
from mirai_jax import tokenize
from mirai_jax.data import dataset
from mirai_jax.data import pipeline
from mirai_jax.data import tokens as tokens_lib
from mirai_jax.models import tokenizer as tokenizer_lib
from mirai_jax.train import mesh as mesh_lib
from mirai_jax.train import tokenizer as tokenizer_train
from mirai_jax.train import transformer as transformer_train

VARIANTS = ('audio', 'mismatched_audio', 'no_audio')
PASTES = ('residual', 'block', 'none')
BASELINES = ('copy_last', 'copy_last_tokens', 'reconstruction')


class Predictor:
  """Tokenizer + transformer, jitted once: frames and sound -> predicted frames."""

  def __init__(self, config, workdir: str, mesh):
    self.config, self.mesh = config, mesh
    token_dir = tokens_lib.current(tokenize.tokens_dir(workdir))
    self.meta = tokens_lib.read_meta(token_dir)
    # Models and tokens of the dataset in use, or a clear stop: a model
    # trained on what is now the test split would flatter every number.
    ident = transformer_train.check_tokens(config, workdir, self.meta,
                                           token_dir, ())
    spec = self.meta['clip_spec']
    self.temporal = self.meta.get('temporal', 1)
    (self.tok_model, self.tok_params, self.tok_state,
     self.tok_step) = tokenizer_train.restore_for_inference(config, workdir,
                                                            spec, mesh, ident)
    (self.model, self.order, self.params,
     self.step) = transformer_train.restore_for_inference(config, workdir,
                                                          self.meta, mesh)
    cfg = config.transformer
    if config.evaluate.paste not in PASTES:
      raise ValueError(f'config.evaluate.paste={config.evaluate.paste!r}: '
                       f'use one of {", ".join(PASTES)}')
    if cfg.task not in ('continue', 'interpolate'):
      raise ValueError(f'evaluate/predict continue a shot; the model was '
                       f'trained for task {cfg.task!r}')
    self.frames = cfg.frames * self.temporal  # pixel frames of one window
    self.context = cfg.context * self.temporal
    s = config.sample
    tok = {'params': self.tok_params, **self.tok_state}
    self._encode = jax.jit(lambda v: self.tok_model.apply(
        tok, tokenizer_train.to_float(v),
        method=tokenizer_lib.Tokenizer.encode)[1])
    self._decode = jax.jit(lambda idx: tokenizer_train.to_unit(
        self.tok_model.apply(tok, idx,
                             method=tokenizer_lib.Tokenizer.decode_indices)))

    def features(pcm, fps, use_audio):
      return self.model.apply(
          self.params, pcm, fps, spec['sample_rate'], self.temporal,
          self.meta['grid'][0], use_audio,
          method=self.model.audio_features)[:, :cfg.frames]

    self._features = jax.jit(features)
    self._generate = jax.jit(lambda idx, feats: self.order.to_grid(
        sample.generate(self.model, self.params,
                        sample.known_sequence(idx, self.order), self.order,
                        feats, jax.random.key(s.seed), temperature=s.temperature,
                        top_k=s.top_k, top_p=s.top_p)))

  def tokens(self, video):
    """uint8 (B, frames, H, W, 3) -> token grids (B, steps, h, w)."""
    return self._encode(video)

  def reconstruct(self, idx):
    return self._decode(idx)

  def audio_features(self, pcm, fps, use_audio):
    return self._features(pcm, fps, use_audio)

  def generate(self, idx, feats):
    """Token grids (only the known part is read) -> completed token grids."""
    return self._generate(idx, feats)

  def predict(self, idx, feats, real=None, still=None):
    """Predicted frames in [0, 1] (numpy); `real` holds the true context
    frames (uint8 or [0, 1]) and `still` optionally `self.still(idx)`, both
    for `finish`."""
    out = self._generate(idx, feats)
    return self.finish(np.array(self._decode(out)), np.asarray(out), real,
                       still)

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
    content (the synthetic demo: 22.5 dB plain, 31.6 dB residual, from the
    true tokens). `still` (`self.still(toks)`) saves decoding it again when
    the caller has it: it depends only on the known steps."""
    mode = self.config.evaluate.paste
    if real is None or mode == 'none':
      return frames
    c = self.config.transformer.context
    if mode == 'block':
      return paste_unchanged(frames, toks, real, c, self.temporal)
    if still is None:
      still = self.still(toks)
    return paste_change(frames, still, real, c, self.temporal)


def _last_context_frame(real, context: int, temporal: int) -> np.ndarray:
  real = np.asarray(real, np.float32)
  if real.max() > 1.0:
    real = real / 255.0
  return real[:, context * temporal - 1]  # (B, H, W, 3)


def paste_change(frames, still, real, context: int, temporal: int):
  """frames, still (B, T, H, W, 3) in [0, 1]: the frames after the context
  become the last true context frame + (frames - still), clipped to [0, 1]."""
  last = _last_context_frame(real, context, temporal)
  out = frames.copy()
  k = context * temporal
  out[:, k:] = np.clip(last[:, None] + frames[:, k:] - still[:, k:], 0.0, 1.0)
  return out


def paste_unchanged(frames, toks, real, context: int, temporal: int):
  """frames (B, T, H, W, 3) in [0, 1]; toks (B, steps, h, w) -> frames with
  the last context frame pasted where a later step repeats the last context
  step's token (a codec's skip block)."""
  last = _last_context_frame(real, context, temporal)
  same = toks[:, context:] == toks[:, context - 1:context]  # (B, s, h, w)
  b, s, h, w = same.shape
  big = np.repeat(np.repeat(same, frames.shape[2] // h, 2),
                  frames.shape[3] // w, 3)  # (B, s, H, W)
  big = np.repeat(big, temporal, 1)[..., None]
  out = frames.copy()
  out[:, context * temporal:] = np.where(big, last[:, None],
                                         frames[:, context * temporal:])
  return out


def mouth_boxes(truth: dict, spec: dict, start: int, count: int) -> np.ndarray:
  """(count, 4) mouth boxes [x0, y0, x1, y1) in clip pixels for frames
  start .. start + count - 1 of the clip timeline (synthetic ground truth)."""
  dw, dh = truth['width'], truth['height']
  h, w = spec['height'], spec['width']
  if spec['resize'] == 'stretch':
    sx, sy, ox, oy = w / dw, h / dh, 0, 0
  elif spec['resize'] == 'crop':
    s = max(w / dw, h / dh)
    sw, sh = max(w, round(dw * s)), max(h, round(dh * s))
    sx, sy, ox, oy = sw / dw, sh / dh, -((sw - w) // 2), -((sh - h) // 2)
  else:
    s = min(w / dw, h / dh)
    sw, sh = min(w, max(1, round(dw * s))), min(h, max(1, round(dh * s)))
    sx, sy, ox, oy = sw / dw, sh / dh, (w - sw) // 2, (h - sh) // 2
  src_fps = fractions.Fraction(truth['fps'])
  clip_fps = fractions.Fraction(spec['fps']) if spec.get('fps') else src_fps
  boxes = np.asarray(truth['mouth_box'], np.float64)
  out = []
  for k in range(start, start + count):
    j = min(int(fractions.Fraction(k) / clip_fps * src_fps), len(boxes) - 1)
    x0, y0, x1, y1 = boxes[j]
    out.append([np.floor(x0 * sx + ox), np.floor(y0 * sy + oy),
                np.ceil(x1 * sx + ox), np.ceil(y1 * sy + oy)])
  return np.clip(np.asarray(out, int), 0, [w, h, w, h])


@functools.lru_cache(maxsize=None)
def _truth_of(truth_dir: str, episode: str):
  path = os.path.join(truth_dir, os.path.splitext(episode)[0] + '.json')
  if not storage.exists(path):
    return None
  return json.loads(storage.read_text(path))


def _frame_metrics(real: np.ndarray, fake: np.ndarray) -> dict:
  """(B, T, H, W, 3) in [0, 1] -> per clip and frame PSNR/SSIM/MSE (B, T)."""
  b, t = real.shape[:2]
  flat = lambda v: jnp.asarray(v).reshape(b * t, *v.shape[2:])
  mse = np.asarray(pix.mse(flat(real), flat(fake))).reshape(b, t)
  return dict(
      # Held drawings make copies exact: PSNR is capped at 60 dB (MSE 1e-6)
      # so that one identical frame does not turn a mean into infinity.
      psnr=10 * np.log10(1.0 / np.maximum(mse, 1e-6)),
      ssim=np.asarray(pix.ssim(flat(real), flat(fake))).reshape(b, t),
      mse=mse)


def _mouth_mse(real, fake, boxes) -> np.ndarray:
  """(B, T) MSE inside each frame's box; boxes (B, T, 4)."""
  out = np.zeros(real.shape[:2])
  for i, j in np.ndindex(*out.shape):
    x0, y0, x1, y1 = boxes[i, j]
    out[i, j] = np.mean((real[i, j, y0:y1, x0:x1] - fake[i, j, y0:y1, x0:x1]) ** 2)
  return out


def run(config, workdir: str) -> dict:
  ev = config.evaluate
  # Never compute a table that cannot be written.
  checks.writable(os.path.join(workdir, 'evaluate'), '--workdir')
  episodes, data_dir = dataset.data_paths(config, workdir)
  builder = pipeline.dataset_builder(
      data_dir, f'anime_clips/{config.data.builder_config}')
  dataset.check_splits(config, ('evaluate',), builder)
  mesh = mesh_lib.make_mesh(config.mesh.fsdp, config.mesh.devices)
  if jax.process_count() > 1:
    raise NotImplementedError('evaluate runs in one process; start it '
                              'without jax.distributed')
  p = Predictor(config, workdir, mesh)
  spec = p.meta['clip_spec']
  source = builder.as_data_source(split=ev.split)
  n = min(len(source), ev.max_clips or len(source))
  if n < 2:
    raise ValueError(f'split {ev.split!r} has {n} clip(s); the audio ablation '
                     'needs at least 2')
  batch = max(mesh.size, ev.batch_size // mesh.size * mesh.size)
  audio_len = tokens_lib.audio_len(p.meta)
  truth_dir = episodes.rstrip('/') + '_truth'
  c0, f = p.context, p.frames

  def load(i):
    r = source[int(i)]
    a = pipeline.fit_audio(r['audio'], audio_len)
    ep = r['episode'].decode() if isinstance(r['episode'], bytes) else str(r['episode'])
    return dict(video=np.asarray(r['video'])[:f], audio=a,
                has_audio=bool(r['has_audio']),
                fps=float(r['fps_num']) / float(r['fps_den']),
                episode=ep, start=int(r['start_frame']))

  per = {k: [] for k in VARIANTS + BASELINES}
  mouth = {k: [] for k in VARIANTS + BASELINES}
  examples = None
  t0 = time.time()
  for s in range(0, n, batch):
    ids = list(range(s, min(s + batch, n)))
    rows = [load(i) for i in ids]
    # The mismatched soundtrack comes from the clip half the split away, so
    # it never overlaps the clip's own sound.
    other = [load((i + n // 2) % n) for i in ids]
    pad = batch - len(rows)
    rows_p, other_p = rows + [rows[-1]] * pad, other + [other[-1]] * pad
    stack = lambda rs, k: np.stack([r[k] for r in rs])
    g = lambda x: pipeline.to_global({'x': x}, mesh)['x']
    video = stack(rows_p, 'video')
    fps = g(stack(rows_p, 'fps').astype(np.float32))
    has = stack(rows_p, 'has_audio')
    idx = p.tokens(g(video))
    real = video.astype(np.float32) / 255.0
    # The known steps are the true tokens for every row below: decode their
    # still frame once (it is also the copy_last_tokens baseline).
    still = p.still(idx)
    outputs = dict(reconstruction=p.finish(np.asarray(p.reconstruct(idx)),
                                           np.asarray(idx), video, still))
    feats = dict(
        audio=p.audio_features(g(stack(rows_p, 'audio')), fps, g(has)),
        mismatched_audio=p.audio_features(
            g(stack(other_p, 'audio')), fps, g(stack(other_p, 'has_audio'))),
        no_audio=p.audio_features(g(stack(rows_p, 'audio')), fps,
                                  g(np.zeros_like(has))))
    for k in VARIANTS:
      outputs[k] = p.predict(idx, feats[k], video, still)
    outputs['copy_last'] = np.repeat(real[:, c0 - 1:c0], f, axis=1)
    if ev.paste == 'none':  # with a paste it is exactly copy_last
      outputs['copy_last_tokens'] = still
    m = len(rows)
    truths = [_truth_of(truth_dir, r['episode']) for r in rows]
    boxes = None
    if all(t is not None for t in truths):
      boxes = np.stack([mouth_boxes(t, spec, r['start'] + c0, f - c0)
                        for t, r in zip(truths, rows)])
    for k, fake in outputs.items():
      per[k].append(_frame_metrics(real[:m, c0:], fake[:m, c0:]))
      if boxes is not None:
        mouth[k].append(_mouth_mse(real[:m, c0:], fake[:m, c0:], boxes))
    if examples is None:
      examples = dict(real=real[:4], **{k: v[:4] for k, v in outputs.items()})
    logging.info('evaluate: %d/%d clips (%.0f s)', ids[-1] + 1, n,
                 time.time() - t0)

  result = dict(split=ev.split, clips=n, context_frames=c0,
                predicted_frames=f - c0, tokenizer_step=p.tok_step,
                transformer_step=p.step, sample=config.sample.to_dict(),
                seconds=round(time.time() - t0, 1), methods={})
  for k in BASELINES + VARIANTS:
    if not per[k]:
      continue
    cat = {m_: np.concatenate([d[m_] for d in per[k]]) for m_ in per[k][0]}
    entry = {m_: float(v.mean()) for m_, v in cat.items()}
    entry.update({f'{m_}_per_frame': [round(float(x), 5) for x in v.mean(0)]
                  for m_, v in cat.items()})
    if mouth[k]:
      mm = np.concatenate(mouth[k])
      entry['mouth_mse'] = float(mm.mean())
      entry['mouth_mse_per_frame'] = [round(float(x), 5) for x in mm.mean(0)]
    result['methods'][k] = entry
  out = os.path.join(workdir, 'evaluate')
  path = os.path.join(out, f'{ev.split}.json')
  if jax.process_index() == 0:
    storage.write_text(path, json.dumps(result, indent=1))
    with storage.output_file(os.path.join(out, f'{ev.split}_examples.gif')
                             ) as gif:
      _write_examples(gif, examples, c0)
  print(table(result), flush=True)
  print(f'evaluate: wrote {path}', flush=True)
  return result


def _write_examples(path: str, ex: dict, context: int) -> None:
  """A GIF of the first clips: rows real / predicted / copy-last / ceiling."""
  from mirai_jax.data import visualize  # pylint: disable=g-import-not-at-top
  rows = ('real', 'audio', 'mismatched_audio', 'copy_last', 'reconstruction')
  clips = [(np.clip(ex[k][i], 0, 1) * 255).astype(np.uint8)
           for i in range(len(ex['real'])) for k in rows]
  visualize.write_gif(path, visualize.grid(clips, cols=len(rows)), fps=6)


def table(result: dict) -> str:
  """The readable version of the evaluation JSON."""
  methods = result['methods']
  mouth = all('mouth_mse' in v for v in methods.values())
  head = f"{'method':<18}{'PSNR dB':>9}{'SSIM':>8}{'MSE':>10}"
  head += f"{'mouth MSE':>11}" if mouth else ''
  lines = [f"evaluate on {result['split']}: {result['clips']} clips, "
           f"{result['context_frames']} context -> "
           f"{result['predicted_frames']} predicted frames "
           f"(tokenizer step {result['tokenizer_step']}, transformer step "
           f"{result['transformer_step']})", head, '-' * len(head)]
  for k, v in methods.items():
    line = f"{k:<18}{v['psnr']:>9.2f}{v['ssim']:>8.4f}{v['mse']:>10.5f}"
    if mouth:
      line += f"{v['mouth_mse']:>11.5f}"
    lines.append(line)
  a = methods['audio']
  lines.append('PSNR per predicted frame (audio): '
               + ' '.join(f'{x:.1f}' for x in a['psnr_per_frame']))
  if mouth:
    mm = methods['mismatched_audio']['mouth_mse']
    lines.append(f"mouth MSE, matched vs mismatched audio: {a['mouth_mse']:.5f} "
                 f"vs {mm:.5f} ({100 * (1 - a['mouth_mse'] / mm):+.1f}% lower "
                 'with the true sound)')
  cl = methods['copy_last']['mse']
  lines.append(f"MSE vs copy-last-frame: {a['mse']:.5f} vs {cl:.5f} "
               f"({100 * (1 - a['mse'] / cl):+.1f}% lower)")
  return '\n'.join(lines)
