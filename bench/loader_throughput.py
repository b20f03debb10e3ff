r"""grain loader throughput in clips/s at a config's clip spec and workers.

  python bench/loader_throughput.py [--config=configs/kny.py] [--data_dir=DIR]
      [--batch_size=64] [--workers=0,8]

Reads the train split of `config.data.builder_config` (kny: 32x128x128
clips) from --data_dir; without it, it first renders 6 synthetic episodes and
builds that dataset in a temporary folder (needs the imageio-ffmpeg wheel).
Prints one JSON line with clips/s for each worker count (default: 0 and the
config's input.worker_count), to set beside the clips/s the tokenizer's
training step consumes (bench/train_tokenizer.py). Figures: README
"Benchmarks".
"""

import json
import os
import sys
import tempfile
import time

from absl import app
from absl import flags
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mirai_jax.data import pipeline  # pylint: disable=g-import-not-at-top,wrong-import-position

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(__file__), '..', 'configs', 'kny.py'))
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Built TFDS data_dir.')
_BATCH = flags.DEFINE_integer('batch_size', 0, 'Global batch size; 0 = the '
                              "config's tokenizer.batch_size.")
_WORKERS = flags.DEFINE_list('workers', [], "Worker counts; default 0 and the "
                             "config's input.worker_count.")
_BATCHES = flags.DEFINE_integer('batches', 30, 'Batches timed per setting.')


def clips_per_second(builder, batch, workers, flip):
  loader = pipeline.make_loader(builder, 'train', global_batch_size=batch,
                                worker_count=workers, seed=0, flip=flip)
  it = iter(loader)
  next(it)  # start-up (worker processes) is not throughput
  t0 = time.perf_counter()
  for _ in range(_BATCHES.value):
    next(it)
  return batch * _BATCHES.value / (time.perf_counter() - t0)


def main(_):
  config = _CONFIG.value
  name = config.data.builder_config
  batch = _BATCH.value or config.tokenizer.batch_size
  workers = [int(w) for w in _WORKERS.value] or sorted(
      {0, config.input.worker_count})
  with tempfile.TemporaryDirectory() as tmp:
    data_dir = _DATA_DIR.value
    if not data_dir:
      from mirai_jax import dataset  # pylint: disable=g-import-not-at-top
      from mirai_jax.build import synthetic  # pylint: disable=g-import-not-at-top
      episodes = os.path.join(tmp, 'episodes')
      synthetic.write_episodes(episodes, 6, seconds=24.0)
      data_dir = os.path.join(tmp, 'tfds')
      dataset.build(episodes, data_dir, name)
    builder = pipeline.dataset_builder(data_dir, f'anime_clips/{name}')
    clip = builder.info.features['video'].shape
    result = {f'workers_{w}_clips_per_s': round(
        clips_per_second(builder, batch, w, config.input.flip), 1)
              for w in workers}
    print(json.dumps(dict(benchmark='loader_throughput', config=name,
                          clip='x'.join(map(str, clip)), batch_size=batch,
                          cpus=os.cpu_count(),
                          train_clips=builder.info.splits['train'].num_examples,
                          **result)))


if __name__ == '__main__':
  app.run(main)
