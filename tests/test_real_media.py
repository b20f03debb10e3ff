"""The dataset from real animation files (../shared/media; skipped without it)."""

import collections
import os

import numpy as np
import pytest

from mirai_jax.data import dataset
from mirai_jax.data import shots
from mirai_jax.data import video_io


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
  assert set(skipped) == {'CREDITS.md', 'big_buck_bunny_5_frames.mp4'}
  assert 'too short' in skipped['big_buck_bunny_5_frames.mp4']
  assert 'not a readable video' in skipped['CREDITS.md']
  used = {r['episode'] for r in meta['episodes']}
  assert used == set(os.listdir(media_dir)) - set(skipped)
  per = collections.Counter(r['episode'].decode() for r in records)
  assert set(per) == used


def test_sound_layouts_and_silent_files(real):
  _, records = real
  by = collections.defaultdict(list)
  for r in records:
    by[r['episode'].decode()].append(r)
  for name in ('big_buck_bunny_480p_30s.mp4',  # AAC 5.1
               'big_buck_bunny_432_433.webm',  # Vorbis stereo
               'sintel_2s.mp4'):  # MP3 stereo
    assert all(r['has_audio'] for r in by[name]), name
    loud = np.mean([np.abs(r['audio'].astype(np.float32)).mean() for r in by[name]])
    assert loud > 50, (name, loud)
  for name in ('popeye_1936_excerpt_a.mkv', 'popeye_1936_excerpt_b.mkv'):
    assert by[name] and not any(r['has_audio'] for r in by[name])


def test_big_buck_bunny_cuts(real, media_dir):
  # The first 30 s hold three hard cuts (CREDITS.md); the fade in from black
  # at the start is not one.
  builder, _ = real
  report = {r['episode']: r for r in builder.info.metadata['episodes']}
  assert report['big_buck_bunny_480p_30s.mp4']['shots'] == 4
  frames = video_io.decode(os.path.join(media_dir,
                                        'big_buck_bunny_480p_30s.mp4'), 64, 64).frames
  cuts = shots.detect_cuts(frames)
  # Around each cut the picture changes completely, inside shots it does not.
  d = shots.frame_differences(frames)
  for c in cuts:
    assert d[c] > 4 * np.median(d[max(0, c - 12):c])


def test_cut_inside_a_busy_fight_is_found(media_dir):
  # Popeye (b) cuts at frame 1086 in the middle of fast action: the change
  # is only ~2.4x the surrounding motion.
  frames = video_io.decode(os.path.join(media_dir, 'popeye_1936_excerpt_b.mkv'),
                           64, 64).frames
  assert shots.detect_cuts(frames) == [297, 657, 962, 1086]
