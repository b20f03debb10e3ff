"""The anime_clips dataset built from synthetic episodes and bad files."""

import collections
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import helpers
from mirai_jax import dataset
from mirai_jax import errors
from mirai_jax import storage
from mirai_jax import video_io
from mirai_jax.build import clips
from mirai_jax.build import episodes
from mirai_jax.build import synthetic
from mirai_jax.data import pipeline
from mirai_jax.data import splits

T, STRIDE = 20, 10


def _records(builder):
  out = []
  for split in builder.info.splits:
    source = builder.as_data_source(split=split)
    out += [dict(source[i], split=split) for i in range(len(source))]
  return out


@pytest.fixture(scope='module')
def records(built):
  return _records(built['builder'])


def test_bad_files_are_skipped_by_name_with_reasons(built):
  skipped = {s['episode']: s['reason']
             for s in built['builder'].info.metadata['skipped']}
  assert set(skipped) == set(built['bad'])
  assert 'empty' in skipped['-empty file.mp4']
  assert 'not a readable video' in skipped['notes.txt']
  assert 'not a readable video' in skipped['truncated $(x) épisode.mp4']
  assert 'audio only' in skipped['song.m4a']
  assert 'too short' in skipped['short: 5 frames.mp4']
  summary = dataset.summary(built['builder'])
  for name in built['bad']:
    assert name in summary


def test_clip_counts_follow_the_true_shots(built, records):
  per_episode = collections.Counter(r['episode'].decode() for r in records)
  for name, truth in built['episodes']['truth'].items():
    expected = sum(len(range(a, b - T + 1, STRIDE)) for a, b in truth['shots'])
    assert per_episode[name] == expected, name


def test_clips_are_exact_source_frames_inside_one_shot(built, records):
  for name, truth in built['episodes']['truth'].items():
    path = os.path.join(built['manual'], name)
    decoded = video_io.decode(path, 64, 64, sample_rate=16000)
    mine = [r for r in records if r['episode'].decode() == name]
    assert mine
    for r in mine:
      s = int(r['start_frame'])
      shot = [i for i, (a, b) in enumerate(truth['shots']) if a <= s < b]
      a, b = truth['shots'][shot[0]]
      assert s + T <= b, f'{name}: clip at {s} crosses the cut at {b}'
      np.testing.assert_array_equal(r['video'], decoded.frames[s:s + T])
      np.testing.assert_array_equal(r['audio'], decoded.audio_span(s, s + T))
      assert r['has_audio'] and r['sample_rate'] == 16000
      assert (r['fps_num'], r['fps_den']) == (24000, 1001)
      assert abs(r['fps'] - 24000 / 1001) < 1e-5


def test_the_mouth_moves_with_the_sound_in_the_records(built, records):
  """Per-frame loudness of a record's audio follows the drawn mouth."""
  mouth, loud = [], []
  for r in records:
    name = r['episode'].decode()
    if name not in built['episodes']['truth']:
      continue
    truth = built['episodes']['truth'][name]
    s = int(r['start_frame'])
    edges = np.round(np.arange(T + 1) * 16000 / r['fps']).astype(int)
    a = np.abs(r['audio'].astype(np.float32))
    loud += [a[edges[i]:edges[i + 1]].mean() for i in range(T)]
    mouth += truth['mouth_open'][s:s + T]
  mouth, loud = np.array(mouth), np.array(loud)
  in_sync = np.corrcoef(mouth, loud)[0, 1]
  shifted = np.corrcoef(mouth[3:], loud[:-3])[0, 1]
  assert in_sync > 0.7, in_sync
  assert in_sync > shifted + 0.1, (in_sync, shifted)


def test_splits_follow_the_split_file_and_share_no_episode(built, records):
  with open(built['split_file']) as f:
    wanted = {n: s for s, names in json.load(f).items() for n in names}
  seen = collections.defaultdict(set)
  for r in records:
    seen[r['episode'].decode()].add(r['split'])
  for name, splits in seen.items():
    assert splits == {wanted[name]}, name


def test_video_without_sound_is_kept_and_marked(built, records):
  mine = [r for r in records if r['episode'].decode() == built['silent']]
  assert len(mine) == len(range(0, 60 - T + 1, STRIDE))
  for r in mine:
    assert not r['has_audio']
    assert len(r['audio']) in (13333, 13334) and not r['audio'].any()


def test_hash_split_is_stable_and_weighted():
  weights = {'train': 0.8, 'validation': 0.1, 'test': 0.1}
  names = [f'Show S01E{i:03d}.mkv' for i in range(2000)]
  first = [splits.by_hash(n, weights) for n in names]
  assert first == [splits.by_hash(n, dict(weights)) for n in names]
  counts = collections.Counter(first)
  assert 1450 < counts['train'] < 1750
  assert 120 < counts['test'] < 290 and 120 < counts['validation'] < 290


def test_static_clips_can_be_dropped(tmp_path):
  still = np.repeat(helpers.barcode_frames(1), 40, axis=0)
  moving = helpers.barcode_frames(40)
  path = str(tmp_path / 'held.mp4')
  video_io.write_video(path, np.concatenate([still, moving]), 24)
  spec = clips.ClipSpec(frames=10, stride=10, cut_threshold=1.1)  # no cuts
  kept, report = clips.episode_clips(path, 'held.mp4', spec)
  assert len(kept) == 8 and report.static_dropped == 0
  import dataclasses  # pylint: disable=g-import-not-at-top
  kept, report = clips.episode_clips(
      path, 'held.mp4', dataclasses.replace(spec, drop_static=True))
  assert report.static_dropped == 4
  assert [int(r['start_frame']) for r in kept] == [40, 50, 60, 70]


def test_failed_rebuild_keeps_the_old_dataset(built, tmp_path):
  builder = built['builder']
  before = builder.info.splits['train'].num_examples
  bad_split = tmp_path / 'splits.json'
  bad_split.write_text(json.dumps({'train': ['missing.mp4']}))
  with pytest.raises(ValueError, match='missing.mp4'):
    dataset.build(built['manual'], built['data_dir'], '64x64_t20',
                  split_file=str(bad_split), overwrite=True)
  again = pipeline.dataset_builder(built['data_dir'])
  assert again.info.splits['train'].num_examples == before
  assert [d for d in os.listdir(built['data_dir']) if d.startswith('.building')] == []


def test_a_disk_without_room_is_refused_before_decoding(built, monkeypatch):
  builder = built['builder']
  before = builder.info.splits['train'].num_examples
  # The estimate is each episode's frames at the clip size, before
  # compression: a few MB for the test episodes.
  spec = builder.builder_config.clip
  listed = episodes.list_episodes(built['manual'])
  probes = episodes.probe_all(listed, 256)
  need = sum(clips.record_bytes(spec, p) for p in probes.values() if p)
  assert 0 < need < 10 ** 9
  monkeypatch.setattr(dataset, '_SPILL_BYTES', need // 2)
  free = collections.namedtuple('usage', 'total used free')(2 ** 40, 0, 1000)
  monkeypatch.setattr(storage.shutil, 'disk_usage', lambda path: free)
  decoded = []
  monkeypatch.setattr(clips, 'episode_clips',
                      lambda *a, **k: decoded.append(a) or ([], None))
  with pytest.raises(errors.UserError, match=r'--data_dir=.*building the clips '
                     r'of \d+ episode\(s\) needs about .* free space'):
    dataset.build(built['manual'], built['data_dir'], '64x64_t20',
                  overwrite=True)
  assert not decoded
  again = pipeline.dataset_builder(built['data_dir'])
  assert again.info.splits['train'].num_examples == before


def test_killed_build_never_reads_as_complete(built, tmp_path):
  data_dir = str(tmp_path / 'out')
  env = dict(os.environ, PYTHONUNBUFFERED='1')
  proc = subprocess.Popen(
      [sys.executable, '-m', 'mirai_jax.prepare', f'--manual_dir={built["manual"]}',
       f'--data_dir={data_dir}', '--workers=1',
       f'--split_file={built["split_file"]}'],
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
  deadline = time.time() + 120
  out = b''
  while time.time() < deadline:  # kill it once it is writing clips
    line = proc.stdout.readline()
    out += line
    if b'frames (' in line or not line:
      break
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert b'frames (' in out, out.decode()[-2000:]
  with pytest.raises(FileNotFoundError):
    pipeline.dataset_builder(data_dir)
  # The next build does not trip over the remains and reads as complete.
  builder = dataset.build(built['manual'], data_dir, workers=2,
                          split_file=built['split_file'])
  assert builder.info.splits['train'].num_examples > 0
  assert [d for d in os.listdir(data_dir) if d.startswith('.building')] == []


def test_config_errors_name_the_field():
  with pytest.raises(ValueError, match='--name'):
    dataset.make_config('64x64_t20', stride=5)
  with pytest.raises(ValueError, match='resize'):
    dataset.make_config('64x64_t20', name='x', resize='zoom')
  with pytest.raises(ValueError, match='fps'):
    dataset.make_config('64x64_t20', name='x', fps='fast')
  with pytest.raises(ValueError, match='not one of'):
    dataset.make_config('32x32')
  cfg = dataset.make_config('64x64_t20', name='64x64_t20_s5', stride=5)
  assert cfg.clip.stride == 5 and cfg.clip.frames == 20


def test_a_builder_leaves_no_temporary_directory(tmp_path, monkeypatch):
  # tfds looks a dataset up on its bucket before a first build, in a
  # temporary directory it never removes: one per run without the override.
  import tempfile  # pylint: disable=g-import-not-at-top
  from tfds_builders import anime_clips  # pylint: disable=g-import-not-at-top
  scratch = tmp_path / 'tmp'
  scratch.mkdir()
  monkeypatch.setattr(tempfile, 'tempdir', str(scratch))
  builder = anime_clips.Builder(config=dataset.make_config(),
                                data_dir=str(tmp_path))
  assert builder.info.features is not None
  assert list(scratch.iterdir()) == []


def test_missing_or_empty_manual_dir(tmp_path):
  with pytest.raises(FileNotFoundError, match='no such folder'):
    dataset.build(str(tmp_path / 'nope'), str(tmp_path / 'out'))
  (tmp_path / 'empty').mkdir()
  with pytest.raises(FileNotFoundError, match='empty'):
    dataset.build(str(tmp_path / 'empty'), str(tmp_path / 'out'))


def test_rebuilds_only_when_the_episodes_change(built, tmp_path):
  manual = tmp_path / 'manual'
  manual.mkdir()
  for p in built['episodes']['paths'][:2]:
    os.symlink(p, manual / os.path.basename(p))
  out = str(tmp_path / 'out')
  split = tmp_path / 'splits.json'
  split.write_text(json.dumps({'train': ['ep000.mp4', 'ep001.mp4']}))
  first = dataset.build(str(manual), out, split_file=str(split))
  n = first.info.splits['train'].num_examples
  info = os.path.join(first.data_dir, 'dataset_info.json')
  mtime = os.stat(info).st_mtime_ns
  dataset.build(str(manual), out, split_file=str(split))
  assert os.stat(info).st_mtime_ns == mtime  # reused
  os.symlink(built['episodes']['paths'][2], manual / 'ep002.mp4')
  split.write_text(json.dumps({'train': ['ep000.mp4', 'ep001.mp4', 'ep002.mp4']}))
  third = dataset.build(str(manual), out, split_file=str(split))
  assert third.info.splits['train'].num_examples > n


def test_16_9_clips_of_16_9_episodes_have_true_sides(tmp_path):
  # What outpainting trains on: 64x112 clips whose side columns are picture,
  # not the black bars a letterboxed 4:3 source would give.
  (path,) = synthetic.write_episodes(str(tmp_path / 'wide'), 1, seconds=2.0,
                                     height=240, width=426, seed=3)
  wide = clips.NAMED['64x112_t20'][1]
  kept, _ = clips.episode_clips(path, os.path.basename(path), wide)
  video = np.stack([np.asarray(r['video']) for r in kept])
  assert video.shape[2:] == (64, 112, 3)
  sides = np.concatenate([video[..., :14, :], video[..., -14:, :]], -2)
  assert sides.mean() > 20 and sides.std() > 5
  # The same episode letterboxed into 16:9 from a 4:3 crop keeps bars.
  tall = synthetic.write_episodes(str(tmp_path / 'tall'), 1, seconds=2.0,
                                  seed=3)[0]
  pad = clips.NAMED['64x112_t20_pad'][1]
  kept, _ = clips.episode_clips(tall, os.path.basename(tall), pad)
  bars = np.asarray(kept[0]['video'])[..., :10, :]
  assert bars.max() < 20
