"""The dataset from real animation files (../shared/media; skipped without it)."""

import collections
import json
import os

import numpy as np
import pytest

from mirai_jax import dataset
from mirai_jax import video_io
from mirai_jax.build import shots


@pytest.fixture(scope='module')
def real(media_dir, tmp_path_factory):
  # The folder as it is, CREDITS.md included: a stray non-video file.
  root = tmp_path_factory.mktemp('real')
  split = root / 'splits.json'
  names = sorted(os.listdir(media_dir))
  split.write_text('{"train": %s}' % str(names).replace("'", '"'))
  builder = dataset.build(media_dir, str(root / 'tfds'), workers=2,
                          split_file=str(split))
  source = builder.as_data_source(split='train')
  return builder, [source[i] for i in range(len(source))]


def test_every_real_file_is_used_or_skipped_with_a_reason(real, media_dir):
  builder, records = real
  meta = builder.info.metadata
  skipped = {s['episode']: s['reason'] for s in meta['skipped']}
  # sintel_2s is a fade in from a white-out (the girl comes out of the snow
  # fog), so none of its 2 s is a shot: its frames belong to no clip.
  assert set(skipped) == {'CREDITS.md', 'big_buck_bunny_5_frames.mp4',
                          'sintel_2s.mp4'}
  assert 'too short' in skipped['big_buck_bunny_5_frames.mp4']
  assert 'too short' in skipped['sintel_2s.mp4']
  assert 'not a readable video' in skipped['CREDITS.md']
  used = {r['episode'] for r in meta['episodes']}
  assert used == set(os.listdir(media_dir)) - set(skipped)
  per = collections.Counter(r['episode'].decode() for r in records)
  assert set(per) == used


def test_sound_layouts_and_silent_files(real, media_dir):
  _, records = real
  by = collections.defaultdict(list)
  for r in records:
    by[r['episode'].decode()].append(r)
  for name in ('big_buck_bunny_480p_30s.mp4',  # AAC 5.1
               'big_buck_bunny_432_433.webm'):  # Vorbis stereo
    assert all(r['has_audio'] for r in by[name]), name
    loud = np.mean([np.abs(r['audio'].astype(np.float32)).mean() for r in by[name]])
    assert loud > 50, (name, loud)
  # MP3 stereo: sintel_2s gives no clip (all fade), so read its sound directly.
  decoded = video_io.decode(os.path.join(media_dir, 'sintel_2s.mp4'), 64, 64)
  assert np.abs(decoded.audio_span(0, 48).astype(np.float32)).mean() > 50
  for name in ('popeye_1936_excerpt_a.mkv', 'popeye_1936_excerpt_b.mkv'):
    assert by[name] and not any(r['has_audio'] for r in by[name])


def test_big_buck_bunny_cuts(real, media_dir):
  # The first 30 s: a fade in from black (a transition, in no shot), three
  # hard cuts, then the title. The full film's cut list (tests/data/cuts)
  # has them one frame later: this file starts one frame into the film.
  builder, _ = real
  report = {r['episode']: r for r in builder.info.metadata['episodes']}
  frames = video_io.decode(os.path.join(media_dir,
                                        'big_buck_bunny_480p_30s.mp4'), 64, 64).frames
  found = shots.detect(frames)
  truth = _truth('big_buck_bunny_full_360p')
  cuts = [c - 1 for c in truth['cuts'][:3]]
  # "The Peach Open Movie Project presents" popping in at 500 reads as a cut:
  # one of the false alarms that bench/cuts.py counts.
  assert sorted(set(found.cuts) - {500}) == cuts
  (a, b), *_ = found.transitions
  assert a == 0 and b >= truth['transitions'][0]['end']  # the fade in from black
  assert report['big_buck_bunny_480p_30s.mp4']['shots'] == len(
      shots.shot_bounds(len(frames), found.cuts, found.transitions))


def _truth(stem):
  path = os.path.join(os.path.dirname(__file__), 'data', 'cuts', stem + '.json')
  with open(path) as f:
    return json.load(f)


@pytest.mark.parametrize('stem', ['popeye_1936_excerpt_a', 'popeye_1936_excerpt_b'])
def test_popeye_cuts_match_the_checked_lists(media_dir, stem):
  # Hand-checked lists (tests/data/cuts); excerpt b cuts at frame 1086 in
  # the middle of a fight, where the change is only ~2.4x the motion around
  # it, and in excerpt a a bird flies across the lens (not a cut; its wing
  # filling the frame reads as a wipe: frames in no shot, a few percent).
  truth = _truth(stem)
  decoded = video_io.decode(os.path.join(media_dir, stem + '.mkv'), 64, 64)
  assert len(decoded.frames) == truth['frames']
  assert f'{decoded.fps.numerator}/{decoded.fps.denominator}' == truth['fps']
  found = shots.detect(decoded.frames)
  assert found.cuts == truth['cuts']
  assert truth['transitions'] == []
  assert sum(b - a for a, b in found.transitions) <= 0.03 * truth['frames']
