"""Test media made on the fly: synthetic episodes, sync probes, bad files."""

import fractions
import io
import json
import os
import shutil
import struct

import numpy as np
from PIL import Image

from mirai_jax import dataset
from mirai_jax import video_io
from mirai_jax.build import synthetic
from mirai_jax.data import tokens as tokens_lib

SECONDS = 9.0
DEVICE_COUNT_FLAG = '--xla_force_host_platform_device_count'


def xla_flags(devices: int) -> str:
  """The session's XLA_FLAGS (conftest.py: its unoptimised compiles) with
  `devices` CPU devices, for a command the tests start."""
  kept = [f for f in os.environ.get('XLA_FLAGS', '').split()
          if not f.startswith(DEVICE_COUNT_FLAG)]
  return ' '.join(kept + [f'{DEVICE_COUNT_FLAG}={devices}'])
SIZE = (120, 160)


def write_synthetic(folder, n):
  paths = synthetic.write_episodes(folder, n, seconds=SECONDS, height=SIZE[0],
                                   width=SIZE[1], seed=7)
  truth = {}
  for p in paths:
    with open(os.path.join(folder + '_truth',
                           os.path.basename(p).replace('.mp4', '.json'))) as f:
      truth[os.path.basename(p)] = json.load(f)
  return dict(folder=folder, paths=paths, truth=truth)


def barcode_frames(n, height=120, width=160, flash=()):
  """Frame k shows k (mod 256) as 8 black/white stripes across the centre
  square, and a white lower half on the frames in `flash` (grey otherwise)."""
  frames = np.full((n, height, width, 3), 128, np.uint8)
  x0 = (width - height) // 2
  stripe = height // 8
  for k in range(n):
    for b in range(8):
      on = (k >> (7 - b)) & 1
      frames[k, :height // 2, x0 + b * stripe:x0 + (b + 1) * stripe] = 255 * on
    if k in flash:
      frames[k, height // 2:] = 255
  return frames


def read_barcode(frames):
  """Inverse of barcode_frames on decoded (possibly scaled) frames."""
  n, h, w, _ = frames.shape
  x0 = (w - h) // 2 if w > h else 0
  side = min(h, w)
  top = frames[:, :h // 2, x0:x0 + side].mean(axis=(1, 3))
  cols = [top[:, int((b + 0.5) * side / 8)] for b in range(8)]
  bits = np.stack(cols, 1) > 128
  return (bits * (1 << np.arange(7, -1, -1))).sum(1)


def beep_audio(num_frames, fps, flash, sample_rate, channels, offset=0.0):
  """Silence with a 1 kHz beep starting exactly at each flash frame's start.

  `offset`: the audio stream will start this many seconds after the video,
  so the beeps are placed that much earlier in the returned samples.
  """
  total = int(round(float(num_frames / fps) * sample_rate))
  mono = np.zeros(total, np.float32)
  for k in flash:
    a = int(round((float(k / fps) - offset) * sample_rate))
    b = a + int(0.03 * sample_rate)
    t = np.arange(b - a) / sample_rate
    mono[a:b] = 0.6 * np.sin(2 * np.pi * 1000 * t)
  # Every channel gets the beep except LFE (which downmixes drop).
  out = np.repeat(mono[:, None], channels, axis=1)
  if channels == 6:
    out[:, 3] = 0
  return (out * 32767).astype(np.int16)


def write_sync_file(path, fps, *, sample_rate=48000, channels=2,
                    audio_codec='aac', video_codec='libx264', offset=0.0,
                    num_frames=96, flash=(10, 31, 47, 70)):
  fps = fractions.Fraction(fps)
  frames = barcode_frames(num_frames, flash=set(flash))
  audio = beep_audio(num_frames, fps, flash, sample_rate, channels, offset)
  if not offset:
    video_io.write_video(path, frames, fps, audio, sample_rate,
                         video_codec=video_codec, audio_codec=audio_codec)
    return flash
  # A real stream offset in the container (not leading silence): encode,
  # then remux with the audio shifted.
  base, ext = os.path.splitext(path)
  tmp = base + '.unshifted' + ext
  video_io.write_video(tmp, frames, fps, audio, sample_rate,
                       video_codec=video_codec, audio_codec=audio_codec)
  import ffmpeg  # pylint: disable=g-import-not-at-top
  (ffmpeg.output(ffmpeg.input(tmp)['v'], ffmpeg.input(tmp, itsoffset=offset)['a'],
                 path, c='copy')
   .global_args('-v', 'error', '-y').run(cmd=video_io.ffmpeg_exe()))
  os.remove(tmp)
  return flash


def build_with_bad_files(root, episodes):
  """Manual dir = the synthetic episodes + one of each bad file, odd names."""
  manual = os.path.join(root, 'manual')
  os.makedirs(manual)
  for p in episodes['paths']:
    shutil.copy(p, manual)
  ep0 = episodes['paths'][0]
  data = open(ep0, 'rb').read()
  bad = {
      '-empty file.mp4': b'',
      'notes.txt': b'not a video\n',
      'truncated $(x) épisode.mp4': data[:len(data) // 3],
  }
  for name, content in bad.items():
    with open(os.path.join(manual, name), 'wb') as f:
      f.write(content)
  # Audio only, and a video too short for one clip.
  audio = (np.sin(np.arange(48000) / 10) * 8000).astype(np.int16)
  _audio_only(os.path.join(manual, 'song.m4a'), audio)
  video_io.write_video(os.path.join(manual, 'short: 5 frames.mp4'),
                       barcode_frames(5), 24, None)
  # A usable video without sound, with a name full of shell characters.
  silent = os.path.join(manual, "silent 'quoted' & ünïcode.mp4")
  video_io.write_video(silent, synthetic.render_episode(
      99, seconds=2.5, height=SIZE[0], width=SIZE[1]).frames, 24, None)
  bad = list(bad) + ['song.m4a', 'short: 5 frames.mp4']
  split_file = os.path.join(root, 'splits.json')
  names = [os.path.basename(p) for p in episodes['paths']]
  with open(split_file, 'w') as f:
    json.dump({'train': names[:-2] + [os.path.basename(silent)] + bad,
               'validation': names[-2:-1], 'test': names[-1:]}, f)
  data_dir = os.path.join(root, 'tfds')
  builder = dataset.build(manual, data_dir, '64x64_t20', workers=2,
                          split_file=split_file)
  return dict(builder=builder, manual=manual, data_dir=data_dir,
              split_file=split_file, bad=bad,
              silent=os.path.basename(silent), episodes=episodes)


def _audio_only(path, pcm, sample_rate=48000):
  import ffmpeg  # pylint: disable=g-import-not-at-top
  raw = path + '.s16'
  pcm.tofile(raw)
  (ffmpeg.input(raw, format='s16le', ar=sample_rate, ac=1)
   .output(path, acodec='aac').global_args('-v', 'error', '-y')
   .run(cmd=video_io.ffmpeg_exe()))
  os.remove(raw)


def demo_config(**overrides):
  """configs/demo.py's config with dotted-name overrides (`a.b=1` style)."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  spec = importlib.util.spec_from_file_location(
      'demo_config', os.path.join(root, 'configs', 'demo.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  for key, value in overrides.items():
    _set(config, key, value)
  return config


def _set(node, key, value):
  """node['a']['b'] = value for key 'a__b'."""
  *path, last = key.split('__')
  for p in path:
    node = node[p]
  node[last] = value


def tiny_tokenizer(config, **overrides):
  """A tokenizer that trains in a second a step on CPU (patchified, one level)."""
  t = config.tokenizer
  t.channels = (16,)
  t.patch = 4
  t.spatial = 4
  t.num_res_blocks = 1
  t.batch_size = 4
  t.eval_batch_size = 4
  t.eval_batches = 2
  t.train_frames = 4
  t.log_every = 1
  t.checkpoint_every = 3
  t.eval_every = 0
  t.warmup_steps = 2
  for k, v in overrides.items():
    _set(t, k, v)
  return config


def write_fake_tokens(directory, grid=(6, 4, 4), codebook=50, counts=None,
                      sr=16000):
  """Token records whose next step copies the current one, with sound."""
  os.makedirs(directory, exist_ok=True)
  rng = np.random.default_rng(0)
  counts = counts or dict(train=24, validation=8, test=8)
  audio_len = int(np.ceil(grid[0] * sr / 24.0))
  for split, n in counts.items():
    w = tokens_lib.Writer(tokens_lib.shard_path(directory, split, 0, 1))
    for i in range(n):
      first = rng.integers(0, codebook, grid[1:])
      t = np.repeat(first[None], grid[0], 0).astype(np.uint16)
      w.write(dict(tokens=t, audio=rng.normal(0, 3000, audio_len).astype(np.int16),
                   has_audio=True, episode=f'ep{i % 3}.mp4', start_frame=i * 10,
                   shot=0, fps_num=24, fps_den=1, sample_rate=sr))
    w.close()
  tokens_lib.write_meta(directory, dict(
      grid=list(grid), codebook_size=codebook, tokenizer_step=1,
      clip_spec=dict(frames=grid[0], sample_rate=sr, height=16, width=16,
                     resize='crop', fps=None),
      splits=counts, temporal=1, audio_len=audio_len))


# LPIPS and FVD (AlexNet and I3D on CPU) only where a test checks them: the
# demo test in test_main.py.
NO_LPIPS_FVD = ('--config.evaluate.lpips=false',
                '--config.evaluate.fvd_clips=0')

# The demo config made tiny: every stage of main.py in about 40 s.
TINY_DEMO = (
    '--config.data.synthetic.num_episodes=3',
    '--config.data.synthetic.seconds=5',
    '--config.preview.num_clips=4',
    # A tokenizer that trains in seconds, through every stage.
    '--config.tokenizer.channels=(16,)', '--config.tokenizer.patch=8',
    '--config.tokenizer.spatial=8',
    '--config.tokenizer.steps=4', '--config.tokenizer.batch_size=4',
    '--config.tokenizer.eval_batch_size=4',
    '--config.tokenizer.eval_every=4',
    # ... and a transformer too, then evaluate and predict.
    '--config.transformer.width=32', '--config.transformer.depth=1',
    '--config.transformer.frames=4', '--config.transformer.context=2',
    '--config.transformer.audio_channels=16',
    '--config.transformer.steps=3', '--config.transformer.batch_size=4',
    '--config.transformer.eval_batch_size=4',
    '--config.transformer.eval_every=3',
    '--config.evaluate.batch_size=4', '--config.evaluate.max_clips=5',
    # The pixel baselines, when a test trains them.
    '--config.pix2pix.channels=(8,16)', '--config.pix2pix.disc_channels=(8,)',
    '--config.multiscale.scales=2', '--config.multiscale.channels=(8,)',
    '--config.multiscale.disc_channels=(8,8)',
    '--config.multiscale.disc_hidden=8',
    *[f'--config.{b}.{k}={v}' for b in ('pix2pix', 'multiscale')
      for k, v in (('steps', 2), ('batch_size', 4), ('eval_batch_size', 4),
                   ('eval_every', 2), ('eval_batches', 1))])


def tb_images(tb_dir: str) -> dict:
  """{tag: [(step, (H, W, 3) uint8)]} of every image summary in `tb_dir`,
  read from the TFRecord framing (length, crc, event, crc): no TensorFlow
  or tensorboard package needed."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  out = {}
  for name in sorted(os.listdir(tb_dir)):
    data = open(os.path.join(tb_dir, name), 'rb').read()
    pos = 0
    while pos < len(data):
      (size,) = struct.unpack('<Q', data[pos:pos + 8])
      event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + size])
      pos += 12 + size + 4
      for v in event.summary.value:
        if v.HasField('image'):
          png = Image.open(io.BytesIO(v.image.encoded_image_string))
          out.setdefault(v.tag, []).append((event.step, np.asarray(png)))
  return out
