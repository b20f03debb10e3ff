"""Inference restores only what it uses from a training checkpoint."""

import flax
import jax
import jax.numpy as jnp
import numpy as np

from mirai_jax import checkpoint


@flax.struct.dataclass
class _State:
  step: jax.Array
  params: dict
  opt_state: tuple
  ema_params: dict


def test_a_partial_restore_reads_the_named_parts_only(tmp_path):
  state = _State(
      step=jnp.asarray(7, jnp.int32), params={'w': jnp.ones((3, 4))},
      opt_state=({'mu': jnp.full((3, 4), 5.0)},),
      ema_params={'w': jnp.arange(12.0).reshape(3, 4)})
  ckpt = checkpoint.Checkpoints(str(tmp_path / 'ckpt'))
  ckpt.save(7, state, {'tokenizer': {}}, force=True)
  ckpt.close()
  part = {'ema_params': {'w': jax.ShapeDtypeStruct((3, 4), jnp.float32)}}
  reader = checkpoint.Checkpoints(str(tmp_path / 'ckpt'), partial=True)
  restored, step = reader.restore_for_inference(
      part, label='tokenizer', dataset=None, fix='')
  assert step == 7
  assert set(restored) == {'ema_params'}  # no optimiser state, no raw params
  np.testing.assert_array_equal(restored['ema_params']['w'],
                                np.arange(12.0).reshape(3, 4))
  # A training run still reads the whole state back.
  full = checkpoint.Checkpoints(str(tmp_path / 'ckpt'))
  back, _ = full.restore(jax.eval_shape(lambda: state))
  full.close()
  np.testing.assert_array_equal(back.opt_state[0]['mu'], 5.0)


class _FakePredictor:
  """What Predictor.rollout reads, with a model that writes each window's
  sound feature into the tokens it generates."""

  def __init__(self, steps=4, context=2):
    from mirai_jax import tasks  # pylint: disable=g-import-not-at-top
    import ml_collections  # pylint: disable=g-import-not-at-top
    self.config = ml_collections.ConfigDict(dict(transformer=dict(
        frames=steps, context=context)))
    self.order = tasks.make_order('continue', (steps, 1, 1), context)
    self.frames, self.context = steps, context
    self.seen = []

  def tokens(self, video):  # one token per frame: its mean value
    return jnp.asarray(video).mean(axis=(2, 3, 4))[:, :, None, None].astype(
        jnp.int32)

  def audio_features(self, pcm, fps, use_audio):
    self.seen.append(np.asarray(pcm))
    return jnp.asarray(pcm)[:, :1]

  codes = None  # not None: sample.decode='mean'
  end_step, temporal = None, 1  # a continuation, a frame per step

  def known_video(self, video):
    from mirai_jax import inference  # pylint: disable=g-import-not-at-top
    return inference.Predictor.known_video(self, video)

  def generate(self, known, feats):  # the unknown steps get the feature
    keep = np.asarray(self.order.known_steps)[None, :, None, None]
    toks = np.where(keep, known, np.asarray(feats)[:, :, None, None])
    return toks.astype(np.int32), _fake_means(self, toks)

  render = staticmethod(lambda toks, means=None: _fake_render(toks, means))

  def finish(self, frames, toks, real):
    return frames


def _fake_means(fake, toks):
  """The fakes' expected latents: each token's value + 0.5."""
  return None if fake.codes is None else toks[..., None] + 0.5


def _fake_render(toks, means):
  """A 1-pixel picture per token: its value, or its expected latent."""
  x = np.asarray(toks)[..., None] if means is None else np.asarray(means)
  return x.repeat(3, -1).astype(np.float32)


def test_each_rollout_window_gets_its_own_sound():
  from mirai_jax import inference  # pylint: disable=g-import-not-at-top
  fake = _FakePredictor()
  real = np.full((1, 8, 1, 1, 3), 7, np.uint8)
  sound = lambda w: np.full((1, 5), 100 + w, np.int16)
  frames, toks = inference.Predictor.rollout(fake, real, sound, [24.0],
                                             [True], windows=3)
  assert [int(s[0, 0]) for s in fake.seen] == [100, 101, 102]
  # Context from the real frames, then two steps per window from its sound.
  assert list(np.asarray(toks)[0, :, 0, 0]) == [7, 7, 100, 100, 101, 101,
                                                 102, 102]
  assert frames.shape == (1, 8, 1, 1, 3)
  # sample.decode='mean': the frames show each window's expected latents,
  # in step with its tokens.
  fake = _FakePredictor()
  fake.codes = 'on'
  frames, toks = inference.Predictor.rollout(fake, real, sound, [24.0],
                                             [True], windows=3)
  np.testing.assert_array_equal(frames[..., 0], np.asarray(toks) + 0.5)


class _FakeWidener:
  """What Predictor.widen reads: a 4-step window of 1x4 tokens per step
  (one per pixel column), centre columns 1..2 given; the model writes
  100 + window into every side it is asked to generate."""

  def __init__(self):
    from mirai_jax import tasks  # pylint: disable=g-import-not-at-top
    import ml_collections  # pylint: disable=g-import-not-at-top
    self.config = ml_collections.ConfigDict(dict(transformer=dict(
        frames=4, context=2)))
    self.order = tasks.make_order('outpaint', (4, 1, 4), keep_cols=2)
    self.frames, self.context = 4, 2
    self.columns = self.token_columns = (1, 3)
    self.carried = self.order.num_known + 2 * 1 * 2
    self.calls = []

  def tokens(self, video):  # a token per column: its mean
    return jnp.asarray(video).mean(axis=(2, 4))[:, :, None, :].astype(jnp.int32)

  def audio_features(self, pcm, fps, use_audio):
    return jnp.asarray(pcm)[:, :1]

  def generate(self, idx, feats, prefix=None):
    idx = np.asarray(idx)
    self.calls.append((idx.copy(), prefix))
    seq = self.order.to_sequence(idx)
    keep = np.arange(seq.shape[1]) < (prefix or self.order.num_known)
    seq = np.where(keep, seq, np.asarray(feats)[:, :1])
    toks = self.order.to_grid(seq)
    return toks, _fake_means(self, toks)

  codes = None
  # A 1x4 picture per step: one pixel a token.
  render = staticmethod(lambda toks, means=None: _fake_render(toks, means))

  def finish(self, frames, toks, real):
    return frames


def test_each_widening_window_reads_the_sides_generated_before():
  from mirai_jax import inference  # pylint: disable=g-import-not-at-top
  fake = _FakeWidener()
  real = np.full((1, 8, 1, 4, 3), 7, np.uint8)  # 3 windows of 2 new steps
  sound = lambda w: np.full((1, 5), 100 + w, np.int16)
  _, toks = inference.Predictor.widen(fake, real, sound, [24.0], [True], 3)
  toks = np.asarray(toks)[0, :, 0]  # (steps, columns)
  assert toks.shape == (8, 4)
  np.testing.assert_array_equal(toks[:, 1:3], 7)  # the centre as given
  # Window 0 draws every side; windows 1 and 2 only their last two steps'.
  assert list(toks[:, 0]) == [100, 100, 100, 100, 101, 101, 102, 102]
  assert [p for _, p in fake.calls] == [None, fake.carried, fake.carried]
  # Window 1 was given window 0's sides over its first (overlapping) steps.
  given, _ = fake.calls[1]
  np.testing.assert_array_equal(given[0, :2, 0, [0, 3]], 100)
  fake = _FakeWidener()
  fake.codes = 'on'  # sample.decode='mean'
  frames, toks = inference.Predictor.widen(fake, real, sound, [24.0], [True],
                                           3)
  np.testing.assert_array_equal(frames[..., 0], np.asarray(toks) + 0.5)


def test_an_in_between_encodes_the_keyframes_cross_fade_not_the_true_frames():
  """The tokenizer is causal in time: the end keyframe's tokens would carry
  the frames before it, the ones to be generated."""
  from mirai_jax import inference  # pylint: disable=g-import-not-at-top
  fake = _FakePredictor(steps=4, context=1)
  fake.end_step, fake.temporal, fake.context = 2, 2, 2  # keyframe: frames 4-5
  rng = np.random.default_rng(0)
  video = rng.integers(0, 255, (2, 8, 3, 3, 3)).astype(np.uint8)
  seen = inference.Predictor.known_video(fake, video)
  np.testing.assert_array_equal(seen[:, :2], video[:, :2])  # the context
  np.testing.assert_array_equal(seen[:, 4:], video[:, 4:])  # the keyframe on
  for t, w in ((2, 1 / 3), (3, 2 / 3)):  # frame 1 -> frame 4
    want = video[:, 1] * (1 - w) + video[:, 4] * w
    np.testing.assert_allclose(seen[:, t], want, atol=0.51)
  # A continuation's encoder sees the window as it is.
  fake.end_step = None
  assert inference.Predictor.known_video(fake, video) is video
