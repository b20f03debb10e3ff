r"""grain loader throughput in clips/s at 64x64x20.

  python bench/loader_throughput.py [--data_dir=DIR] [--batch_size=32]

Without --data_dir it builds the dataset from 6 synthetic episodes first.
Prints one JSON line with clips/s for worker_count 0 (the default) and 2.
"""

import json
import os
import sys
import tempfile
import time

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mirai_jax.data import dataset  # pylint: disable=g-import-not-at-top,wrong-import-position
from mirai_jax.data import pipeline  # pylint: disable=g-import-not-at-top,wrong-import-position
from mirai_jax.data import synthetic  # pylint: disable=g-import-not-at-top,wrong-import-position

_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Built TFDS data_dir.')
_BATCH = flags.DEFINE_integer('batch_size', 32, 'Global batch size.')
_BATCHES = flags.DEFINE_integer('batches', 60, 'Batches timed per setting.')


def clips_per_second(builder, workers):
  loader = pipeline.make_loader(builder, 'train', global_batch_size=_BATCH.value,
                                worker_count=workers, seed=0)
  it = iter(loader)
  next(it)  # start-up (worker processes) is not throughput
  t0 = time.perf_counter()
  for _ in range(_BATCHES.value):
    next(it)
  return _BATCH.value * _BATCHES.value / (time.perf_counter() - t0)


def main(_):
  with tempfile.TemporaryDirectory() as tmp:
    data_dir = _DATA_DIR.value
    if not data_dir:
      episodes = os.path.join(tmp, 'episodes')
      synthetic.write_episodes(episodes, 6, seconds=24.0)
      data_dir = os.path.join(tmp, 'tfds')
      dataset.build(episodes, data_dir)
    builder = pipeline.dataset_builder(data_dir)
    result = {f'workers_{w}_clips_per_s': round(clips_per_second(builder, w), 1)
              for w in (0, 2)}
    print(json.dumps(dict(benchmark='loader_throughput', shape='20x64x64x3',
                          batch_size=_BATCH.value, cpus=os.cpu_count(),
                          train_clips=builder.info.splits['train'].num_examples,
                          **result)))


if __name__ == '__main__':
  app.run(main)
