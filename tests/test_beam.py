"""The anime_clips builder under Apache Beam writes the local build's records."""

import importlib
import json
import os

from etils.epath import backend as epath_backend
import fsspec
from fsspec.implementations import memory
import numpy as np
import pytest
import tensorflow_datasets as tfds

import helpers
from mirai_jax import dataset
from mirai_jax.build import synthetic

# apache-beam is in the test extra; elsewhere (a plain install) skip.
pytest.importorskip('apache_beam')

# Tiny clips keep both builds to a few seconds each on two cores.
CLIP = dict(height=24, width=32, frames=8, stride=8, sample_rate=8000)
# Beam's DirectRunner first tries the Prism runner, which it downloads from
# GitHub; the FnApiRunner is what it falls back to. Threads, not processes:
# the bucket below lives in this process's memory.
RUNNER = 'FnApiRunner'
OPTIONS = ['--direct_num_workers=2', '--direct_running_mode=multi_threading']


@pytest.fixture(scope='module')
def builds(tmp_path_factory):
  root = tmp_path_factory.mktemp('beam')
  manual = str(root / 'episodes')
  paths = synthetic.write_episodes(manual, 4, seconds=3.0, height=48,
                                   width=64, seed=11)
  with open(os.path.join(manual, 'notes.txt'), 'w') as f:
    f.write('not a video\n')
  names = [os.path.basename(p) for p in paths]
  split_file = str(root / 'splits.json')
  with open(split_file, 'w') as f:
    json.dump({'train': names[:2] + ['notes.txt'], 'validation': names[2:3],
               'test': names[3:]}, f)
  config = dataset.make_config('64x64_t20', 'beam_test', **CLIP)
  local = dataset.build(manual, str(root / 'local'), config,
                        split_file=split_file, workers=2)
  beamed = dataset.build(manual, str(root / 'beam'), config,
                         split_file=split_file, beam_runner=RUNNER,
                         beam_options=OPTIONS)
  return dict(local=local, beam=beamed, names=names, manual=manual,
              config=config, split_file=split_file)


def _records(builder, split):
  """[(key the builder gave the record, record)] in file order."""
  source = builder.as_data_source(split=split)
  records = [source[i] for i in range(len(source))]
  return [(f"{r['episode'].decode()}:{int(r['start_frame']):09d}", r)
          for r in records]


def _assert_same_records(local, other, names):
  assert sorted(other.info.splits) == sorted(local.info.splits) == [
      'test', 'train', 'validation']
  episodes = set()
  for split in local.info.splits:
    want, got = _records(local, split), _records(other, split)
    # Both writers order records by a hash of their key: the same order
    # means the same keys. (The files themselves may differ: TFDS does not
    # serialize its feature map deterministically across processes.)
    assert [k for k, _ in got] == [k for k, _ in want], split
    assert len(dict(want)) == len(want) > 0, split  # no duplicate keys
    want, got = dict(want), dict(got)
    for key in sorted(want):
      a, b = want[key], got[key]
      assert sorted(a) == sorted(b), key
      for field in a:
        assert np.asarray(a[field]).dtype == np.asarray(b[field]).dtype, field
        assert np.asarray(a[field]).tobytes() == np.asarray(b[field]).tobytes(), (
            key, field)
    episodes |= {k.split(':')[0] for k in want}
  assert episodes == set(names)


def _metadata(builder):
  m = dict(builder.info.metadata)
  m.pop('manual_dir_fingerprint')
  # Decoding time is the only thing allowed to differ.
  m['episodes'] = [dict(e, decode_seconds=0) for e in m['episodes']]
  return m


def test_every_split_has_the_same_records(builds):
  _assert_same_records(builds['local'], builds['beam'], builds['names'])


def test_reports_and_skipped_files_reach_the_metadata(builds):
  local = _metadata(builds['local'])
  # Splits by name, then episodes by name, as the local build goes.
  assert [e['episode'] for e in local['episodes']] == [
      'ep003.mp4', 'ep000.mp4', 'ep001.mp4', 'ep002.mp4']
  assert [s['episode'] for s in local['skipped']] == ['notes.txt']
  assert _metadata(builds['beam']) == local
  # The workers' report files must not be left in the dataset.
  assert sorted(os.listdir(builds['beam'].data_dir)) == sorted(
      os.listdir(builds['local'].data_dir))


class _MemoryBucket(memory.MemoryFileSystem):
  """gs:// held in this process's memory, in place of gcsfs."""
  protocol = ('gs', 'gcs')
  store = {}
  pseudo_dirs = ['']

  @classmethod
  def _strip_protocol(cls, path):
    path = fsspec.utils.stringify_path(path)
    for prefix in ('gs://', 'gcs://'):
      path = path.removeprefix(prefix)
    return super()._strip_protocol(path)


@pytest.fixture
def bucket(monkeypatch):
  # The module, not the read-only view that `fsspec.registry` names.
  registry = importlib.import_module('fsspec.registry')
  for name in ('gs', 'gcs'):
    monkeypatch.setitem(registry._registry, name, _MemoryBucket)  # pylint: disable=protected-access
  epath_backend.fsspec_backend._get_filesystem.cache_clear()  # pylint: disable=protected-access
  yield fsspec.filesystem('gs')
  _MemoryBucket.store.clear()
  epath_backend.fsspec_backend._get_filesystem.cache_clear()  # pylint: disable=protected-access


def test_episodes_and_dataset_in_a_bucket(builds, bucket, tmp_path):
  """Listing, per-episode download, shard upload, reuse: what Dataflow does."""
  bucket.put(builds['manual'], 'gs://b/episodes', recursive=True)
  args = ('gs://b/episodes', 'gs://b/tfds', builds['config'])
  kwargs = dict(split_file=builds['split_file'], beam_runner=RUNNER,
                beam_options=OPTIONS)
  built = dataset.build(*args, **kwargs)
  assert built.data_dir.startswith('gs://b/tfds/anime_clips/beam_test/')
  assert not [p for p in bucket.find('gs://b/tfds') if 'incomplete' in p
              or 'episode-reports' in p]
  # array_record reads local files only: copy the dataset down, as a user would.
  bucket.get('gs://b/tfds', str(tmp_path / 'tfds'), recursive=True)
  down = tfds.builder_from_directory(
      str(tmp_path / 'tfds' / 'anime_clips' / 'beam_test' / '1.2.0'))
  _assert_same_records(builds['local'], down, builds['names'])
  assert _metadata(down) == _metadata(builds['local'])
  info = built.data_dir + '/dataset_info.json'
  written = bucket.info(info)['created']
  dataset.build(*args, **kwargs)  # unchanged episodes: reused, not rebuilt
  assert bucket.info(info)['created'] == written


def test_beam_options_need_a_runner(tmp_path):
  with pytest.raises(ValueError, match='--beam_runner'):
    dataset.build(str(tmp_path), str(tmp_path / 'out'),
                  beam_options='--direct_num_workers=2')


def test_the_data_stage_takes_a_runner_from_the_config(tmp_path):
  """main.py's `data` stage: config.data.beam_runner / beam_options."""
  config = helpers.demo_config(**{
      'data__synthetic__num_episodes': 3, 'data__synthetic__seconds': 2.0,
      'data__synthetic__height': 64, 'data__synthetic__width': 64,
      'data__beam_runner': 'NoSuchRunner'})
  with pytest.raises(ValueError, match='NoSuchRunner'):
    dataset.run(config, str(tmp_path))
  config.data.beam_runner = RUNNER
  config.data.beam_options = '--direct_num_workers=1'
  builder = dataset.run(config, str(tmp_path))
  assert {s: builder.info.splits[s].num_examples > 0
          for s in ('train', 'validation', 'test')} == dict(
              train=True, validation=True, test=True)


def test_an_empty_split_leaves_the_others_built(builds, tmp_path, capsys):
  """Every episode of validation gives no clips: under Beam, as locally, the
  other splits are built and the summary names the empty one."""
  split_file = str(tmp_path / 'splits.json')
  names = builds['names']
  with open(split_file, 'w') as f:
    json.dump({'train': names[:2], 'validation': ['notes.txt'],
               'test': names[3:]}, f)
  built = {}
  for kind, runner in (('local', {}), ('beam', dict(
      beam_runner=RUNNER, beam_options=OPTIONS))):
    built[kind] = dataset.build(builds['manual'], str(tmp_path / kind),
                                builds['config'], split_file=split_file,
                                **runner)
  for b in built.values():
    assert sorted(b.info.splits) == ['test', 'train']
    assert b.info.metadata['empty_splits'] == ['validation']
    assert 'notes.txt' in [s['episode'] for s in b.info.metadata['skipped']]
    assert any("split 'validation' is EMPTY" in line
               for line in dataset.empty_split_notes(b))
  assert 'building the other splits again without it' in capsys.readouterr().out
  for split in ('train', 'test'):
    assert [k for k, _ in _records(built['beam'], split)] == [
        k for k, _ in _records(built['local'], split)]
