"""One episode file -> clip records (frames + the audio of exactly those frames).

This is the whole per-episode job of the anime_clips dataset, kept free of
TFDS so that the local build, a Beam build and the tests share it.
"""

from __future__ import annotations

import dataclasses
import fractions
import math
import time
from typing import Any, Iterator, Optional

from absl import logging

from mirai_jax import video_io
from mirai_jax.build import shots

VideoError = video_io.VideoError


@dataclasses.dataclass(frozen=True)
class ClipSpec:
  """How episodes are cut into clips; each field changes the records."""
  height: int = 64
  width: int = 64
  frames: int = 20  # T: frames per clip (MIRAI: 20)
  stride: int = 10  # frames between clip starts inside a shot
  resize: str = 'crop'  # 'crop' (centre), 'pad' (letterbox, for 16:9) or 'stretch'
  fps: Optional[str] = None  # e.g. '24000/1001' to resample; None keeps the source rate
  sample_rate: int = 16000
  drop_static: bool = False  # drop clips in which nothing moves
  cut_threshold: float = 0.045  # least change of a hard cut; > 1: no cuts (shots.detect)
  cut_ratio: float = 2.5  # a cut stands this many times above the motion around it

  def validate(self) -> None:
    for name in ('height', 'width', 'frames', 'stride', 'sample_rate'):
      if getattr(self, name) < 1:
        raise ValueError(f'clip spec field `{name}` must be >= 1, got '
                         f'{getattr(self, name)}')
    if self.resize not in ('crop', 'pad', 'stretch'):
      raise ValueError("clip spec field `resize` must be 'crop', 'pad' or "
                       f"'stretch', got {self.resize!r}")
    if self.fps is not None:
      try:
        rate = fractions.Fraction(self.fps)
      except (ValueError, ZeroDivisionError):
        rate = 0
      if not 0 < rate <= 300:
        raise ValueError(f"clip spec field `fps` must look like '24' or "
                         f"'24000/1001', got {self.fps!r}")


def record_bytes(spec: ClipSpec, probe: video_io.Probe) -> int:
  """At most how many bytes the clips of one probed episode hold before
  compression (as if it were one shot; 0 when its duration is unknown)."""
  if probe.duration is None:
    return 0
  fps = float(fractions.Fraction(spec.fps)) if spec.fps else float(probe.fps)
  count = max(0, (int(probe.duration * fps) - spec.frames) // spec.stride + 1)
  audio = 2 * math.ceil(spec.frames / fps * spec.sample_rate)
  return count * (spec.frames * spec.height * spec.width * 3 + audio)


@dataclasses.dataclass
class EpisodeReport:
  """What happened to one file; becomes the build summary."""
  episode: str
  frames: int = 0
  seconds: float = 0.0
  shots: int = 0
  clips: int = 0
  static_dropped: int = 0
  has_audio: bool = False
  fps: str = ''
  video_codec: str = ''
  audio_codec: str = ''
  decode_seconds: float = 0.0
  warnings: int = 0


def episode_clips(path: str, episode: str, spec: ClipSpec
                  ) -> tuple[list[dict[str, Any]], EpisodeReport]:
  """Decodes `path` and returns its clip records and a report.

  Raises VideoError (naming the file and the reason) for anything that is not
  a usable episode: nothing is returned for it, so a bad file never leaves
  part of itself in a dataset.
  """
  t0 = time.perf_counter()
  probe = video_io.probe(path)
  decoded = video_io.decode(
      path, spec.height, spec.width, resize=spec.resize,
      fps=fractions.Fraction(spec.fps) if spec.fps else None,
      sample_rate=spec.sample_rate, probe_=probe)
  frames = decoded.frames
  report = EpisodeReport(
      episode=episode, frames=len(frames),
      seconds=float(len(frames) / decoded.fps), has_audio=probe.has_audio,
      fps=f'{decoded.fps.numerator}/{decoded.fps.denominator}',
      video_codec=probe.video_codec, audio_codec=probe.audio_codec or '',
      warnings=len(decoded.warnings))
  if decoded.warnings:
    logging.warning('%s: ffmpeg reported %d problem(s), first: %s', path,
                    len(decoded.warnings), decoded.warnings[0])
  if len(frames) < spec.frames:
    raise VideoError(f'{path}: too short: {len(frames)} frames, a clip needs '
                     f'{spec.frames}')
  # Fades and dissolves belong to no shot: no clip holds a blended frame.
  found = shots.detect(frames, spec.cut_threshold, spec.cut_ratio)
  bounds = shots.shot_bounds(len(frames), found.cuts, found.transitions)
  report.shots = len(bounds)
  records = []
  for shot, (a, b) in enumerate(bounds):
    for start in shots.clip_starts(a, b, spec.frames, spec.stride):
      video = frames[start:start + spec.frames]
      if spec.drop_static and shots.is_static(video):
        report.static_dropped += 1
        continue
      records.append(dict(
          video=video,
          audio=decoded.audio_span(start, start + spec.frames),
          has_audio=probe.has_audio,
          fps=float(decoded.fps),
          fps_num=decoded.fps.numerator,
          fps_den=decoded.fps.denominator,
          sample_rate=spec.sample_rate,
          episode=episode,
          start_frame=start,
          shot=shot,
      ))
  report.clips = len(records)
  report.decode_seconds = time.perf_counter() - t0
  if not records:
    longest = max(b - a for a, b in bounds)
    why = (f'all {report.static_dropped} clips were static'
           if report.static_dropped else
           f'no shot is {spec.frames} frames long (longest: {longest})')
    raise VideoError(f'{path}: too short: {why}')
  return records, report


def iter_examples(records: list[dict[str, Any]]) -> Iterator[tuple[str, dict]]:
  """(key, example) pairs with keys unique within a dataset."""
  for r in records:
    yield f"{r['episode']}:{r['start_frame']:09d}", r


# The anime_clips dataset's named configs: name -> (description, clip spec).
NAMED = {
    '64x64_t20': ('MIRAI: 64x64, 20 frames, centre crop (default).',
                  ClipSpec()),
    '128x128_t16': ('128x128, 16 frames, centre crop.',
                    ClipSpec(height=128, width=128, frames=16, stride=8)),
    '128x128_t32': ('128x128, 32 frames (16 context + 16 to predict), centre '
                    'crop: configs/kny.py.',
                    ClipSpec(height=128, width=128, frames=32, stride=16)),
    '64x112_t20': ('16:9, 64x112, 20 frames, centre crop: true sides to train '
                   'widening 4:3 to 16:9 (transformer.tasks outpaint) on 16:9 '
                   'sources (and the synthetic episodes rendered at 16:9, '
                   'data.synthetic.width=426).',
                   ClipSpec(width=112)),
    '64x112_t20_pad': ('16:9 frames with 4:3 sources letterboxed (input for '
                       'widening 4:3 to 16:9).',
                       ClipSpec(width=112, resize='pad')),
}
