"""`--mode=evaluate`: how good are the predicted frames, and does sound help?

For every clip of `evaluate.split` the transformer continues the first
`transformer.context` latent steps of the clip's first window (with task
'interpolate' it fills the steps between them and the window's last step,
the end keyframe; given frames are never scored); the predicted frames are
compared with the true ones at each future frame (PSNR, SSIM, MSE with
dm-pix, pixels in [0, 1]) side by side with

  copy_last         the last context frame repeated (the classic baseline)
  copy_last_tokens  the last context step's tokens repeated and decoded: the
                    same copy through the tokenizer (shares the model's ceiling)
  reconstruction    the tokenizer's own reconstruction of the true frames
                    (the ceiling any token predictor can reach)
  mismatched_audio  the same model given the soundtrack of another clip
  no_audio          the same model with the sound switched off
  crossfade         (in-betweening) the two keyframes blended linearly
  nearest_keyframe  (in-betweening) the nearer keyframe held
  edge_replication  (widening) the centre's outermost columns repeated
  mirror            (widening) the centre reflected at its edges
  pix2pix           (continuation) the pixel baselines trained in the
  multiscale        workdir (--mode=pix2pix / multiscale, train/baseline.py),
                    from the same context frames, their output fed back

With the `metrics` extra every method also gets LPIPS per generated frame
and FVD over whole windows (perceptual_scores.py); without it the table says
how to get them.

A widening (task 'outpaint') is given the centre columns of every frame and
scored on the sides only; its model reads tokens of frames whose sides are
the mirrored centre, never the true sides it is scored on. Likewise an
in-between's model reads tokens of a window whose frames between the
keyframes are their cross-fade (Predictor.known_video): the causal encoder
would carry the true ones into the end keyframe's tokens.

On synthetic episodes (their ground truth JSON beside the episode folder) the
MSE inside the talking mouth's box is reported too: the mouth follows the
loudness of the speech, so there the future is predictable only from sound.
evaluate.paste says how predicted tokens become frames (inference.Predictor):
'residual' adds the decoded change to the true last frame (an in-between's
to the cross-fade of its true keyframes, a widening's sides to the true
centre's edge columns repeated), 'block' keeps the true last frame
wherever a token repeats, 'none' shows the plain decoding.
The reconstruction row goes through the same step, so it stays the ceiling;
with a paste, copy_last_tokens is exactly copy_last and is left out.
A model trained on several tasks (transformer.tasks) is evaluated on each,
from the one checkpoint. Writes <workdir>/evaluate/<split>.json (a
continuation; otherwise <split>_<task>.json) and its GIF, and prints a
table per task; <split>[_<task>]_examples.npz holds the first clips as every
method made them (uint8, whole windows; `given` marks the given frames) for
the report. With evaluate.rollout > 0 a model that continues is also
rolled out over each test shot for that many windows (mirai_jax/rollouts.py).

A method is a named function of a batch that returns frames (METHODS); every
method is scored with every function of scores.py on the predicted frames
only. Figures of the demo: README, "What the demo shows".
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Callable, Optional

from absl import logging
import jax
import numpy as np

from mirai_jax import inference
from mirai_jax import mesh as mesh_lib
from mirai_jax import perceptual_scores as perceptual
from mirai_jax import render
from mirai_jax import rollouts
from mirai_jax import scores
from mirai_jax import storage
from mirai_jax import workdir as workdir_lib
from mirai_jax.build import synthetic
from mirai_jax.data import pipeline
from mirai_jax.models import from_config

VARIANTS = ('audio', 'mismatched_audio', 'no_audio')
BASELINES = ('copy_last', 'copy_last_tokens', 'reconstruction')


@dataclasses.dataclass
class Batch:
  """One batch of test clips, as every method sees it."""
  video: np.ndarray  # uint8 (B, frames, H, W, 3), padded to the batch
  real: np.ndarray  # the same in [0, 1]
  idx: Any  # their token grids, as the model reads them
  still: Optional[np.ndarray]  # the last context step's tokens repeated, decoded
  feats: dict[str, Any]  # audio features of each sound variant
  context: int  # context frames
  given: np.ndarray  # (frames,) bool: given, never generated (tasks.py)
  paste: str  # config.evaluate.paste
  true_idx: Any = None  # the token grids of the true frames (the ceiling)
  columns: Optional[tuple[int, int]] = None  # a widening's given centre [a, b)


def _keyframes(b: Batch):
  """(i0, i1): the last context frame and the first given frame after it
  (an in-between's end keyframe), or None for a continuation."""
  after = np.flatnonzero(b.given[b.context:])
  return (b.context - 1, b.context + int(after[0])) if after.size else None


def _crossfade(b: Batch):
  """The two keyframes blended linearly over the frames between them."""
  keys = _keyframes(b)
  if keys is None:
    return None
  i0, i1 = keys
  w = inference.crossfade_weights(b.real.shape[1], i0, i1)
  w = w[None, :, None, None, None]
  return (1 - w) * b.real[:, i0:i0 + 1] + w * b.real[:, i1:i1 + 1]


def _edge_replication(b: Batch):
  """A widening's sides filled with the centre's outermost columns."""
  if b.columns is None:
    return None
  return inference.edge_sides(b.real, *b.columns)


def _mirror(b: Batch):
  """A widening's sides filled with the centre reflected at its edges."""
  if b.columns is None:
    return None
  return inference.mirror_sides(b.real, *b.columns)


def _nearest_keyframe(b: Batch):
  """Each frame between the keyframes shows the nearer one."""
  keys = _keyframes(b)
  if keys is None:
    return None
  i0, i1 = keys
  k = np.arange(b.real.shape[1])
  return b.real[:, np.where(k - i0 <= i1 - k, i0, i1)]


# name -> frames (B, frames, H, W, 3) in [0, 1]; the table keeps this order.
METHODS: dict[str, Callable[[inference.Predictor, Batch], np.ndarray]] = {
    'copy_last': lambda p, b: None if b.columns else np.repeat(
        b.real[:, b.context - 1:b.context], b.real.shape[1], axis=1),
    # With a paste it is exactly copy_last.
    'copy_last_tokens': lambda p, b: (b.still if b.paste == 'none'
                                      and not b.columns else None),
    # In-betweening only (None for a continuation).
    'crossfade': lambda p, b: _crossfade(b),
    'nearest_keyframe': lambda p, b: _nearest_keyframe(b),
    # Widening only.
    'edge_replication': lambda p, b: _edge_replication(b),
    'mirror': lambda p, b: _mirror(b),
    'reconstruction': lambda p, b: p.finish(
        np.asarray(p.reconstruct(b.true_idx)), np.asarray(b.true_idx),
        b.video, b.still),
    **{k: (lambda p, b, k=k: p.predict(b.idx, b.feats[k], b.video, b.still))
       for k in VARIANTS},
}


def run(config, workdir: str) -> dict:
  ev = config.evaluate
  out = workdir_lib.stage_dir(workdir, 'evaluate')
  # Never compute a table that cannot be written.
  storage.writable(out, '--workdir')
  episodes, _ = workdir_lib.data_paths(config, workdir)
  builder = workdir_lib.open_dataset(config, workdir, ('evaluate',))
  mesh = workdir_lib.make_mesh(config)
  if jax.process_count() > 1:
    raise NotImplementedError('evaluate runs in one process; start it '
                              'without jax.distributed')
  trained = from_config.task_weights(config)
  jobs = list(trained)  # every task, the main one first
  base = inference.Predictor(config, workdir, mesh, jobs[0])
  source = builder.as_data_source(split=ev.split)
  n = min(len(source), ev.max_clips or len(source))
  if n < 2:
    raise ValueError(f'split {ev.split!r} has {n} clip(s); the audio ablation '
                     'needs at least 2')
  pixel = inference.load_baselines(config, workdir, base.records.clip_spec,
                                   mesh, base.records.dataset_identity)
  results = {}
  for task in jobs:  # one checkpoint, a table per job
    results[task] = _evaluate(config, base.for_task(task), source, n, mesh,
                              episodes, out, pixel)
  result = results[jobs[0]]
  if len(jobs) > 1:
    result['tasks'] = {t: result_file(ev.split, t) for t in jobs}
  if ev.get('rollout', 0) and 'continue' in jobs:
    names = (builder.info.metadata or {}).get('split_episodes', {}).get(
        ev.split, [])
    rollouts.run(config, base.for_rollout(), episodes, sorted(names),
                 out, pixel)
    result['rollout'] = f'{ev.split}_rollout.json'
  return result


def result_file(split: str, task: str) -> str:
  """The JSON evaluate writes for `task` (a continuation: <split>.json)."""
  return f'{split}.json' if task == 'continue' else f'{split}_{task}.json'


def methods_for(task: str, pixel: dict[str, inference.Baseline]) -> dict:
  """METHODS, with the pixel baselines (inference.load_baselines) before
  the reconstruction row when the job is a continuation."""
  if task != 'continue' or not pixel:
    return dict(METHODS)
  out = {}
  for k, fn in METHODS.items():
    if k == 'reconstruction':
      for name, bl in pixel.items():
        out[name] = lambda p, b, bl=bl: np.concatenate(
            [b.real[:, :b.context], bl.continue_frames(
                b.video[:, :b.context], b.real.shape[1] - b.context)], 1)
    out[k] = fn
  return out


def _evaluate(config, p: inference.Predictor, source, n: int, mesh,
              episodes: str, out: str,
              pixel: Optional[dict] = None) -> dict:
  """Every method on the first `n` clips of `source` for p's task: the
  JSON written, the table printed."""
  ev = config.evaluate
  spec = p.records.clip_spec
  batch = mesh_lib.round_batch(ev.batch_size, mesh)
  c0, f = p.context, p.frames
  scored = np.flatnonzero(~p.given)  # the generated frames, never a given one
  # A widening is scored on its generated sides only, never the given centre.
  region = _sides(*p.columns) if p.task == 'outpaint' else (lambda x: x)
  load = lambda i: _load(source[int(i)], p)
  methods = methods_for(p.task, pixel or {})
  extra = perceptual.Plan(ev, spec, f, p.task)

  per = {k: [] for k in methods}
  mouth = {k: [] for k in methods}
  examples = None
  t0 = time.time()
  for s in range(0, n, batch):
    ids = list(range(s, min(s + batch, n)))
    rows = [load(i) for i in ids]
    # The mismatched soundtrack comes from the clip half the split away, so
    # it never overlaps the clip's own sound.
    other = [load((i + n // 2) % n) for i in ids]
    b = _batch(p, rows, other, batch, mesh, ev.paste)
    outputs = {k: fn(p, b) for k, fn in methods.items()}
    outputs = {k: v for k, v in outputs.items() if v is not None}
    m = len(rows)
    truths = [synthetic.read_truth(episodes, r['episode']) for r in rows]
    boxes = None
    if all(t is not None for t in truths) and p.task != 'outpaint':
      boxes = np.stack([synthetic.mouth_boxes(t, spec, r['start'], f)[scored]
                        for t, r in zip(truths, rows)])
    real = region(b.real[:m][:, scored])
    extra.add_real(b.real[:m])
    for k, fake in outputs.items():
      got = scores.frame_scores(real, region(fake[:m][:, scored]))
      got.update(extra.lpips_scores(b.real[:m], fake[:m], scored))
      extra.add_fake(k, fake[:m])
      per[k].append(got)
      if boxes is not None:
        mouth[k].append(scores.box_mse(real, fake[:m][:, scored], boxes))
    if examples is None:
      examples = dict(real=b.real[:4], **{k: v[:4] for k, v in outputs.items()})
    logging.info('evaluate: %d/%d clips (%.0f s)', ids[-1] + 1, n,
                 time.time() - t0)

  result = dict(task=p.task, split=ev.split, clips=n, context_frames=c0,
                predicted_frames=int(scored.size), tokenizer_step=p.tok_step,
                transformer_step=p.step, sample=config.sample.to_dict(),
                paste=ev.paste, paste_threshold=p.threshold,
                seconds=round(time.time() - t0, 1), methods={})
  if p.task == 'outpaint':
    result['context_frames'] = 0
    result['given_columns'] = list(p.columns)
    result['width'] = int(spec['width'])
  elif scored.size != f - c0:  # frames given after the context: keyframes
    result['given_frames'] = [int(i) for i in np.flatnonzero(p.given)]
  for k in methods:
    if per[k]:
      result['methods'][k] = _summary(per[k], mouth[k])
  extra.finish(result)
  path = os.path.join(out, result_file(ev.split, p.task))
  if jax.process_index() == 0:
    storage.write_text(path, json.dumps(result, indent=1))
    with storage.output_file(path[:-len('.json')] + '_examples.gif') as gif:
      _write_examples(gif, examples, p.task)
    # The same clips by every method, for the report's gallery.
    with storage.output_file(path[:-len('.json')] + '_examples.npz') as npz:
      render.write_examples(npz, p.given, examples)
  print(table(result), flush=True)
  print(f'evaluate: wrote {path}', flush=True)
  return result


def _load(r: dict, p: inference.Predictor) -> dict:
  """A test clip record -> one window of frames, its sound and provenance."""
  ep = r['episode']
  return dict(video=np.asarray(r['video'])[:p.frames],
              audio=pipeline.fit_audio(r['audio'], p.records.audio_len),
              has_audio=bool(r['has_audio']),
              fps=float(r['fps_num']) / float(r['fps_den']),
              episode=ep.decode() if isinstance(ep, bytes) else str(ep),
              start=int(r['start_frame']))


def _batch(p: inference.Predictor, rows: list[dict], other: list[dict],
           size: int, mesh, paste: str) -> Batch:
  """`rows` (with `other`'s soundtracks for the mismatched variant) padded
  to `size` clips and encoded: what every method reads."""
  pad = size - len(rows)
  rows, other = rows + [rows[-1]] * pad, other + [other[-1]] * pad
  stack = lambda rs, k: np.stack([r[k] for r in rs])
  g = lambda x: pipeline.to_global({'x': x}, mesh)['x']
  video = stack(rows, 'video')
  fps = g(stack(rows, 'fps').astype(np.float32))
  has = stack(rows, 'has_audio')
  idx = true_idx = p.tokens(g(video))
  columns = p.columns if p.task == 'outpaint' else None
  # The encoder must not see what is scored: a widening's true sides, an
  # in-between's frames (through the end keyframe's tokens).
  if columns:
    idx = p.tokens(g(inference.mirror_sides(video, *columns)))
  elif p.end_step is not None:
    idx = p.tokens(g(p.known_video(video)))
  return Batch(
      video=video, real=video.astype(np.float32) / 255.0, idx=idx,
      true_idx=true_idx, given=p.given, columns=columns,
      # The known steps are the true tokens for every method: decode their
      # still frame once.
      still=None if columns else p.still(idx), context=p.context,
      paste=paste, feats=dict(
          audio=p.audio_features(g(stack(rows, 'audio')), fps, g(has)),
          mismatched_audio=p.audio_features(
              g(stack(other, 'audio')), fps, g(stack(other, 'has_audio'))),
          no_audio=p.audio_features(g(stack(rows, 'audio')), fps,
                                    g(np.zeros_like(has)))))


def _summary(per: list[dict], mouth: list[np.ndarray]) -> dict:
  """Means over clips, overall and per predicted frame, of one method."""
  cat = {m: np.concatenate([d[m] for d in per]) for m in per[0]}
  entry = {m: float(v.mean()) for m, v in cat.items()}
  entry.update({f'{m}_per_frame': [round(float(x), 5) for x in v.mean(0)]
                for m, v in cat.items()})
  if mouth:
    mm = np.concatenate(mouth)
    entry['mouth_mse'] = float(mm.mean())
    entry['mouth_mse_per_frame'] = [round(float(x), 5) for x in mm.mean(0)]
  return entry


def _sides(a: int, b: int):
  """(..., H, W, 3) -> the columns outside [a, b), side by side."""
  return lambda x: np.concatenate([x[..., :a, :], x[..., b:, :]], axis=-2)


def _write_examples(path: str, ex: dict, task: str) -> None:
  """A GIF of the first clips: rows real / predicted / baseline / ceiling."""
  base = {'outpaint': 'edge_replication', 'interpolate': 'crossfade'}.get(
      task, 'copy_last')
  rows = ('real', 'audio', 'mismatched_audio', base, 'reconstruction')
  clips = [(np.clip(ex[k][i], 0, 1) * 255).astype(np.uint8)
           for i in range(len(ex['real'])) for k in rows]
  render.write_gif(path, render.grid(clips, cols=len(rows)), fps=6)


def _how(result: dict) -> str:
  """', decode mean (top 4), paste residual > 0.2': how the model's tokens
  became the frames scored, where it is not the plain default."""
  sample = result.get('sample') or {}
  out = ''
  if sample.get('decode') == 'mean':
    out += f", decode mean (top {sample.get('mean_top_k') or 'all'})"
  return out + inference.paste_note(result)


def table(result: dict) -> str:
  """The readable version of the evaluation JSON."""
  methods = result['methods']
  mouth = all('mouth_mse' in v for v in methods.values())
  lp = all('lpips' in v for v in methods.values())
  fvd = any('fvd' in v for v in methods.values())
  head = f"{'method':<18}{'PSNR dB':>9}{'SSIM':>8}{'MSE':>10}"
  head += f"{'mouth MSE':>11}" if mouth else ''
  head += f"{'LPIPS':>8}" if lp else ''
  head += f"{'FVD':>9}" if fvd else ''
  if 'given_columns' in result:  # a widening
    a, b = result['given_columns']
    what = (f"{result['predicted_frames']} frames widened: columns {a}-{b - 1} "
            f"of {result['width']} given, the sides scored ")
  else:
    what = (f"{result['context_frames']} context -> "
            f"{result['predicted_frames']} predicted frames "
            + (f"between keyframes (given frames {result['given_frames']}) "
               if 'given_frames' in result else ''))
  lines = [f"evaluate {result.get('task', 'continue')} on {result['split']}: "
           f"{result['clips']} clips, {what}"
           f"(tokenizer step {result['tokenizer_step']}, transformer step "
           f"{result['transformer_step']}{_how(result)})", head,
           '-' * len(head)]
  for k, v in methods.items():
    line = f"{k:<18}{v['psnr']:>9.2f}{v['ssim']:>8.4f}{v['mse']:>10.5f}"
    if mouth:
      line += f"{v['mouth_mse']:>11.5f}"
    if lp:
      line += f"{v['lpips']:>8.4f}"
    if fvd:
      line += f"{v['fvd']:>9.1f}" if 'fvd' in v else f"{'-':>9}"
    lines.append(line)
  if fvd:
    lines.append(f"FVD: I3D features of {result['fvd_clips']} whole windows "
                 f"of {result['fvd_frames']} frames a method against the "
                 'true ones')
  for note in ('metrics_note', 'fvd_note'):
    if note in result:
      lines.append(result[note])
  a = methods['audio']
  lines.append('PSNR per predicted frame (audio): '
               + ' '.join(f'{x:.1f}' for x in a['psnr_per_frame']))
  if mouth:
    mm = methods['mismatched_audio']['mouth_mse']
    lines.append(f"mouth MSE, matched vs mismatched audio: {a['mouth_mse']:.5f} "
                 f"vs {mm:.5f} ({100 * (1 - a['mouth_mse'] / mm):+.1f}% lower "
                 'with the true sound)')
  for key, name in (('copy_last', 'copy-last-frame'),
                    ('crossfade', 'cross-fade of the keyframes'),
                    ('edge_replication', 'edge replication'),
                    ('mirror', 'the mirrored centre')):
    if key in methods:
      other = methods[key]['mse']
      lines.append(f"MSE vs {name}: {a['mse']:.5f} vs {other:.5f} "
                   f"({100 * (1 - a['mse'] / other):+.1f}% lower)")
  return '\n'.join(lines)
