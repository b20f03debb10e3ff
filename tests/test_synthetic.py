"""The demo's synthetic episodes: scenery, camera pans and hills (what a
widened frame's sides can hold)."""

import json
import os

import numpy as np

from mirai_jax.build import synthetic


def _held_pairs(ep, shot):
  """(drawing frame, the frame that holds its cels) pairs of one shot."""
  a, b = ep.truth['shots'][shot]
  return [(k, k + 1) for k in range(a, b - 1, 2)]


def test_pans_move_the_background_on_ones_under_cels_held_on_twos():
  eps = [synthetic.render_episode(seed, 8.0, 120, 213, scenery=True)
         for seed in range(3)]
  pans = [(e, i) for e in eps for i, v in enumerate(e.truth['pan_speed']) if v]
  still = [(e, i) for e in eps for i, v in enumerate(e.truth['pan_speed'])
           if not v]
  assert pans and still  # half the shots pan
  for ep, shot in pans:
    speed = ep.truth['pan_speed'][shot]
    a, b = ep.truth['shots'][shot]
    assert 1.0 <= abs(speed) <= 3.0  # 2-6 pixels a frame at height 240
    for k, h in _held_pairs(ep, shot)[:6]:
      step = lambda j: round(abs(speed) * (j - a if speed > 0 else b - 1 - j))
      d = step(h) - step(k)  # columns the background moved
      f0, f1 = ep.frames[k].astype(int), ep.frames[h].astype(int)
      # The content moves against the camera: with speed > 0 it moves left.
      shifted = np.roll(f0, -d, axis=1)
      inner = slice(abs(d), f0.shape[1] - abs(d))
      same_cel = (f1 == f0).all(-1)[:, inner]
      moved_back = (f1 == shifted).all(-1)[:, inner]
      assert (same_cel | moved_back).mean() > 0.99
      assert (~same_cel).mean() > 0.02  # the background did move
      assert same_cel.mean() > 0.1  # the cels did not
  for ep, shot in still:
    for k, h in _held_pairs(ep, shot)[:3]:
      np.testing.assert_array_equal(ep.frames[h], ep.frames[k])


def test_scenery_draws_trees_and_plain_episodes_have_none():
  tree = np.array(synthetic._TRUNK, np.uint8)
  has_trunk = lambda ep: (ep.frames == tree).all(-1).any()
  plain = synthetic.render_episode(0, 4.0, 120, 160)
  assert not any(plain.truth['pan_speed']) and not plain.truth['scenery']
  assert not has_trunk(plain)
  assert has_trunk(synthetic.render_episode(0, 4.0, 120, 160, scenery=True))


def test_hills_roll_the_horizon_and_plain_episodes_keep_it_straight():
  def horizon_rows(ep):
    """The first row of ground (or of its outline) in each column, under
    the sky, of the first frame's left quarter (where no cel is drawn)."""
    frame = ep.frames[0].astype(int)
    sky = frame[0, 0]
    w = frame.shape[1] // 4
    return np.argmax((frame[:, :w] != sky).any(-1), axis=0)
  flat = horizon_rows(synthetic.render_episode(1, 2.0, 240, 426))
  hilly = horizon_rows(synthetic.render_episode(1, 2.0, 240, 426, hills=True))
  assert flat.max() - flat.min() <= 1
  assert hilly.max() - hilly.min() >= 4  # 8-22 + 2-6 pixel waves


def test_episodes_are_rendered_again_when_scenery_changes(tmp_path):
  out = str(tmp_path / 'eps')
  (path,) = synthetic.write_episodes(out, 1, seconds=1.0, height=64, width=64)
  truth = os.path.join(out + '_truth', 'ep000.json')
  before = os.stat(path).st_mtime_ns
  synthetic.write_episodes(out, 1, seconds=1.0, height=64, width=64)
  assert os.stat(path).st_mtime_ns == before  # kept
  synthetic.write_episodes(out, 1, seconds=1.0, height=64, width=64,
                           scenery=True)
  with open(truth) as f:
    assert json.load(f)['scenery'] is True
  synthetic.write_episodes(out, 1, seconds=1.0, height=64, width=64,
                           scenery=True, hills=True)
  with open(truth) as f:
    assert json.load(f)['hills'] is True
