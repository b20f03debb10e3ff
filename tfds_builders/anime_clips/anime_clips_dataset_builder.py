"""anime_clips: clips of T frames cut inside shots of episode files, with their audio.

Build without TensorFlow:

  python -m mirai_jax.prepare --manual_dir=EPISODES --data_dir=OUT [--config=64x64_t20]

or with the stock command (needs `pip install -e .[tf]`):

  tfds build tfds_builders/anime_clips --manual_dir=EPISODES --data_dir=OUT \
      --file_format=array_record --config=64x64_t20

Read it back with plain numpy:

  tfds.builder_from_directory(OUT/anime_clips/64x64_t20/1.0.0).as_data_source()
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import os
import threading
from typing import Iterator, Optional

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from mirai_jax.data import clips

_DESCRIPTION = """Clips of consecutive frames from anime episodes, cut at scene
changes so that no clip spans a cut, each with the mono audio of exactly its
frames and its provenance (episode, start frame, shot). Splits are by episode.
"""


@dataclasses.dataclass
class AnimeClipsConfig(tfds.core.BuilderConfig):
  clip: clips.ClipSpec = clips.ClipSpec()


def _config(name, description, **clip):
  return AnimeClipsConfig(name=name, description=description,
                          clip=clips.ClipSpec(**clip))


CONFIGS = [
    _config('64x64_t20', 'MIRAI: 64x64, 20 frames, centre crop (default).'),
    _config('128x128_t16', '128x128, 16 frames, centre crop.', height=128,
            width=128, frames=16, stride=8),
    _config('128x128_t32', '128x128, 32 frames (16 context + 16 to predict), '
            'centre crop: configs/kny.py.', height=128, width=128, frames=32,
            stride=16),
    _config('64x112_t20_pad', '16:9 frames with 4:3 sources letterboxed '
            '(input for widening 4:3 to 16:9).', width=112, resize='pad'),
]


class Builder(tfds.core.GeneratorBasedBuilder):
  """Episodes in the manual dir -> clip records in array_record shards."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'First release.'}
  BUILDER_CONFIGS = CONFIGS
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Put the episode files (mp4, mkv, webm, avi, ...; any frame rate, size and sound
layout; sub-folders allowed) in one folder and pass it as --manual_dir."""

  # Episodes go to splits by a stable hash of their name with these weights,
  # unless a split file {"train": [names], "test": [...]} says otherwise.
  SPLIT_WEIGHTS = {'train': 0.8, 'validation': 0.1, 'test': 0.1}

  def __init__(self, *, workers: Optional[int] = None,
               split_file: Optional[str] = None, **kwargs):
    kwargs.setdefault('file_format', 'array_record')
    super().__init__(**kwargs)
    # ffmpeg already decodes with several threads: half the cores as
    # episode workers keeps them busy without thrashing.
    self._workers = workers or max(1, min(8, (os.cpu_count() or 2) // 2))
    self._split_file = split_file
    self._lock = threading.Lock()

  def _info(self) -> tfds.core.DatasetInfo:
    c = self.builder_config.clip
    return self.dataset_info_from_configs(
        description=_DESCRIPTION,
        features=tfds.features.FeaturesDict({
            # Raw bytes (zstd-compressed by array_record): the Video and
            # Audio features would need TensorFlow to decode.
            'video': tfds.features.Tensor(
                shape=(c.frames, c.height, c.width, 3), dtype=np.uint8,
                encoding=tfds.features.Encoding.BYTES),
            # Mono PCM covering exactly the clip's frames; the length varies
            # by a sample with the frame rate's rounding.
            'audio': tfds.features.Tensor(
                shape=(None,), dtype=np.int16,
                encoding=tfds.features.Encoding.BYTES),
            'has_audio': tfds.features.Scalar(dtype=np.bool_),
            # TFDS keeps floats as float32; the exact rate is num/den, so
            # times (start_frame + i) * den / num stay exact for long episodes.
            'fps': tfds.features.Scalar(dtype=np.float32),
            'fps_num': tfds.features.Scalar(dtype=np.int32),
            'fps_den': tfds.features.Scalar(dtype=np.int32),
            'sample_rate': tfds.features.Scalar(dtype=np.int32),
            'episode': tfds.features.Text(),
            'start_frame': tfds.features.Scalar(dtype=np.int64),
            'shot': tfds.features.Scalar(dtype=np.int32),
        }),
        metadata=tfds.core.MetadataDict(),
        homepage='https://github.com/mirai-jax/mirai_jax',
    )

  def _split_generators(self, dl_manager):
    cfg = self.builder_config
    cfg.clip.validate()
    episodes = clips.list_episodes(dl_manager.manual_dir)
    split_file = self._split_file
    by_name = clips.read_split_file(split_file) if split_file else None
    assigned = collections.defaultdict(list)
    self._skipped = []
    for name, path in episodes:
      if by_name is None:
        assigned[clips.split_of(name, self.SPLIT_WEIGHTS)].append((name, path))
      elif name in by_name:
        assigned[by_name[name]].append((name, path))
      else:
        self._skip(name, f'not listed in split_file {split_file}')
    if by_name:
      missing = sorted(set(by_name) - {n for n, _ in episodes})
      if missing:
        raise ValueError(f'split_file {split_file} lists episodes that are '
                         f'not in {dl_manager.manual_dir}: {missing[:5]}')
    self._reports = []
    meta = self.info.metadata
    meta['clip_spec'] = dataclasses.asdict(cfg.clip)
    meta['skipped'] = self._skipped
    meta['episodes'] = self._reports
    meta['split_episodes'] = {s: [n for n, _ in v] for s, v in assigned.items()}
    logging.info('anime_clips: %d files, splits %s', len(episodes),
                 {s: len(v) for s, v in assigned.items()})
    return {split: self._generate_examples(files)
            for split, files in sorted(assigned.items())}

  def _skip(self, name: str, reason: str) -> None:
    logging.warning('skipped %s: %s', name, reason)
    with self._lock:
      self._skipped.append({'episode': name, 'reason': reason})

  def _episode(self, item):
    name, path = item
    try:
      return clips.episode_clips(path, name, self.builder_config.clip)
    except clips.VideoError as e:
      self._skip(name, str(e).removeprefix(path + ': '))
    except Exception as e:  # pylint: disable=broad-except
      # A hostile file must not take the whole build down with it.
      self._skip(name, f'{type(e).__name__}: {e}')
    return [], None

  def _generate_examples(self, files) -> Iterator[tuple[str, dict]]:
    for records, report in _bounded_map(self._episode, files, self._workers):
      if report is None:
        continue
      with self._lock:
        self._reports.append(dataclasses.asdict(report))
      logging.info(
          '%s: %d frames (%.1f s at %s fps) -> %d shots, %d clips%s in %.1f s',
          report.episode, report.frames, report.seconds, report.fps,
          report.shots, report.clips,
          '' if report.has_audio else ' (no audio)', report.decode_seconds)
      yield from clips.iter_examples(records)


def _bounded_map(fn, items, workers: int):
  """map(fn, items) in order, with at most `workers` results held at once."""
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    pending = collections.deque()
    for item in items:
      pending.append(pool.submit(fn, item))
      if len(pending) >= workers:
        yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()
