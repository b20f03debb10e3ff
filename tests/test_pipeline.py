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


def test_iterator_state_resumes_the_same_batches(built):
  loader = pipeline.make_loader(built['builder'], 'train', global_batch_size=4,
                                seed=3, flip=True)
  it = iter(loader)
  _take(it, 3)
  state = it.get_state()
  expected = _take(it, 4)
  resumed = iter(pipeline.make_loader(built['builder'], 'train',
                                      global_batch_size=4, seed=3, flip=True))
  resumed.set_state(state)
  for a, b in zip(expected, _take(resumed, 4)):
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])


def test_worker_processes_are_deterministic(built):
  # Each worker batches its own share, so batches depend on worker_count
  # (keep it fixed across a resume), but not on timing.
  def batches(workers):
    loader = pipeline.make_loader(built['builder'], 'train', global_batch_size=4,
                                  seed=5, worker_count=workers)
    return [(b['start_frame'].tolist(), b['video'].sum())
            for b in _take(iter(loader), 4)]
  first = batches(2)
  assert first == batches(2)
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
