"""Tasks as sets of known token positions over a (T, H, W) token grid.

Every job is the same transformer reading the known tokens first and then
generating the rest (MAGVIT / scenic style: one model, many masks):

  continue      the first `context` time steps are known (MIRAI: next frames)
  interpolate   the first `context` steps and the last step are known (GANime)
  outpaint      the centre columns of every step are known (GANIME: 4:3 -> 16:9)

`Order` turns a mask into the sequence the model reads: known positions in
raster order, then unknown ones in raster order (time-major, so a
continuation is generated frame after frame). One model can train on a mix
of tasks (`parse_weights`): each batch draws one, so one checkpoint serves
them all.
"""

from __future__ import annotations

import dataclasses

import numpy as np

TASKS = ('continue', 'interpolate', 'outpaint')


def parse_weights(spec: str, field: str = 'config.transformer.tasks'
                  ) -> dict[str, float]:
  """'continue' or 'continue:2,interpolate:1' -> {task: weight}, in the order
  given (the first is the model's main task). ValueError naming `field`."""
  weights = {}
  for part in str(spec).split(','):
    name, _, w = part.strip().partition(':')
    if name not in TASKS:
      raise ValueError(f'{field}={spec!r}: unknown task {name!r}; write one '
                       f'or more of {", ".join(TASKS)} as task or task:weight, '
                       "comma-separated (e.g. 'continue:2,interpolate:1')")
    try:
      weight = float(w) if w else 1.0
    except ValueError:
      weight = -1.0
    if not weight > 0 or name in weights:
      raise ValueError(f'{field}={spec!r}: each task once, with a positive '
                       f'weight (got {part.strip()!r})')
    weights[name] = weight
  return weights


def known_mask(task: str, grid, context: int = 1, keep_cols: int = 0
               ) -> np.ndarray:
  """(T, H, W) bool: True where the token is given."""
  t, h, w = grid
  known = np.zeros(grid, bool)
  if task == 'continue':
    if not 0 < context < t:
      raise ValueError(f'context={context} must be between 1 and {t - 1} '
                       f'time steps of the {t}-step token grid')
    known[:context] = True
  elif task == 'interpolate':
    if not 0 < context < t - 1:
      raise ValueError(f'interpolation needs 1 <= context <= {t - 2}, got '
                       f'{context}')
    known[:context] = True
    known[-1] = True
  elif task == 'outpaint':
    lo, hi = centre_columns(w, keep_cols)
    known[:, :, lo:hi] = True
  else:
    raise ValueError(f'unknown task {task!r}; known: {TASKS}')
  return known


def centre_columns(w: int, keep_cols: int = 0) -> tuple[int, int]:
  """[lo, hi): the token columns an outpainting is given, of `w` (default:
  a 4:3 centre inside 16:9, rounded to whole tokens)."""
  keep = keep_cols or round(w * 3 / 4)
  if not 0 < keep < w:
    raise ValueError(f'outpaint keeps 1..{w - 1} centre columns, got {keep}')
  lo = (w - keep) // 2
  return lo, lo + keep


@dataclasses.dataclass(frozen=True)
class Order:
  """A reading order of the grid: perm[i] is the flat index read i-th."""
  grid: tuple[int, int, int]
  perm: np.ndarray  # (N,) int
  num_known: int

  @classmethod
  def from_mask(cls, known: np.ndarray) -> 'Order':
    flat = known.reshape(-1)
    perm = np.concatenate([np.flatnonzero(flat), np.flatnonzero(~flat)])
    return cls(tuple(known.shape), perm.astype(np.int32), int(flat.sum()))

  @property
  def coords(self) -> np.ndarray:
    """(N, 3) (time, row, col) of each position in reading order."""
    return np.stack(np.unravel_index(self.perm, self.grid), -1).astype(np.int32)

  def _read_at(self, d: int) -> np.ndarray:
    """(N,) for each position, where in the sequence the same place `d` time
    steps away is read, or -1 if it is off the grid or not read before it."""
    where = np.full(int(np.prod(self.grid)), -1)
    where[self.perm] = np.arange(self.perm.size)
    t, r, c = self.coords.T
    on = (t + d >= 0) & (t + d < self.grid[0])
    j = where[np.ravel_multi_index(
        (np.clip(t + d, 0, self.grid[0] - 1), r, c), self.grid)]
    return np.where(on & (j < np.arange(self.perm.size)), j, -1).astype(
        np.int32)

  @property
  def above_index(self) -> np.ndarray:
    """(N,) for each position, where in the sequence the same place one time
    step earlier is read, or -1 if it is not read before it (or t = 0)."""
    return self._read_at(-1)

  @property
  def later_index(self) -> np.ndarray:
    """(N,) for each position, where in the sequence the same place at the
    nearest later time step read before it is, or -1: an in-between's
    generated places point at the end keyframe (or a later step already
    generated); a continuation's and a widening's at nothing."""
    out = np.full(self.perm.size, -1, np.int32)
    for d in range(self.grid[0] - 1, 0, -1):  # the nearest step written last
      j = self._read_at(d)
      out = np.where(j >= 0, j, out)
    return out

  @property
  def hint_index(self) -> np.ndarray:
    """(N, 2): `above_index` and `later_index`, the two tokens each position
    reads beside its input (models/transformer.py `inputs`)."""
    return np.stack([self.above_index, self.later_index], -1)

  @property
  def known_steps(self) -> np.ndarray:
    """(T,) bool: time steps whose every token is given (the context of a
    continuation, the keyframes of an in-between)."""
    known = np.zeros(int(np.prod(self.grid)), bool)
    known[self.perm[:self.num_known]] = True
    return known.reshape(self.grid).all(axis=(1, 2))

  def to_sequence(self, tokens):
    """(B, T, H, W) -> (B, N) in reading order (numpy or jax)."""
    return tokens.reshape(tokens.shape[0], -1)[:, self.perm]

  def to_grid(self, seq):
    """(B, N, ...) in reading order -> (B, T, H, W, ...)."""
    inv = np.argsort(self.perm)
    return seq[:, inv].reshape(seq.shape[0], *self.grid, *seq.shape[2:])


def make_order(task: str, grid, context: int = 1, keep_cols: int = 0) -> Order:
  return Order.from_mask(known_mask(task, grid, context, keep_cols))
