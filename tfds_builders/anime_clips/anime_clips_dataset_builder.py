"""anime_clips: clips of T frames cut inside shots of episode files, with their audio.

Build without TensorFlow:

  python -m mirai_jax.prepare --manual_dir=EPISODES --data_dir=OUT [--config=64x64_t20]

or, for a few hundred episodes, as an Apache Beam pipeline (`pip install -e
.[beam]`) with one episode per work item, on the DirectRunner or on
Dataflow, Spark or Flink (README: "Preparing hundreds of episodes with Apache
Beam"); the records are the same as those of the local build:

  python -m mirai_jax.prepare --manual_dir=EPISODES --data_dir=OUT \
      --beam_runner=DirectRunner --beam_options="--direct_num_workers=4"

EPISODES and OUT may then be URLs (gs://..., through fsspec: `pip install
gcsfs`); workers copy each episode to local disk for ffmpeg and write each
shard locally before uploading it, since array_record only writes local files.

The stock command (needs `pip install -e .[tf]`) works too:

  tfds build tfds_builders/anime_clips --manual_dir=EPISODES --data_dir=OUT \
      --file_format=array_record --config=64x64_t20

Read it back with plain numpy (array_record reads local files only: copy a
bucket's dataset down first):

  tfds.builder_from_directory(OUT/anime_clips/64x64_t20/1.2.0).as_data_source()
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import fractions
import json
import os
import posixpath
import tempfile
import threading
import time
from typing import Any, Iterator, Optional

from absl import logging
from etils import epath
import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import split_builder as split_builder_lib
from tensorflow_datasets.core import writer as writer_lib

from mirai_jax import storage
from mirai_jax.build import clips
from mirai_jax.build import episodes as episodes_lib
from mirai_jax.data import identity
from mirai_jax.data import splits as splits_lib

_DESCRIPTION = """Clips of consecutive frames from anime episodes, cut at scene
changes so that no clip spans a cut, each with the mono audio of exactly its
frames and its provenance (episode, start frame, shot). Splits are by episode.
"""


@dataclasses.dataclass
class AnimeClipsConfig(tfds.core.BuilderConfig):
  clip: clips.ClipSpec = clips.ClipSpec()


# The named configs: build/clips.py says what each holds.
CONFIGS = [AnimeClipsConfig(name=name, description=description, clip=clip)
           for name, (description, clip) in clips.NAMED.items()]


class _Info(tfds.core.DatasetInfo):
  """anime_clips comes from the user's episodes, never from the TFDS
  bucket: the lookup tfds makes before a first build leaves an empty
  temporary directory behind every time (tfds 4.9), so it is skipped."""

  def initialize_from_bucket(self) -> None:
    pass


class Builder(tfds.core.GeneratorBasedBuilder):
  """Episodes in the manual dir -> clip records in array_record shards."""

  VERSION = tfds.core.Version('1.2.0')
  RELEASE_NOTES = {
      '1.0.0': 'First release.',
      '1.1.0': 'Cuts between look-alike shots found; fades and dissolves '
               'belong to no shot; splits kept on rebuilds and filled in '
               'small folders; the dataset identity in the metadata.',
      '1.2.0': 'Cuts hidden by fast action found in the colours; wipes '
               '(an iris closing, a bar sweeping) belong to no shot; one '
               'frame more at each end of a fade or dissolve.',
  }
  BUILDER_CONFIGS = CONFIGS
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Put the episode files (mp4, mkv, webm, avi, ...; any frame rate, size and sound
layout; sub-folders allowed) in one folder and pass it as --manual_dir."""

  # Episodes go to splits as mirai_jax/data/splits.py says (a stable hash of
  # the name with these weights, old splits kept, small folders filled),
  # unless a split file {"train": [names], "test": [...]} says otherwise.
  SPLIT_WEIGHTS = splits_lib.WEIGHTS
  # Folders up to this size are probed first, so that a split filled by
  # splits.assign gets an episode that gives clips; bigger ones fill
  # their splits by the hash alone.
  PROBE_UP_TO = 256

  def __init__(self, *, workers: Optional[int] = None,
               split_file: Optional[str] = None,
               kept_splits: Optional[dict[str, str]] = None,
               probes: Optional[dict[str, Any]] = None, **kwargs):
    kwargs.setdefault('file_format', 'array_record')
    super().__init__(**kwargs)
    # ffmpeg already decodes with several threads: half the cores as
    # episode workers keeps them busy without thrashing.
    self._workers = workers or max(1, min(8, (os.cpu_count() or 2) // 2))
    self._split_file = split_file
    self._kept = kept_splits  # {episode: split} of the build this replaces
    self._probes = probes  # {episode: video_io.Probe or None}, if known
    self._lock = threading.Lock()
    self._beam = False
    # Splits a Beam build found empty: built again without them (a Beam
    # pipeline cannot leave one split out once it runs).
    self.empty_splits: set[str] = set()

  def _info(self) -> tfds.core.DatasetInfo:
    c = self.builder_config.clip
    return _Info(
        builder=self, description=_DESCRIPTION,
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

  def _download_and_prepare(self, dl_manager, download_config):
    # TFDS switches to Beam when _generate_examples returns a PTransform; the
    # runner in the download config is what asks for that.
    self._beam = download_config.beam_runner is not None
    self._report_paths = {}
    self._t0, self._done = time.time(), 0
    if not self._beam:
      # Per-episode lines with the build's ETA replace its progress bars.
      tfds.disable_progress_bar()
    super()._download_and_prepare(dl_manager, download_config)
    self.info.metadata['identity'] = self._identity()

  def _example_writer(self) -> writer_lib.ExampleWriter:
    return _ExampleWriter(file_format=self.info.file_format)

  def _split_generators(self, dl_manager):
    cfg = self.builder_config
    cfg.clip.validate()
    listed = episodes_lib.list_episodes(dl_manager.manual_dir, stamps=True)
    episodes = [(name, path) for name, path, _ in listed]
    self._total = len(episodes)
    split_file = self._split_file
    by_name = episodes_lib.read_split_file(split_file) if split_file else None
    assigned = collections.defaultdict(list)
    self._skipped = []
    moves = []
    if by_name is None:
      usable = self._usable(episodes, cfg.clip)
      where, moves = splits_lib.assign([n for n, _ in episodes], usable,
                                       self.SPLIT_WEIGHTS, self._kept)
      for name, path in episodes:
        assigned[where[name]].append((name, path))
    for name, path in episodes if by_name is not None else ():
      if name in by_name:
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
    meta['split_rule'] = 'file' if by_name is not None else 'hash'
    meta['split_moves'] = moves
    meta['empty_splits'] = sorted(self.empty_splits)
    for split in sorted(self.empty_splits):
      for name, _ in assigned.get(split, []):
        self._skip(name, f'gave no clips in split {split} (Beam workers\' '
                   'logs of the first run say why)')
    sizes = {n: stamp.split('\0')[0] for n, _, stamp in listed}
    self._identity = lambda: identity.make(
        cfg.name, meta['clip_spec'], meta['split_episodes'],
        {n: sizes[n] for eps in meta['split_episodes'].values() for n in eps},
        episodes_lib.split_file_digest(split_file) if split_file else None)
    logging.info('anime_clips: %d files, splits %s', len(episodes),
                 {s: len(v) for s, v in assigned.items()})
    return {split: self._generate_examples(files, split)
            for split, files in sorted(assigned.items())
            if split not in self.empty_splits}

  def _progress(self) -> str:
    """'[k/n episodes, ETA 3m05s] ' over the whole build."""
    elapsed = time.time() - self._t0
    left = elapsed / self._done * (self._total - self._done)
    return (f'[{self._done}/{self._total} episodes, ETA '
            f'{int(left // 60)}m{int(left % 60):02d}s] ')

  # The summary (dataset.summary) says where the dataset went: TFDS's own
  # lines would name the scratch folder it is built in.
  def _log_download_bytes(self) -> None:
    pass

  def _log_download_done(self) -> None:
    pass

  def _usable(self, episodes, spec: clips.ClipSpec) -> set[str]:
    """Episodes that probe as video long enough for one clip. Only local
    folders of up to PROBE_UP_TO files are probed (dataset.build hands its
    probes over); otherwise every file counts as usable."""
    probes = self._probes
    if probes is None:
      probes = episodes_lib.probe_all(episodes, self.PROBE_UP_TO)
    if probes is None:
      return {n for n, _ in episodes}
    return {n for n, _ in episodes if probes.get(n) is not None and (
        probes[n].duration is None
        or probes[n].duration * float(probes[n].fps) >= spec.frames)}

  def _generate_splits(self, dl_manager, download_config):
    if self._beam:
      return super()._generate_splits(dl_manager, download_config)
    # TFDS stops the whole build at the first split that yields no example.
    # Here the other splits are built and the empty one is recorded, for
    # the summary to name and for the stages that need it to refuse.
    split_builder = split_builder_lib.SplitBuilder(
        split_dict=self.info.splits, features=self.info.features,
        dataset_size=self.info.dataset_size,
        max_examples_per_split=download_config.max_examples_per_split,
        beam_options=None, beam_runner=None,
        shard_config=download_config.get_shard_config(),
        example_writer=self._example_writer(),
        ignore_duplicates=download_config.ignore_duplicates)
    infos = []
    for name, generator in self._split_generators(dl_manager).items():
      try:
        infos.append(split_builder.submit_split_generation(
            split_name=name, generator=generator,
            filename_template=self._get_filename_template(split_name=name),
            disable_shuffling=self.info.disable_shuffling,
            nondeterministic_order=download_config.nondeterministic_order,
        ).result())
      except AssertionError as e:
        if 'No examples were yielded' not in str(e):
          raise
        self.info.metadata['empty_splits'].append(name)
    if not infos:
      raise RuntimeError('no split has clips: every episode was skipped:\n' +
                         '\n'.join(f"  {s['episode']}: {s['reason']}"
                                    for s in self._skipped))
    return infos

  def _skip(self, name: str, reason: str) -> None:
    logging.warning('skipped %s: %s', name, reason)
    with self._lock:
      self._skipped.append({'episode': name, 'reason': reason})

  def _episode(self, item):
    name, path = item
    records, report, why = _decode(name, path, self.builder_config.clip)
    if why is not None:
      self._skip(name, why)
    return records, report

  def _generate_examples(self, files, split: str):
    if not self._beam:
      return self._generate_locally(files)
    # Workers cannot reach this object: they send their reports through a
    # file beside the shards, read back once the pipeline is done.
    self._report_paths[split] = os.fspath(
        self.data_path / f'.{split}-episode-reports.json')
    return _beam_examples(files, self.builder_config.clip,
                          self._report_paths[split])

  def _generate_locally(self, files) -> Iterator[tuple[str, dict]]:
    for records, report in _bounded_map(self._episode, files, self._workers):
      self._done += 1
      if report is None:
        continue
      with self._lock:
        self._reports.append(dataclasses.asdict(report))
      _log_report(report, self._progress())
      yield from clips.iter_examples(records)

  def _process_pipeline_result(self, pipeline_result) -> None:
    super()._process_pipeline_result(pipeline_result)
    # Same order as the local build: splits by name, then episodes by name.
    for split in sorted(self._report_paths):
      path = epath.Path(self._report_paths[split])
      items = sorted(json.loads(path.read_text()),
                     key=lambda x: x[1]['episode'])
      path.unlink()
      self._reports += [x for kind, x in items if kind == 'episode']
      self._skipped += [x for kind, x in items if kind == 'skipped']
    self._report_paths = {}


def _decode(name: str, path: str, spec: clips.ClipSpec
            ) -> tuple[list[dict[str, Any]], Optional[clips.EpisodeReport],
                       Optional[str]]:
  """(records, report, None), or ([], None, why the file was skipped)."""
  # Outside the try: a failed download is the storage's fault, not the
  # file's, and under Beam it should fail the work item so it is retried.
  with _local_copy(path) as local:
    try:
      records, report = clips.episode_clips(local, name, spec)
      return records, report, None
    except clips.VideoError as e:
      return [], None, str(e).removeprefix(local + ': ')
    except Exception as e:  # pylint: disable=broad-except
      # A hostile file must not take the whole build down with it.
      return [], None, f'{type(e).__name__}: {e}'


def _log_report(report: clips.EpisodeReport, progress: str = '') -> None:
  logging.info(
      '%s%s: %d frames (%.1f s at %s fps) -> %d shot%s, %d clips%s in %.1f s',
      progress, report.episode, report.frames, report.seconds,
      fractions.Fraction(report.fps), report.shots,
      '' if report.shots == 1 else 's', report.clips,
      '' if report.has_audio else ' (no audio)', report.decode_seconds)


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


# ------------------------------------------------------------------ Beam ---


def _beam_examples(files, spec: clips.ClipSpec, report_path: str):
  """PTransform: (name, path) of a split's episodes -> (key, example).

  One episode is one work item, and its keys are the local build's, so both
  builds write the same records.
  """
  import apache_beam as beam  # pylint: disable=g-import-not-at-top

  @beam.ptransform_fn
  def episodes_to_examples(pipeline):
    decoded = (
        pipeline
        | 'Episodes' >> beam.Create(files)
        # Without it a runner may fuse Create with Decode and decode every
        # episode on the one worker that created the list.
        | 'OneEpisodePerWorkItem' >> beam.Reshuffle()
        | 'Decode' >> beam.FlatMap(_beam_episode, spec).with_outputs(
            'report', main='examples'))
    _ = (decoded.report
         | 'CollectReports' >> beam.combiners.ToList()
         | 'SaveReports' >> beam.Map(_save_reports, report_path))
    return decoded.examples

  return episodes_to_examples()  # pylint: disable=no-value-for-parameter


def _beam_episode(item, spec: clips.ClipSpec):
  from apache_beam import pvalue  # pylint: disable=g-import-not-at-top
  name, path = item
  records, report, why = _decode(name, path, spec)
  if why is not None:
    logging.warning('skipped %s: %s', name, why)
    yield pvalue.TaggedOutput('report',
                              ('skipped', {'episode': name, 'reason': why}))
    return
  _log_report(report)
  yield pvalue.TaggedOutput('report', ('episode', dataclasses.asdict(report)))
  yield from clips.iter_examples(records)


def _save_reports(reports, path: str) -> None:
  with epath.Path(path).open('w') as f:
    json.dump(reports, f)


# ---------------------------------------------- Folders and files by URL ---


@contextlib.contextmanager
def _local_copy(path: str) -> Iterator[str]:
  """`path`, or a local copy of it while in the block: ffmpeg reads files."""
  if not storage.is_url(path):
    yield path
    return
  fs, remote = storage.filesystem(path)
  with tempfile.TemporaryDirectory(prefix='anime_clips-') as tmp:
    local = os.path.join(tmp, posixpath.basename(remote))
    fs.get_file(remote, local)
    yield local


class _ExampleWriter(writer_lib.ExampleWriter):
  """Writes a shard whose path is a URL locally, then uploads it.

  array_record's writer opens local files only, and TFDS (4.9) hands it the
  shard's final path, so a gs:// data_dir would fail on every worker.
  """

  def write(self, path, examples):
    if not storage.is_url(path):
      return super().write(path, examples)
    with storage.output_file(os.fspath(path)) as local:
      return super().write(local, examples)
