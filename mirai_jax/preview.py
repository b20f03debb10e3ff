"""The `preview` stage: a GIF grid and an MP4 (with sound) of a few clips."""

from __future__ import annotations

import os

import numpy as np

from mirai_jax import render
from mirai_jax import storage
from mirai_jax import workdir as workdir_lib


def run(config, workdir: str) -> list[str]:
  builder = workdir_lib.open_dataset(config, workdir, ('preview',))
  p = config.preview
  source = builder.as_data_source(split=p.split)
  n = min(p.num_clips, len(source))
  # Evenly spaced records: a spread over episodes, the same every run.
  records = [source[int(i)] for i in np.linspace(0, len(source) - 1, n)]
  videos = np.stack([r['video'] for r in records])
  fps = float(records[0]['fps'])
  out = workdir_lib.stage_dir(workdir, 'preview')
  gif = os.path.join(out, f'{p.split}_grid.gif')
  with storage.output_file(gif) as local:
    render.write_gif(local, render.grid(videos, p.cols, p.scale), fps)
  frames, audio = render.sequence(videos, [r['audio'] for r in records],
                                     scale=p.scale)
  mp4 = os.path.join(out, f'{p.split}_clips.mp4')
  with storage.output_file(mp4) as local:
    render.write_mp4(local, frames, fps, audio,
                        int(records[0]['sample_rate']))
  print(f'preview: {gif} ({n} clips in a grid), {mp4} (one after another, '
        'with their sound)', flush=True)
  return [gif, mp4]
