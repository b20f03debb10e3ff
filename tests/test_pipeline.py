"""grain pipeline: shapes, sharding over fake devices, determinism, resume."""

import jax
import numpy as np
import pytest

from mirai_jax.data import pipeline


def _take(it, n):
  return [next(it) for _ in range(n)]


def test_batches_have_fixed_shapes_and_types(built):
  loader = pipeline.make_loader(built['builder'], 'train', global_batch_size=4)
  batch = next(iter(loader))
  assert batch['video'].shape == (4, 20, 64, 64, 3)
  assert batch['video'].dtype == np.uint8
  audio_len = pipeline.audio_len_of(built['builder'])
  assert audio_len == 13347  # ceil(20 * 16000 * 1001 / 24000)
  assert batch['audio'].shape == (4, audio_len)
  assert batch['audio'].dtype == np.int16
  assert set(batch['audio_len']) <= {13346, 13347}


def test_global_arrays_are_sharded_over_the_data_axis(built):
  assert jax.device_count() == 4
  mesh = jax.make_mesh((4,), (pipeline.DATA_AXIS,))
  loader = pipeline.make_loader(built['builder'], 'train', global_batch_size=8)
  local = next(iter(loader))
  arrays = pipeline.to_global(local, mesh)
  video = arrays['video']
  assert video.shape == (8, 20, 64, 64, 3)
  assert len(video.addressable_shards) == 4
  for shard in video.addressable_shards:
    assert shard.data.shape == (2, 20, 64, 64, 3)
  np.testing.assert_array_equal(np.asarray(video), local['video'])
  with pytest.raises(ValueError, match='does not divide'):
    pipeline.to_global({k: v[:6] for k, v in local.items()}, mesh)


def test_seeded_shuffle_is_deterministic_and_seed_dependent(built):
  def firsts(seed):
    loader = pipeline.make_loader(built['builder'], 'train',
                                  global_batch_size=4, seed=seed)
    return [b['start_frame'].tolist() for b in _take(iter(loader), 3)]
  assert firsts(1) == firsts(1)
  assert firsts(1) != firsts(2)


def _same(a, b):
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])


def test_a_start_step_resumes_the_same_batches(built):
  make = lambda start=0: iter(pipeline.make_loader(
      built['builder'], 'train', global_batch_size=4, seed=3, flip=True,
      start=start))
  expected = _take(make(), 7)[3:]
  for a, b in zip(expected, _take(make(start=3), 4)):
    _same(a, b)


def test_global_batches_do_not_depend_on_the_process_count(built, monkeypatch):
  """Two processes' rows, concatenated in process order, are the one-process
  global batch: a checkpoint moves between host counts with its data order."""
  make = lambda: _take(iter(pipeline.make_loader(
      built['builder'], 'train', global_batch_size=4, seed=2, flip=True,
      start=1)), 3)
  whole = make()
  monkeypatch.setattr(jax, 'process_count', lambda: 2)
  parts = []
  for pid in range(2):
    monkeypatch.setattr(jax, 'process_index', lambda pid=pid: pid)
    parts.append(make())
  for k, batch in enumerate(whole):
    _same(batch, {key: np.concatenate([parts[0][k][key], parts[1][k][key]])
                  for key in batch})
  with pytest.raises(ValueError, match='use a multiple of 2'):
    pipeline.make_loader(built['builder'], 'train', global_batch_size=3)


def test_worker_processes_give_the_same_batches(built):
  def batches(workers):
    loader = pipeline.make_loader(built['builder'], 'train', global_batch_size=4,
                                  seed=5, worker_count=workers)
    return [(b['start_frame'].tolist(), int(b['video'].sum()))
            for b in _take(iter(loader), 4)]
  first = batches(2)
  assert first == batches(0)
  assert len({tuple(f) for f, _ in first}) == 4


def test_flip_mirrors_some_clips(built):
  plain = next(iter(pipeline.make_loader(built['builder'], 'train',
                                         global_batch_size=8, seed=0)))
  flipped = next(iter(pipeline.make_loader(built['builder'], 'train',
                                           global_batch_size=8, seed=0,
                                           flip=True)))
  np.testing.assert_array_equal(plain['start_frame'], flipped['start_frame'])
  same = [np.array_equal(a, b) for a, b in zip(plain['video'], flipped['video'])]
  mirrored = [np.array_equal(a[:, :, ::-1], b)
              for a, b in zip(plain['video'], flipped['video'])]
  assert all(s or m for s, m in zip(same, mirrored))
  assert any(mirrored) and any(same)


def test_unknown_split_and_bad_batch(built):
  with pytest.raises(ValueError, match="split 'nope'"):
    pipeline.make_loader(built['builder'], 'nope', global_batch_size=4)
