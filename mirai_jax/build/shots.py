"""Shot boundaries (hard cuts, fades, dissolves, wipes) on decoded frames; shots -> clips.

  found = shots.detect(frames)         # frames: (N, H, W, 3) uint8 at clip size
  found.cuts                           # [t, ...]: frame t starts a new shot
  found.transitions                    # [(a, b), ...]: frames a..b-1 belong to no shot
  shots.shot_bounds(len(frames), found.cuts, found.transitions)

Hard cuts. Each frame's motion is its mean absolute RGB change from the
frame before once the global shift between the two is undone (phase
correlation), so pans and a shaking camera move little. A cut at t is a
step: frame t differs from t-1 by at least `threshold` (a shift counts only
if it explains most of that change: two framings of one scene half-align
and must keep their score), `ratio` times the motion level around t (the
two sides' medians over frames that move: anime holds drawings for 2-3
frames, and those exact zeros must not read as "no motion") and twice its
nearest moving frames (a burst of fast action is busy on both sides); the
new picture lasts (none of the 3 frames after t is back near the frame
before t, and t is not the return from such a flash: white flashes and 1-3
impact frames are not cuts); and motion does not run through it (frames t-2
and t+1 differ about as much as t-1 and t). When fast action on both sides
hides the step (a rush at the lens, then a whip over a textured ground), a
step in the colour histogram that passes the same tests is a cut: motion
keeps the colours of a shot, a cut changes them.

Fades and dissolves. A span where each frame is a linear blend of the
frames k before and after it (on 16-row frames, at several scales of
k = 2..16, so 4 to ~60-frame transitions) and the picture changes overall
is a transition; the blank (near-uniform, e.g. black) frames beside it join
it, and one frame more at each end. Its frames belong to no shot, so no
clip straddles or holds a frame of a fade or a cross-dissolve. A fade from a
white-out inside a shot (fog clearing) reads as one too.

Wipes. Frames whose every pixel is either the picture k = 1, 2 or 4 frames
before or the one k after (an iris closing to black, a bar sweeping across)
are a transition too, unless a global shift maps one end onto the other (a
pan over flat colours). Something sweeping past the lens that fills the
frame reads as a wipe; a slow wipe between two shots that both move may be
found only in part (`python bench/cuts.py` lists such cases).

Why numpy and not PySceneDetect or ffmpeg's `scdet`: both score raw frame
differences (HSV/edge deltas against a rolling average in PySceneDetect's
Content/AdaptiveDetector, SAD against the previous score in `scdet`), so a
fast pan and a cut between two look-alike shots need a threshold between
them that does not exist, and neither finds dissolves; PySceneDetect's
detectors also need OpenCV (a ~50 MB wheel). Here everything runs on the
small frames the dataset decodes anyway, at a fraction of the decoding
time: `python bench/cuts.py` measures it (README, "Your own episodes").
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Sequence

import numpy as np

_HOLD = 0.002  # changes below this are held drawings / codec noise
_BLANK = 0.03  # frame standard deviation below this: black/white/flat frame
_WORK = 64  # frames are area-averaged down to at most this many rows


@dataclasses.dataclass
class Found:
  """Shot boundaries of one episode."""
  cuts: list[int]  # frame t starts a new shot (t-1 and t are in different shots)
  transitions: list[tuple[int, int]]  # [a, b): fade/dissolve frames, in no shot


def _work(frames: np.ndarray, chunk: int = 1024, rows: int = _WORK
          ) -> np.ndarray:
  """uint8 frames area-averaged to <= `rows` rows (less noise, less work).

  They stay uint8 (the clip frames themselves when already that small):
  a 24 min episode at 64x64 is 0.4 GB, four times that as float32.
  """
  f = int(max(1, frames.shape[1] // rows))
  if f == 1:
    return frames
  n, h, w = len(frames), frames.shape[1] // f * f, frames.shape[2] // f * f
  out = np.empty((n, h // f, w // f, 3), np.uint8)
  for s in range(0, n, chunk):
    part = frames[s:s + chunk, :h, :w]
    total = np.full((len(part), h // f, w // f, 3), f * f // 2, np.uint32)
    for i in range(f):  # f*f strided adds: far faster than a strided sum
      for j in range(f):
        total += part[:, i::f, j::f]
    out[s:s + chunk] = total // (f * f)
  return out


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


def _diff(a: np.ndarray, b: np.ndarray) -> float:
  """Mean |b - a| / 255 of two uint8 arrays of one shape."""
  return float(np.abs(b.astype(np.int16) - a).mean() / 255.0)


class _Spectra:
  """Windowed luma spectra for phase correlation, made a chunk at a time as
  they are asked for (a whole episode's would be ~0.6 GB)."""

  def __init__(self, x: np.ndarray, chunk: int = 256):
    self.x, self.chunk, self.cache = x, chunk, {}
    h, w = x.shape[1:3]
    self.win = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)

  def __getitem__(self, i: int) -> np.ndarray:
    k = i // self.chunk
    if k not in self.cache:
      if len(self.cache) >= 3:
        self.cache.pop(max(self.cache, key=lambda c: abs(c - k)))
      part = self.x[k * self.chunk:(k + 1) * self.chunk].astype(np.float32)
      luma = part @ np.array([0.299, 0.587, 0.114], np.float32)
      luma -= luma.mean(axis=(1, 2), keepdims=True)
      self.cache[k] = np.fft.rfft2(luma * self.win).astype(np.complex64)
    return self.cache[k][i - k * self.chunk]


def _shift(fa: np.ndarray, fb: np.ndarray, shape) -> tuple[int, int]:
  """(dy, dx) with b[y, x] ~ a[y - dy, x - dx], by phase correlation."""
  c = fb * np.conj(fa)
  r = np.fft.irfft2(c / (np.abs(c) + 1e-6), s=shape)
  dy, dx = np.unravel_index(int(np.argmax(r)), r.shape)
  h, w = shape
  return (dy - h if dy > h // 2 else dy), (dx - w if dx > w // 2 else dx)


def _aligned_diff(a: np.ndarray, b: np.ndarray, dy: int, dx: int) -> float:
  """Mean |b[y, x] - a[y - dy, x - dx]| / 255 over the overlap."""
  h, w = a.shape[:2]
  if abs(dy) > h // 4 or abs(dx) > w // 4:
    return _diff(a, b)
  bb = b[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)]
  aa = a[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
  return _diff(aa, bb)


def _pair(x, spec, i: int, j: int, strict: bool = False) -> float:
  """Change from frame i to frame j, the better of unshifted and aligned.

  strict: keep the unshifted change unless the shift explains most of it.
  """
  raw = _diff(x[i], x[j])
  if raw < _HOLD:
    return raw
  dy, dx = _shift(spec[i], spec[j], x.shape[1:3])
  if not (dy or dx):
    return raw
  aligned = _aligned_diff(x[i], x[j], dy, dx)
  if strict:  # a cut to another framing of one scene half-aligns
    return aligned if aligned < 0.5 * raw else raw
  return min(aligned, raw)


def _motion(x: np.ndarray, spec: _Spectra) -> np.ndarray:
  m = np.zeros(len(x), np.float32)
  for t in range(1, len(x)):
    m[t] = _pair(x, spec, t - 1, t)
  return m


def motion_scores(frames: np.ndarray) -> np.ndarray:
  """m[t]: change from frame t-1 to t once the global shift is undone. (N,)."""
  x = _work(frames)
  return _motion(x, _Spectra(x))


def _moving(m: np.ndarray) -> np.ndarray:
  return m[m > _HOLD]


def _level(m: np.ndarray, t: int, lo: int, before: int = 48, after: int = 24,
           count: int = 8) -> float:
  """Motion around t: the mean of the two sides' medians over the `count`
  nearest frames that move, up to `before` frames back (in this shot) and
  `after` frames on (short of most next shots).

  Held drawings (exact zeros) are left out, else every new drawing after a
  hold would stand out against "no motion"; and a side is judged by its
  moving frames, however long the holds between them.
  """
  sides = [float(np.median(s)) for s in (_moving(m[max(lo, t - before):t])[-count:],
                                         _moving(m[t + 1:t + 1 + after])[:count])
           if len(s)]
  return float(np.mean(sides)) if sides else 0.0


def _nearest(m: np.ndarray, t: int, lo: int) -> float:
  """Motion right beside t: the mean of the largest of the two nearest
  moving frames before t (in this shot) and after it. A burst of fast motion
  is busy on both sides; a cut after a rush at the lens is calm on one."""
  before = _moving(m[max(lo, t - 8):t])[-2:]
  after = _moving(m[t + 1:t + 9])[:2]
  return 0.5 * float(before.max(initial=0.0) + after.max(initial=0.0))


def _new_picture(x, spec, m, t: int, score: float, level: float,
                 most: int = 3) -> bool:
  """False when one of the `most` frames after t is back near the picture
  before t (a white flash, 1-3 impact frames), or when t is the end of such a
  flash: back near the picture before the step that began it."""
  for j in range(t + 1, min(len(x), t + 1 + most)):
    if _pair(x, spec, t - 1, j, strict=True) < level:
      return False
  for s in range(t - 1, max(0, t - 1 - most), -1):
    if m[s] >= 0.5 * score:
      return _pair(x, spec, s - 1, t, strict=True) >= level
  return True


def _is_cut(x, spec, m, raw, t: int, lo: int, p: 'Params') -> bool:
  """Frame t-1 to t is one step change, well above the motion around it, to
  a picture that lasts."""
  score = _pair(x, spec, t - 1, t, strict=True)
  if score < p.threshold or score < p.ratio * _level(m, t, lo):
    return False
  if score < p.near_ratio * _nearest(m, t, lo):
    return False  # part of a burst of fast motion
  if not _new_picture(x, spec, m, t, score, p.persist * score):
    return False
  # Motion that runs through t keeps going: three frames of it add up to
  # more than one step; across a cut the far frames differ no more than t.
  # Plain differences on both sides of the test: an alignment that happens
  # to fit one pair of different shots must not tip it.
  far = _diff(x[max(0, t - 2)], x[min(len(x) - 1, t + 1)])
  return far <= p.cross * raw[t]


def _histograms(x: np.ndarray, chunk: int = 1024) -> np.ndarray:
  """(N, 64) colour distribution of each frame: 4 levels per channel."""
  n = len(x)
  out = np.empty((n, 64), np.float32)
  for s in range(0, n, chunk):
    q = (x[s:s + chunk] >> 6).astype(np.int64)
    idx = (q[..., 0] * 16 + q[..., 1] * 4 + q[..., 2]).reshape(len(q), -1)
    idx += 64 * np.arange(len(q))[:, None]
    counts = np.bincount(idx.ravel(), minlength=64 * len(q))
    out[s:s + chunk] = counts.reshape(len(q), 64) / idx.shape[1]
  return out


def _is_colour_cut(h: np.ndarray, t: int, lo: int, p: 'Params') -> bool:
  """A step in the colours of the picture, which motion keeps: fast action
  on both sides of a cut (a rush at the lens, then a whip over a textured
  ground) hides the step in the pixels but not in the colours.

  Like `_is_cut`: well above the colour change around t, lasting (the next
  3 frames stay away from the colours before t), not the end of a flash of
  1-3 frames, not a colour change that runs through t (a tilt from sky to
  foliage), not the first frame after a frame that was itself a step (a
  frame that passes the lens belongs to the shot before) and at least two
  frames after the last cut (a new shot's first frame settling).
  """
  hd = lambda i, j: 0.5 * float(np.abs(h[i] - h[j]).sum())
  n, step = len(h), hd(t - 1, t)
  if step < p.colour or t - lo < 2:
    return False
  around = [hd(i - 1, i) for i in (*range(max(lo + 1, t - 8), t - 1),
                                   *range(t + 2, min(n, t + 9)))]
  if around and step < p.colour_ratio * float(np.median(around)):
    return False
  if t + 1 < n and hd(t, t + 1) > 0.5 * step:
    return False
  if any(hd(t - 1, j) < p.persist * step for j in range(t + 1, min(n, t + 4))):
    return False
  for b in range(t - 1, max(lo, t - 4), -1):
    if hd(b - 1, b) >= 0.5 * step:  # t ends a step that began at b
      if hd(b - 1, t) < p.persist * step:
        return False
      break
  return not (t + 1 < n and hd(t - 2, t + 1) > p.colour_cross * step)


def _cuts(x, spec, m, p: 'Params') -> list[int]:
  """Cuts among the frames whose plain change reaches the threshold."""
  cuts, last = [], 0
  raw = frame_differences(x)
  h = _histograms(x)
  for t in np.flatnonzero(raw >= p.threshold):
    if (_is_cut(x, spec, m, raw, int(t), last + 1, p)
        or _is_colour_cut(h, int(t), last + 1, p)):
      cuts.append(int(t))
      last = int(t)
  return cuts


def _coarse(x: np.ndarray, rows: int = 16, chunk: int = 1024) -> np.ndarray:
  """x in [0, 1], area-averaged to ~`rows` rows: a blend is a blend at any
  scale, while the motion inside the blended shots mostly averages out."""
  f = max(1, x.shape[1] // rows)
  n, h, w = len(x), x.shape[1] // f * f, x.shape[2] // f * f
  out = np.empty((n, h // f, w // f, 3), np.float32)
  for s in range(0, n, chunk):
    part = x[s:s + chunk, :h, :w].astype(np.float32) / 255.0
    out[s:s + chunk] = part.reshape(len(part), h // f, f, w // f, f, 3).mean(axis=(2, 4))
  return out


def _blend_spans(x: np.ndarray, min_change: float, max_residual: float
                 ) -> list[tuple[int, int]]:
  """[a, b) spans whose frames are linear blends of the frames around them.

  Frame c is a blend at scale k when, on coarse 16-row frames, it is the
  mean of frames c-k and c+k (to max_residual of their difference) and those
  differ by min_change. A fade or dissolve is a blend at three scales of
  k = 2, 4, 8, 16, or at two when it changes the picture by 1.6x min_change:
  one scale alone is often a codec settling after a cut, and small smooth
  motion over a flat background (a bird across the sky) passes at two.
  """
  x = _coarse(x)
  n = len(x)
  scales = [k for k in (2, 4, 8, 16) if n > 2 * k]
  ok = np.zeros((len(scales), n), bool)
  big = np.zeros((len(scales), n), bool)
  for i, k in enumerate(scales):
    a, mid, b = x[:-2 * k], x[k:-k], x[2 * k:]
    change = np.abs(b - a).mean(axis=(1, 2, 3))
    resid = np.abs(mid - 0.5 * (a + b)).mean(axis=(1, 2, 3))
    ok[i, k:n - k] = (change >= min_change) & (resid <= max_residual * change)
    big[i, k:n - k] = change >= 1.6 * min_change
  near = ok.copy()  # scales may disagree on the centre by a frame
  near[:, 1:] |= ok[:, :-1]
  near[:, :-1] |= ok[:, 1:]
  votes = near.sum(axis=0)
  cover = np.zeros(n + 1, np.int32)
  for i, k in enumerate(scales):
    for c in np.flatnonzero(ok[i] & ((votes >= 3) | ((votes >= 2) & big[i]))):
      cover[c - k + 1] += 1
      cover[c + k] -= 1
  return _runs(np.cumsum(cover)[:n] > 0)


def _wipe_spans(x: np.ndarray, spec: _Spectra, p: 'Params', chunk: int = 512
                ) -> list[tuple[int, int]]:
  """[a, b) spans of wipes (an iris closing, a bar sweeping across): frames
  whose every pixel is either the picture k frames before or the one k
  after (k = 1, 2, 4), with a real share of each, where those two differ.

  A frame mid-way through a fade is neither end anywhere, and a frame of
  motion is neither end where things move; a wipe frame is one end or the
  other everywhere. Each found frame takes the frames of its test with it.
  A pan over flat colours passes that test too (each pixel is in one flat
  region or the next), so a frame whose two ends align under a global shift
  is motion. Something sweeping past the lens (a wing filling the frame)
  reads as a wipe: its few frames are in no shot, like the frames of a fade
  (telling it by the covered picture coming back fails once the camera or
  the scene moves meanwhile).
  Tested on frames of <= 32 rows.
  """
  n = len(x)
  small = _work(x, rows=32)
  step = frame_differences(small)
  cover = np.zeros(n + 1, np.int32)
  for k in (1, 2, 4):
    # A wipe frame's ends differ in >= wipe_changed of the pixels by > 0.15
    # in a channel, so the steps between them add up to at least this much:
    # only such frames are tested (a tenth of them on busy footage).
    total = np.convolve(step, np.ones(2 * k), 'valid')[1:]  # frames c-k..c+k
    where = k + np.flatnonzero(total >= p.wipe_changed * 0.15 / 3)
    for s in range(0, len(where), chunk):
      c = where[s:s + chunk]
      a, mid, b = (small[c + o].astype(np.int16) for o in (-k, 0, k))
      changed = np.abs(a - b).max(-1) > 38  # 0.15 of the range
      near_a = np.abs(mid - a).max(-1) < 16  # 0.06
      near_b = np.abs(mid - b).max(-1) < 16
      count = changed.sum((1, 2))
      fa = (near_a & changed).sum((1, 2)) / np.maximum(count, 1)
      fb = (near_b & changed).sum((1, 2)) / np.maximum(count, 1)
      ok = ((count >= p.wipe_changed * changed[0].size) & (fa + fb >= p.wipe_cover)
            & (np.minimum(fa, fb) >= 1 - p.wipe_cover))
      for t in c[ok]:
        if _pair(x, spec, t - k, t + k, strict=True) < 0.5 * _diff(x[t - k], x[t + k]):
          continue  # the ends differ by a shift: a pan
        cover[t - k] += 1
        cover[t + k + 1] -= 1
  return _runs(np.cumsum(cover)[:n] > 0)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
  edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
  return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def _grow(spans, m: np.ndarray, most: int = 8) -> list[tuple[int, int]]:
  """Spans grown while the blend still changes the picture at their edges:
  the blend test reaches a few frames short of a transition's ends."""
  out = []
  for a, b in spans:
    pace = float(np.median(m[a:b])) if b > a else 0.0
    # A step of more than twice the pace is a cut beside the span: not its.
    going = lambda v: max(0.5 * pace, _HOLD) < v <= 2 * pace  # pylint: disable=cell-var-from-loop
    for _ in range(most):
      if a > 1 and going(m[a - 1]):
        a -= 1
    for _ in range(most):
      if b < len(m) and going(m[b]):
        b += 1
    out.append((a, b))
  return out


def _with_blanks(spans, x) -> list[tuple[int, int]]:
  """Spans grown over the blank frames beside them (black between fades)."""
  blank = lambda t: x[t].std() / 255.0 < _BLANK
  out = []
  for a, b in spans:
    while a > 0 and blank(a - 1):
      a -= 1
    while b < len(x) and blank(b):
      b += 1
    if out and a <= out[-1][1]:
      out[-1] = (out[-1][0], max(b, out[-1][1]))
    else:
      out.append((a, b))
  return out


@dataclasses.dataclass(frozen=True)
class Params:
  """Knobs of `detect`; the defaults hold on the footage in bench/cuts.py."""
  threshold: float = 0.045  # least change of a cut (mean |RGB|/255); > 1: none
  ratio: float = 2.5  # a cut is this many times the motion level around it
  near_ratio: float = 2.0  # ... and this many times its nearest moving frames
  persist: float = 0.7  # the next 3 frames stay this far (x change) from the old shot
  cross: float = 1.25  # frames t-2 and t+1 differ at most this much (x change)
  fade_change: float = 0.05  # least change across a fade or dissolve
  fade_residual: float = 0.25  # its frames are blends of its ends to this (x change)
  colour: float = 0.4  # least colour-histogram change of a cut seen in colour only
  colour_ratio: float = 3.0  # ... this many times the colour change around it
  colour_cross: float = 1.1  # frames t-2 and t+1 differ at most this much in colour
  wipe_changed: float = 0.25  # least share of the picture a wipe frame replaces
  wipe_cover: float = 0.85  # share of it that is exactly the old or the new picture


def detect(frames: np.ndarray, threshold: float = Params.threshold,
           ratio: float = Params.ratio, **kwargs) -> Found:
  """Hard cuts and gradual transitions of an episode (see the module doc).

  `frames`: (N, H, W, 3) uint8, e.g. the clips' own 64x64 frames. Other
  `Params` fields may be given by name.
  """
  p = Params(threshold=threshold, ratio=ratio, **kwargs)
  if len(frames) < 3 or p.threshold > 1:
    return Found([], [])
  x = _work(frames)
  spec = _Spectra(x)
  m = _motion(x, spec)
  # One frame more at each end: a dissolve's last frames keep a trace of the
  # old shot below what the tests see.
  spans = [(max(0, a - 1), min(len(x), b + 1)) for a, b in
           _grow(_blend_spans(x, p.fade_change, p.fade_residual), m)]
  spans = _with_blanks(sorted(spans + _wipe_spans(x, spec, p)), x)
  inside = np.zeros(len(x) + 1, bool)
  for a, b in spans:
    inside[a:b] = True  # b is where the next shot starts: a cut may stay
  cuts = [t for t in _cuts(x, spec, m, p) if not inside[t]]
  return Found(cuts, spans)


def detect_cuts(frames: np.ndarray, threshold: float = Params.threshold,
                ratio: float = Params.ratio) -> list[int]:
  """Hard cuts only: frame indices t > 0 that start a new shot."""
  return detect(frames, threshold, ratio).cuts


def shot_bounds(num_frames: int, cuts: Sequence[int],
                transitions: Sequence[tuple[int, int]] = ()
                ) -> list[tuple[int, int]]:
  """[start, end) of each shot; transition frames are in none of them."""
  edges = sorted({0, num_frames, *(c for c in cuts if 0 < c < num_frames)})
  out = []
  for a, b in zip(edges[:-1], edges[1:]):
    pieces = [(a, b)]
    for ta, tb in transitions:
      pieces = [p for s, e in pieces
                for p in ((s, min(e, ta)), (max(s, tb), e))]
    out.extend((s, e) for s, e in pieces if e > s)
  return out


def clip_starts(start: int, end: int, length: int, stride: int) -> Iterator[int]:
  """Start frames of the clips of `length` frames that fit inside [start, end)."""
  return iter(range(start, end - length + 1, stride))


def is_static(clip: np.ndarray, tolerance: int = 2) -> bool:
  """True when no pixel moves by more than `tolerance` across the clip."""
  c = clip.astype(np.int16)
  return bool(np.abs(c - c[:1]).max() <= tolerance)
