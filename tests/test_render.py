"""GIF/MP4 writers and the clip grid."""

import numpy as np
from PIL import Image

from mirai_jax import render
from mirai_jax import video_io


def test_grid_places_each_clip():
  videos = np.zeros((5, 3, 4, 6, 3), np.uint8)
  for i in range(5):
    videos[i] = 40 * (i + 1)
  g = render.grid(videos, cols=2, scale=2, pad=1)
  assert g.shape == (3, 3 * (8 + 1) + 1, 2 * (12 + 1) + 1, 3)
  for i in range(5):
    r, c = divmod(i, 2)
    y, x = 1 + r * 9, 1 + c * 13
    assert (g[:, y:y + 8, x:x + 12] == 40 * (i + 1)).all()
  assert (g[:, 19:27, 14:26] == 255).all()  # the empty sixth cell


def test_float_videos_are_accepted():
  v = np.linspace(-1, 1, 2 * 2 * 2 * 3).reshape(1, 2, 2, 2, 3)
  out = render.to_uint8(v)
  assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255


def test_gif_and_mp4_round_trip(tmp_path):
  frames = np.zeros((12, 33, 47, 3), np.uint8)  # odd sizes on purpose
  for t in range(12):
    frames[t, :, : 4 * t] = 255
  gif = str(tmp_path / 'a.gif')
  render.write_gif(gif, frames, fps=12)
  im = Image.open(gif)
  assert im.n_frames == 12 and im.size == (47, 33)
  audio = (np.sin(np.arange(16000) / 5) * 9000).astype(np.int16)
  mp4 = str(tmp_path / 'a.mp4')
  render.write_mp4(mp4, frames, fps=12, audio=audio, sample_rate=16000)
  p = video_io.probe(mp4)
  assert p.has_audio and p.fps == 12
  d = video_io.decode(mp4, 34, 48, resize='stretch', probe_=p)
  assert len(d.frames) == 12
  assert np.abs(d.audio_span(0, 12).astype(np.float32)).mean() > 1000


def test_sequence_keeps_each_clips_sound():
  videos = np.zeros((2, 3, 4, 4, 3), np.uint8)
  audios = [np.full(10, 1, np.int16), np.full(11, 2, np.int16)]
  frames, audio = render.sequence(videos, audios, scale=2)
  assert frames.shape == (6, 8, 8, 3)
  assert audio.tolist() == [1] * 10 + [2] * 11
