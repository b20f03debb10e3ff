"""Clips and predictions back to viewable GIF/MP4 files (MP4 with the sound)."""

from __future__ import annotations

import fractions
import os
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from mirai_jax import video_io


def pyplot():
  """matplotlib's pyplot on the Agg backend (files, no display), imported
  at the first plot: importing it costs every command 0.7 s of start-up,
  most of which (training, a flag error) never plot."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def to_uint8(video: np.ndarray) -> np.ndarray:
  """Accepts uint8, or floats in [0, 1] (or [-1, 1] when negative values occur)."""
  v = np.asarray(video)
  if v.dtype == np.uint8:
    return v
  v = v.astype(np.float32)
  if v.min() < 0:
    v = (v + 1) / 2
  return (np.clip(v, 0, 1) * 255 + 0.5).astype(np.uint8)


def write_examples(path: str, given: np.ndarray, clips: dict) -> None:
  """An npz of clips (name -> (N, T, H, W, 3) in [0, 1]) as uint8, with
  `given` (T,) marking the frames every method was given: the same clips as
  each method made them, for the report's gallery."""
  with open(path, 'wb') as f:
    np.savez_compressed(f, given=np.asarray(given, bool), **{
        k: (np.clip(v, 0, 1) * 255).round().astype(np.uint8)
        for k, v in clips.items()})


def grid(videos: np.ndarray, cols: Optional[int] = None, scale: int = 1,
         pad: int = 2) -> np.ndarray:
  """(N, T, H, W, 3) clips -> (T, H', W', 3) frames tiling them in a grid."""
  videos = to_uint8(videos)
  n, t, h, w, c = videos.shape
  cols = cols or int(np.ceil(np.sqrt(n)))
  rows = int(np.ceil(n / cols))
  if scale > 1:  # nearest neighbour: keeps the pixels honest
    videos = videos.repeat(scale, axis=2).repeat(scale, axis=3)
    h, w = h * scale, w * scale
  out = np.full((t, rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255,
                np.uint8)
  for i in range(n):
    r, q = divmod(i, cols)
    y, x = pad + r * (h + pad), pad + q * (w + pad)
    out[:, y:y + h, x:x + w] = videos[i]
  return out


def write_gif(path: str, frames: np.ndarray, fps: float = video_io.FILM_RATE) -> None:
  frames = to_uint8(frames)
  images = [Image.fromarray(f) for f in frames]
  tmp = path + '.partial'
  images[0].save(tmp, format='GIF', save_all=True, append_images=images[1:],
                 duration=max(20, round(1000 / float(fps))), loop=0,
                 optimize=False, disposal=1)
  os.replace(tmp, path)


def write_mp4(path: str, frames: np.ndarray, fps: float = video_io.FILM_RATE,
              audio: Optional[np.ndarray] = None, sample_rate: int = 16000
              ) -> None:
  """H.264 MP4 (even sizes padded), with the mono int16 audio muxed in."""
  frames = to_uint8(frames)
  t, h, w, _ = frames.shape
  if h % 2 or w % 2:  # yuv420p needs even sizes
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)),
                    constant_values=255)
  video_io.write_video(path, frames, fractions.Fraction(fps).limit_denominator(1001),
                       audio, sample_rate)


def sequence(videos: np.ndarray, audios: Optional[Sequence[np.ndarray]] = None,
             scale: int = 1) -> tuple[np.ndarray, Optional[np.ndarray]]:
  """Clips one after another (each with its own sound) for checking sync."""
  frames = to_uint8(videos)
  if scale > 1:
    frames = frames.repeat(scale, axis=2).repeat(scale, axis=3)
  frames = frames.reshape(-1, *frames.shape[2:])
  audio = None if audios is None else np.concatenate(list(audios))
  return frames, audio
