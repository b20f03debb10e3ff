"""Hard cases for shot-boundary detection, each with its true cuts.

  from mirai_jax.build import cut_cases
  for case in cut_cases.all_cases(seed=0):   # 64x64 frames, as the dataset decodes
    found = shots.detect(case.frames)        # compare with case.cuts / case.transitions

Flat-colour cartoon scenes (sky, ground, outlined props, a character) seen
through a camera that can pan, zoom and shake, with the character's drawings
held on twos or threes. The cases are what real anime does and what a plain
frame-difference threshold gets wrong: cuts between two framings of the
same scene whose mean change is only 0.05-0.08 at the decoded size; white
flashes and impact frames (1-3 frames, then the same shot again); steady
pans and camera shake, where every frame changes as much as a cut; long
holds followed by a big new drawing; fades through black,
cross-dissolves and wipes (a bar sweeping across, an iris closing to black),
whose frames belong to no shot. `python bench/cuts.py`
scores `shots.detect` on them.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import numpy as np

_OUTLINE = np.array([20, 16, 24], np.float32)
_SKY = [(120, 190, 240), (250, 200, 150), (180, 160, 230), (140, 220, 200),
        (90, 110, 170)]
_GROUND = [(90, 170, 80), (200, 170, 110), (130, 130, 140), (170, 120, 80),
           (60, 90, 60)]
_PROPS = [(250, 120, 30), (240, 240, 240), (200, 40, 120), (40, 40, 200),
          (160, 110, 60), (230, 210, 90)]
_SKIN = [(250, 220, 190), (230, 190, 150)]
_SHIRT = [(220, 60, 60), (60, 90, 200), (240, 200, 40), (40, 160, 120)]
_SS = 2  # supersampling: edges come out soft, as from a real decoder


@dataclasses.dataclass
class Case:
  name: str
  frames: np.ndarray  # (N, H, W, 3) uint8
  cuts: list[int]  # frame t starts a new shot
  transitions: list[tuple[int, int]]  # [a, b): frames of a fade/dissolve


class Scene:
  """One place: a background of outlined shapes and a character, in world
  units where 1.0 is one frame height at zoom 1."""

  def __init__(self, rng: np.random.Generator, width: float = 4.0):
    self.width, self.height = width, 1.6
    self.sky = np.array(_SKY[rng.integers(len(_SKY))], np.float32)
    self.ground = np.array(_GROUND[rng.integers(len(_GROUND))], np.float32)
    self.horizon = rng.uniform(0.75, 1.0)
    self.props = []
    for x in np.sort(rng.uniform(0, width, int(rng.integers(7, 12)))):
      w, h = rng.uniform(0.1, 0.35), rng.uniform(0.1, 0.5)
      ellipse = bool(rng.integers(2))
      top = self.horizon - h * rng.uniform(0.3, 1.0)
      colour = np.array(_PROPS[rng.integers(len(_PROPS))], np.float32)
      self.props.append((ellipse, x, top, w, h, colour))
    self.skin = np.array(_SKIN[rng.integers(len(_SKIN))], np.float32)
    self.shirt = np.array(_SHIRT[rng.integers(len(_SHIRT))], np.float32)

  def _grid(self, x0, y0, zoom, h, w):
    ys = y0 + (np.arange(h * _SS, dtype=np.float32) + 0.5) / (_SS * h * zoom)
    xs = x0 + (np.arange(w * _SS, dtype=np.float32) + 0.5) / (_SS * h * zoom)
    return np.meshgrid(ys, xs, indexing='ij')

  def background(self, x0, y0, zoom, h, w) -> np.ndarray:
    yy, xx = self._grid(x0, y0, zoom, h, w)
    img = np.empty(yy.shape + (3,), np.float32)
    # A painted sky: a vertical gradient, as anime backgrounds have.
    shade = (1.0 + 0.25 * (yy - self.horizon))[..., None]
    img[:] = np.where((yy < self.horizon)[..., None], self.sky * shade, self.ground)
    img[np.abs(yy - self.horizon) < 0.012] = _OUTLINE
    for ellipse, x, y, pw, ph, colour in self.props:
      _shape(img, yy, xx, ellipse, x, y, pw, ph, colour)
    return img

  def character(self, img, x0, y0, zoom, h, w, cx, cy, size, pose: int):
    yy, xx = self._grid(x0, y0, zoom, h, w)
    _shape(img, yy, xx, False, cx - 0.18 * size, cy + 0.2 * size, 0.36 * size,
           0.8 * size, self.shirt)
    _shape(img, yy, xx, True, cx - 0.2 * size, cy - 0.2 * size, 0.4 * size,
           0.42 * size, self.skin)
    arm = 0.08 * size * (pose % 3 - 1)  # the pose moves an arm and the mouth
    _shape(img, yy, xx, True, cx + 0.15 * size, cy + 0.25 * size + arm,
           0.16 * size, 0.16 * size, self.skin)
    mouth = 0.02 + 0.05 * (pose % 2)
    _shape(img, yy, xx, True, cx - 0.06 * size, cy + 0.02 * size, 0.12 * size,
           mouth * size, np.array([120, 30, 40], np.float32))


def _shape(img, yy, xx, ellipse, x, y, w, h, colour, line=0.012):
  """An outlined rectangle or ellipse with top-left (x, y), size (w, h)."""
  if ellipse:
    r = ((xx - x - w / 2) / (w / 2)) ** 2 + ((yy - y - h / 2) / (h / 2)) ** 2
    edge = (1 + line / min(w, h) * 4) ** 2
    img[r <= edge] = _OUTLINE
    img[r <= 1] = colour
  else:
    outer = ((xx >= x - line) & (xx < x + w + line) &
             (yy >= y - line) & (yy < y + h + line))
    img[outer] = _OUTLINE
    img[(xx >= x) & (xx < x + w) & (yy >= y) & (yy < y + h)] = colour


@dataclasses.dataclass
class Shot:
  """A camera on a scene for `n` frames."""
  scene: Scene
  n: int
  x0: float = 1.0  # camera's top-left in world units
  y0: float = 0.1
  zoom: float = 1.0
  pan: tuple[float, float] = (0.0, 0.0)  # world units per frame (dx, dy)
  shake: float = 0.0  # camera jitter, world units
  cam_hold: int = 1  # the camera moves on ones (or twos)
  hold: int = 2  # the character's drawings are held on twos/threes
  char: Optional[tuple[float, float, float]] = (1.6, 0.45, 0.5)  # x, y, size
  walk: float = 0.0  # character speed, world units per drawing
  seed: int = 0

  def render(self, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(self.seed)
    jitter = rng.uniform(-1, 1, (self.n, 2)) * self.shake
    out = np.empty((self.n, h, w, 3), np.uint8)
    for k in range(self.n):
      kc = (k // self.cam_hold) * self.cam_hold
      drawing = k // self.hold
      still = kc == ((k - 1) // self.cam_hold) * self.cam_hold and not self.shake
      if k and k % self.hold and still:
        out[k] = out[k - 1]  # a held drawing under a still camera: exact zeros
        continue
      x0 = self.x0 + self.pan[0] * kc + jitter[kc, 0]
      y0 = self.y0 + self.pan[1] * kc + jitter[kc, 1]
      img = self.scene.background(x0, y0, self.zoom, h, w)
      if self.char:
        cx, cy, size = self.char
        self.scene.character(img, x0, y0, self.zoom, h, w,
                             cx + self.walk * drawing, cy, size, drawing)
      out[k] = _down(img)
    return out


def _down(img: np.ndarray) -> np.ndarray:
  h, w = img.shape[0] // _SS, img.shape[1] // _SS
  small = img.reshape(h, _SS, w, _SS, 3).mean(axis=(1, 3))
  return np.clip(small + 0.5, 0, 255).astype(np.uint8)


def change(a: np.ndarray, b: np.ndarray) -> float:
  """Mean absolute change between two uint8 frames, in [0, 1]."""
  return float(np.abs(a.astype(np.float32) - b).mean() / 255.0)


def _join(shots: list[np.ndarray]) -> tuple[np.ndarray, list[int]]:
  cuts = list(np.cumsum([len(s) for s in shots])[:-1])
  return np.concatenate(shots), [int(c) for c in cuts]


def similar_cut(seed: int, target: float, size=(64, 64), n=30) -> Case:
  """Shot A, then the same scene from another framing (a step in or out, the
  camera moved a little, the character a bit elsewhere), then A again; the
  framing change is searched so that the cut changes the picture by about
  `target` (0.05-0.08), while the drawings inside each shot keep moving."""
  rng = np.random.default_rng(seed)
  scene = Scene(rng)
  h, w = size
  base = dict(scene=scene, n=n, x0=rng.uniform(0.5, 2.5), y0=0.1, hold=2,
              char=(0.0, 0.45, 0.5), walk=0.004, seed=seed)
  base['char'] = (base['x0'] + 0.5, 0.45, 0.5)
  a = Shot(**base).render(h, w)
  best = None
  for step in np.linspace(0.01, 0.4, 40):
    other = dict(base, zoom=1.0 + step, x0=base['x0'] + 0.4 * step,
                 y0=0.1 + 0.35 * step,
                 char=(base['char'][0] + 0.3 * step, 0.45 + 0.1 * step, 0.5))
    b = Shot(**dict(other, n=1)).render(h, w)
    c = change(a[-1], b[0])
    best = (c, other)
    if c >= target:
      break
  frames, cuts = _join([a, Shot(**best[1]).render(h, w),
                        Shot(**dict(base, seed=seed + 1)).render(h, w)])
  return Case(f'similar_cut_{best[0]:.3f}', frames, cuts, [])


def flash(seed: int, size=(64, 64), n=48, kind: str = 'white') -> Case:
  """One shot with a one-frame white flash, or 1-3 impact frames (the same
  drawing in inverted or posterised colours), then the shot again: no cut."""
  rng = np.random.default_rng(seed)
  scene = Scene(rng)
  shot = Shot(scene, n, x0=rng.uniform(0.5, 2.5), hold=2, walk=0.01, seed=seed)
  shot.char = (shot.x0 + 0.6, 0.45, 0.5)
  frames = shot.render(*size)
  t = n // 2
  if kind == 'white':
    frames[t] = np.clip(frames[t].astype(np.float32) * 0.15 + 0.85 * 255, 0, 255)
  else:
    for k in range(t, t + int(rng.integers(1, 4))):
      img = frames[k].astype(np.float32)
      frames[k] = (255 - img if kind == 'invert' else
                   np.where(img.mean(-1, keepdims=True) > 110, [255, 240, 60], [120, 0, 20]))
  return Case(f'flash_{kind}', frames, [], [])


def pan(seed: int, speed: float, size=(64, 64), n=60, cam_hold=1,
        cut: bool = False) -> Case:
  """A steady pan (speed in frame heights per frame); with `cut`, a cut to
  another pan over another scene half way."""
  rng = np.random.default_rng(seed)
  shots = []
  for part in range(2 if cut else 1):
    scene = Scene(rng, width=1.5 + n * speed + 1)
    shots.append(Shot(scene, n // 2 if cut else n, x0=0.1, pan=(speed, 0.0),
                      cam_hold=cam_hold, hold=2, char=None,
                      seed=seed + part).render(*size))
  frames, cuts = _join(shots)
  return Case(f'pan_{speed:.3f}' + ('_cut' if cut else ''), frames, cuts, [])


def shake(seed: int, amount: float, size=(64, 64), n=60, cut: bool = False) -> Case:
  """Camera shake (an impact, an earthquake): every frame jumps a few pixels."""
  rng = np.random.default_rng(seed)
  shots = []
  for part in range(2 if cut else 1):
    scene = Scene(rng)
    x0 = rng.uniform(0.5, 2.5)
    shots.append(Shot(scene, n // 2 if cut else n, x0=x0, shake=amount, hold=2,
                      char=(x0 + 0.6, 0.45, 0.5), seed=seed + part).render(*size))
  frames, cuts = _join(shots)
  return Case(f'shake_{amount:.3f}' + ('_cut' if cut else ''), frames, cuts, [])


def long_hold(seed: int, size=(64, 64), hold: int = 12, n=60) -> Case:
  """Drawings held for `hold` frames, each a big new pose of the character
  close up: large changes after exact zeros, no cut."""
  rng = np.random.default_rng(seed)
  scene = Scene(rng)
  x0 = rng.uniform(0.5, 2.5)
  shot = Shot(scene, n, x0=x0, zoom=1.6, hold=hold, char=(x0 + 0.25, 0.3, 0.5),
              walk=0.03, seed=seed)
  return Case(f'long_hold_{hold}', shot.render(*size), [], [])


def _two_moving_shots(seed: int, frames: int, size, pan: float
                      ) -> tuple[np.ndarray, np.ndarray]:
  """Two shots of `frames` frames over other scenes, each camera panning at
  `pan` while its character walks: the two sides of a transition."""
  rng = np.random.default_rng(seed)
  shots = []
  for part in range(2):
    scene = Scene(rng)
    x0 = rng.uniform(0.5, 2.5)
    shots.append(Shot(scene, frames, x0=x0, pan=(pan, 0.0), hold=2,
                      char=(x0 + 0.6, 0.45, 0.5), walk=0.01,
                      seed=seed + part).render(*size))
  return shots[0], shots[1]


def fade(seed: int, length: int, size=(64, 64), n=40, kind: str = 'dissolve'
         ) -> Case:
  """A fade through black (out over `length` frames, a few black frames, in
  over `length`) or a cross-dissolve of `length` frames between two shots
  that both keep moving. The blended frames are the transition."""
  h, w = size
  a, b = (s.astype(np.float32)
          for s in _two_moving_shots(seed, n + length, size, 0.004))
  alpha = (np.arange(1, length + 1, dtype=np.float32) / (length + 1))[:, None, None, None]
  if kind == 'dissolve':
    mid = a[n:n + length] * (1 - alpha) + b[:length] * alpha
    frames = np.concatenate([a[:n], mid, b[length:]])
    spans = [(n, n + length)]
  else:
    black = np.zeros((4, h, w, 3), np.float32)
    out = a[n:n + length] * (1 - alpha)
    into = b[:length] * alpha
    frames = np.concatenate([a[:n], out, black, into, b[length:]])
    spans = [(n, n + 2 * length + 4)]
  frames = np.clip(frames + 0.5, 0, 255).astype(np.uint8)
  return Case(f'{kind}_{length}', frames, [], spans)


def wipe(seed: int, length: int, size=(64, 64), n=30, kind: str = 'bar',
         pan: float = 0.003) -> Case:
  """A wipe between two moving shots over `length` frames: an edge sweeping
  across ('bar'), or an iris closing on the first shot to black, a few black
  frames, then the second shot ('iris'). The wiped frames are the transition.
  `pan`: the cameras' speed (frame heights per frame)."""
  h, w = size
  a, b = _two_moving_shots(seed, n + length, size, pan)
  yy, xx = np.mgrid[0:h, 0:w]
  mid = []
  for k in range(1, length + 1):
    f = k / (length + 1)
    if kind == 'bar':
      mid.append(np.where((xx < f * w)[..., None], b[k - 1], a[n + k - 1]))
    else:
      r = (1 - f) * 0.5 * np.hypot(h, w)
      inside = np.hypot(yy - h / 2, xx - w / 2) < r
      mid.append(np.where(inside[..., None], a[n + k - 1], 0).astype(np.uint8))
  if kind == 'bar':
    frames = np.concatenate([a[:n], np.stack(mid), b[length:]])
    spans = [(n, n + length)]
  else:
    black = np.zeros((3, h, w, 3), np.uint8)
    frames = np.concatenate([a[:n], np.stack(mid), black, b[length:]])
    spans = [(n, n + length + 3)]
  return Case(f'wipe_{kind}_{length}', frames, [], spans)


def all_cases(seed: int = 0, size=(64, 64)) -> list[Case]:
  """The benchmark's hard cases: 32 cases, ~2,400 frames at 64x64 (~7 s to make)."""
  makers: list[Callable[[], Case]] = []
  for i, target in enumerate(np.linspace(0.05, 0.08, 8)):
    makers.append(lambda i=i, t=target: similar_cut(seed * 100 + i, t, size))
  for i, kind in enumerate(['white', 'white', 'invert', 'poster']):
    makers.append(lambda i=i, k=kind: flash(seed * 100 + 10 + i, size, kind=k))
  for i, (speed, hold, cut) in enumerate(
      [(0.01, 1, False), (0.05, 1, False), (0.1, 1, False), (0.05, 2, False),
       (0.03, 3, False), (0.02, 1, True), (0.1, 2, True)]):
    makers.append(lambda i=i, s=speed, hd=hold, c=cut: pan(
        seed * 100 + 20 + i, s, size, cam_hold=hd, cut=c))
  for i, (amount, cut) in enumerate([(0.02, False), (0.05, False), (0.03, True)]):
    makers.append(lambda i=i, a=amount, c=cut: shake(seed * 100 + 30 + i, a, size, cut=c))
  for i, hold in enumerate([3, 12]):
    makers.append(lambda i=i, hd=hold: long_hold(seed * 100 + 40 + i, size, hd))
  for i, (length, kind) in enumerate([(6, 'dissolve'), (16, 'dissolve'),
                                      (36, 'dissolve'), (8, 'fade'), (24, 'fade')]):
    makers.append(lambda i=i, n=length, k=kind: fade(seed * 100 + 50 + i, n, size, kind=k))
  for i, (length, kind, speed) in enumerate([(4, 'iris', 0.003), (8, 'bar', 0.0),
                                             (3, 'bar', 0.003)]):
    makers.append(lambda i=i, n=length, k=kind, v=speed: wipe(
        seed * 100 + 60 + i, n, size, kind=k, pan=v))
  return [make() for make in makers]
