"""Long rollouts (evaluate.rollout windows): how fast does a continuation drift?

Each shot of the test episodes (found by the builder's own cut detector, at
the dataset's size and frame rate) is continued window after window from its
first `transformer.context` latent steps: every window starts from the last
context steps generated before it (inference.Predictor.rollout), with the
episode's own sound for its frames while the file has sound. The generated
frames are scored against the true ones, frame by frame, up to
`evaluate.rollout` x the training horizon or the shot's end, side by side
with copy-last-frame. Writes <workdir>/evaluate/<split>_rollout.json (per
frame PSNR/SSIM/MSE, and LPIPS with the metrics extra; clips per frame, the
PSNR drift in dB per second, FVD of whole rollouts), <split>_rollout.png
(the curves) and <split>_rollout_examples.npz (the first shots as every
method rolled them out, for the report). The pixel baselines trained in the
workdir (pix2pix, multiscale) roll out beside the model.
"""

from __future__ import annotations

import json
import os
import time
from typing import Optional

from absl import logging
import numpy as np

from mirai_jax import inference
from mirai_jax import perceptual_scores as perceptual
from mirai_jax import render
from mirai_jax import scores
from mirai_jax import storage
from mirai_jax import video_io
from mirai_jax.build import shots
from mirai_jax.data import pipeline


def test_shots(p: inference.Predictor, episodes: str, names: list[str],
               total: int, limit: int):
  """(frames (total, H, W, 3), valid frames, decoded episode, start) of each
  shot of the episodes `names` with at least one window of true frames;
  frames past a shot's end repeat its last one and are not scored."""
  spec = p.records.clip_spec
  for name in names:
    path = os.path.join(episodes, name)
    try:
      d = video_io.decode(storage.local_copy(path), spec['height'],
                          spec['width'], resize=spec['resize'],
                          fps=spec.get('fps') or None,
                          sample_rate=spec['sample_rate'])
    except video_io.VideoError as e:
      logging.warning('rollout: %s skipped: %s', path, e)
      continue
    found = shots.detect(d.frames, spec.get('cut_threshold', 0.045),
                         spec.get('cut_ratio', 2.5))
    for a, b in shots.shot_bounds(len(d.frames), found.cuts,
                                  found.transitions):
      if b - a < p.frames:  # not even one window of true frames
        continue
      frames = d.frames[a:min(b, a + total)]
      valid = len(frames)
      if valid < total:
        frames = np.concatenate(
            [frames, np.repeat(frames[-1:], total - valid, 0)])
      yield frames, valid, d, a
      limit -= 1
      if not limit:
        return


def run(config, p: inference.Predictor, episodes: str, names: list[str],
        out: str, pixel: Optional[dict] = None) -> dict:
  """Rolls out and scores every test shot, with the pixel baselines of
  `pixel` (inference.load_baselines) beside the model; writes the JSON and
  the PNG."""
  ev = config.evaluate
  windows = ev.rollout
  pixel = pixel or {}
  c0, new = p.context, p.frames - p.context
  total = c0 + windows * new
  batch = max(1, ev.batch_size)
  sums = {k: {} for k in ('model', 'copy_last', *pixel)}
  # FVD over whole rollouts: only shots that last the whole horizon, so no
  # held last frame enters the features.
  extra = perceptual.Plan(ev, p.records.clip_spec, total)
  counts = np.zeros(total - c0, np.int64)
  n, fps, t0 = 0, None, time.time()
  pending = []
  examples = {}  # the first shots as every method rolled them out

  def flush():
    nonlocal n
    frames = np.stack([s[0] for s in pending])
    valid = np.array([s[1] for s in pending])
    rate = [float(s[2].fps) for s in pending]

    def sound(w):
      return np.stack([pipeline.fit_audio(
          d.audio_span(a + w * new, a + w * new + p.frames),
          p.records.audio_len) for _, _, d, a in pending])

    has = [d.audio is not None for _, _, d, _ in pending]
    pred = p.rollout(frames, sound, rate, has, windows)[0]
    real = frames.astype(np.float32) / 255.0
    fakes = dict(model=pred,
                 copy_last=np.repeat(real[:, c0 - 1:c0], total, axis=1))
    for name, bl in pixel.items():
      fakes[name] = np.concatenate(
          [real[:, :c0], bl.continue_frames(frames[:, :c0], total - c0)], 1)
    if not examples:
      examples.update(real=real[:4], **{k: v[:4] for k, v in fakes.items()})
    mask = np.arange(total - c0)[None] < (valid - c0)[:, None]  # (B, horizon)
    whole = valid == total
    extra.add_real(real[whole])
    for k, fake in fakes.items():
      got = scores.frame_scores(real[:, c0:], fake[:, c0:])
      got.update(extra.lpips_scores(real, fake, np.arange(c0, total)))
      extra.add_fake(k, fake[whole])
      for m, v in got.items():
        sums[k][m] = sums[k].get(m, 0) + np.where(mask, v, 0).sum(0)
    counts[:] += mask.sum(0)
    n += len(pending)
    pending.clear()
    logging.info('rollout: %d shots (%.0f s)', n, time.time() - t0)

  for shot in test_shots(p, episodes, names, total, ev.max_clips or 0):
    fps = fps or shot[2].fps
    pending.append(shot)
    if len(pending) == batch:
      flush()
  if pending:
    flush()
  if not n:
    raise ValueError(f'rollout: no test shot of {", ".join(names)} holds a '
                     f'whole window ({p.frames} frames); set '
                     '--config.evaluate.rollout=0')
  seen = np.maximum(counts, 1)
  seconds = (np.arange(total - c0) + 1) / float(fps)
  result = dict(split=ev.split, shots=n, windows=windows,
                training_horizon_frames=new, horizon_frames=total - c0,
                fps=f'{fps.numerator}/{fps.denominator}',
                shots_per_frame=[int(x) for x in counts],
                paste=ev.paste, paste_threshold=p.threshold,
                seconds=round(time.time() - t0, 1), methods={})
  for k, s in sums.items():
    per = {m: v / seen for m, v in s.items()}
    entry = {f'{m}_per_frame': [round(float(x), 5) for x in v]
             for m, v in per.items()}
    # Drift: the slope of PSNR over time, frames weighted by their shots.
    slope = np.polyfit(seconds, per['psnr'], 1, w=np.sqrt(counts))[0]
    entry['psnr_drift_db_per_s'] = round(float(slope), 3)
    for mult in range(1, windows + 1):
      entry[f'psnr_at_{mult}x'] = round(float(per['psnr'][mult * new - 1]), 3)
    # The last horizon's MSE too, the measure of every other job's summary.
    entry[f'mse_at_{windows}x'] = round(float(per['mse'][-1]), 6)
    result['methods'][k] = entry
  extra.finish(result)
  path = os.path.join(out, f'{ev.split}_rollout.json')
  storage.write_text(path, json.dumps(result, indent=1))
  with storage.output_file(path[:-len('.json')] + '.png') as png:
    _plot(png, result, seconds, new / float(fps))
  with storage.output_file(path[:-len('.json')] + '_examples.npz') as npz:
    render.write_examples(npz, np.arange(total) < c0, examples)
  print(table(result), flush=True)
  print(f'evaluate: wrote {path} and its .png', flush=True)
  return result


def _plot(path: str, result: dict, seconds: np.ndarray, horizon_s: float):
  plt = render.pyplot()
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
  for ax, metric, label in ((axes[0], 'psnr', 'PSNR (dB)'),
                            (axes[1], 'mse', 'MSE')):
    for k, v in result['methods'].items():
      ax.plot(seconds, v[f'{metric}_per_frame'], label=k)
    for w in range(1, result['windows']):
      ax.axvline(w * horizon_s, color='0.85', lw=0.8, zorder=0)
    ax.set_xlabel('seconds after the context')
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
  axes[0].legend()
  fig.suptitle(f"rollout on {result['split']}: {result['shots']} shots, "
               f"{result['windows']} windows (grey: window edges)")
  fig.tight_layout()
  fig.savefig(path, format='png', dpi=100)
  plt.close(fig)


def table(result: dict) -> str:
  """PSNR at each multiple of the training horizon, and the drift."""
  w = result['windows']
  head = f"{'method':<12}" + ''.join(f'{f"{m}x":>8}' for m in range(1, w + 1))
  head += f"{'dB/s':>8}"
  fvd = any('fvd' in v for v in result['methods'].values())
  head += f"{'FVD':>9}" if fvd else ''
  lines = [f"rollout on {result['split']}: {result['shots']} shots, {w} "
           f"windows of {result['training_horizon_frames']} frames; PSNR dB "
           'at each multiple of the training horizon'
           + inference.paste_note(result),
           head, '-' * len(head)]
  for k, v in result['methods'].items():
    lines.append(f'{k:<12}' + ''.join(f"{v[f'psnr_at_{m}x']:>8.2f}"
                                      for m in range(1, w + 1))
                 + f"{v['psnr_drift_db_per_s']:>8.2f}"
                 + (f"{v['fvd']:>9.1f}" if 'fvd' in v else ''))
  # PSNR averages each shot's log error; MSE, as every other job's summary,
  # the errors themselves.
  model, copy = (result['methods'].get(k, {}) for k in ('model', 'copy_last'))
  if f'mse_at_{w}x' in model and copy.get(f'mse_at_{w}x'):
    a, b = model[f'mse_at_{w}x'], copy[f'mse_at_{w}x']
    lines.append(f'MSE at {w}x vs copy-last-frame: {a:.5f} vs {b:.5f} '
                 f'({100 * (1 - a / b):+.1f}% lower)')
  if fvd:
    lines.append(f"FVD: I3D features of {result['fvd_clips']} whole rollouts "
                 f"of {result['fvd_frames']} frames against the true ones")
  lines += [result[n] for n in ('metrics_note', 'fvd_note') if n in result]
  return '\n'.join(lines)

