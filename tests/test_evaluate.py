"""Pieces of evaluate: ground-truth boxes in clip pixels, skip-block pasting,
the table."""

import numpy as np
import pytest

from mirai_jax import evaluate
from mirai_jax import inference
from mirai_jax import tasks
from mirai_jax.build import synthetic

TRUTH = dict(width=320, height=240, fps='24000/1001',
             mouth_box=[[120, 90, 200, 150]] * 10)


def _spec(**kw):
  spec = dict(height=64, width=64, resize='crop', fps=None)
  spec.update(kw)
  return spec


def test_mouth_boxes_follow_crop_pad_and_stretch():
  # crop: 320x240 -> 85x64 (x scale 85/320), 10 px cut on the left.
  box = synthetic.mouth_boxes(TRUTH, _spec(), 0, 3)
  assert box.shape == (3, 4)
  np.testing.assert_array_equal(box[0], [21, 24, 44, 40])
  # pad into 16:9: 320x240 -> 85x64 centred in 112 (13 px bars).
  np.testing.assert_array_equal(
      synthetic.mouth_boxes(TRUTH, _spec(width=112, resize='pad'), 0, 1)[0],
      [44, 24, 67, 40])
  np.testing.assert_array_equal(
      synthetic.mouth_boxes(TRUTH, _spec(resize='stretch'), 0, 1)[0],
      [24, 24, 40, 40])
  # At half the source rate clip frame k is source frame 2k (clamped).
  truth = dict(TRUTH, mouth_box=[[i, 0, i + 1, 1] for i in range(0, 40, 4)])
  got = synthetic.mouth_boxes(truth, _spec(resize='stretch', fps='12000/1001'),
                             2, 4)[:, 0]
  np.testing.assert_array_equal(got, np.floor(np.array([16, 24, 32, 36]) * 0.2))


def test_paste_unchanged_keeps_true_pixels_where_tokens_repeat():
  rng = np.random.default_rng(0)
  frames = rng.uniform(size=(1, 4, 8, 8, 3)).astype(np.float32)
  real = rng.integers(0, 256, (1, 4, 8, 8, 3)).astype(np.uint8)
  toks = np.zeros((1, 4, 2, 2), int)
  toks[0, 3, 1, 1] = 5  # step 3 changes its bottom-right token only
  out = inference.paste_unchanged(frames, toks, real, context=2, temporal=1)
  last = real[0, 1] / 255.0
  np.testing.assert_array_equal(out[0, :2], frames[0, :2])  # context as given
  np.testing.assert_allclose(out[0, 2], last)
  np.testing.assert_allclose(out[0, 3, :4], last[:4])
  np.testing.assert_array_equal(out[0, 3, 4:, 4:], frames[0, 3, 4:, 4:])


def test_table_reports_the_margins():
  m = lambda mse, mouth: dict(psnr=20.0, ssim=0.5, mse=mse, mouth_mse=mouth,
                              psnr_per_frame=[20.0, 20.0])
  result = dict(split='test', clips=3, context_frames=2, predicted_frames=2,
                tokenizer_step=1, transformer_step=2, methods=dict(
                    copy_last=m(0.004, 0.03), audio=m(0.002, 0.01),
                    mismatched_audio=m(0.003, 0.02), no_audio=m(0.003, 0.02)))
  text = evaluate.table(result)
  assert '+50.0% lower with the true sound' in text
  assert '(+50.0% lower)' in text
  assert 'transformer step 2)' in text  # the plain decoding says nothing more
  # Another decoding or paste threshold is named on the first line.
  result.update(sample=dict(decode='mean', mean_top_k=8), paste='residual',
                paste_threshold=0.2)
  first = evaluate.table(result).splitlines()[0]
  assert first.endswith('transformer step 2, decode mean (top 8), paste '
                        'residual > 0.2)'), first


def test_paste_change_adds_the_decoded_change_to_the_true_last_frame():
  rng = np.random.default_rng(1)
  frames = rng.uniform(0.2, 0.8, size=(2, 4, 8, 8, 3)).astype(np.float32)
  still = frames.copy()
  still[:, 3] -= 0.1  # the decoder says step 3 got 0.1 brighter everywhere
  real = rng.integers(0, 200, (2, 4, 8, 8, 3)).astype(np.uint8)
  out = inference.paste_change(frames, still, real, context=2, temporal=1)
  last = real[:, 1] / 255.0
  np.testing.assert_array_equal(out[:, :2], frames[:, :2])
  np.testing.assert_allclose(out[:, 2], last, atol=1e-6)
  np.testing.assert_allclose(out[:, 3], np.clip(last + 0.1, 0, 1), atol=1e-6)


def test_a_paste_threshold_drops_small_changes_and_keeps_large_ones():
  rng = np.random.default_rng(2)
  frames = rng.uniform(0.3, 0.7, size=(1, 3, 4, 4, 3)).astype(np.float32)
  still = frames.copy()
  still[:, 2, :2] -= 0.05  # the tokenizer's error beside a change
  still[:, 2, 2:, :, 0] -= 0.3  # a change in one channel only
  real = rng.integers(0, 200, (1, 3, 4, 4, 3)).astype(np.uint8)
  last = real[:, 1] / 255.0
  out = inference.paste_change(frames, still, real, context=2, temporal=1,
                               threshold=0.1)
  np.testing.assert_allclose(out[:, 2, :2], last[:, :2], atol=1e-6)
  want = last[:, 2:].copy()
  want[..., 0] = np.clip(want[..., 0] + 0.3, 0, 1)
  np.testing.assert_allclose(out[:, 2, 2:], want, atol=1e-6)
  # Without it, the small change is pasted too.
  out = inference.paste_change(frames, still, real, context=2, temporal=1)
  np.testing.assert_allclose(out[:, 2, :2], np.clip(last[:, :2] + 0.05, 0, 1),
                             atol=1e-6)


def test_an_in_between_pastes_its_change_onto_the_keyframes_cross_fade():
  rng = np.random.default_rng(3)
  real = rng.integers(0, 255, (2, 6, 4, 4, 3)).astype(np.uint8)
  still0 = rng.uniform(0.2, 0.8, size=(2, 6, 4, 4, 3)).astype(np.float32)
  still1 = rng.uniform(0.2, 0.8, size=(2, 6, 4, 4, 3)).astype(np.float32)
  # context 2 steps, end keyframe at step 5, one frame per step: frames 2..4
  # are generated with weights 1/4, 2/4, 3/4 of the end keyframe.
  w = np.array([0, 0, 0.25, 0.5, 0.75, 1.0], np.float32)[None, :, None, None,
                                                           None]
  frames = (1 - w) * still0 + w * still1  # the decoder draws a cross-fade
  frames[:, 3, :2] += 0.2  # and moves something in frame 3
  out = inference.paste_between(frames, still0, still1, real, context=2,
                                end=5, temporal=1, threshold=0.1)
  r = real / 255.0
  fade = (1 - w) * r[:, 1:2] + w * r[:, 5:6]
  np.testing.assert_array_equal(out[:, :2], frames[:, :2])
  np.testing.assert_allclose(out[:, 2], fade[:, 2], atol=1e-6)
  np.testing.assert_allclose(out[:, 3, 2:], fade[:, 3, 2:], atol=1e-6)
  np.testing.assert_allclose(out[:, 3, :2], np.clip(fade[:, 3, :2] + 0.2, 0, 1),
                             atol=1e-6)
  np.testing.assert_allclose(out[:, 5], r[:, 5], atol=1e-6)  # the end keyframe
  # evaluate's cross-fade baseline is the same blend.
  assert list(inference.crossfade_weights(6, 1, 5)) == list(w.ravel())


def test_an_in_between_shows_the_end_keyframe_where_its_token_repeats_it():
  rng = np.random.default_rng(4)
  real = rng.integers(0, 255, (1, 6, 4, 4, 3)).astype(np.uint8)
  frames = rng.uniform(0.2, 0.8, size=(1, 6, 4, 4, 3)).astype(np.float32)
  still0 = rng.uniform(0.2, 0.8, size=(1, 6, 4, 4, 3)).astype(np.float32)
  still1 = rng.uniform(0.2, 0.8, size=(1, 6, 4, 4, 3)).astype(np.float32)
  # 2x2 tokens of 2x2 pixels; context 2 steps, end keyframe at step 5.
  toks = np.zeros((1, 6, 2, 2), np.int32)
  toks[:, :2] = 1  # the first keyframe's drawing
  toks[:, 5] = [[2, 1], [3, 4]]  # the end keyframe's: top right as at first
  toks[:, 4] = [[2, 1], [5, 4]]  # repeats the end's except bottom left
  toks[:, 3] = [[2, 6], [6, 6]]
  plain = inference.paste_between(frames, still0, still1, real, context=2,
                                  end=5, temporal=1)
  out = inference.paste_between(frames, still0, still1, real, context=2,
                                end=5, temporal=1, toks=toks)
  r = real / 255.0
  np.testing.assert_allclose(out[0, 4, :2, :2], r[0, 5, :2, :2], atol=1e-6)
  np.testing.assert_allclose(out[0, 4, 2:, 2:], r[0, 5, 2:, 2:], atol=1e-6)
  np.testing.assert_allclose(out[0, 3, :2, :2], r[0, 5, :2, :2], atol=1e-6)
  # A token that repeats both keyframes', one that repeats neither, and every
  # frame of steps without a repeat keep the cross-fade paste.
  np.testing.assert_array_equal(out[0, 4, :2, 2:], plain[0, 4, :2, 2:])
  np.testing.assert_array_equal(out[0, 4, 2:, :2], plain[0, 4, 2:, :2])
  np.testing.assert_array_equal(out[0, 2], plain[0, 2])
  np.testing.assert_array_equal(out[0, 3, 2:], plain[0, 3, 2:])
  # The given frames are untouched.
  np.testing.assert_array_equal(out[:, :2], plain[:, :2])
  np.testing.assert_array_equal(out[:, 5], plain[:, 5])


def test_each_job_reads_its_own_dead_zone_or_the_common_one():
  ev = dict(paste_threshold=0.05, paste_threshold_by_job='interpolate:0.1, '
            'rollout:0')
  assert inference.paste_thresholds(ev) == {
      'continue': 0.05, 'interpolate': 0.1, 'outpaint': 0.05, 'rollout': 0.0}
  assert set(inference.paste_thresholds(dict(
      paste_threshold=0.2, paste_threshold_by_job='')).values()) == {0.2}
  for bad in ('interp:0.1', 'rollout:2', 'rollout', 'rollout:0,rollout:0.1',
              'outpaint:x'):
    with pytest.raises(ValueError, match='paste_threshold_by_job'):
      inference.paste_thresholds(dict(paste_threshold=0.0,
                                      paste_threshold_by_job=bad))


def test_given_steps_of_each_task():
  grid = (5, 2, 3)
  assert list(tasks.make_order('continue', grid, 2).known_steps) == [
      True, True, False, False, False]
  assert list(tasks.make_order('interpolate', grid, 2).known_steps) == [
      True, True, False, False, True]
  assert not tasks.make_order('outpaint', grid).known_steps.any()


def _keyframe_batch(given):
  real = np.zeros((1, len(given), 2, 2, 3), np.float32)
  real[:, 1] = 0.2  # the last context frame
  real[:, 4] = 1.0  # the end keyframe
  return evaluate.Batch(video=None, real=real, idx=None, still=None, feats={},
                        context=2, given=np.asarray(given), paste='residual')


def test_keyframe_baselines_blend_or_hold_the_two_keyframes():
  b = _keyframe_batch([True, True, False, False, True])
  fade = evaluate.METHODS['crossfade'](None, b)[0, :, 0, 0, 0]
  np.testing.assert_allclose(fade[1:], [0.2, 0.2 + 0.8 / 3, 0.2 + 1.6 / 3, 1.0],
                             rtol=1e-6)
  near = evaluate.METHODS['nearest_keyframe'](None, b)[0, :, 0, 0, 0]
  np.testing.assert_allclose(near[1:], [0.2, 0.2, 1.0, 1.0])
  # A continuation has no end keyframe: neither baseline is reported.
  b = _keyframe_batch([True, True, False, False, False])
  assert evaluate.METHODS['crossfade'](None, b) is None
  assert evaluate.METHODS['nearest_keyframe'](None, b) is None


def test_the_rollout_table_reads_its_json():
  from mirai_jax import rollouts  # pylint: disable=g-import-not-at-top
  m = lambda a, b, e: {'psnr_at_1x': a, 'psnr_at_2x': b, 'mse_at_2x': e,
                       'psnr_drift_db_per_s': -3.5}
  text = rollouts.table(dict(split='test', shots=3, windows=2,
                             training_horizon_frames=4,
                             methods=dict(model=m(25.0, 22.5, 0.003),
                                          copy_last=m(30.0, 21.0, 0.004))))
  lines = text.splitlines()
  assert lines[0].startswith('rollout on test: 3 shots, 2 windows of 4 frames')
  assert lines[3].split() == ['model', '25.00', '22.50', '-3.50']
  assert lines[4].split() == ['copy_last', '30.00', '21.00', '-3.50']
  assert lines[5] == ('MSE at 2x vs copy-last-frame: 0.00300 vs 0.00400 '
                      '(+25.0% lower)')


def test_widening_baselines_and_scores_read_the_sides_only():
  rng = np.random.default_rng(2)
  real = rng.uniform(size=(2, 3, 4, 10, 3)).astype(np.float32)
  b = evaluate.Batch(video=None, real=real, idx=None, still=None, feats={},
                     context=0, given=np.zeros(3, bool), paste='residual',
                     columns=(3, 7))
  edge = evaluate.METHODS['edge_replication'](None, b)
  np.testing.assert_array_equal(edge[..., :3, :], np.repeat(
      real[..., 3:4, :], 3, axis=-2))
  np.testing.assert_array_equal(edge[..., 7:, :], np.repeat(
      real[..., 6:7, :], 3, axis=-2))
  mirror = evaluate.METHODS['mirror'](None, b)
  np.testing.assert_array_equal(mirror[..., [2, 1, 0, 7, 8, 9], :],
                                real[..., [3, 4, 5, 6, 5, 4], :])
  for frames in (edge, mirror):  # the centre is the input's
    np.testing.assert_array_equal(frames[..., 3:7, :], real[..., 3:7, :])
  assert evaluate.METHODS['copy_last'](None, b) is None
  sides = evaluate._sides(3, 7)(real)  # pylint: disable=protected-access
  np.testing.assert_array_equal(sides, real[..., [0, 1, 2, 7, 8, 9], :])


def test_a_widening_pastes_its_sides_onto_the_true_edge_columns():
  rng = np.random.default_rng(4)
  real = rng.uniform(size=(2, 3, 4, 10, 3)).astype(np.float32)
  # The decoder draws its own centre, flat sides in its edge colours, and
  # one figure in the left side of frame 1.
  frames = rng.uniform(0.2, 0.8, size=real.shape).astype(np.float32)
  frames = inference.edge_sides(frames, 3, 7)
  frames[:, 1, :2, 0] += 0.3
  out = inference.paste_sides(frames, real, 3, 7, residual=True,
                              threshold=0.1)
  edge = inference.edge_sides(real, 3, 7)
  np.testing.assert_array_equal(out[..., 3:7, :], real[..., 3:7, :])
  np.testing.assert_allclose(out[:, 0], edge[:, 0], atol=1e-6)
  np.testing.assert_allclose(out[:, 1, 2:], edge[:, 1, 2:], atol=1e-6)
  np.testing.assert_allclose(out[:, 1, :2, 0],
                             np.clip(edge[:, 1, :2, 0] + 0.3, 0, 1), atol=1e-6)
  np.testing.assert_allclose(out[:, 1, :2, 1:], edge[:, 1, :2, 1:], atol=1e-6)
  # Without the residual the sides are the decoder's own.
  out = inference.paste_sides(frames, real, 3, 7, residual=False)
  np.testing.assert_array_equal(out[..., 3:7, :], real[..., 3:7, :])
  np.testing.assert_array_equal(out[..., :3, :], frames[..., :3, :])
  np.testing.assert_array_equal(out[..., 7:, :], frames[..., 7:, :])


def test_lpips_and_fvd_plan_scores_generated_frames_and_whole_windows(
    monkeypatch):
  import ml_collections  # pylint: disable=g-import-not-at-top
  from mirai_jax import lpips_fvd  # pylint: disable=g-import-not-at-top
  from mirai_jax import perceptual_scores  # pylint: disable=g-import-not-at-top
  seen = []
  monkeypatch.setattr(lpips_fvd, 'available', lambda: True)
  # Stand-ins that record what they are given: a frame's LPIPS is its mean
  # difference, a clip's features are its per-frame means.
  monkeypatch.setattr(lpips_fvd, 'lpips', lambda a, b: np.abs(
      a - b).mean(axis=(1, 2, 3)))
  def feats(clips):
    seen.append(clips.shape)
    return clips.mean(axis=(2, 3, 4))
  monkeypatch.setattr(lpips_fvd, 'i3d_features', feats)
  ev = ml_collections.ConfigDict(dict(lpips=True, fvd_clips=5))
  spec = dict(height=32, width=32)
  plan = perceptual_scores.Plan(ev, spec, frames=10)
  rng = np.random.default_rng(0)
  result = {'methods': {'same': {}, 'off': {}}}
  scored = np.arange(2, 10)
  for _ in range(2):  # two batches of 3 clips: only 5 join the FVD sets
    real = rng.uniform(0, 0.8, size=(3, 10, 32, 32, 3)).astype(np.float32)
    plan.add_real(real)
    got = plan.lpips_scores(real, real + 0.1, scored)
    assert got['lpips'].shape == (3, 8)
    np.testing.assert_allclose(got['lpips'], 0.1, rtol=1e-4)
    plan.add_fake('same', real)
    plan.add_fake('off', np.clip(real + 0.3, 0, 1))
  plan.finish(result)
  assert [s[0] for s in seen] == [3, 3, 3, 2, 2, 2]  # real, same, off
  assert all(s[1] == 10 for s in seen)  # whole windows, given frames too
  assert result['fvd_clips'] == 5 and result['fvd_frames'] == 10
  assert abs(result['methods']['same']['fvd']) < 1e-6
  assert result['methods']['off']['fvd'] > 0.1
  # Short windows: no FVD, and the JSON says why; no extra: how to get it.
  short = perceptual_scores.Plan(ev, spec, frames=6)
  assert not short.fvd and 'under the 9' in short.notes['fvd_note']
  monkeypatch.setattr(lpips_fvd, 'available', lambda: False)
  none = perceptual_scores.Plan(ev, spec, frames=16)
  assert not none.lpips and not none.fvd
  assert "pip install -e '.[metrics]'" in none.notes['metrics_note']
  assert none.lpips_scores(real, real, scored) == {}
