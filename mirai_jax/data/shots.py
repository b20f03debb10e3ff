"""Hard-cut detection on decoded low-resolution frames, and cutting shots into clips.

The score is a content difference in the spirit of ffmpeg's `scene` score:
the mean absolute pixel change between consecutive frames, judged against the
motion around it so that steady fast motion (pans, action) does not read as a
cut. Anime holds drawings for 2-3 frames, so frames that do not change at all
are left out of that baseline; otherwise every new drawing after a hold would
look like a jump from "no motion".
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
                ratio: float = 2.0, hold_eps: float = 0.002,
                window: int = 12) -> list[int]:
  """Indices t > 0 where a new shot starts (frame t differs from t-1 by a cut).

  A cut needs d[t] >= threshold and d[t] >= ratio * baseline, where the
  baseline is the calmer of the two sides: the median non-hold difference of
  the `window` frames before t (within the current shot) or after it. A fast
  pan is busy on both sides, so it never reads as a cut; a cut into or out
  of a busy shot still has one calm side.
  """
  d = frame_differences(frames)
  cuts, last = [], 0
  for t in np.flatnonzero(d >= threshold):
    before = d[max(last + 1, t - window):t]
    after = d[t + 1:t + 1 + window]
    sides = [float(np.median(x[x > hold_eps])) for x in (before, after)
             if (x > hold_eps).sum() >= 2]
    if d[t] >= ratio * (min(sides) if sides else 0.0):
      cuts.append(int(t))
      last = t
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
