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

  def generate(self, known, feats):  # the unknown steps get the feature
    keep = np.asarray(self.order.known_steps)[None, :, None, None]
    return jnp.where(keep, known, feats[:, :, None, None].astype(jnp.int32))

  def reconstruct(self, toks):
    return jnp.asarray(toks)[..., None].repeat(3, -1).astype(jnp.float32)

  def finish(self, frames, toks, real):
    return frames


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
