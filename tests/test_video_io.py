"""Probe and decode: exact rates, frame numbers, aspect, audio/video sync."""

import fractions
import os
import subprocess

import numpy as np
import pytest

import helpers
from mirai_jax import video_io


@pytest.mark.parametrize('fps,ext', [
    ('24000/1001', 'mp4'), ('30000/1001', 'mp4'), ('25', 'mp4'),
    ('5981/100', 'mp4'), ('24000/1001', 'mkv'),
    # Matroska's millisecond times make ffmpeg guess 19001/317.
    ('60000/1001', 'mkv')])
def test_probe_reads_exact_frame_rate(tmp_path, fps, ext):
  path = str(tmp_path / f'v.{ext}')
  video_io.write_video(path, helpers.barcode_frames(12), fractions.Fraction(fps))
  p = video_io.probe(path)
  assert p.fps == fractions.Fraction(fps)
  assert (p.width, p.height) == (160, 120)
  assert not p.has_audio


def test_frame_k_is_source_frame_k(tmp_path):
  path = str(tmp_path / 'barcode.mp4')
  video_io.write_video(path, helpers.barcode_frames(200), fractions.Fraction(24000, 1001))
  d = video_io.decode(path, 64, 64)
  assert len(d.frames) == 200
  np.testing.assert_array_equal(helpers.read_barcode(d.frames), np.arange(200))


@pytest.mark.parametrize('resize,expected_rows', [('pad', 36), ('crop', 64)])
def test_sample_aspect_ratio_is_honoured(tmp_path, resize, expected_rows):
  # 320x240 stored with 4:3 pixels is a 16:9 picture: letterboxed into a
  # square it fills 64 * 9/16 = 36 rows; cropped it fills them all.
  path = str(tmp_path / 'anamorphic.mp4')
  src = str(tmp_path / 'square.mp4')
  video_io.write_video(src, np.full((4, 240, 320, 3), 250, np.uint8), 24)
  import ffmpeg  # pylint: disable=g-import-not-at-top
  (ffmpeg.input(src).output(path, vf='setsar=4/3', vcodec='libx264')
   .global_args('-v', 'error', '-y').run(cmd=video_io.ffmpeg_exe()))
  p = video_io.probe(path)
  assert p.sar == fractions.Fraction(4, 3)
  assert p.display_size == (427, 240)
  d = video_io.decode(path, 64, 64, resize=resize, probe_=p)
  bright_rows = (d.frames[0].mean(axis=(1, 2)) > 128).sum()
  assert abs(int(bright_rows) - expected_rows) <= 1


SYNC_CASES = [
    # (name, fps, sample_rate, channels, audio codec, video codec, offset s)
    ('ntsc_film_aac_stereo.mp4', '24000/1001', 48000, 2, 'aac', 'libx264', 0.0),
    ('ntsc_aac_5.1.mp4', '30000/1001', 48000, 6, 'aac', 'libx264', 0.0),
    ('pal_vorbis.webm', '25', 44100, 2, 'libvorbis', 'libvpx', 0.0),
    ('film_opus.mkv', '24', 48000, 2, 'libopus', 'libx264', 0.0),
    ('mp3_late_audio.mp4', '24000/1001', 44100, 2, 'libmp3lame', 'libx264', 0.5),
    ('odd_rate_aac.mp4', '5981/100', 48000, 1, 'aac', 'libx264', 0.0),
]


@pytest.mark.parametrize('name,fps,rate,channels,acodec,vcodec,offset',
                         SYNC_CASES, ids=[c[0] for c in SYNC_CASES])
def test_sound_of_frame_t_is_at_frame_t(tmp_path, name, fps, rate, channels,
                                        acodec, vcodec, offset):
  path = str(tmp_path / name)
  flash = helpers.write_sync_file(path, fps, sample_rate=rate,
                                  channels=channels, audio_codec=acodec,
                                  video_codec=vcodec, offset=offset)
  d = video_io.decode(path, 64, 64, sample_rate=16000)
  lit = np.flatnonzero(d.frames[:, 40:].mean(axis=(1, 2, 3)) > 200)
  assert list(lit) == list(flash)
  for k in flash:
    if k * 1 / float(fractions.Fraction(fps)) < offset:
      continue  # before the audio stream starts: nothing to hear
    here = np.abs(d.audio_span(k, k + 1).astype(np.float32)).mean()
    before = np.abs(d.audio_span(k - 1, k).astype(np.float32)).mean()
    after2 = np.abs(d.audio_span(k + 2, k + 3).astype(np.float32)).mean()
    # The 30 ms beep starts at frame k's start: loud in frame k, silent in
    # frame k-1 (so at most a frame early) and over by frame k+2.
    assert here > 2000, (k, here)
    assert before < 0.1 * here, (k, before, here)
    assert after2 < 0.1 * here, (k, after2, here)


@pytest.mark.parametrize('flags,heard', [
    # Matroska marks every track default unless told: the first plays.
    ([], 220), (['-disposition:a:0', '0', '-disposition:a:1', 'default'], 880)])
def test_the_sound_track_a_player_would_play_is_decoded(tmp_path, flags, heard):
  path = str(tmp_path / 'dual_audio.mkv')
  tone = 'sine=frequency={}:sample_rate=48000:duration=2'
  subprocess.run(
      [video_io.ffmpeg_exe(), '-v', 'error', '-y', '-f', 'lavfi', '-i',
       'testsrc2=size=96x64:rate=24:duration=2', '-f', 'lavfi', '-i',
       tone.format(220), '-f', 'lavfi', '-i', tone.format(880),
       '-map', '0', '-map', '1', '-map', '2', '-c:v', 'libx264', '-c:a',
       'aac', *flags, path], check=True)
  d = video_io.decode(path, 16, 16, sample_rate=16000)
  # predict's --sound reads the same track as the dataset builder.
  for pcm in d.audio, video_io.decode_audio(path, 16000):
    spectrum = np.abs(np.fft.rfft(pcm[:16000].astype(np.float32)))
    assert int(np.argmax(spectrum)) == heard  # 1 Hz bins over 1 s


def test_audio_covers_exactly_the_frames(tmp_path):
  path = str(tmp_path / 'a.mp4')
  helpers.write_sync_file(path, '24000/1001')
  d = video_io.decode(path, 32, 32, sample_rate=16000)
  spans = [len(d.audio_span(k, k + 20)) for k in range(0, 70, 7)]
  # 20 frames at 23.976 fps are 13346.67 samples at 16 kHz.
  assert set(spans) <= {13346, 13347}
  total = sum(len(d.audio_span(k, k + 1)) for k in range(96))
  assert total == len(d.audio_span(0, 96))


@pytest.mark.parametrize('name', ['with space.mp4', '-leading dash.mp4',
                                  "sh$ell;`chars`&'q'.mp4", 'ünïcødé 名前.mp4',
                                  'ep:1.mp4'])
def test_awkward_file_names(tmp_path, name):
  path = str(tmp_path / name)
  video_io.write_video(path, helpers.barcode_frames(8), 24)
  assert os.path.exists(path)
  assert len(video_io.decode(path, 16, 16).frames) == 8


def test_bad_files_are_named_with_a_reason(tmp_path):
  good = str(tmp_path / 'good.mkv')
  video_io.write_video(good, helpers.barcode_frames(48), 24,
                       helpers.beep_audio(48, 24, [5], 48000, 2), 48000,
                       audio_codec='libopus')
  data = open(good, 'rb').read()
  cases = {
      'empty.mp4': (b'', 'empty'),
      'text.mp4': (b'hello\n' * 100, 'not a readable video'),
      'truncated.mkv': (data[:len(data) // 2], 'truncated'),
      'episode 1.srt': (b'1\n00:00:00,000 --> 00:00:02,000\nhello\n',
                        r'no video stream \(its streams: subtitle\)'),
  }
  for name, (content, reason) in cases.items():
    path = str(tmp_path / name)
    with open(path, 'wb') as f:
      f.write(content)
    with pytest.raises(video_io.VideoError, match=reason) as e:
      video_io.decode(path, 16, 16)
    assert path in str(e.value)
  with pytest.raises(video_io.VideoError, match='no such file'):
    video_io.probe(str(tmp_path / 'missing.mp4'))


def test_audio_only_file_is_refused(tmp_path):
  path = str(tmp_path / 'song.m4a')
  helpers._audio_only(path, np.zeros(48000, np.int16))
  with pytest.raises(video_io.VideoError, match='audio only'):
    video_io.probe(path)


def test_failed_encode_leaves_no_file(tmp_path):
  path = str(tmp_path / 'out.mp4')
  with pytest.raises(video_io.VideoError):
    video_io.write_video(path, helpers.barcode_frames(4), 24,
                         video_codec='no_such_codec')
  assert os.listdir(tmp_path) == []
