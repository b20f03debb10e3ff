r"""Shot-boundary detection: precision and recall of hard cuts, and clips that
would span a cut or a transition, on hand-checked footage and hard cases.

  python bench/cuts.py [--config=64x64_t20] [--media=../shared/media]
      [--footage=../shared/footage] [--seeds=3]

Footage: the files with ground truth in tests/data/cuts/*.json (Big Buck
Bunny in full and five Popeye excerpts), decoded as the config's clips are
(64x64 centre crop by default); files not on this machine are listed under
`missing`. Cases: mirai_jax/build/cut_cases.all_cases for each seed (cuts
between look-alike shots at 0.05-0.08 mean change, flashes and impact
frames, pans, shake, holds, fades and dissolves).

Prints one JSON line per benchmark. A detected cut counts when it is within
+-1 frame of a true one; detected cuts on a true transition (+-1) are neither
hits nor false alarms. `clips_spanning_cut`: clips of the config (its length
and stride, cut at the detected boundaries) holding both frame c-1 and c of
a true cut; `clips_in_transition`: clips holding a frame of a true
transition; `transitions_handled`: true transitions no clip touches;
`frames_in_false_transitions`: frames put in no shot, away from any true
transition (lost to clips, never a clip across a boundary).
`detect_s_per_video_min`: detection time per minute of video (decode not
counted). Figures: README, "Your own episodes" (shot boundaries).
"""

import glob
import json
import os
import platform
import sys
import time

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mirai_jax import dataset  # pylint: disable=g-import-not-at-top,wrong-import-position
from mirai_jax import video_io  # pylint: disable=g-import-not-at-top,wrong-import-position
from mirai_jax.build import cut_cases  # pylint: disable=g-import-not-at-top,wrong-import-position
from mirai_jax.build import shots  # pylint: disable=g-import-not-at-top,wrong-import-position

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CONFIG = flags.DEFINE_string('config', '64x64_t20', 'anime_clips config.')
_MEDIA = flags.DEFINE_string('media', os.path.join(_ROOT, '..', 'shared', 'media'),
                             'Folder of the test media (Popeye a, b).')
_FOOTAGE = flags.DEFINE_string(
    'footage', os.path.join(_ROOT, '..', 'shared', 'footage'),
    'Folder of the longer footage (Big Buck Bunny, Popeye c, d).')
_SEEDS = flags.DEFINE_integer('seeds', 3, 'Seeds of the generated hard cases.')


def score(found: shots.Found, cuts, transitions, n: int, length: int,
          stride: int) -> dict:
  """Counts for one video; transitions are [a, b) spans."""
  on_transition = lambda c: any(a - 1 <= c <= b for a, b in transitions)
  matched, false = set(), []
  # Exact matches first, so that a cut found at c and c-1 matches c itself.
  for c in sorted(found.cuts, key=lambda c: (c not in cuts, c)):
    hit = sorted((abs(t - c), t) for t in cuts if abs(t - c) <= 1 and t not in matched)
    if hit:
      matched.add(hit[0][1])
    elif not on_transition(c):
      false.append(c)
  clips = [(s, s + length)
           for a, b in shots.shot_bounds(n, found.cuts, found.transitions)
           for s in shots.clip_starts(a, b, length, stride)]
  touching = lambda a, b: [c for c in clips if c[0] < b and a < c[1]]
  return dict(
      true_cuts=len(cuts), hits=len(matched), false_cuts=len(false),
      false=sorted(false),
      missed=sorted(set(cuts) - matched),
      clips=len(clips),
      clips_spanning_cut=sum(1 for s, e in clips for c in cuts if s < c < e),
      transitions=len(transitions),
      clips_in_transition=sum(len(touching(a, b)) for a, b in transitions),
      transitions_handled=sum(1 for a, b in transitions if not touching(a, b)),
      detected_transitions=len(found.transitions),
      # Frames taken out of shots with no true transition near (+-3): clips
      # lost to objects sweeping past the lens, fog clearing and the like.
      frames_in_false_transitions=sum(
          1 for a, b in found.transitions for t in range(a, b)
          if not any(ta - 3 <= t < tb + 3 for ta, tb in transitions)))


def total(rows: list[dict]) -> dict:
  keys = ('true_cuts', 'hits', 'false_cuts', 'clips', 'clips_spanning_cut',
          'transitions', 'clips_in_transition', 'transitions_handled',
          'detected_transitions', 'frames_in_false_transitions')
  out = {k: sum(r[k] for r in rows) for k in keys}
  found = out['hits'] + out['false_cuts']
  out['precision'] = round(out['hits'] / found, 4) if found else 1.0
  out['recall'] = round(out['hits'] / out['true_cuts'], 4) if out['true_cuts'] else 1.0
  return out


def footage(spec) -> dict:
  rows, missing, seconds, video_s = [], [], 0.0, 0.0
  for path in sorted(glob.glob(os.path.join(_ROOT, 'tests', 'data', 'cuts', '*.json'))):
    with open(path) as f:
      truth = json.load(f)
    name = os.path.basename(truth['file'])
    src = next((os.path.join(d, name) for d in (_MEDIA.value, _FOOTAGE.value)
                if os.path.exists(os.path.join(d, name))), None)
    if not src:
      missing.append(name)
      continue
    decoded = video_io.decode(src, spec.height, spec.width, resize=spec.resize)
    t0 = time.perf_counter()
    found = shots.detect(decoded.frames, spec.cut_threshold, spec.cut_ratio)
    seconds += time.perf_counter() - t0
    video_s += len(decoded.frames) / float(decoded.fps)
    spans = [(t['start'], t['end'] + 1) for t in truth['transitions']]
    row = score(found, truth['cuts'], spans, len(decoded.frames), spec.frames,
                spec.stride)
    rows.append(dict(row, file=name))
  out = total(rows)
  out.update(files={r['file']: {k: r[k] for k in ('hits', 'true_cuts', 'false', 'missed')}
                    for r in rows},
             missing=missing, video_min=round(video_s / 60, 2),
             detect_s_per_video_min=round(seconds / max(video_s / 60, 1e-9), 2))
  return out


def cases(spec) -> dict:
  rows, failed, seconds, frames = [], [], 0.0, 0
  for seed in range(_SEEDS.value):
    for case in cut_cases.all_cases(seed, (spec.height, spec.width)):
      t0 = time.perf_counter()
      found = shots.detect(case.frames, spec.cut_threshold, spec.cut_ratio)
      seconds += time.perf_counter() - t0
      frames += len(case.frames)
      row = score(found, case.cuts, case.transitions, len(case.frames),
                  spec.frames, spec.stride)
      rows.append(row)
      if row['missed'] or row['false_cuts'] or row['transitions_handled'] < row['transitions']:
        failed.append(f'{seed}:{case.name}')
  out = total(rows)
  out.update(cases=len(rows), failed=failed,
             detect_s_per_video_min=round(seconds / max(frames / 24 / 60, 1e-9), 2))
  return out


def main(_):
  spec = dataset.make_config(_CONFIG.value).clip
  common = dict(config=_CONFIG.value, cpus=os.cpu_count(),
                machine=platform.processor() or platform.machine())
  print(json.dumps(dict(benchmark='cuts_footage', **footage(spec), **common)))
  print(json.dumps(dict(benchmark='cuts_cases', seeds=_SEEDS.value,
                        **cases(spec), **common)))


if __name__ == '__main__':
  app.run(main)
