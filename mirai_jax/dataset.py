"""The `data` stage: building the anime_clips dataset safely, and its summary.

`python -m mirai_jax.prepare` is the command-line face of this module and
`main.py`'s `data` stage (`run`) the config-driven one. What goes into a
clip is in build/ and the TFDS builder in tfds_builders/anime_clips/;
reading a built dataset (data/pipeline.py, workdir.py) needs none of this.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import time
import uuid
from typing import Optional, Sequence

from absl import logging
from etils import epath
import jax
import tensorflow_datasets as tfds

from mirai_jax import storage
from mirai_jax import workdir as workdir_lib
from mirai_jax.build import clips
from mirai_jax.build import episodes as episodes_lib
from mirai_jax.build import synthetic
from tfds_builders import anime_clips


def make_config(base: str = '64x64_t20', name: Optional[str] = None,
                **clip_fields) -> anime_clips.AnimeClipsConfig:
  """A named config, or a new one with some clip fields changed."""
  named = {c.name: c for c in anime_clips.CONFIGS}
  if base not in named:
    raise ValueError(f'config {base!r} is not one of {sorted(named)}')
  clip_fields = {k: v for k, v in clip_fields.items() if v is not None}
  if not clip_fields:
    return named[base]
  if not name or name in named:
    raise ValueError(f'changing clip fields {sorted(clip_fields)} makes a new '
                     'dataset: give it a new name with --name (e.g. '
                     f'--name={base}_custom)')
  clip = dataclasses.replace(named[base].clip, **clip_fields)
  clip.validate()
  return dataclasses.replace(named[base], name=name, clip=clip,
                             description=f'{named[base].description} '
                             f'Changed: {clip_fields}')


def build(manual_dir: str, data_dir: str,
          config: anime_clips.AnimeClipsConfig | str = '64x64_t20', *,
          workers: Optional[int] = None, split_file: Optional[str] = None,
          overwrite: bool = False, beam_runner: Optional[str] = None,
          beam_options: str | Sequence[str] | None = None,
          flag: str = '--data_dir') -> tfds.core.DatasetBuilder:
  """Builds the dataset and returns its builder.

  A complete dataset of the same config is reused unless `overwrite`, the
  episode folder changed since it was built (files added, removed, resized
  or touched) or the split file did (another file, or other contents). The
  old copy stays readable until the new one is complete, and a rebuild by
  hash keeps every old episode in its old split (data/splits.py).

  With `beam_runner` ('DirectRunner', 'DataflowRunner', 'FlinkRunner', ...)
  an Apache Beam pipeline decodes the episodes, one per work item, and writes
  the same records; `beam_options` are its pipeline options as command-line
  flags ("--project=p --region=r" or a list). Then `manual_dir` and
  `data_dir` may also be URLs (gs://...); on a bucket the old copy is deleted
  when the rebuild starts, since object stores cannot swap folders.

  A local data_dir without room for the clips (estimated from the episodes'
  lengths, in folders of up to Builder.PROBE_UP_TO files) is refused before
  any episode is decoded; `flag` names it in the message.
  """
  manual_dir, data_dir = storage.expand(manual_dir), storage.expand(data_dir)
  download_config = _download_config(manual_dir, beam_runner, beam_options)
  if not storage.is_url(manual_dir) and not os.path.isdir(manual_dir):
    raise FileNotFoundError(f'--manual_dir {manual_dir}: no such folder')
  # One listing for the fingerprint and the probes (a request on a bucket).
  listed = episodes_lib.list_episodes(manual_dir, stamps=True)
  if not listed:
    raise FileNotFoundError(f'--manual_dir {manual_dir}: the folder is empty; '
                            'put the episode files there')
  builder = anime_clips.Builder(config=config, data_dir=data_dir,
                                workers=workers)
  target = builder.data_dir
  stamp = episodes_lib.fingerprint(listed) + (
      f':{episodes_lib.split_file_digest(split_file)}' if split_file else '')
  exists = epath.Path(target, 'dataset_info.json').exists()
  old = (builder.info.metadata or {}) if exists else {}
  if exists and not overwrite:
    if old.get('manual_dir_fingerprint') == stamp:
      logging.info('%s exists; reusing it (--overwrite to rebuild)', target)
      return builder
    print(f'rebuilding {target}: the episodes in {manual_dir} or the split '
          'file changed since it was built', flush=True)
  # Splits by hash keep the old build's assignment (data/splits.py).
  kept = None
  if not split_file and old.get('split_rule', 'hash') == 'hash':
    kept = {e: s for s, eps in old.get('split_episodes', {}).items()
            for e in eps}
  if storage.is_url(data_dir):
    # A rename on a bucket copies every object; TFDS's own temporary folder
    # still keeps a half-built dataset from appearing under its name.
    if exists:
      download_config = dataclasses.replace(
          download_config,
          download_mode=tfds.download.GenerateMode.FORCE_REDOWNLOAD)
    _prepare(anime_clips.Builder(config=config, data_dir=data_dir,
                                 workers=workers, split_file=split_file,
                                 kept_splits=kept),
             stamp, download_config)
    return anime_clips.Builder(config=config, data_dir=data_dir, workers=workers)
  # Build under a private data_dir and move the finished dataset in place:
  # an interrupted or failed build never touches (or imitates) a good one.
  _remove_dead_scratch(data_dir)
  probes = _require_room([(n, p) for n, p, _ in listed], data_dir,
                         builder.builder_config.clip, flag)
  scratch = os.path.join(data_dir, f'.building-{os.getpid()}-{uuid.uuid4().hex[:8]}')
  try:
    staging = anime_clips.Builder(config=config, data_dir=scratch,
                                  workers=workers, split_file=split_file,
                                  kept_splits=kept, probes=probes)
    _prepare(staging, stamp, download_config)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    previous = None
    if os.path.exists(target):
      previous = f'{target}.old-{uuid.uuid4().hex[:8]}'
      os.rename(target, previous)
    os.rename(staging.data_dir, target)
    if previous:
      shutil.rmtree(previous)
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  return anime_clips.Builder(config=config, data_dir=data_dir, workers=workers)


# TFDS's shuffler keeps a split's examples in memory up to this many bytes
# and spills the rest to bucket files in the data_dir, uncompressed, until
# the shards are written (tensorflow_datasets/core/shuffle.py).
_SPILL_BYTES = 1000 << 20


def _require_room(listed: list[tuple[str, str]], data_dir: str,
                  spec: clips.ClipSpec, flag: str) -> Optional[dict]:
  """The probes of the (name, path) episodes `listed` (None for big or
  remote folders), once the disk of `data_dir` is known to have room for
  the build: the clips before compression when they are more than the
  shuffler keeps in memory. A
  smaller build writes only compressed shards (the demo's 240 MB of clips
  are 28 MB on disk), too little to estimate ahead."""
  probes = episodes_lib.probe_all(listed, anime_clips.Builder.PROBE_UP_TO)
  if probes:
    need = sum(clips.record_bytes(spec, p) for p in probes.values() if p)
    if need > _SPILL_BYTES:
      storage.free_space(data_dir, need,
                         f'building the clips of {len(probes)} episode(s)',
                         flag)
  return probes


def _download_config(manual_dir: str, beam_runner: Optional[str],
                     beam_options: str | Sequence[str] | None
                     ) -> tfds.download.DownloadConfig:
  """The download config, with a Beam runner and its options if asked for."""
  if not beam_runner:
    if beam_options:
      raise ValueError('--beam_options needs --beam_runner (e.g. '
                       '--beam_runner=DirectRunner)')
    return tfds.download.DownloadConfig(manual_dir=manual_dir)
  try:
    # pylint: disable=g-import-not-at-top
    from apache_beam.options import pipeline_options
    from apache_beam.runners import runner as runner_lib
    # pylint: enable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        f'--beam_runner={beam_runner} needs Apache Beam: pip install -e .[beam]'
        ' (for Dataflow also: pip install "apache-beam[gcp]" gcsfs)') from e
  if isinstance(beam_options, str):
    beam_options = shlex.split(beam_options)
  # Made here so that a misspelt runner or a missing runner extra fails
  # before any episode is listed, not after.
  runner = runner_lib.create_runner(beam_runner)
  return tfds.download.DownloadConfig(
      manual_dir=manual_dir, beam_runner=runner,
      beam_options=pipeline_options.PipelineOptions(list(beam_options or [])))


def _prepare(builder: anime_clips.Builder, stamp: str,
             download_config: tfds.download.DownloadConfig) -> None:
  """download_and_prepare, with a readable error when a split is empty."""
  builder.info.metadata['manual_dir_fingerprint'] = stamp
  try:
    builder.download_and_prepare(download_config=download_config)
  except AssertionError as e:
    if 'No examples were yielded' not in str(e):
      raise
    skipped = builder.info.metadata.get('skipped', [])
    raise RuntimeError(
        f'a split has no clips ({e}); every episode in it was skipped:\n' +
        '\n'.join(f"  {s['episode']}: {s['reason']}" for s in skipped) +
        '\nFix or remove those files, or assign splits with --split_file.'
    ) from None
  except Exception as e:  # pylint: disable=broad-except
    # Under Beam the same check fails inside the pipeline, which wraps it.
    # The pipeline runs again without that split, as the local build
    # leaves it out; the summary then names it (empty_split_notes).
    empty = re.search(r'examples is 0 for split (\S+?)\. This should be >0',
                      str(e))
    if not empty:
      raise
    split = empty.group(1)
    if split in builder.empty_splits or len(builder.empty_splits) >= 2:
      raise
    print(f'split {split} has no clips: every episode in it was skipped '
          "(the workers' logs say why: 'skipped <file>: <reason>'); "
          'building the other splits again without it', flush=True)
    builder.empty_splits.add(split)
    _prepare(builder, stamp, download_config)


def _remove_dead_scratch(data_dir: str) -> None:
  """Removes what killed builds on this machine left behind."""
  if not os.path.isdir(data_dir):
    return
  for name in os.listdir(data_dir):
    parts = name.split('-')
    if not name.startswith('.building-') or len(parts) != 3:
      continue
    try:
      os.kill(int(parts[1]), 0)
    except ProcessLookupError:
      shutil.rmtree(os.path.join(data_dir, name), ignore_errors=True)
    except (ValueError, PermissionError):
      pass


def summary(builder: tfds.core.DatasetBuilder) -> str:
  """A readable account of what was built and what was skipped."""
  meta = builder.info.metadata or {}
  reports = meta.get('episodes', [])
  lines = [f'anime_clips/{builder.builder_config.name} in {builder.data_dir}']
  for split, info in sorted(builder.info.splits.items()):
    eps = meta.get('split_episodes', {}).get(split, [])
    lines.append(f'  {split:<10} {info.num_examples:>7} clips from '
                 f'{len(eps)} episode(s), {info.num_shards} shard(s)')
  seconds = sum(r['seconds'] for r in reports)
  lines.append(f'  {len(reports)} episode(s) used, {seconds / 60:.1f} min of '
               f'video, {sum(r["shots"] for r in reports)} shots, '
               f'{sum(not r["has_audio"] for r in reports)} without audio')
  skipped = meta.get('skipped', [])
  lines.append(f'  {len(skipped)} file(s) skipped' + (':' if skipped else ''))
  lines += [f"    {s['episode']}: {s['reason']}" for s in skipped]
  lines += [f'  moved {m}' for m in meta.get('split_moves', [])]
  lines += [f'  !! {line}' for line in empty_split_notes(builder)]
  return '\n'.join(lines)


def empty_split_notes(builder: tfds.core.DatasetBuilder) -> list[str]:
  """Lines that say loudly which split has no clips, and what to do."""
  meta = builder.info.metadata or {}
  wanted = set(meta.get('split_episodes', {}))
  if meta.get('split_rule', 'hash') == 'hash':
    wanted |= set(anime_clips.Builder.SPLIT_WEIGHTS)
  empty = sorted((wanted | set(meta.get('empty_splits', [])))
                 - set(builder.info.splits))
  out = []
  for split in empty:
    eps = meta.get('split_episodes', {}).get(split, [])
    out.append(
        f'split {split!r} is EMPTY: ' +
        (f'its episode(s) {", ".join(eps[:5])} gave no clips (see skipped)'
         if eps else 'no episode was assigned to it') +
        '. Stages that read it will refuse to start. Add episodes that give '
        'clips, or assign splits with a split file (--split_file / '
        'config.data.split_file), then rebuild.')
  return out


def run(config, workdir: str) -> tfds.core.DatasetBuilder:
  """The `data` stage of main.py: (synthetic episodes ->) dataset."""
  episodes, data_dir = workdir_lib.data_paths(config, workdir)
  name = f'anime_clips/{config.data.builder_config}'
  if jax.process_count() > 1:
    # Processes building one dataset side by side would race over it: a
    # multi-process run only opens the dataset built beforehand.
    prepared = tfds.builder(name, data_dir=data_dir)
    if not prepared.is_prepared():
      raise FileNotFoundError(
          f'no dataset {name} in {data_dir}, and a multi-process run does not '
          'build one; build it first in one process:\n'
          f'  python -m mirai_jax.main --config=... --workdir={workdir} '
          '--mode=data --distributed=off\n'
          'or with python -m mirai_jax.prepare (--beam_runner for hundreds of '
          'episodes; README "Preparing hundreds of episodes with Apache Beam")')
    if jax.process_index() == 0:
      print(summary(prepared), flush=True)
    return prepared
  storage.makedirs(workdir)
  split_file = config.data.split_file or None
  syn = config.data.synthetic
  if syn.num_episodes:
    t0 = time.time()
    # Rendered locally (ffmpeg writes files), then uploaded to a URL.
    local = storage.cache_path(episodes) if storage.is_url(episodes) else episodes
    paths = synthetic.write_episodes(local, syn.num_episodes,
                                     seconds=syn.seconds, height=syn.height,
                                     width=syn.width, seed=syn.seed,
                                     scenery=syn.scenery, hills=syn.hills)
    if local != episodes:
      for suffix in ('', '_truth'):
        storage.upload(local + suffix, episodes + suffix, append_only=True)
    logging.info('%d synthetic episodes in %s (%.1f s)', len(paths), episodes,
                 time.time() - t0)
    if not split_file and len(paths) >= 3:
      # Few episodes: a hash could leave a split empty, so fix the split.
      names = [os.path.basename(p) for p in paths]
      k = max(1, len(names) // 10)  # 80/10/10, at least one episode each
      split_file = os.path.join(storage.cache_path(workdir) if storage.is_url(
          workdir) else workdir, 'synthetic_splits.json')
      storage.write_text(split_file, json.dumps(
          {'train': names[:-2 * k], 'validation': names[-2 * k:-k],
           'test': names[-k:]}, indent=1))
  elif not episodes_lib.list_episodes(episodes):
    prepared = tfds.builder(name, data_dir=data_dir)
    if prepared.is_prepared():  # built beforehand with mirai_jax.prepare
      print(summary(prepared), flush=True)
      return prepared
    raise FileNotFoundError(
        f'no episodes in {episodes} and no dataset {name} in {data_dir}.\n'
        f'Put the episode files (mp4/mkv/webm/..., any frame rate and sound '
        f'layout) in {episodes} (or pass --config.data.episodes=FOLDER) and '
        f'run again, or build the dataset first with\n'
        f'  python -m mirai_jax.prepare --manual_dir=FOLDER '
        f'--config={config.data.builder_config} --data_dir={data_dir}\n'
        'To try the pipeline without episodes: '
        '--config.data.synthetic.num_episodes=6')
  builder = build(episodes, data_dir, config.data.builder_config,
                  workers=config.data.workers or None, split_file=split_file,
                  overwrite=bool(config.data.get('rebuild', False)),
                  beam_runner=config.data.get('beam_runner') or None,
                  beam_options=config.data.get('beam_options') or None,
                  flag=('--config.data.data_dir' if config.data.data_dir
                        else '--workdir'))
  print(summary(builder), flush=True)
  return builder
