"""Token records: every clip of a split encoded once by the tokenizer.

A tokenize run writes a whole set into <dir>/set-<id>/: meta.json (the token
grid, the dataset identity) and <split>.array_record-PPPPP-of-NNNNN, one
msgpack record per clip with the tokens (t, h, w), the clip's audio and its
provenance, so stage 3 never touches pixels. Only when the set is complete
does <dir>/CURRENT (one line, replaced in one step) name it: readers see the
old set or the new one, never a mix of two runs, and a run that dies leaves
the old set in use. A set written before sets existed (meta.json directly in
<dir>) still reads. <dir> may be a URL (gs://): shards are then written
locally and uploaded, and read from a local mirror, since array_record opens
local files only.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import shutil
import tempfile
from typing import Any, Optional

from array_record.python import array_record_module
from flax import serialization
import grain
import numpy as np

from mirai_jax import storage
from mirai_jax.data import pipeline

META = 'meta.json'
CURRENT = 'CURRENT'


def current(directory: str) -> str:
  """The folder of the token set in use (resolve it once per reader)."""
  pointer = os.path.join(directory, CURRENT)
  if storage.exists(pointer):
    return os.path.join(directory, storage.read_text(pointer).strip())
  return directory


def new_set(directory: str, run_id: str) -> str:
  """The folder a tokenize run writes its set into (not read until publish)."""
  return os.path.join(directory, f'set-{run_id}')


def publish(directory: str, set_dir: str, meta: dict) -> None:
  """Writes the set's meta.json, points CURRENT at it, and removes the sets
  before the one it replaces (that one stays for readers still on it)."""
  write_meta(set_dir, meta)
  before = current(directory)
  storage.write_text(os.path.join(directory, CURRENT),
                     os.path.basename(set_dir) + '\n')
  keep = {os.path.basename(set_dir), os.path.basename(before)}
  for name in _sets(directory):
    if name not in keep:
      _remove(os.path.join(directory, name))


def _sets(directory: str) -> list[str]:
  if storage.is_url(directory):
    fs, root = storage.filesystem(directory)
    names = [p.rstrip('/').rsplit('/', 1)[-1] for p in fs.ls(root)] if (
        fs.exists(root)) else []
  else:
    names = os.listdir(directory) if os.path.isdir(directory) else []
  return sorted(n for n in names if n.startswith('set-'))


def _remove(path: str) -> None:
  if storage.is_url(path):
    fs, p = storage.filesystem(path)
    fs.rm(p, recursive=True)
  else:
    shutil.rmtree(path, ignore_errors=True)


def shard_path(directory: str, split: str, index: int, count: int) -> str:
  return os.path.join(directory, f'{split}.array_record-{index:05d}-of-{count:05d}')


class Writer:
  """Writes one shard; it appears under its name only after close()."""

  def __init__(self, path: str):
    self.path = path
    self._scratch = None
    if storage.is_url(path):
      self._scratch = tempfile.TemporaryDirectory(prefix='mirai_jax-tokens-')
      self._tmp = os.path.join(self._scratch.name, 'shard')
    else:
      self._tmp = path + '.partial'
    self._w = array_record_module.ArrayRecordWriter(self._tmp, 'group_size:1')
    self.count = 0

  def write(self, record: dict[str, Any]) -> None:
    self._w.write(serialization.msgpack_serialize(
        {k: np.asarray(v) if not isinstance(v, str) else v
         for k, v in record.items()}))
    self.count += 1

  def close(self) -> None:
    self._w.close()
    if self._scratch:
      storage.upload(self._tmp, self.path)
      self._scratch.cleanup()
    else:
      os.replace(self._tmp, self.path)


@dataclasses.dataclass(frozen=True)
class Records:
  """What a set of token records holds: its meta.json, typed.

  `audio_len` (samples per clip every batch is cut or padded to) is
  computed here, once, when meta.json does not say it.
  """
  grid: tuple[int, int, int]  # (latent steps, h, w) of one clip
  codebook_size: int
  clip_spec: dict[str, Any]  # the dataset's build/clips.ClipSpec
  temporal: int = 1  # pixel frames per latent step
  audio_len: int = 0
  tokenizer_step: Optional[int] = None
  splits: dict[str, int] = dataclasses.field(default_factory=dict)
  processes: Optional[int] = None
  dataset: str = ''
  dataset_identity: Optional[dict[str, Any]] = None

  def __post_init__(self):
    object.__setattr__(self, 'grid', tuple(int(x) for x in self.grid))
    if not self.audio_len:
      object.__setattr__(self, 'audio_len', pipeline.audio_samples(
          self.clip_spec['frames'], self.clip_spec['sample_rate']))

  @property
  def sample_rate(self) -> int:
    return int(self.clip_spec['sample_rate'])

  @classmethod
  def from_meta(cls, meta: dict[str, Any]) -> 'Records':
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in meta.items() if k in names})

  def to_meta(self) -> dict[str, Any]:
    return dict(dataclasses.asdict(self), grid=list(self.grid))


def read_records(directory: str) -> Records:
  """The typed description of the token set in use under `directory`."""
  return Records.from_meta(read_meta(directory))


def write_meta(directory: str, meta: dict) -> None:
  storage.write_text(os.path.join(directory, META), json.dumps(meta, indent=1))


def read_meta(directory: str) -> dict:
  path = os.path.join(current(directory), META)
  if not storage.exists(path):
    raise FileNotFoundError(
        f'no token records in {directory}: run the `tokenize` stage first '
        '(python -m mirai_jax.main --config=... --workdir=... --mode=tokenize)')
  return json.loads(storage.read_text(path))


class TokenSource:
  """Random access to the token records of one split (a grain data source)."""

  def __init__(self, directory: str, split: str):
    # Only the shards of the latest tokenize run: one of another process
    # count would repeat its clips.
    directory = current(directory)
    self.meta = read_meta(directory)
    count = self.meta.get('processes')
    local = storage.local_copy(directory)
    paths = sorted(glob.glob(os.path.join(local, f'{split}.array_record-*')))
    paths = [p for p in paths if '.partial' not in p and
             (count is None or p.endswith(f'-of-{int(count):05d}'))]
    if not paths:
      raise FileNotFoundError(f'no token records for split {split!r} in '
                              f'{directory}')
    # grain's source opens files lazily and pickles, so worker processes work.
    self._source = grain.sources.ArrayRecordDataSource(paths)

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> dict[str, Any]:
    return serialization.msgpack_restore(self._source[int(index)])

  def __repr__(self) -> str:
    return f'TokenSource({len(self)} records)'


@dataclasses.dataclass(frozen=True)
class ToArrays(grain.transforms.Map):
  """Token record -> fixed-shape arrays (audio cut or zero-padded)."""
  audio_len: int

  def map(self, record: dict[str, Any]) -> dict[str, np.ndarray]:
    return dict(tokens=np.asarray(record['tokens'], np.int32),
                audio=pipeline.fit_audio(record['audio'], self.audio_len),
                has_audio=np.bool_(record['has_audio']),
                fps=np.float32(float(record['fps_num']) /
                               float(record['fps_den'])))


def make_loader(directory: str, split: str, *, global_batch_size: int,
                seed: int = 0, shuffle: bool = True,
                num_epochs: Optional[int] = None, start: int = 0,
                worker_count: int = 0) -> grain.IterDataset:
  """This process's share of global batches start, start + 1, ... of the
  token records of a split (see pipeline.process_batches)."""
  source = TokenSource(directory, split)
  return pipeline.process_batches(
      source, ToArrays(source.meta.get('audio_len') or
                       Records.from_meta(source.meta).audio_len),
      global_batch_size=global_batch_size, seed=seed, shuffle=shuffle,
      num_epochs=num_epochs, start=start, worker_count=worker_count)
