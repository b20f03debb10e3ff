r"""Demo on built-in synthetic cartoon episodes; runs on 2 CPU cores.

  python -m mirai_jax.main --config=configs/demo.py --workdir=/tmp/mirai_demo

Stages: `data` renders 6 synthetic episodes (24 s each, 23.976 fps, AAC
stereo; ground truth JSON in <workdir>/episodes_truth) and builds the
anime_clips dataset from them; `preview` writes a GIF grid and an MP4 (with
sound) of a few training clips to <workdir>/preview.

Run time: ~1 minute on 2 CPU cores (see README for the measured figure).
Expected result: a summary with train 4 / validation 1 / test 1 episodes,
about 50 clips of 20x64x64 per episode, 0 files skipped, and the preview
files. Run one stage with --mode=preview; change any field with e.g.
--config.data.synthetic.num_episodes=10.
"""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.stages = 'data,preview'  # comma-separated, run in order

  c.data = ml_collections.ConfigDict()
  # Folder of episode files (the TFDS manual dir); '' = <workdir>/episodes.
  c.data.episodes = ''
  c.data.synthetic = ml_collections.ConfigDict(dict(
      num_episodes=6,  # 0: use the episodes already in data.episodes
      seconds=24.0, height=240, width=320, seed=0))
  c.data.data_dir = ''  # '' = <workdir>/tensorflow_datasets
  c.data.builder_config = '64x64_t20'  # tfds_builders/anime_clips CONFIGS
  c.data.split_file = ''  # '' = stable hash of file names (synthetic: fixed)
  c.data.workers = 0  # episodes decoded at once; 0 = half the cores

  c.input = ml_collections.ConfigDict(dict(
      batch_size=8, seed=0, worker_count=0, flip=False))

  c.preview = ml_collections.ConfigDict(dict(
      split='train', num_clips=8, cols=4, scale=2))
  return c
