r"""Builds the anime_clips dataset from a folder of episodes, without TensorFlow.

  python -m mirai_jax.prepare --manual_dir=EPISODES --data_dir=~/tensorflow_datasets \
      [--config=64x64_t20] [--stride=5 --name=64x64_t20_s5] [--workers=4]

Flag names follow `tfds build`. Named configs (mirai_jax/build/clips.py
NAMED): 64x64_t20 (default), 128x128_t16, 128x128_t32, 64x112_t20 (16:9,
centre crop), 64x112_t20_pad; any clip field can be changed with its own
flag, which makes a new config (named by --name). Files that cannot be used are
reported by name with the reason and skipped; the summary lists them. The
dataset only appears under data_dir once it is complete.

Hundreds of episodes: the same records from an Apache Beam pipeline, one
episode per work item (`pip install -e .[beam]`; README, "Preparing hundreds
of episodes with Apache Beam", has Dataflow, Spark and Flink commands):

  python -m mirai_jax.prepare --manual_dir=EPISODES --data_dir=OUT \
      --beam_runner=DirectRunner --beam_options="--direct_num_workers=4 \
      --direct_running_mode=multi_processing"
"""

from __future__ import annotations

import dataclasses
import time
from typing import Sequence

from absl import app
from absl import flags

from mirai_jax import dataset
from mirai_jax import errors
from mirai_jax import storage
from mirai_jax.build import clips

_MANUAL_DIR = flags.DEFINE_string('manual_dir', None, 'Folder of episode files.')
_DATA_DIR = flags.DEFINE_string('data_dir', '~/tensorflow_datasets',
                                'Where datasets are written.')
_CONFIG = flags.DEFINE_string('config', '64x64_t20', 'Named builder config.')
_NAME = flags.DEFINE_string('name', None,
                            'Name of the config made by the field flags below.')
_WORKERS = flags.DEFINE_integer('workers', None,
                                'Episodes decoded at once (default: half the cores, at most 8).')
_OVERWRITE = flags.DEFINE_bool(
    'overwrite', False, 'Rebuild even if the dataset exists; the old copy is '
    'kept until the new one is complete.')
_SPLIT_FILE = flags.DEFINE_string(
    'split_file', None, 'JSON {"train": [names], "test": [...]}; default: '
    'split by a stable hash of the file name.')
_BEAM_RUNNER = flags.DEFINE_string(
    'beam_runner', None, 'Prepare with Apache Beam on this runner, one '
    'episode per work item: DirectRunner, DataflowRunner, FlinkRunner, '
    'SparkRunner, PortableRunner (pip install -e .[beam]). Then --manual_dir '
    'and --data_dir may be URLs such as gs://bucket/episodes.')
_BEAM_OPTIONS = flags.DEFINE_string(
    'beam_options', None, 'Beam pipeline options as one string of flags, e.g. '
    '"--project=P --region=R --temp_location=gs://B/tmp".')
_FIELDS = {
    f.name: (flags.DEFINE_bool if f.type in ('bool', bool) else
             flags.DEFINE_float if f.type in ('float', float) else
             flags.DEFINE_integer if f.type in ('int', int) else
             flags.DEFINE_string)(f.name, None, f'Clip field `{f.name}` '
                                  f'(default {f.default!r}).')
    for f in dataclasses.fields(clips.ClipSpec)
}


def main(argv: Sequence[str]) -> None:
  # A wrong flag, a missing folder, a full disk: one or two lines.
  errors.run_main(_main, argv, folder_flag='--data_dir')


def _main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not _MANUAL_DIR.value:
    raise app.UsageError('--manual_dir (the folder of episode files) is required')
  if _BEAM_OPTIONS.value and not _BEAM_RUNNER.value:
    raise app.UsageError('--beam_options needs --beam_runner (e.g. '
                         '--beam_runner=DirectRunner)')
  try:
    config = dataset.make_config(_CONFIG.value, _NAME.value,
                                 **{k: f.value for k, f in _FIELDS.items()})
  except ValueError as e:  # an unknown config, a clip field out of range
    raise errors.UserError(str(e)) from e
  storage.writable(_DATA_DIR.value, '--data_dir')
  t0 = time.time()
  builder = dataset.build(_MANUAL_DIR.value, _DATA_DIR.value, config,
                          workers=_WORKERS.value, split_file=_SPLIT_FILE.value,
                          overwrite=_OVERWRITE.value,
                          beam_runner=_BEAM_RUNNER.value,
                          beam_options=_BEAM_OPTIONS.value)
  print(dataset.summary(builder))
  print(f'  took {time.time() - t0:.1f} s. Read it with '
        f'tfds.builder_from_directory({builder.data_dir!r}).as_data_source()')
  if storage.is_url(builder.data_dir):
    print('  after copying it to a local disk (array_record reads local files '
          'only); main.py makes that copy itself when given '
          f'--config.data.data_dir={_DATA_DIR.value}')


if __name__ == '__main__':
  app.run(main)
