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
