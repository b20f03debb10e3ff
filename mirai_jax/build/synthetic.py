"""Deterministic cartoon episodes that test the mission's hypothesis.

Each episode is a real mp4 (h264 + AAC, 23.976 fps by default) made of shots
separated by hard cuts. A shot has flat colours with dark outlines, drawings
held on twos, a prop that moves at a steady speed (predictable from past
frames) and a talking character whose mouth opening follows the loudness of
the speech-like sound in the soundtrack (predictable only from audio), plus
blinks. With `scenery` the background has trees and clouds on a strip wider
than the frame, and half the shots pan across it on ones (the cels held on
twos in front, as in anime): content that enters the frame, and the
widened sides of a 16:9 frame, can be seen in the frames before or after;
with `hills` the horizon rolls, so those sides continue a curve. The
per-frame ground truth (cuts, mouth opening, mouth box, blinks, pans)
is written as JSON so tests and evaluation can check against it;
`read_truth` and `mouth_boxes` read it back in clip pixels (evaluate's
mouth MSE).
"""

from __future__ import annotations

import dataclasses
import fractions
import functools
import json
import os
from typing import Optional

import numpy as np

from mirai_jax import storage
from mirai_jax import video_io

FPS = fractions.Fraction(24000, 1001)
OUTLINE = np.array([20, 16, 24], np.uint8)
_SKY = [(120, 190, 240), (250, 200, 150), (180, 160, 230), (140, 220, 200),
        (240, 170, 190), (90, 110, 170)]
_GROUND = [(90, 170, 80), (200, 170, 110), (130, 130, 140), (170, 120, 80),
           (100, 150, 160), (60, 90, 60)]
_SKIN = [(250, 220, 190), (230, 190, 150), (200, 150, 110)]
_SHIRT = [(220, 60, 60), (60, 90, 200), (240, 200, 40), (120, 60, 160),
          (40, 160, 120)]
_PROP = [(250, 120, 30), (240, 240, 240), (200, 40, 120), (40, 40, 200)]
_LEAVES = [(40, 120, 50), (80, 160, 60), (30, 90, 80), (150, 170, 50)]
_TRUNK, _CLOUD = (110, 75, 45), (245, 245, 250)
_CEL_KEY = np.array([255, 0, 255], np.uint8)


@dataclasses.dataclass
class Episode:
  frames: np.ndarray  # (N, H, W, 3) uint8
  audio: np.ndarray  # (M, 2) int16 stereo
  sample_rate: int
  fps: fractions.Fraction
  truth: dict


def _speech(rng: np.random.Generator, seconds: float, sr: int
            ) -> tuple[np.ndarray, np.ndarray]:
  """Syllable-like voiced sound and its amplitude envelope, both (n,) float."""
  n = int(round(seconds * sr))
  env = np.zeros(n, np.float32)
  pitch = np.zeros(n, np.float32)
  t = rng.uniform(0.1, 0.4)
  while t < seconds - 0.15:
    # A phrase of syllables, then a pause: the mouth must also stay shut.
    for _ in range(rng.integers(2, 7)):
      dur = rng.uniform(0.12, 0.3)
      a, b = int(t * sr), min(n, int((t + dur) * sr))
      if b <= a:
        break
      x = np.linspace(0, np.pi, b - a, dtype=np.float32)
      env[a:b] = np.maximum(env[a:b], rng.uniform(0.5, 1.0) * np.sin(x) ** 2)
      pitch[a:b] = rng.uniform(110, 240) * (1 + 0.1 * np.linspace(0, 1, b - a))
      t += dur + rng.uniform(0.03, 0.12)
    t += rng.uniform(0.3, 0.9)
  phase = 2 * np.pi * np.cumsum(pitch) / sr
  formants = rng.uniform(0.2, 1.0, size=8)
  voice = sum(w / (k + 1) * np.sin((k + 1) * phase) for k, w in enumerate(formants))
  voice = voice / np.max(np.abs(voice) + 1e-6)
  return (env * voice).astype(np.float32), env


def _music(rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
  """A quiet sustained chord, so the soundtrack is not speech alone."""
  t = np.arange(int(round(seconds * sr)), dtype=np.float32) / sr
  root = rng.uniform(160, 320)
  chord = sum(np.sin(2 * np.pi * root * r * t) for r in (1.0, 1.25, 1.5))
  return (0.04 * chord).astype(np.float32)


class _Canvas:
  """Flat-colour drawing with dark outlines on an (H, W, 3) uint8 image."""

  def __init__(self, height: int, width: int):
    self.yy, self.xx = np.mgrid[0:height, 0:width].astype(np.float32)
    self.img = np.zeros((height, width, 3), np.uint8)

  def ellipse(self, cx, cy, rx, ry, color, outline=3.0):
    r = ((self.xx - cx) / max(rx, 0.5)) ** 2 + ((self.yy - cy) / max(ry, 0.5)) ** 2
    edge = outline / max(min(rx, ry), 1.0)
    self.img[r <= (1 + edge) ** 2] = OUTLINE
    self.img[r <= 1] = color

  def rect(self, x0, y0, x1, y1, color, outline=3.0):
    inside = (self.xx >= x0) & (self.xx < x1) & (self.yy >= y0) & (self.yy < y1)
    ring = ((self.xx >= x0 - outline) & (self.xx < x1 + outline) &
            (self.yy >= y0 - outline) & (self.yy < y1 + outline))
    self.img[ring] = OUTLINE
    self.img[inside] = color


def _background(rng, height: int, width: int, horizon: int, sky, ground,
                s: float, scenery: bool, hills: bool) -> np.ndarray:
  """(height, width, 3): sky over ground, with trees along the horizon and
  clouds when `scenery`, the horizon rolling hills when `hills`."""
  canvas = _Canvas(height, width)
  img = canvas.img
  line = np.full(width, float(horizon))  # the horizon's row at each column
  if hills:  # two waves: a long swell and a shorter ripple on it
    x = np.arange(width)
    for amp, period in (((8, 22), (150, 400)), ((2, 6), (60, 150))):
      height_, period_ = rng.uniform(*amp) * s, rng.uniform(*period) * s
      line += height_ * np.sin(2 * np.pi * x / period_
                               + rng.uniform(0, 2 * np.pi))
    img[:] = np.where((canvas.yy >= line)[..., None], np.uint8(ground),
                      np.uint8(sky))
    img[np.abs(canvas.yy - line) <= 1.5] = OUTLINE
  else:
    img[:horizon] = sky
    img[horizon:] = ground
    img[horizon - 1:horizon + 2] = OUTLINE
  if scenery:
    x = rng.uniform(-40, 40) * s
    while x < width + 40 * s:
      cy, r = rng.uniform(0.12, 0.35) * height, rng.uniform(12, 26) * s
      canvas.ellipse(x + rng.uniform(0, 50) * s, cy, 2.2 * r, r, _CLOUD)
      x += rng.uniform(90, 200) * s
    x = rng.uniform(0, 60) * s
    while x < width + 40 * s:
      foot = line[int(np.clip(x, 0, width - 1))]
      top, r = foot - rng.uniform(18, 40) * s, rng.uniform(9, 16) * s
      canvas.rect(x - 3 * s, top, x + 3 * s, foot + 4 * s, _TRUNK)
      canvas.ellipse(x, top - 0.6 * r, r, 1.3 * r,
                     _LEAVES[rng.integers(len(_LEAVES))])
      x += rng.uniform(30, 110) * s
  return img.copy()


def render_episode(seed: int, seconds: float = 24.0, height: int = 240,
                   width: int = 320, fps: fractions.Fraction = FPS,
                   sample_rate: int = 48000, scenery: bool = False,
                   hills: bool = False) -> Episode:
  """Renders one episode in memory (deterministic for a given seed).

  `scenery`: trees and clouds in the background, and a camera pan (2-6
  pixels per frame at height 240, either way) in half the shots.
  `hills`: the horizon rolling hills instead of a straight line (a widened
  frame's sides continue its curve, which edge replication flattens)."""
  rng = np.random.default_rng(seed)
  n = int(round(seconds * fps))
  seconds = float(n / fps)
  speech, env = _speech(rng, seconds, sample_rate)
  sound = 0.7 * speech + _music(rng, seconds, sample_rate)
  # Loudness at each frame's own time span: what the mouth follows.
  edges = [round(fractions.Fraction(k) / fps * sample_rate) for k in range(n + 1)]
  loud = np.array([env[a:b].mean() if b > a else 0.0
                   for a, b in zip(edges[:-1], edges[1:])], np.float32)

  cuts, t = [], int(rng.integers(60, 150))
  while t < n - 30:
    cuts.append(t)
    t += int(rng.integers(60, 150))
  bounds = list(zip([0] + cuts, cuts + [n]))

  frames = np.zeros((n, height, width, 3), np.uint8)
  mouth_open = np.zeros(n, np.float32)
  blink = np.zeros(n, bool)
  mouth_box, prop_speed, pan_speed = [], [], []
  canvas, cel = _Canvas(height, width), None
  s = min(height, width) / 240.0  # drawings scale with the frame
  for shot, (a, b) in enumerate(bounds):
    sky, ground = _SKY[rng.integers(len(_SKY))], _GROUND[rng.integers(len(_GROUND))]
    skin, shirt = _SKIN[rng.integers(len(_SKIN))], _SHIRT[rng.integers(len(_SHIRT))]
    prop = _PROP[rng.integers(len(_PROP))]
    horizon = int(height * rng.uniform(0.55, 0.7))
    head_r = 52 * s * rng.uniform(0.9, 1.1)
    cx = width / 2 + rng.uniform(-0.12, 0.12) * width
    cy = height * 0.42
    vx = rng.choice([-1, 1]) * rng.uniform(1.5, 3.0) * s  # pixels per frame
    px, py, pr = rng.uniform(0, width), (horizon + height) / 2, 14 * s
    blinks = set()
    for k in range(a + int(rng.integers(10, 40)), b, int(rng.integers(50, 90))):
      blinks.update(range(k, min(b, k + 4)))
    mw, mh = 20 * s, 18 * s
    my = cy + 0.45 * head_r
    mouth_box.append([int(cx - mw - 3), int(my - mh - 3), int(cx + mw + 4),
                      int(my + mh + 4)])
    prop_speed.append(float(vx))
    # Drawn after the shot's other draws, so that an episode without
    # scenery is the same as before the option existed.
    cam = (rng.choice([-1, 1]) * rng.uniform(2.0, 6.0) * s
           if scenery and rng.random() < 0.5 else 0.0)
    pan_speed.append(float(cam))
    strip = _background(rng, height, width + int(np.ceil(abs(cam) * (b - a)))
                        + 1, horizon, sky, ground, s, scenery, hills)
    for k in range(a, b):
      # The background pans on ones (its own offset every frame); the cels
      # in front are held on twos. Panning left, the strip moves right.
      x0 = int(round(abs(cam) * (k - a if cam > 0 else b - 1 - k)))
      back = strip[:, x0:x0 + width]
      drawing = a + ((k - a) // 2) * 2  # held on twos
      if drawing != k:
        frames[k] = np.where(cel, canvas.img, back) if cam else frames[k - 1]
        mouth_open[k], blink[k] = mouth_open[k - 1], blink[k - 1]
        continue
      # A pan draws the cels on a key colour no palette uses and lays them
      # over each frame's background; a still shot draws them on it.
      canvas.img[:] = _CEL_KEY if cam else back
      canvas.rect(cx - 40 * s, cy + head_r * 0.8, cx + 40 * s, height + 10, shirt)
      x = (px + vx * (k - a)) % (width + 4 * pr) - 2 * pr
      canvas.ellipse(x, py, pr, pr, prop)
      canvas.ellipse(cx, cy, head_r, head_r * 1.05, skin)
      closed = k in blinks
      for ex in (-0.38, 0.38):
        if closed:
          canvas.rect(cx + ex * head_r - 7 * s, cy - 8 * s, cx + ex * head_r + 7 * s,
                      cy - 6 * s, OUTLINE, outline=0)
        else:
          canvas.ellipse(cx + ex * head_r, cy - 8 * s, 5 * s, 8 * s, OUTLINE, outline=0)
      opening = float(np.clip(loud[k] * 1.6, 0.0, 1.0))
      canvas.ellipse(cx, my, mw, 1.5 * s + opening * mh, (120, 30, 40), outline=2.5)
      if cam:
        cel = (canvas.img != _CEL_KEY).any(-1, keepdims=True)
        frames[k] = np.where(cel, canvas.img, back)
      else:
        frames[k] = canvas.img
      mouth_open[k], blink[k] = opening, closed

  pan = np.clip(rng.uniform(0.3, 0.7), 0, 1)
  stereo = np.stack([sound * (1 - pan) * 2, sound * pan * 2], axis=1) * 0.45
  audio = (np.clip(stereo, -1, 1) * 32767).astype(np.int16)
  truth = dict(
      seed=seed, seconds=seconds, fps=f'{fps.numerator}/{fps.denominator}',
      num_frames=n,
      height=height, width=width, sample_rate=sample_rate, cuts=cuts,
      shots=[list(x) for x in bounds], mouth_box=mouth_box,
      prop_speed=prop_speed, scenery=bool(scenery), hills=bool(hills),
      pan_speed=pan_speed,
      mouth_open=[round(float(x), 4) for x in mouth_open],
      blink=[int(x) for x in blink])
  return Episode(frames, audio, sample_rate, fps, truth)


def write_episodes(out_dir: str, num_episodes: int, *, seconds: float = 24.0,
                   height: int = 240, width: int = 320, seed: int = 0,
                   truth_dir: Optional[str] = None, scenery: bool = False,
                   hills: bool = False) -> list[str]:
  """Writes ep000.mp4, ep001.mp4, ... (and their ground truth as JSON).

  Episodes already there with the same parameters are kept, so a rerun is
  cheap; different parameters rewrite them. Ground truth goes to
  `truth_dir` (default: `<out_dir>_truth`) rather than beside the videos, so
  the episode folder holds only episodes and can serve as a TFDS manual dir.
  """
  truth_dir = truth_dir or out_dir.rstrip('/') + '_truth'
  os.makedirs(out_dir, exist_ok=True)
  os.makedirs(truth_dir, exist_ok=True)
  paths = []
  for i in range(num_episodes):
    path = os.path.join(out_dir, f'ep{i:03d}.mp4')
    truth_path = os.path.join(truth_dir, f'ep{i:03d}.json')
    paths.append(path)
    if os.path.exists(path) and _same_truth(truth_path, seed * 1000 + i,
                                            seconds, height, width, scenery,
                                            hills):
      continue
    ep = render_episode(seed * 1000 + i, seconds, height, width,
                        scenery=scenery, hills=hills)
    video_io.write_video(path, ep.frames, ep.fps, ep.audio, ep.sample_rate)
    with open(truth_path + '.tmp', 'w') as f:
      json.dump(ep.truth, f)
    os.replace(truth_path + '.tmp', truth_path)
  return paths


def _same_truth(path: str, seed: int, seconds: float, height: int,
                width: int, scenery: bool, hills: bool) -> bool:
  try:
    with open(path) as f:
      t = json.load(f)
  except (OSError, ValueError):
    return False
  n = int(round(seconds * FPS))
  return (t.get('seed'), t.get('num_frames'), t.get('height'),
          t.get('width'), t.get('scenery', False), t.get('hills', False)
          ) == (seed, n, height, width, scenery, hills)


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
def read_truth(episodes: str, episode: str) -> Optional[dict]:
  """The ground truth `write_episodes` wrote for `episode` of the folder
  `episodes` (which may be a URL), or None for an episode it did not make."""
  path = os.path.join(episodes.rstrip('/') + '_truth',
                      os.path.splitext(episode)[0] + '.json')
  if not storage.exists(path):
    return None
  return json.loads(storage.read_text(path))
