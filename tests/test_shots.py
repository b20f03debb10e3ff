"""Cut detection and clip cutting."""

import numpy as np
import pytest

from mirai_jax import video_io
from mirai_jax.build import cut_cases
from mirai_jax.build import shots
from mirai_jax.build import synthetic


def test_cuts_of_synthetic_episodes_match_ground_truth(synthetic_episodes):
  for path in synthetic_episodes['paths']:
    truth = synthetic_episodes['truth'][path.split('/')[-1]]
    frames = video_io.decode(path, 64, 64).frames
    assert shots.detect_cuts(frames) == truth['cuts']


def _pan(n, speed, hold=2, block=16, seed=0, size=64):
  """Flat colour blocks panning at `speed` px per drawing, held on `hold`s."""
  rng = np.random.default_rng(seed)
  cells = rng.integers(0, 255, (size // block, 2 + (size + n * speed) // block, 3)
                       ).astype(np.uint8)
  wide = np.repeat(np.repeat(cells, block, 0), block, 1)
  return np.stack([wide[:, (k // hold) * speed:(k // hold) * speed + size]
                   for k in range(n)])


@pytest.mark.parametrize('hold', [1, 2, 3])
@pytest.mark.parametrize('speed,block', [(2, 16), (12, 8)])
def test_steady_pan_is_not_a_cut(hold, speed, block):
  # (12, 8): every frame changes about as much as a cut does.
  frames = _pan(90, speed=speed, hold=hold, block=block)
  assert shots.frame_differences(frames).max() > 0.02
  assert shots.detect_cuts(frames) == []


@pytest.mark.parametrize('hold', [1, 2])
def test_cut_between_pans_is_found(hold):
  a, b = _pan(40, 2, hold, seed=1), _pan(40, 2, hold, seed=2)
  assert shots.detect_cuts(np.concatenate([a, b])) == [40]


def test_held_drawings_after_a_long_hold_are_not_cuts():
  ep = synthetic.render_episode(3, seconds=6, height=64, width=64)
  assert shots.detect_cuts(ep.frames) == ep.truth['cuts']


@pytest.mark.parametrize('seed,target', [(0, 0.05), (1, 0.055), (2, 0.065),
                                         (3, 0.08)])
def test_cut_between_two_framings_of_one_scene_is_found(seed, target):
  # Same palette and background, another framing: the cut changes the
  # picture by only 0.05-0.08, the drawings inside the shots by ~0.02.
  case = cut_cases.similar_cut(seed, target)
  d = shots.frame_differences(case.frames)
  assert all(0.045 <= d[c] <= 0.15 for c in case.cuts)
  assert d[case.cuts[0]] < target + 0.01
  assert shots.detect_cuts(case.frames) == case.cuts == [30, 60]


@pytest.mark.parametrize('kind', ['white', 'invert', 'poster'])
def test_flashes_and_impact_frames_are_not_cuts(kind):
  case = cut_cases.flash(3, kind=kind)
  assert shots.frame_differences(case.frames).max() > 0.3
  assert shots.detect_cuts(case.frames) == []


@pytest.mark.parametrize('amount', [0.02, 0.05])
def test_camera_shake_is_not_a_cut(amount):
  case = cut_cases.shake(4, amount, n=48)
  assert shots.frame_differences(case.frames).max() > 0.05
  assert shots.detect_cuts(case.frames) == []


def test_cut_inside_camera_shake_is_found():
  case = cut_cases.shake(5, 0.03, n=60, cut=True)
  assert shots.detect_cuts(case.frames) == case.cuts == [30]


@pytest.mark.parametrize('hold', [3, 12])
def test_big_new_drawings_after_holds_are_not_cuts(hold):
  case = cut_cases.long_hold(6, hold=hold, n=48)
  assert shots.frame_differences(case.frames).max() > 0.05
  assert shots.detect_cuts(case.frames) == []


@pytest.mark.parametrize('kind,length', [('dissolve', 6), ('dissolve', 24),
                                         ('fade', 8), ('fade', 20)])
def test_fades_and_dissolves_belong_to_no_shot(kind, length):
  case = cut_cases.fade(7, length, n=30, kind=kind)
  found = shots.detect(case.frames)
  assert found.cuts == []
  (a, b), = case.transitions
  assert any(s <= a and b <= e for s, e in found.transitions), found
  for s, e in shots.shot_bounds(len(case.frames), found.cuts, found.transitions):
    assert e <= a or s >= b  # no shot (so no clip) holds a blended frame


@pytest.mark.parametrize('seed,kind,length,pan', [
    (0, 'iris', 4, 0.003), (1, 'iris', 4, 0.003), (0, 'bar', 8, 0.0),
    (2, 'bar', 3, 0.003)])
def test_wipes_belong_to_no_shot(seed, kind, length, pan):
  case = cut_cases.wipe(seed, length, kind=kind, pan=pan)
  found = shots.detect(case.frames)
  (a, b), = case.transitions
  shots_ = shots.shot_bounds(len(case.frames), found.cuts, found.transitions)
  assert all(e <= a or s >= b for s, e in shots_), found
  assert sum(e - s for s, e in shots_) >= len(case.frames) - (b - a) - 10


def _busy_pan(n, base, seed, speed=12, block=8, size=64):
  """Blocks of one palette panning `speed` px a frame: every frame changes
  more than many cuts do."""
  rng = np.random.default_rng(seed)
  cells = np.array(base) + rng.integers(0, 64, (size // block,
                                                2 + (size + n * speed) // block, 3))
  wide = np.repeat(np.repeat(cells.astype(np.uint8), block, 0), block, 1)
  return np.stack([wide[:, k * speed:k * speed + size] for k in range(n)])


def test_cut_hidden_by_fast_action_is_found_in_the_colours():
  # A whip over sky-blue blocks, one frame of something rushing the lens,
  # then a whip over brown ground (Big Buck Bunny, frame 10614): the pixel
  # step drowns in the motion on both sides; the colours change for good.
  sky = _busy_pan(30, (60, 140, 190), seed=1)
  lens = np.full((1, 64, 64, 3), (235, 225, 220), np.uint8)
  ground = _busy_pan(30, (120, 80, 40), seed=2)
  assert shots.frame_differences(sky)[1:].min() > 0.07
  assert shots.detect_cuts(np.concatenate([sky, lens, ground])) == [31]
  assert shots.detect_cuts(_busy_pan(60, (60, 140, 190), 4)) == []


def test_shot_bounds_leave_transitions_out():
  assert shots.shot_bounds(100, [50], [(10, 20), (45, 55)]) == [
      (0, 10), (20, 45), (55, 100)]
  assert shots.shot_bounds(30, [], [(0, 5)]) == [(5, 30)]


def test_no_cuts_above_threshold_one():
  case = cut_cases.similar_cut(0, 0.08)
  assert shots.detect(case.frames, threshold=1.1) == shots.Found([], [])


def test_clips_never_span_a_cut():
  bounds = shots.shot_bounds(100, [23, 50, 51, 90])
  assert bounds == [(0, 23), (23, 50), (50, 51), (51, 90), (90, 100)]
  for a, b in bounds:
    for s in shots.clip_starts(a, b, 20, 3):
      assert a <= s and s + 20 <= b
  assert list(shots.clip_starts(0, 23, 20, 3)) == [0, 3]
  assert list(shots.clip_starts(23, 50, 20, 10)) == [23]
  assert list(shots.clip_starts(50, 51, 20, 1)) == []


def test_is_static():
  still = np.full((20, 8, 8, 3), 90, np.uint8)
  assert shots.is_static(still)
  moving = still.copy()
  moving[7, 3, 3] = 200
  assert not shots.is_static(moving)
