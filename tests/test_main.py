"""The README's main command and the prepare command, as a user runs them."""

import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

import helpers
from mirai_jax import lpips_fvd
from mirai_jax import render
from mirai_jax import video_io
from mirai_jax.data import tokens as tokens_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args, check=True):
  proc = subprocess.run([sys.executable, '-m', *args], cwd=ROOT, text=True,
                        capture_output=True, check=False)
  if check and proc.returncode:
    raise AssertionError(proc.stdout[-3000:] + proc.stderr[-3000:])
  return proc


def test_demo_runs_end_to_end(tmp_path):
  workdir = str(tmp_path / 'work')
  tiny = helpers.TINY_DEMO
  proc = _run('mirai_jax.main', '--config=configs/demo.py', f'--workdir={workdir}',
              *tiny, '--config.predict.start=2.0')
  assert 'train' in proc.stdout and '0 file(s) skipped' in proc.stdout
  assert 'tokenizer eval step 4: PSNR' in proc.stdout
  assert 'tokenize: ' in proc.stdout
  assert os.path.exists(os.path.join(workdir, 'tokens', 'CURRENT'))
  assert os.path.exists(os.path.join(
      tokens_lib.current(os.path.join(workdir, 'tokens')), 'meta.json'))
  assert os.path.exists(os.path.join(workdir, 'tokenizer', 'eval.json'))
  assert 'transformer val step 3: loss' in proc.stdout
  # TensorBoard shows the models learn: the tokenizer's decodings, and per
  # validation clip the decoding of its true tokens above the frames the
  # transformer generates.
  ((_, image),) = helpers.tb_images(os.path.join(workdir, 'tokenizer', 'tb'))[
      'eval/reconstruction']  # 2 clips x {truth, decoding} x 8 frames
  assert image.shape == (2 * 2 * 64, 8 * 64, 3)
  images = helpers.tb_images(os.path.join(workdir, 'transformer', 'tb'))
  ((step, image),) = images['val/prediction/truth_decoded_vs_predicted']
  # 2 clips x {truth, prediction} rows of 4 frames, 64x64 each.
  assert step == 3 and image.shape == (2 * 2 * 64, 4 * 64, 3)
  rows = image.reshape(4, 64, 4, 64, 3)
  assert rows.std() > 0
  # The 2 context frames are given, so decoded alike in both rows of a clip
  # (the tiny tokenizer decodes frame by frame): truth above prediction.
  for clip in range(2):
    np.testing.assert_array_equal(rows[2 * clip, :, :2],
                                  rows[2 * clip + 1, :, :2])
  assert (rows[0, :, :2] != rows[2, :, :2]).any()  # two different clips
  # The evaluation table, and its JSON with every method per future frame.
  assert 'mouth MSE, matched vs mismatched audio' in proc.stdout
  # LPIPS and FVD with the metrics extra (the other end-to-end tests turn
  # them off), else the line that says how to get them.
  if lpips_fvd.available():
    assert 'mouth MSE   LPIPS' in proc.stdout
    assert 'FVD: I3D features of 2 whole rollouts' in proc.stdout
  else:
    assert "LPIPS and FVD: pip install -e '.[metrics]'" in proc.stdout
  with open(os.path.join(workdir, 'evaluate', 'test.json')) as f:
    result = json.load(f)
  assert result['clips'] == 5 and result['predicted_frames'] == 2
  # With the default residual paste, copy_last_tokens is exactly copy_last.
  assert set(result['methods']) == {'audio', 'mismatched_audio', 'no_audio',
                                    'copy_last', 'reconstruction'}
  for m in result['methods'].values():
    assert len(m['psnr_per_frame']) == 2 and 0 <= m['mouth_mse'] < 1
  # The rollout of the test shots: 4 windows of 2 new frames each.
  assert 'rollout on test:' in proc.stdout
  with open(os.path.join(workdir, 'evaluate', 'test_rollout.json')) as f:
    roll = json.load(f)
  assert roll['horizon_frames'] == 8 and 0 < roll['shots'] <= 5
  assert set(roll['methods']) == {'model', 'copy_last'}
  assert all(len(m['psnr_per_frame']) == 8 for m in roll['methods'].values())
  assert roll['shots_per_frame'][0] == roll['shots']
  assert Image.open(os.path.join(workdir, 'evaluate',
                                 'test_rollout.png')).size[0] > 100
  # predict: the real frames beside the predicted ones, with the sound.
  out = os.path.join(workdir, 'predict', 'ep002_2.00s')
  with open(out + '.json') as f:
    pred = json.load(f)
  assert pred['audio'] and len(pred['psnr_per_frame']) == 2
  p = video_io.probe(out + '.mp4')
  assert p.has_audio and (p.width, p.height) == (2 * 64 * 3, 64 * 3)
  assert Image.open(out + '.gif').n_frames == 4
  # A rollout of 3 windows from the end of the file: no real frames and no
  # sound for the future, so the model runs without sound.
  # (And a second run reuses the episodes and the dataset: stages run alone.)
  roll = _run('mirai_jax.main', '--config=configs/demo.py',
              f'--workdir={workdir}', '--mode=predict,preview', *tiny,
              '--config.predict.start=-1', '--config.predict.windows=3')
  assert '6 predicted frames (without sound)' in roll.stdout
  assert 'preview:' in roll.stdout
  (meta,) = [f for f in os.listdir(os.path.join(workdir, 'predict'))
             if f.endswith('.json') and not f.startswith('ep002_2.00s')]
  with open(os.path.join(workdir, 'predict', meta)) as f:
    rollout = json.load(f)
  assert rollout['windows'] == 3 and rollout['predicted_frames'] == 6
  assert not rollout['audio'] and 'psnr_per_frame' not in rollout
  gif = os.path.join(workdir, 'preview', 'train_grid.gif')
  mp4 = os.path.join(workdir, 'preview', 'train_clips.mp4')
  assert Image.open(gif).n_frames == 20
  p = video_io.probe(mp4)
  assert p.has_audio and (p.width, p.height) == (128, 128)
  with open(os.path.join(workdir, 'synthetic_splits.json')) as f:
    assert json.load(f)['test'] == ['ep002.mp4']


def test_one_model_for_three_jobs_beside_the_baselines(tmp_path):
  """One transformer for three jobs: continuing, filling the step between
  the context and the window's last step (the end keyframe), and widening
  (here the 64x64 frame's centre 48 columns are given, its sides drawn);
  the pixel baselines and the report beside it. Apart from the demo test,
  so that the two run side by side."""
  inter = str(tmp_path / 'inter')
  tiny = helpers.TINY_DEMO
  _run('mirai_jax.main', '--config=configs/demo.py', f'--workdir={inter}',
       '--mode=data,tokenizer,tokenize', *tiny)
  mix = '--config.transformer.tasks=continue:2,interpolate:1,outpaint:1'
  # With both pixel baselines beside the model, and the report of it all.
  proc = _run('mirai_jax.main', '--config=configs/demo.py',
              f'--workdir={inter}',
              '--mode=pix2pix,multiscale,transformer,evaluate,report,predict',
              *tiny, mix, '--config.predict.task=interpolate',
              '--config.predict.start=2.0', '--config.evaluate.rollout=2',
              '--config.evaluate.paste_threshold_by_job=interpolate:0.1,'
              'rollout:0', *helpers.NO_LPIPS_FVD,
              # The demo test checks the transformer's pictures.
              '--config.transformer.summary_clips=0')
  assert 'pix2pix eval step 2: PSNR' in proc.stdout
  assert 'multiscale eval step 2: PSNR' in proc.stdout
  for name in ('pix2pix', 'multiscale'):  # 2 clips x {truth, prediction}
    ((_, image),) = helpers.tb_images(os.path.join(inter, name, 'tb'))[
        'eval/truth_vs_predicted']
    assert image.shape == (2 * 2 * 64, 2 * 64, 3)
  assert 'tasks continue 50%, interpolate 25%, outpaint 25%' in proc.stdout
  assert 'transformer val step 3 (interpolate): loss' in proc.stdout
  assert 'MSE vs cross-fade of the keyframes' in proc.stdout
  with open(os.path.join(inter, 'transformer', 'validation.json')) as f:
    assert set(json.load(f)['tasks']) == {'continue', 'interpolate', 'outpaint'}
  with open(os.path.join(inter, 'evaluate', 'test.json')) as f:
    cont = json.load(f)
  assert cont['task'] == 'continue' and 'given_frames' not in cont
  assert cont['predicted_frames'] == 2
  # The baselines continue the same clips, from the same context frames.
  names = list(cont['methods'])
  assert names[names.index('reconstruction') - 2:] == [
      'pix2pix', 'multiscale', 'reconstruction', 'audio', 'mismatched_audio',
      'no_audio']
  assert all(len(cont['methods'][b]['psnr_per_frame']) == 2
             for b in ('pix2pix', 'multiscale'))
  with open(os.path.join(inter, 'evaluate', 'test_rollout.json')) as f:
    rollout = json.load(f)
  assert set(rollout['methods']) == {'model', 'copy_last', 'pix2pix',
                                     'multiscale'}
  # Each job's paste has its own dead zone where the config names one, the
  # demo's 0.2 elsewhere.
  assert rollout['paste_threshold'] == 0 and cont['paste_threshold'] == 0.2
  examples = np.load(os.path.join(inter, 'evaluate', 'test_examples.npz'))
  assert examples['pix2pix'].shape == examples['real'].shape
  assert examples['pix2pix'].dtype == np.uint8
  with open(os.path.join(inter, 'report', 'report.json')) as f:
    report = json.load(f)
  assert set(report['jobs']) == {'continue', 'interpolate', 'outpaint',
                                 'rollout'}
  assert 'pix2pix' in report['jobs']['continue']['methods']
  assert os.path.exists(os.path.join(inter, 'report', 'index.html'))
  with open(os.path.join(inter, 'evaluate', 'test_interpolate.json')) as f:
    result = json.load(f)
  # Frames 0, 1 (context) and 3 (the end keyframe) are given, never scored.
  assert result['given_frames'] == [0, 1, 3]
  assert result['predicted_frames'] == 1
  assert result['paste_threshold'] == 0.1
  assert 'paste residual > 0.1)' in proc.stdout
  assert {'crossfade', 'nearest_keyframe'} <= set(result['methods'])
  assert all(len(m['psnr_per_frame']) == 1 for m in result['methods'].values())
  with open(os.path.join(inter, 'predict', 'ep002_2.00s.json')) as f:
    pred = json.load(f)
  assert pred['given_frames'] == [0, 1, 3] and pred['predicted_frames'] == 1
  assert len(pred['psnr_per_frame']) == 1
  # The widening: scored on the sides only, against its two baselines.
  assert 'MSE vs edge replication' in proc.stdout
  with open(os.path.join(inter, 'evaluate', 'test_outpaint.json')) as f:
    wide = json.load(f)
  assert wide['given_columns'] == [8, 56] and wide['predicted_frames'] == 4
  assert wide['paste_threshold'] == 0.2
  assert {'edge_replication', 'mirror', 'reconstruction', 'audio'} <= set(
      wide['methods']) and 'copy_last' not in wide['methods']
  # predict widens a narrow video (40 columns in the 64-wide frame: the
  # model's given centre is wider, the mirror fills the rest) over 5
  # windows, with the file's sound, its picture unchanged in the middle.
  ep = os.path.join(inter, 'episodes', 'ep002.mp4')  # video and sound below
  narrow = video_io.decode(ep, 64, 40)
  tall = str(tmp_path / 'tall.mp4')
  render.write_mp4(tall, narrow.frames[:30], float(narrow.fps),
                   narrow.audio_span(0, 30), narrow.sample_rate)
  proc = _run('mirai_jax.main', '--config=configs/demo.py',
              f'--workdir={inter}', '--mode=predict', *tiny, mix,
              '--config.predict.task=outpaint', f'--config.predict.video={tall}',
              '--config.predict.start=0', '--config.predict.seconds=0.5',
              '--config.predict.scale=1')
  assert 'widened from columns 12-51 to 64x64 in 5 window(s)' in proc.stdout
  stem = os.path.join(inter, 'predict', 'tall_0.00s')
  with open(stem + '_wide.json') as f:
    widened = json.load(f)
  assert widened['picture_columns'] == [12, 52] and widened['frames'] == 12
  got = video_io.decode(stem + '_wide.mp4', 64, 64)
  assert len(got.frames) == 12 and got.audio is not None
  src = video_io.decode(tall, 64, 64, resize='pad').frames[:12]
  assert np.abs(got.frames[:, :, 14:50].astype(int) - src[:, :, 14:50]).mean() < 8
  assert got.frames[:, :, :10].mean() > 20  # the sides are drawn, not black
  assert video_io.probe(stem + '.mp4').width == 128  # the input beside it
  # Between two pictures of any size, with a sound file (here an episode's).
  pics = [str(tmp_path / n) for n in ('key_a.png', 'key_b.jpg')]
  ramp = np.linspace(0, 255, 160).astype(np.uint8)
  Image.fromarray(np.stack([np.tile(ramp, (90, 1))] * 3, -1)).save(pics[0])
  Image.fromarray(np.full((300, 200, 3), 220, np.uint8)).save(pics[1])
  proc = _run('mirai_jax.main', '--config=configs/demo.py',
              f'--workdir={inter}', '--mode=predict', *tiny, mix,
              f'--config.predict.first={pics[0]}',
              f'--config.predict.last={pics[1]}',
              f'--config.predict.sound={ep}', '--config.predict.scale=1')
  assert '1 frames between' in proc.stdout and 'with the sound of' in proc.stdout
  stem = os.path.join(inter, 'predict', 'key_a_to_key_b')
  with open(stem + '.json') as f:
    between = json.load(f)
  assert between['frames'] == 3 and between['generated_frames'] == 1
  got = video_io.decode(stem + '.mp4', 64, 64)
  assert len(got.frames) == 3 and got.audio is not None
  # The keyframes come back as given (up to the codec), the middle is new.
  first = video_io.decode_image(pics[0], 64, 64)
  assert np.abs(got.frames[0].astype(int) - first).mean() < 6
  assert np.abs(got.frames[-1].astype(int) - 220).mean() < 6


def test_unknown_stage_is_refused(tmp_path):
  proc = _run('mirai_jax.main', '--config=configs/demo.py',
              f'--workdir={tmp_path}', '--mode=dat', check=False)
  assert proc.returncode != 0 and "unknown stage(s) ['dat']" in proc.stderr


def test_prepare_explains_bad_flags(tmp_path):
  proc = _run('mirai_jax.prepare', f'--manual_dir={tmp_path}', '--stride=5',
              check=False)
  assert proc.returncode != 0 and '--name' in proc.stderr
  proc = _run('mirai_jax.prepare', f'--manual_dir={tmp_path / "none"}',
              check=False)
  assert proc.returncode != 0 and 'no such folder' in proc.stderr


def test_kny_without_episodes_says_where_to_put_them(tmp_path):
  proc = _run('mirai_jax.main', '--config=configs/kny.py',
              f'--workdir={tmp_path}', check=False)
  assert proc.returncode == 1
  assert f'no episodes in {tmp_path}/episodes' in proc.stderr
  assert ('python -m mirai_jax.prepare --manual_dir=FOLDER '
          '--config=128x128_t32') in proc.stderr
  assert 'Traceback' not in proc.stderr
  assert not os.path.exists(os.path.join(tmp_path, 'tokenizer'))
