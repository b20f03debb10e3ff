r"""Dataset preparation speed against a bare ffmpeg decode of the same files.

  python bench/prepare_speed.py [--episodes=DIR] [--config=64x64_t20]

Without --episodes it renders 6 synthetic 24 s episodes (320x240) first.
Prints one JSON line: seconds of video per second for a bare decode (the
same ffmpeg scaling to the same size, output thrown away), for the full
preparation with one worker (decode + audio + cuts + records), and for the
preparation with the default workers; `ratio` = bare / prepare at one worker
(the cost of everything but decoding; the goal is <= 1.5).
"""

import json
import os
import platform
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mirai_jax import dataset  # pylint: disable=g-import-not-at-top,wrong-import-position
from mirai_jax import video_io  # pylint: disable=g-import-not-at-top,wrong-import-position
from mirai_jax.build import episodes  # pylint: disable=g-import-not-at-top,wrong-import-position
from mirai_jax.build import synthetic  # pylint: disable=g-import-not-at-top,wrong-import-position

_EPISODES = flags.DEFINE_string('episodes', None, 'Folder of episode files.')
_CONFIG = flags.DEFINE_string('config', '64x64_t20', 'anime_clips config.')


def bare_decode_seconds(paths, spec):
  t0 = time.perf_counter()
  for path in paths:
    p = video_io.probe(path)
    filters = [f'fps={p.fps.numerator}/{p.fps.denominator}'] + [
        name + '=' + ':'.join(f'{k}={v}' for k, v in kw.items())
        for name, kw in video_io.scale_filter(p, spec.height, spec.width,
                                              spec.resize)]
    subprocess.run([video_io.ffmpeg_exe(), '-v', 'error', '-nostdin', '-i',
                    'file:' + os.path.abspath(path), '-map', '0:V:0', '-vf',
                    ','.join(filters), '-f', 'rawvideo', '-pix_fmt', 'rgb24',
                    'pipe:1'], stdout=subprocess.DEVNULL, check=True)
  return time.perf_counter() - t0


def main(_):
  with tempfile.TemporaryDirectory() as tmp:
    folder = _EPISODES.value
    if not folder:
      folder = os.path.join(tmp, 'episodes')
      synthetic.write_episodes(folder, 6, seconds=24.0)
    paths = [p for _, p in episodes.list_episodes(folder)]
    usable = []
    for p in paths:
      try:
        video_io.probe(p)
        usable.append(p)
      except video_io.VideoError:
        pass
    config = dataset.make_config(_CONFIG.value)
    bare = bare_decode_seconds(usable, config.clip)
    timings = {}
    for workers in (1, None):
      t0 = time.perf_counter()
      builder = dataset.build(folder, os.path.join(tmp, f'tfds{workers}'),
                              config, workers=workers)
      timings[workers] = time.perf_counter() - t0
    video = sum(r['seconds'] for r in builder.info.metadata['episodes'])
    print(json.dumps(dict(
        benchmark='prepare_speed', config=config.name, files=len(paths),
        video_seconds=round(video, 1),
        bare_decode_video_s_per_s=round(video / bare, 1),
        prepare_1_worker_video_s_per_s=round(video / timings[1], 1),
        prepare_default_workers_video_s_per_s=round(video / timings[None], 1),
        ratio=round(timings[1] / bare, 2),
        clips=sum(s.num_examples for s in builder.info.splits.values()),
        cpus=os.cpu_count(), machine=platform.processor() or platform.machine(),
        episodes=_EPISODES.value or 'synthetic 6 x 24 s, 320x240')))


if __name__ == '__main__':
  app.run(main)
