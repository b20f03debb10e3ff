"""Which episode goes to which split, and whether a run's splits are usable.

An episode's split comes from a stable hash of its file name (80/10/10), so
the same name lands in the same split on every machine. Two rules sit on
top, both recorded in the dataset's metadata (`split_episodes`,
`split_moves`):

- Kept: when a dataset is rebuilt (episodes added or removed), every episode
  that was in the old build keeps its old split. Adding episodes never moves
  one, so a checkpoint's validation and test episodes stay unseen.
- Filled: a small folder whose hash leaves a split without a usable episode
  moves one new episode into it (the one whose hash lies nearest that
  split's share), as long as that leaves its own split non-empty. With 3 or
  more usable episodes no split is empty.

A split file ({"train": [...], ...}) replaces both rules.
"""

from __future__ import annotations

import hashlib
from typing import Mapping, Optional

from mirai_jax import errors

WEIGHTS = {'train': 0.8, 'validation': 0.1, 'test': 0.1}


def unit(name: str) -> float:
  """A stable number in [0, 1) from the episode name (not `hash()`: that
  changes between Python processes)."""
  return int.from_bytes(hashlib.sha256(name.encode('utf-8')).digest()[:8],
                        'big') / 2.0**64


def _ranges(weights: Mapping[str, float]) -> dict[str, tuple[float, float]]:
  total, acc, out = sum(weights.values()), 0.0, {}
  for name, w in weights.items():
    out[name] = (acc, acc + w / total)
    acc += w / total
  return out


def by_hash(name: str, weights: Mapping[str, float] = WEIGHTS) -> str:
  u = unit(name)
  for split, (_, hi) in _ranges(weights).items():
    if u < hi:
      return split
  return list(weights)[-1]


def assign(names: list[str], usable: set[str],
           weights: Mapping[str, float] = WEIGHTS,
           kept: Optional[Mapping[str, str]] = None
           ) -> tuple[dict[str, str], list[str]]:
  """({episode: split}, notes on the episodes moved to fill a split).

  `kept` is the old build's {episode: split}: those episodes stay put.
  `usable` are the episodes that can give clips (unusable ones keep their
  hash split, since they give no clips anyway).
  """
  kept = {n: s for n, s in (kept or {}).items() if s in weights}
  split = {n: kept.get(n) or by_hash(n, weights) for n in names}
  ranges, moves = _ranges(weights), []

  def members(s):
    return [n for n in names if split[n] == s and n in usable]

  # Small splits first: they are the ones a hash leaves empty.
  for s in sorted(weights, key=lambda s: (weights[s], s)):
    if members(s):
      continue
    lo, hi = ranges[s]
    candidates = [n for n in names if n in usable and n not in kept
                  and len(members(split[n])) >= 2]
    if not candidates:
      continue
    distance = lambda n: (min(abs(unit(n) - lo), abs(unit(n) - hi)), n)
    pick = min(candidates, key=distance)
    moves.append(f'{pick}: {split[pick]} -> {s} (the hash left {s} without '
                 'a usable episode)')
    split[pick] = s
  return split, moves


# The splits each stage reads, and the config field of the batch it needs
# whole (None: any number of clips will do; training batches wrap around
# the epoch, evaluation batches do not).
NEEDS = {
    'preview': lambda c: [(c.preview.split, None)],
    'tokenizer': lambda c: [('train', None),
                            ('validation', 'tokenizer.eval_batch_size')],
    'tokenize': lambda c: [],
    'transformer': lambda c: [('train', None),
                              ('validation', 'transformer.eval_batch_size')],
    'evaluate': lambda c: [(c.evaluate.split, None)],
    'predict': lambda c: [],
}


def _get(config, dotted: str):
  for part in dotted.split('.'):
    config = config[part]
  return config


def check(config, stages, sizes: Mapping[str, int], where: str,
          empty_note: str = '') -> None:
  """Raises UserError, before any compute, when a stage in `stages` needs a
  split that `sizes` ({split: clips}) lacks or that is smaller than one of
  its batches. All problems at once."""
  problems = []
  for stage in stages:
    for split, field in NEEDS.get(stage, lambda c: [])(config):
      n = sizes.get(split, 0)
      if not n:
        problems.append(
            f'{stage} needs the {split!r} split, which has no clips in '
            f'{where}{empty_note}')
      elif field and _get(config, field) > n:
        problems.append(
            f'--config.{field}={_get(config, field)} is more than the '
            f'{n} clips of the {split!r} split: lower it to at most {n}')
      if stage == 'evaluate' and n == 1:
        problems.append(f'evaluate needs at least 2 clips in {split!r} '
                        '(the audio ablation swaps sound between clips)')
  if problems:
    raise errors.UserError('\n'.join(dict.fromkeys(problems)))
