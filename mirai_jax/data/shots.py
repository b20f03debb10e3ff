"""Hard-cut detection on decoded low-resolution frames, and cutting shots into clips.

The score is a content difference in the spirit of ffmpeg's `scene` score:
the mean absolute pixel change between consecutive frames, judged against the
recent motion of the same shot so that steady fast motion (pans, action) does
not read as a cut. Anime holds drawings for 2-3 frames, so frames that do not
change at all are left out of that baseline; otherwise every new drawing after
a hold would look like a jump from "no motion".
"""

from __future__ import annotations

from typing import Iterator

import numpy as np


def frame_differences(frames: np.ndarray, chunk: int = 512) -> np.ndarray:
  """d[t] = mean |frames[t] - frames[t-1]| / 255, with d[0] = 0. Shape (N,)."""
  n = len(frames)
  d = np.zeros(n, np.float32)
  for s in range(1, n, chunk):
    e = min(n, s + chunk)
    a = frames[s - 1:e - 1].astype(np.int16)
    b = frames[s:e].astype(np.int16)
    d[s:e] = np.abs(b - a).mean(axis=(1, 2, 3)) / 255.0
  return d


def detect_cuts(frames: np.ndarray, threshold: float = 0.12,
                ratio: float = 3.0, hold_eps: float = 0.002,
                window: int = 12) -> list[int]:
  """Indices t > 0 where a new shot starts (frame t differs from t-1 by a cut).

  A cut needs d[t] >= threshold and d[t] >= ratio * (median of the last
  `window` non-hold differences of the current shot).
  """
  d = frame_differences(frames)
  cuts, recent = [], []
  for t in range(1, len(d)):
    base = float(np.median(recent)) if len(recent) >= 2 else 0.0
    if d[t] >= threshold and d[t] >= ratio * base:
      cuts.append(t)
      recent = []
    elif d[t] > hold_eps:
      recent.append(float(d[t]))
      del recent[:-window]
  return cuts


def shot_bounds(num_frames: int, cuts: list[int]) -> list[tuple[int, int]]:
  """[start, end) of each shot."""
  edges = [0] + [c for c in cuts if 0 < c < num_frames] + [num_frames]
  return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def clip_starts(start: int, end: int, length: int, stride: int) -> Iterator[int]:
  """Start frames of the clips of `length` frames that fit inside [start, end)."""
  return iter(range(start, end - length + 1, stride))


def is_static(clip: np.ndarray, tolerance: int = 2) -> bool:
  """True when no pixel moves by more than `tolerance` across the clip."""
  c = clip.astype(np.int16)
  return bool(np.abs(c - c[:1]).max() <= tolerance)
