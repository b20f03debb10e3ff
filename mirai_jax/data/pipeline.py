"""Input pipeline: anime_clips records -> shuffled batches -> global jax.Arrays.

grain reads the array_record shards through `tfds.data_source` (plain numpy,
no TensorFlow). Global batch k is a function of the seed and k alone, and
process p of P reads only its rows of it (`process_batches`); the rows become
one global `jax.Array` per field, sharded over the mesh's `data` axis. So a
run resumes from its step number (no iterator state to save) and sees the
same batches on one process or sixty-four, before and after a restart on a
different slice.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Optional

import grain
import jax
from jax.experimental import multihost_utils
import numpy as np
import tensorflow_datasets as tfds

from mirai_jax import storage
from mirai_jax import video_io

DATA_AXIS = 'data'


def dataset_builder(data_dir: str, name: str = 'anime_clips/64x64_t20'
                    ) -> tfds.core.DatasetBuilder:
  """The built dataset `name` ('anime_clips/<config>') under `data_dir`.

  Read from its files (dataset_info.json names the features), so reading
  needs no import of the builder. A dataset at a URL (gs://) is read from a
  local mirror (storage.py): array_record opens local files only.
  """
  data_dir = storage.expand(data_dir)
  builder = built(data_dir, name)
  if builder is None:
    raise FileNotFoundError(
        f'dataset {name} is not built under {data_dir}; build it with\n'
        f'  python -m mirai_jax.prepare --manual_dir=EPISODES '
        f'--data_dir={data_dir} --config={name.split("/")[-1]}')
  if storage.is_url(data_dir):
    # The mirror keeps the layout <data_dir>/<name>/<version>.
    storage.local_copy(os.fspath(builder.data_dir))
    builder = tfds.builder(name, data_dir=storage.cache_path(data_dir))
  return builder


def built(data_dir: str, name: str) -> Optional[tfds.core.DatasetBuilder]:
  """The dataset `name` under `data_dir` if it is built, else None (reads
  only its dataset_info.json: nothing is mirrored from a bucket)."""
  try:
    builder = tfds.builder(name, data_dir=storage.expand(data_dir))
  except tfds.core.registered.DatasetNotFoundError:
    return None  # not registered in this process, and no files
  return builder if builder.is_prepared() else None


def audio_samples(frames: int, sample_rate: int,
                  fps: float = video_io.FILM_RATE) -> int:
  """Audio samples every clip of `frames` frames is cut or padded to: the
  length at `fps`, the slowest frame rate the data has (a clip of a slower
  source is longer in seconds, so its sound is longer too)."""
  return math.ceil(frames * sample_rate / fps)


def fit_audio(audio, length: int) -> np.ndarray:
  """int16 PCM cut or zero-padded at the end to `length` samples."""
  audio = np.asarray(audio, np.int16)[:length]
  out = np.zeros(length, np.int16)
  out[:len(audio)] = audio
  return out


@dataclasses.dataclass(frozen=True)
class ToArrays(grain.transforms.Map):
  """Record -> fixed-shape numeric arrays (strings stay on the host side)."""
  audio_len: int

  def map(self, record: dict[str, Any]) -> dict[str, np.ndarray]:
    return dict(
        video=np.asarray(record['video'], np.uint8),
        audio=fit_audio(record['audio'], self.audio_len),
        audio_len=np.int32(min(len(record['audio']), self.audio_len)),
        has_audio=np.bool_(record['has_audio']),
        start_frame=np.int64(record['start_frame']),
        shot=np.int32(record['shot']),
    )


@dataclasses.dataclass(frozen=True)
class RandomFlip(grain.transforms.RandomMap):
  """Mirror the clip left-right with probability 1/2 (sound is unchanged)."""

  def random_map(self, example, rng: np.random.Generator):
    if rng.random() < 0.5:
      example = dict(example, video=example['video'][:, :, ::-1])
    return example


def audio_len_of(builder: tfds.core.DatasetBuilder,
                 fps: Optional[float] = None) -> int:
  """Samples per clip: T frames at `fps` (default: the slowest source's rate)."""
  meta = builder.info.metadata or {}
  spec = meta.get('clip_spec', {})
  frames, rate = spec.get('frames', 20), spec.get('sample_rate', 16000)
  if fps is None:
    rates = [_fraction(r['fps']) for r in meta.get('episodes', [])]
    fps = min(rates) if rates else video_io.FILM_RATE
  return audio_samples(frames, rate, fps)


def _fraction(text: str) -> float:
  num, _, den = text.partition('/')
  return float(num) / float(den or 1)


def process_batches(source, record_fn, *, global_batch_size: int,
                    seed: int = 0, shuffle: bool = True,
                    num_epochs: Optional[int] = None, start: int = 0,
                    worker_count: int = 0, flip: bool = False
                    ) -> grain.IterDataset:
  """This process's rows of global batches start, start + 1, ... of `source`.

  The records are shuffled (each epoch differently), mapped by `record_fn`
  and cut into global batches of `global_batch_size`; process p of P yields
  rows [p * B / P, (p + 1) * B / P) of each, so that the concatenation over
  processes, in process order, is the global batch whatever P is. Every
  process yields the same number of batches (a partial last one is dropped).
  """
  nproc, pid = jax.process_count(), jax.process_index()
  if global_batch_size % nproc:
    raise ValueError(f'batch size {global_batch_size} does not divide over '
                     f'{nproc} processes; use a multiple of {nproc}')
  ds = grain.MapDataset.source(source)
  if shuffle:
    ds = ds.shuffle(seed=seed)
  ds = ds.map(record_fn)
  if flip:
    ds = ds.random_map(RandomFlip(), seed=seed)
  if num_epochs != 1:
    ds = ds.repeat(num_epochs)
  ds = ds.batch(global_batch_size // nproc, drop_remainder=True)
  ds = ds[start * nproc + pid:len(ds) // nproc * nproc:nproc]
  it = ds.to_iter_dataset()
  if worker_count:
    it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
  return it


def make_loader(builder: tfds.core.DatasetBuilder, split: str, *,
                global_batch_size: int, seed: int = 0, shuffle: bool = True,
                num_epochs: Optional[int] = None, start: int = 0,
                worker_count: int = 0, flip: bool = False,
                audio_len: Optional[int] = None) -> grain.IterDataset:
  """This process's share of global batches start, start + 1, ... of a split."""
  if split not in builder.info.splits:
    raise ValueError(f'split {split!r} is not in {builder.data_dir} '
                     f'(it has {sorted(builder.info.splits)})')
  return process_batches(
      builder.as_data_source(split=split),
      ToArrays(audio_len or audio_len_of(builder)),
      global_batch_size=global_batch_size, seed=seed, shuffle=shuffle,
      num_epochs=num_epochs, start=start, worker_count=worker_count, flip=flip)


def data_sharding(mesh: jax.sharding.Mesh) -> jax.sharding.NamedSharding:
  """Leading (batch) dimension split over every axis of the mesh."""
  return jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec(tuple(mesh.axis_names)))


def to_global(batch: dict[str, np.ndarray], mesh: jax.sharding.Mesh
              ) -> dict[str, jax.Array]:
  """This process's rows -> one global jax.Array per field."""
  sharding = data_sharding(mesh)
  n = mesh.size
  rows = next(iter(batch.values())).shape[0] * jax.process_count()
  if rows % n:
    raise ValueError(f'global batch {rows} does not divide over the {n} '
                     f'devices of the mesh {dict(mesh.shape)}')
  return {k: jax.make_array_from_process_local_data(sharding, v)
          for k, v in batch.items()}


def to_local(x: jax.Array, mesh: jax.sharding.Mesh) -> np.ndarray:
  """This process's rows of a global array laid out like to_global's."""
  return np.asarray(multihost_utils.global_array_to_host_local_array(
      x, mesh, data_sharding(mesh).spec))
