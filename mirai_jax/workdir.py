"""Where a run's inputs and outputs live, and opening them from a config.

One copy each of what every stage needs: the episode folder and TFDS
data_dir of a config, the built dataset (read from its files, never through
the builder), its splits checked against the stages that read them, the
token set in use, and the device mesh. Stage outputs live in
<workdir>/<stage>: tokenizer/, tokens/, transformer/, evaluate/, predict/,
preview/.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional, Sequence

import jax
import tensorflow_datasets as tfds

from mirai_jax import mesh as mesh_lib
from mirai_jax import storage
from mirai_jax.build import clips
from mirai_jax.data import identity
from mirai_jax.data import pipeline
from mirai_jax.data import splits
from mirai_jax.data import tokens
from mirai_jax.models import from_config


def stage_dir(workdir: str, stage: str) -> str:
  """<workdir>/<stage>: what `stage` writes (checkpoints, metrics, tables)."""
  return os.path.join(workdir, stage)


def checkpoint_dir(workdir: str, stage: str) -> str:
  return os.path.join(stage_dir(workdir, stage), 'checkpoints')


def latest_step(workdir: str, stage: str) -> Optional[int]:
  """The newest checkpoint step of `stage` in `workdir` (None: none), from
  the folder names alone."""
  directory = checkpoint_dir(workdir, stage)
  if not storage.exists(directory):
    return None
  if storage.is_url(directory):
    fs, path = storage.filesystem(directory)
    names = [os.path.basename(n.rstrip('/')) for n in fs.ls(path)]
  else:
    names = os.listdir(directory)
  steps = [int(n) for n in names if n.isdigit()]
  return max(steps) if steps else None


REPORTED = ('tokenizer', 'transformer', 'pix2pix', 'multiscale')


def report_stages(config, workdir: str) -> list[str]:
  """What `--mode=report` runs: data (a dataset up to date is kept), every
  model of REPORTED not yet trained to its config's steps (resumed where it
  stopped), tokenize when the token records are not of the tokenizer's
  last step, then evaluate (every method) and report."""
  todo = ['data']
  for stage in REPORTED:
    step = latest_step(workdir, stage)
    if step is None or step < config[stage].steps:
      todo.append(stage)
    if stage == 'tokenizer' and ('tokenizer' in todo or not _tokens_of(
        workdir, step)):
      todo.append('tokenize')
  return todo + ['evaluate', 'report']


def _tokens_of(workdir: str, tokenizer_step: Optional[int]) -> bool:
  """Whether the current token records were made by that tokenizer step."""
  try:
    records = tokens.read_records(tokens.current(tokens_dir(workdir)))
  except (OSError, ValueError):
    return False
  return records.tokenizer_step == tokenizer_step


def tokens_dir(workdir: str) -> str:
  return stage_dir(workdir, 'tokens')


def data_paths(config, workdir: str) -> tuple[str, str]:
  """(episode folder, TFDS data_dir) of an ml_collections run config."""
  return (storage.expand(config.data.episodes or
                         os.path.join(workdir, 'episodes')),
          storage.expand(config.data.data_dir or
                         os.path.join(workdir, 'tensorflow_datasets')))


def dataset_name(config) -> str:
  return f'anime_clips/{config.data.builder_config}'


def open_dataset(config, workdir: str,
                 stages: Sequence[str] = ()) -> tfds.core.DatasetBuilder:
  """The config's built dataset (FileNotFoundError with the command that
  builds it), its splits checked for the `stages` that read them."""
  builder = pipeline.dataset_builder(data_paths(config, workdir)[1],
                                     dataset_name(config))
  if stages:
    check_splits(config, stages, builder)
  return builder


def built_dataset(config, workdir: str) -> Optional[tfds.core.DatasetBuilder]:
  """The config's dataset if it is built, else None; reads only its
  dataset_info.json (nothing is mirrored from a bucket)."""
  return pipeline.built(data_paths(config, workdir)[1], dataset_name(config))


def current_identity(config, workdir: str) -> Optional[dict]:
  """The identity of the config's dataset as built now (None when it is not
  built)."""
  builder = built_dataset(config, workdir)
  return identity.of_builder(builder) if builder is not None else None


def split_sizes(builder: tfds.core.DatasetBuilder) -> dict[str, int]:
  return {s: int(i.num_examples) for s, i in builder.info.splits.items()}


def check_splits(config, stages: Sequence[str],
                 builder: tfds.core.DatasetBuilder) -> None:
  """Before any compute: every split the later `stages` read has clips,
  and at least one evaluation batch of them (data/splits.py)."""
  splits.check(config, stages, split_sizes(builder),
               f'anime_clips/{builder.builder_config.name} in '
               f'{builder.data_dir}',
               '. Add episodes or assign splits with --config.data.'
               'split_file, then rebuild with --mode=data '
               '--config.data.rebuild=True')


def check_built(config, workdir: str, stages: Sequence[str]) -> None:
  """check_splits on the config's dataset if it is built already: what a
  run that does not build it checks before its first stage."""
  builder = built_dataset(config, workdir)
  if builder is not None:
    check_splits(config, stages, builder)


def token_set(config, workdir: str, stages: Sequence[str] = ()
              ) -> tuple[str, tokens.Records]:
  """(folder, description) of the token set in use, once it is known to be
  of the dataset built now and to hold the splits `stages` read. Resolve it
  once per run: tokenize may swap in a new set meanwhile."""
  directory = tokens.current(tokens_dir(workdir))
  records = tokens.read_records(directory)
  identity.require_same(
      records.dataset_identity, current_identity(config, workdir),
      what=f'the token records in {directory}',
      fix='Make them again from the current dataset: --mode=tokenize.')
  splits.check(config, stages, records.splits,
               f'the token records in {directory}',
               '. Assign episodes to it (--config.data.split_file), rebuild '
               'the dataset and tokenize again')
  return directory, records


def expected_records(config) -> tokens.Records:
  """The token records `tokenize` would write for this config (grid,
  codebook, clip spec), for benchmarks and checks that need no dataset."""
  spec = clips.NAMED[config.data.builder_config][1]
  t = config.tokenizer
  return tokens.Records(
      grid=(spec.frames // t.temporal, spec.height // t.spatial,
            spec.width // t.spatial),
      codebook_size=from_config.tokenizer(config).codebook_size,
      clip_spec=dataclasses.asdict(spec), temporal=t.temporal)


def make_mesh(config) -> jax.sharding.Mesh:
  """The device mesh config.mesh describes (the CPU split first if jax has
  not started: benchmarks come here first; main splits it earlier)."""
  mesh_lib.split_cpu(config.mesh.get('cpu_devices', 0))
  return mesh_lib.make_mesh(config.mesh.fsdp, config.mesh.devices)
