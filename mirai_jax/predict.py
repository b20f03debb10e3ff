"""`--mode=predict`: continue a user's video file from a given time.

  python -m mirai_jax.main --config=configs/demo.py --workdir=DIR --mode=predict \
      --config.predict.video=episode.mp4 --config.predict.start=12.5

The file is decoded at the dataset's clip size and frame rate; the
`transformer.context` frames before `start` seconds (start < 0: the last
frames of the file) are tokenized and the model predicts the rest of one
window with the file's own soundtrack. Writes <out>/<name>_<time>.mp4 (with
the original audio) and .gif. With predict.windows=N the model rolls out N
windows, each continuing from the last `context` steps it predicted (fed
back as tokens, never re-encoded), far past its training horizon, with the
file's sound for every window. Where the real frames exist they are shown on
the left and the prediction on the right, and the frames are listed with
their PSNR. With no real future (the end of the file) there is no sound for
the predicted frames either, so the model runs with the sound switched off.

With predict.task='outpaint' (a model trained on 16:9 clips to fill their
sides, e.g. anime_clips 64x112_t20) any narrower video, 4:3 or pillarboxed,
is widened to the model's frame from predict.start for predict.seconds (0:
to the end), window after window with its own sound, each window reading
the sides the one before generated (`widen`).

With predict.task='interpolate' (a model trained on it: transformer.tasks;
'' is the model's main task) it fills in instead: the window's last latent
step is given too (the file's frames there are the end keyframe), comes back
unchanged beside the context, and only the frames in between are generated
(and scored).
"""

from __future__ import annotations

import fractions
import json
import os
import time

import dm_pix as pix
import jax.numpy as jnp
import numpy as np

from mirai_jax import errors
from mirai_jax import inference
from mirai_jax import mesh as mesh_lib
from mirai_jax import render
from mirai_jax import storage
from mirai_jax import video_io
from mirai_jax import workdir as workdir_lib
from mirai_jax.data import pipeline


def _default_video(config, workdir: str) -> str:
  """The first test episode of the dataset (what the demo continues)."""
  episodes, _ = workdir_lib.data_paths(config, workdir)
  builder = workdir_lib.open_dataset(config, workdir)
  names = (builder.info.metadata or {}).get('split_episodes', {}).get('test')
  if not names:
    raise errors.UserError('set --config.predict.video=FILE (the dataset '
                           'lists no test episode to use instead)')
  return os.path.join(episodes, sorted(names)[0])


def run(config, workdir: str) -> dict:
  pc = config.predict
  out = storage.expand(pc.out) or workdir_lib.stage_dir(workdir, 'predict')
  # Never compute a continuation that cannot be written.
  storage.writable(out, '--config.predict.out' if pc.out else '--workdir')
  if pc.get('first') or pc.get('last'):
    return between_pictures(config, workdir, out)
  path = storage.expand(pc.video) if pc.video else _default_video(config, workdir)
  if not storage.exists(path):
    raise FileNotFoundError(f'config.predict.video: no such file {path}')
  # One device: a single clip does not divide over a mesh.
  p = inference.Predictor(config, workdir, mesh_lib.make_mesh(1, 1),
                          config.predict.get('task', ''))
  if p.task == 'outpaint':
    return widen(config, p, path, out)
  if pc.windows > 1 and p.task == 'continue':  # shown as a rollout
    p = p.for_rollout()
  spec = p.records.clip_spec
  d = video_io.decode(storage.local_copy(path), spec['height'], spec['width'],
                      resize=spec['resize'], fps=spec.get('fps') or None,
                      sample_rate=spec['sample_rate'])
  n, f, c0 = len(d.frames), p.frames, p.context
  if n < c0:
    raise errors.UserError(f'{path}: {n} frames, fewer than the {c0} context '
                           'frames the model needs')
  if pc.start < 0:
    k0 = n - c0
  else:
    k0 = int(round(pc.start * d.fps)) - c0
    if k0 < 0 or k0 + c0 > n:
      raise errors.UserError(
          f'--config.predict.start={pc.start}: {path} has {n} frames '
          f'({float(n / d.fps):.2f} s) and the model needs {c0} frames before '
          f'the start; use a start between {float(c0 / d.fps):.2f} and '
          f'{float(n / d.fps):.2f} s, or -1 for the end of the file')
  # Window w starts `new` frames after window w - 1: its first c0 frames are
  # the previous window's last predicted ones (a rollout, fed back as tokens).
  new = f - c0
  total = c0 + pc.windows * new
  real = d.frames[k0:k0 + total]
  has_future = len(real) == total
  if not has_future:  # the tokenizer is frame-causal: padding is never read
    real = np.concatenate([real, np.repeat(real[-1:], total - len(real), 0)])
  keyframes = bool(p.given[c0:].any())  # an in-between: the end is given
  if keyframes and (pc.windows != 1 or not has_future):
    raise errors.UserError(
        f'in-betweening fills one window between keyframes that are in '
        f'{path}: use --config.predict.windows=1 and a start at least '
        f'{float((f - c0) / d.fps):.2f} s before its end')
  use_audio = bool(d.audio is not None and has_future)
  sound = lambda w: pipeline.fit_audio(
      d.audio_span(k0 + w * new, k0 + w * new + f), p.records.audio_len)[None]
  pred = p.rollout(real[None], sound, [float(d.fps)], [use_audio],
                   pc.windows)[0][0]
  # Given frames are shown as they were: the context, and an end keyframe.
  shown = np.concatenate([p.given, np.zeros(total - f, bool)])  # total >= f
  pred[shown] = real[shown] / 255.0
  frames = pred
  result = dict(video=path, start_frame=k0 + c0, context_frames=c0,
                predicted_frames=int((~shown).sum()), windows=pc.windows,
                audio=use_audio, fps=f'{d.fps.numerator}/{d.fps.denominator}')
  if has_future:
    frames = np.concatenate([real / 255.0, pred], axis=2)  # real | predicted
    made = np.flatnonzero(~shown)  # the generated frames only
    psnr = pix.psnr(jnp.asarray(real[made] / 255.0, jnp.float32),
                    jnp.asarray(pred[made], jnp.float32))
    result['psnr_per_frame'] = [round(float(x), 2) for x in psnr]
  if keyframes:
    result['given_frames'] = [int(i) for i in np.flatnonzero(shown)]
  stem = os.path.join(out, f'{os.path.splitext(os.path.basename(path))[0]}_'
                           f'{float((k0 + c0) / d.fps):.2f}s')
  result['files'] = _write(
      stem, frames, pc.scale, float(d.fps),
      d.audio_span(k0, k0 + total) if d.audio is not None else None,
      spec['sample_rate'])
  storage.write_text(stem + '.json', json.dumps(result, indent=1))
  print(f"predict: {c0} frames of {path} before {float((k0 + c0) / d.fps):.2f} s "
        f"-> {result['predicted_frames']} predicted frames "
        f"{'up to the end keyframe ' if keyframes else ''}"
        f"({'with' if use_audio else 'without'} "
        f"sound){' beside the real ones' if has_future else ''}: "
        f"{stem}.mp4, {stem}.gif", flush=True)
  return result


def between_pictures(config, workdir: str, out: str) -> dict:
  """In-betweening two pictures (predict.first, predict.last), with the
  sound of predict.sound if given: first keyframe, generated frames, last
  keyframe as MP4 and GIF.

  The model's window is built from the pictures: the first held over the
  context, the last over the window's last latent step. The tokenizer is
  causal in time, so the last step's tokens also see the frames just before
  it; those are unknown here and are a cross-fade of the two pictures while
  encoding (only the keyframes' tokens are read).
  """
  pc = config.predict
  paths = {}
  for field in ('first', 'last'):
    value = pc.get(field)
    if not value:
      raise errors.UserError(f'--config.predict.{field}: give both keyframe '
                             'pictures (first and last)')
    paths[field] = storage.expand(value)
    if not storage.exists(paths[field]):
      raise errors.UserError(f'--config.predict.{field}={value}: no such file')
  sound = storage.expand(pc.sound) if pc.get('sound') else ''
  if sound and not storage.exists(sound):
    raise errors.UserError(f'--config.predict.sound={pc.sound}: no such file')
  p = inference.Predictor(config, workdir, mesh_lib.make_mesh(1, 1),
                          pc.get('task') or 'interpolate')
  if p.task != 'interpolate':
    raise errors.UserError(f'two keyframe pictures need '
                           f'--config.predict.task=interpolate, not {p.task}')
  spec = p.records.clip_spec
  h, w, f, c0 = spec['height'], spec['width'], p.frames, p.context
  try:
    first, last = (video_io.decode_image(storage.local_copy(paths[k]), h, w,
                                         resize=spec['resize'])
                   for k in ('first', 'last'))
    pcm = (video_io.decode_audio(storage.local_copy(sound),
                                 spec['sample_rate']) if sound else None)
  except video_io.VideoError as e:
    raise errors.UserError(str(e)) from e
  fps = fractions.Fraction(pc.get('fps') or spec.get('fps')
                           or video_io.FILM_RATE).limit_denominator(1001)
  end = p.end_step * p.temporal  # the last keyframe's first frame
  # Between the keyframes the encoder sees their cross-fade (known_video).
  held = [np.repeat(first[None], end, 0), np.repeat(last[None], f - end, 0)]
  window = p.known_video(np.concatenate(held)[None])
  rate = spec['sample_rate']
  lead = round(fractions.Fraction(c0 - 1) / fps * rate)  # sound starts at k0
  audio = np.zeros(lead, np.int16) if pcm is None else np.concatenate(
      [np.zeros(lead, np.int16), pcm])
  feats = p.audio_features(
      jnp.asarray(pipeline.fit_audio(audio, p.records.audio_len)[None]),
      jnp.asarray([float(fps)], jnp.float32), jnp.asarray([pcm is not None]))
  toks, means = p.generate(p.tokens(jnp.asarray(window)), feats)
  pred = p.finish(p.render(toks, means), toks, window)[0]
  made = pred[c0:end]
  frames = np.concatenate([first[None] / 255.0, made, last[None] / 255.0])
  stem = os.path.join(out, '_to_'.join(
      os.path.splitext(os.path.basename(paths[k]))[0] for k in ('first', 'last')))
  span = None if pcm is None else pipeline.fit_audio(
      pcm, round(fractions.Fraction(len(frames)) / fps * rate))
  result = dict(first=paths['first'], last=paths['last'], sound=sound or None,
                fps=f'{fps.numerator}/{fps.denominator}',
                generated_frames=int(end - c0), frames=len(frames),
                files=_write(stem, frames, pc.scale, float(fps), span, rate))
  storage.write_text(stem + '.json', json.dumps(result, indent=1))
  print(f"predict: {end - c0} frames between {paths['first']} and "
        f"{paths['last']} ({'with the sound of ' + sound if sound else 'without sound'}"
        f", {float(fps):.3f} fps): {stem}.mp4, {stem}.gif", flush=True)
  return result


def content_columns(frames: np.ndarray, dark: int = 24) -> tuple[int, int]:
  """[a, b): the columns of (N, H, W, 3) uint8 frames between black side
  bars (pillarboxing, or the padding of a narrower picture): a bar column
  is dark in every frame and row (a sample of up to 240 frames)."""
  sample = frames[np.linspace(0, len(frames) - 1, min(len(frames), 240))
                  .round().astype(int)]
  lit = sample.max(axis=(0, 1, 3)) > dark  # (W,)
  cols = np.flatnonzero(lit)
  if not cols.size:
    return 0, frames.shape[2]
  return int(cols[0]), int(cols[-1]) + 1


def widen(config, p: inference.Predictor, path: str, out: str) -> dict:
  """Outpainting (predict.task='outpaint'): a narrower video (4:3, with or
  without pillarbox bars) widened to the model's frame (16:9) from
  predict.start for predict.seconds (0: to the end), window after window,
  each reading the sides the last one generated over its first steps
  (Predictor.widen), with the file's sound. The picture comes back
  unchanged in the middle. Writes <stem>_wide.mp4 (the widened video alone,
  with sound) and <stem>.mp4 / .gif (the input beside it)."""
  pc = config.predict
  spec = p.records.clip_spec
  h, w = spec['height'], spec['width']
  # 'pad' keeps the whole picture: a 4:3 frame sits in the middle of the
  # 16:9 one, between black bars, as a pillarboxed file does already.
  d = video_io.decode(storage.local_copy(path), h, w, resize='pad',
                      fps=spec.get('fps') or None,
                      sample_rate=spec['sample_rate'])
  n, f, c0 = len(d.frames), p.frames, p.context
  a, b = content_columns(d.frames)
  ga, gb = p.columns
  if a <= 1 and b >= w - 1:
    raise errors.UserError(
        f'{path}: the picture already fills the {w}x{h} frame (no black side '
        'bars once fitted to it): there is nothing to widen. Give a narrower '
        'video (4:3, or 16:9 with pillarbox bars)')
  k0 = max(0, int(round(pc.start * d.fps)))
  span = n - k0 if not pc.seconds else min(n - k0, int(round(pc.seconds * d.fps)))
  if span < 1:
    raise errors.UserError(
        f'--config.predict.start={pc.start}: {path} has {n} frames '
        f'({float(n / d.fps):.2f} s); start inside it')
  new = f - c0
  windows = 1 + max(0, -(-(span - f) // new))
  total = f + (windows - 1) * new
  real = d.frames[k0:k0 + span]
  # The tokenizer is causal in time: frames repeated past the end are never
  # read by the ones before them.
  padded = np.concatenate([real, np.repeat(real[-1:], total - span, 0)])
  if a > ga or b < gb:
    print(f'predict: {path} is narrower ({b - a} columns) than the centre the '
          f'model is given ({gb - ga}); the mirrored picture stands in for the '
          'rest', flush=True)
  sound = lambda i: pipeline.fit_audio(
      d.audio_span(k0 + i * new, k0 + i * new + f), p.records.audio_len)[None]
  t0 = time.time()
  frames, _ = p.widen(inference.mirror_sides(padded, a, b)[None], sound,
                      [float(d.fps)], [d.audio is not None], windows)
  frames = frames[0][:span]
  frames[:, :, a:b] = real[:, :, a:b] / 255.0  # the whole picture, unchanged
  stem = os.path.join(out, f'{os.path.splitext(os.path.basename(path))[0]}_'
                           f'{float(k0 / d.fps):.2f}s_wide')
  sound_span = d.audio_span(k0, k0 + span) if d.audio is not None else None
  files = _write(stem, frames, pc.scale, float(d.fps), sound_span,
                 spec['sample_rate'], gif=False)
  files += _write(stem[:-len('_wide')], np.concatenate(
      [real / 255.0, frames], axis=2), pc.scale, float(d.fps), sound_span,
                  spec['sample_rate'])
  result = dict(video=path, task='outpaint', start_frame=k0, frames=span,
                windows=windows, fps=f'{d.fps.numerator}/{d.fps.denominator}',
                picture_columns=[a, b], given_columns=[ga, gb], width=w,
                height=h, audio=d.audio is not None,
                seconds=round(time.time() - t0, 1), files=files)
  storage.write_text(stem + '.json', json.dumps(result, indent=1))
  print(f'predict: {span} frames of {path} from {float(k0 / d.fps):.2f} s '
        f'widened from columns {a}-{b - 1} to {w}x{h} in {windows} window(s) '
        f"({'with' if d.audio is not None else 'without'} sound): {files[0]}; "
        f'beside the input: {files[1]}, {files[2]}', flush=True)
  return result


def _write(stem: str, frames, scale: int, fps: float, audio, sample_rate: int,
           gif: bool = True) -> list[str]:
  """Frames in [0, 1], enlarged `scale` times, as <stem>.mp4 (with the
  audio, if any) and <stem>.gif; the two paths."""
  frames = render.to_uint8(np.clip(frames, 0, 1))
  frames = np.repeat(np.repeat(frames, scale, 1), scale, 2)
  with storage.output_file(stem + '.mp4') as local:
    render.write_mp4(local, frames, fps, audio, sample_rate)
  if not gif:
    return [stem + '.mp4']
  with storage.output_file(stem + '.gif') as local:
    render.write_gif(local, frames, fps)
  return [stem + '.mp4', stem + '.gif']
