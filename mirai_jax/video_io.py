"""Probe and decode episode files with ffmpeg (video at target size, mono PCM).

Everything runs through one ffmpeg binary: the one on PATH when there is one,
else the static build that the `imageio-ffmpeg` wheel carries. That build has no
ffprobe, so probing reads what ffmpeg itself prints: the header for the
streams, and `showinfo` on the first video frame for the exact rational frame
rate, start time, decoded size and pixel aspect.

Timeline convention: frame k of the decoded video is shown at
`(first_frame_index + k) / fps` seconds of the file's timeline, and audio sample
n at `n / sample_rate` seconds of the same timeline (silence where the file has
none, AAC encoder delay already removed by the demuxer), so
`audio_span(k0, k1)` is exactly the sound of frames k0..k1-1.
"""

from __future__ import annotations

import dataclasses
import fractions
import functools
import os
import re
import shutil
import subprocess
import tempfile
from typing import Optional

import ffmpeg
import numpy as np


# 24000/1001 frames per second: NTSC film, the slowest rate anime ships at
# (and the default where a rate is not known).
FILM_RATE = 24000 / 1001


class VideoError(Exception):
  """A file that cannot be used as an episode; the message says why."""


@functools.cache
def ffmpeg_exe() -> str:
  """`$MIRAI_FFMPEG`, else ffmpeg on PATH, else the imageio-ffmpeg binary."""
  exe = os.environ.get('MIRAI_FFMPEG') or shutil.which('ffmpeg')
  if exe:
    return exe
  import imageio_ffmpeg  # pylint: disable=g-import-not-at-top
  return imageio_ffmpeg.get_ffmpeg_exe()


def _input(path: str, **kwargs):
  # The `file:` protocol keeps names with ':' or a leading '-' from being read
  # as protocols or options.
  return ffmpeg.input('file:' + os.path.abspath(path), **kwargs)


@dataclasses.dataclass(frozen=True)
class Probe:
  """What decoding needs to know about one file."""
  path: str
  width: int  # decoded frame size (after rotation), in stored pixels
  height: int
  sar: fractions.Fraction  # sample (pixel) aspect ratio
  fps: fractions.Fraction
  first_frame_time: float  # seconds, on the file's timeline
  duration: Optional[float]  # container duration in seconds, if known
  video_codec: str
  audio_codec: Optional[str]  # None when the file has no audio stream
  audio_channels: int
  audio_rate: int
  audio_index: int = 0  # which sound stream (`a:K`): the default track

  @property
  def has_audio(self) -> bool:
    return self.audio_codec is not None

  @property
  def display_size(self) -> tuple[int, int]:
    """(width, height) with square pixels."""
    return max(1, round(self.width * self.sar)), self.height


# Demuxer messages that mean the file stops before its end. Other decode
# errors (a few corrupt packets) only warn: the rest of the episode is good.
_TRUNCATED = ('ended prematurely', 'partial file', 'truncated')


def _last_error(stderr: str) -> str:
  """The most telling line of ffmpeg's complaint, without its `[ctx @ 0x..]`."""
  lines = [re.sub(r'^\[[^\]]*\]\s*', '', l).strip() for l in stderr.splitlines()]
  lines = [l for l in lines if l]
  for line in lines:
    low = line.lower()
    if any(m in low for m in _TRUNCATED + ('error', 'invalid', 'not found')):
      return line
  return lines[-1] if lines else 'no message'


def _ratio(text: str) -> fractions.Fraction:
  num, den = text.split('/')
  return fractions.Fraction(int(num), int(den)) if int(den) else fractions.Fraction(0)


def probe(path: str) -> Probe:
  """Reads stream facts from the header and the first video frame of `path`."""
  if not os.path.isfile(path):
    raise VideoError(f'{path}: no such file')
  if os.path.getsize(path) == 0:
    raise VideoError(f'{path}: empty file (0 bytes)')
  # Plain arguments rather than ffmpeg-python: the optional map (`?`) has no
  # place in the filter_complex labels ffmpeg-python writes. `V` skips cover
  # art. Audio facts come from the header: asking for the first audio frame
  # in the same command races with the video's frame limit.
  args = [ffmpeg_exe(), '-hide_banner', '-nostdin', '-i',
          'file:' + os.path.abspath(path),
          '-map', '0:V:0?', '-vf', 'showinfo', '-frames:v', '1',
          '-f', 'null', '-']
  proc = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,
                        check=False)
  err = proc.stderr.decode('utf-8', 'replace')
  streams = _input_streams(err)
  video = [v for kind, v in streams if kind == 'Video' and 'attached pic' not in v]
  if not video and any(kind == 'Audio' for kind, _ in streams):
    raise VideoError(f'{path}: audio only, no video stream')
  # Episode folders hold subtitles (.srt, .ass) too: ffmpeg opens them, and
  # then fails for want of a frame to output.
  if not video and streams:
    kinds = sorted({kind.lower() for kind, _ in streams})
    raise VideoError(f'{path}: no video stream (its streams: '
                     f'{", ".join(kinds)})')
  if proc.returncode != 0:
    raise VideoError(f'{path}: not a readable video (corrupt, truncated or '
                     f'another kind of file): {_last_error(err)}')
  if not video:
    raise VideoError(f'{path}: no video stream')
  audio = [a for kind, a in streams if kind == 'Audio']
  index = _sound_track(audio)
  return _parse_probe(path, err, video[0], audio[index] if audio else None,
                      index)


def _input_streams(err: str) -> list[tuple[str, str]]:
  """(kind, description) of each stream of the input, from ffmpeg's stderr:
  ('Video', 'h264 (High), yuv420p, ...'), ('Audio', 'aac ... (default)')."""
  return re.findall(r'Stream #\S+: (\w+): (.*)', err.split('Output #')[0])


def _sound_track(audio_streams: list[str]) -> int:
  """Which of ffmpeg's `Audio:` stream lines a player would play.

  The first one flagged default (dual-audio releases flag the original
  language, not always first), else the first; Matroska flags every track
  default unless told otherwise, so there the first one wins.
  """
  return next((k for k, a in enumerate(audio_streams) if '(default)' in a), 0)


_CHANNELS = {'mono': 1, 'stereo': 2, '2.1': 3, '3.0': 3, 'quad': 4, '4.0': 4,
             '5.0': 5, '5.1': 6, '6.1': 7, '7.1': 8}


def _standard_rate(fps: fractions.Fraction) -> fractions.Fraction:
  """`fps`, or the NTSC (n x 1000/1001) or whole rate it approximates.

  Matroska keeps times in milliseconds, so ffmpeg guesses 59.94 fps as
  19001/317 and 119.88 as 29011/242; both are within 1e-6 of the true rate.
  """
  for rate in (fractions.Fraction(round(fps * 1001 / 1000) * 1000, 1001),
               fractions.Fraction(round(fps))):
    if rate and abs(fps - rate) <= rate * fractions.Fraction(1, 100000):
      return rate
  return fps


def _parse_probe(path: str, err: str, video: str, audio: Optional[str],
                 audio_index: int = 0) -> Probe:
  vconf = re.search(r'config in time_base: \S+, frame_rate: (\d+/\d+)', err)
  vframe = re.search(r'Parsed_showinfo.*?\bn:\s*0 .*?pts_time:(\S+).*?'
                     r'sar:(\d+/\d+) s:(\d+)x(\d+)', err)
  if not vframe:
    raise VideoError(f'{path}: no decodable video frame: {_last_error(err)}')
  fps = _ratio(vconf.group(1)) if vconf else fractions.Fraction(0)
  if not 1 <= fps <= 300:  # unknown or a container time base, not a rate
    tbr = re.search(r', ([\d.]+)k? tbr', video)
    fps = fractions.Fraction(tbr.group(1)).limit_denominator(1001) if tbr else 0
    if not 1 <= fps <= 300:
      raise VideoError(f'{path}: cannot tell the frame rate; set the clip '
                       'field `fps` to resample it to a fixed rate')
  fps = _standard_rate(fps)
  dur = re.search(r'Duration: (\d+):(\d+):(\d+(?:\.\d+)?)', err)
  duration = (int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 +
              float(dur.group(3))) if dur else None
  a = re.match(r'(\w+).*?, (\d+) Hz, ([^,]+)', audio) if audio else None
  layout = re.sub(r'\(.*\)', '', a.group(3)).strip() if a else ''
  n = re.match(r'(\d+) channels', layout)
  return Probe(
      path=path,
      width=int(vframe.group(3)),
      height=int(vframe.group(4)),
      sar=_ratio(vframe.group(2)) or fractions.Fraction(1),
      fps=fps,
      first_frame_time=float(vframe.group(1)),
      duration=duration,
      video_codec=video.split()[0].strip(','),
      audio_codec=(a.group(1) if a else audio.split()[0].strip(',')) if audio else None,
      audio_channels=int(n.group(1)) if n else _CHANNELS.get(layout, 0),
      audio_rate=int(a.group(2)) if a else 0,
      audio_index=audio_index,
  )


def scale_filter(probe_: Probe, height: int, width: int,
                 resize: str) -> list[tuple[str, dict]]:
  """ffmpeg filters that bring a frame to (height, width) with square pixels.

  resize: 'crop' fills the target and cuts the overflow (centre crop);
  'pad' fits the whole frame and letterboxes it (keeps a 4:3 frame whole
  inside a 16:9 target, for outpainting); 'stretch' ignores aspect.
  """
  if resize == 'stretch':
    return [('scale', dict(w=width, h=height, flags='area'))]
  if resize not in ('crop', 'pad'):
    raise ValueError(f"resize must be 'crop', 'pad' or 'stretch', got {resize!r}")
  dw, dh = probe_.display_size
  if resize == 'crop':
    s = max(width / dw, height / dh)
    sw, sh = max(width, round(dw * s)), max(height, round(dh * s))
    return [('scale', dict(w=sw, h=sh, flags='area')),
            ('crop', dict(w=width, h=height, x=(sw - width) // 2,
                          y=(sh - height) // 2))]
  s = min(width / dw, height / dh)
  sw, sh = min(width, max(1, round(dw * s))), min(height, max(1, round(dh * s)))
  return [('scale', dict(w=sw, h=sh, flags='area')),
          ('pad', dict(w=width, h=height, x=(width - sw) // 2,
                       y=(height - sh) // 2, color='black'))]


@dataclasses.dataclass
class Decoded:
  """One episode at target size on a constant-rate timeline."""
  frames: np.ndarray  # (N, H, W, 3) uint8
  audio: Optional[np.ndarray]  # (M,) int16 mono, sample 0 at time 0; None if silent
  fps: fractions.Fraction
  sample_rate: int
  first_frame_index: int  # frame 0 sits at first_frame_index / fps seconds
  warnings: list[str]

  def audio_span(self, k0: int, k1: int) -> np.ndarray:
    """Samples covering frames k0..k1-1 exactly (zero-padded past the end)."""
    a = round(fractions.Fraction(self.first_frame_index + k0) / self.fps *
              self.sample_rate)
    b = round(fractions.Fraction(self.first_frame_index + k1) / self.fps *
              self.sample_rate)
    out = np.zeros(b - a, np.int16)
    if self.audio is not None and a < len(self.audio):
      got = self.audio[a:b]
      out[:len(got)] = got
    return out


def decode(path: str, height: int, width: int, *, resize: str = 'crop',
           fps: Optional[fractions.Fraction] = None, sample_rate: int = 16000,
           probe_: Optional[Probe] = None) -> Decoded:
  """Decodes `path` to (N, H, W, 3) uint8 frames and mono int16 PCM in one pass.

  Scaling, aspect handling, frame-rate conversion and the audio downmix all
  happen inside one ffmpeg process; Python only reads the bytes. Frames come
  out on a constant-rate grid (the source's own rate unless `fps` is given),
  so frame numbers equal times even for variable-frame-rate files.
  """
  p = probe_ or probe(path)
  rate = fractions.Fraction(fps) if fps else p.fps
  with tempfile.TemporaryDirectory(prefix='mirai_decode_') as tmp:
    wav = os.path.join(tmp, 'audio.s16')
    src = _input(path)
    video = src['V:0'].filter('fps', fps=f'{rate.numerator}/{rate.denominator}',
                               round='near')
    for name, kwargs in scale_filter(p, height, width, resize):
      video = video.filter(name, **kwargs)
    outputs = [video.output('pipe:1', format='rawvideo', pix_fmt='rgb24')]
    if p.has_audio:
      # async=1 with first_pts=0 pads (or trims) the start so that sample 0 is
      # time 0 of the file's timeline, whatever the audio's own start time.
      audio = src[f'a:{p.audio_index}'].filter(
          'aresample', sample_rate, first_pts=0, **{'async': 1})
      outputs.append(audio.output(wav, format='s16le', ac=1, ar=sample_rate))
    args = (ffmpeg.merge_outputs(*outputs)
            .global_args('-hide_banner', '-nostdin', '-v', 'error')
            .compile(cmd=ffmpeg_exe()))
    errf = os.path.join(tmp, 'stderr.txt')
    with open(errf, 'wb') as errh:
      proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=errh)
      data = proc.stdout.read()
      proc.stdout.close()
      rc = proc.wait()
    with open(errf, encoding='utf-8', errors='replace') as f:
      err = f.read()
    if rc != 0:
      raise VideoError(f'{path}: decoding failed: {_last_error(err)}')
    fatal = [l for l in err.splitlines()
             if any(m in l.lower() for m in _TRUNCATED)]
    if fatal:
      raise VideoError(f'{path}: truncated or corrupt: {_last_error(fatal[0])}')
    frame_bytes = height * width * 3
    n = len(data) // frame_bytes
    frames = np.frombuffer(data, np.uint8, n * frame_bytes).reshape(
        n, height, width, 3)
    audio = None
    if p.has_audio and os.path.exists(wav):
      audio = np.fromfile(wav, np.int16)
  return Decoded(
      frames=frames, audio=audio, fps=rate, sample_rate=sample_rate,
      first_frame_index=round(fractions.Fraction(p.first_frame_time) * rate),
      warnings=[l.strip() for l in err.splitlines() if l.strip()])


def decode_image(path: str, height: int, width: int, *,
                 resize: str = 'crop') -> np.ndarray:
  """One picture (any format ffmpeg reads: PNG, JPEG, WebP, ..., or a video's
  first frame) -> (H, W, 3) uint8, scaled as `decode` scales frames."""
  d = decode(path, height, width, resize=resize)
  if not len(d.frames):
    raise VideoError(f'{path}: no picture could be read from it')
  return d.frames[0]


def decode_audio(path: str, sample_rate: int = 16000) -> np.ndarray:
  """The sound of `path` (a sound file or a video; of several tracks the one
  `decode` takes) -> mono int16 PCM at `sample_rate`, sample 0 at the start
  of the file."""
  if not os.path.isfile(path):
    raise VideoError(f'{path}: no such file')
  source = 'file:' + os.path.abspath(path)
  listing = subprocess.run(  # no output named: ffmpeg lists the streams
      [ffmpeg_exe(), '-hide_banner', '-nostdin', '-i', source],
      stdin=subprocess.DEVNULL, capture_output=True, check=False)
  track = _sound_track([
      a for kind, a in _input_streams(listing.stderr.decode('utf-8', 'replace'))
      if kind == 'Audio'])
  args = [ffmpeg_exe(), '-hide_banner', '-nostdin', '-v', 'error', '-i',
          source, '-map', f'0:a:{track}', '-ac', '1',
          '-ar', str(sample_rate), '-f', 's16le', 'pipe:1']
  proc = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,
                        check=False)
  if proc.returncode != 0:
    raise VideoError(f'{path}: no readable sound in it: '
                     f'{_last_error(proc.stderr.decode("utf-8", "replace"))}')
  pcm = np.frombuffer(proc.stdout, np.int16)
  if not pcm.size:
    raise VideoError(f'{path}: its sound stream is empty')
  return pcm


def write_video(path: str, frames, fps, audio: Optional[np.ndarray] = None,
                sample_rate: int = 48000, *, video_codec: str = 'libx264',
                audio_codec: str = 'aac', crf: int = 18,
                preset: str = 'veryfast') -> None:
  """Encodes uint8 RGB frames (an array or an iterable) and int16 audio.

  audio: (samples,) or (samples, channels) int16. The file appears under
  `path` only once ffmpeg has finished, so a failed write leaves nothing.
  """
  frames = iter(frames)
  first = np.asarray(next(frames))
  h, w = first.shape[:2]
  rate = fractions.Fraction(fps).limit_denominator(1001)
  base, ext = os.path.splitext(path)
  partial = f'{base}.partial{ext}'
  with tempfile.TemporaryDirectory(prefix='mirai_encode_') as tmp:
    video = ffmpeg.input('pipe:0', format='rawvideo', pix_fmt='rgb24',
                         s=f'{w}x{h}', framerate=f'{rate.numerator}/{rate.denominator}')
    streams = [video]
    opts = dict(vcodec=video_codec, pix_fmt='yuv420p')
    if video_codec in ('libx264', 'libx265'):
      opts.update(crf=crf, preset=preset)
    if audio is not None:
      pcm = np.asarray(audio, np.int16)
      pcm = pcm[:, None] if pcm.ndim == 1 else pcm
      raw = os.path.join(tmp, 'audio.s16')
      pcm.tofile(raw)
      streams.append(ffmpeg.input(raw, format='s16le', ar=sample_rate,
                                  ac=pcm.shape[1]))
      opts.update(acodec=audio_codec)
    args = (ffmpeg.output(*streams, 'file:' + os.path.abspath(partial), **opts)
            .global_args('-hide_banner', '-nostdin', '-v', 'error', '-y')
            .compile(cmd=ffmpeg_exe()))
    # -nostdin would stop ffmpeg reading the frames from stdin.
    args.remove('-nostdin')
    errf = os.path.join(tmp, 'stderr.txt')
    with open(errf, 'wb') as errh:
      proc = subprocess.Popen(args, stdin=subprocess.PIPE, stderr=errh)
      try:
        proc.stdin.write(np.ascontiguousarray(first, np.uint8).tobytes())
        for frame in frames:
          proc.stdin.write(np.ascontiguousarray(frame, np.uint8).tobytes())
        proc.stdin.close()
      except BrokenPipeError:
        pass
      rc = proc.wait()
    if rc != 0:
      with open(errf, encoding='utf-8', errors='replace') as f:
        err = f.read()
      if os.path.exists(partial):
        os.remove(partial)
      raise VideoError(f'{path}: encoding failed: {_last_error(err)}')
  os.replace(partial, path)
