"""The pixel baselines: pix2pix and the multi-scale predictor of Mathieu et
al., their losses, the feedback loop, and which stages --mode=report runs."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mirai_jax import defaults
from mirai_jax import workdir as workdir_lib
from mirai_jax.models import from_config
from mirai_jax.models import multiscale
from mirai_jax.models import next_frame
from mirai_jax.models import pix2pix
from mirai_jax.train import baseline
from mirai_jax.train import optim


def _clips(b=2, k=2, h=20, w=36, seed=0):
  return jax.random.uniform(jax.random.key(seed), (b, k, h, w, 3),
                            minval=-1, maxval=1)


def test_the_unet_predicts_a_frame_of_any_size_in_range():
  ctx = _clips(h=20, w=36)  # not a multiple of the U-Net's stride 16
  net = pix2pix.UNet(channels=(8, 16, 32, 32))
  # Compiled once each: op-by-op dispatch of a U-Net is slower than XLA.
  params = jax.jit(net.init)(jax.random.key(0), ctx)
  apply = jax.jit(net.apply, static_argnames='train')
  out = apply(params, ctx)
  assert out.shape == (2, 20, 36, 3)
  assert float(jnp.abs(out).max()) <= 1.0
  # Dropout is pix2pix's noise: on when training, off when predicting.
  drop = lambda r: apply(params, ctx, train=True,
                         rngs={'dropout': jax.random.key(r)})
  assert not np.allclose(drop(1), drop(2))
  np.testing.assert_array_equal(out, apply(params, ctx))
  logits = pix2pix.PatchGAN((8, 16)).init_with_output(
      jax.random.key(1), ctx, out)[0]
  assert logits.shape[0] == 2 and logits.shape[-1] == 1


def test_the_multiscale_generator_refines_coarse_to_fine():
  ctx = _clips(h=20, w=36)
  gen = multiscale.Generator(scales=3, channels=(8, 8), kernels=(3, 5))
  params = jax.jit(gen.init)(jax.random.key(0), ctx)
  apply = jax.jit(gen.apply, static_argnames='all_scales')
  outs = apply(params, ctx, all_scales=True)
  assert [o.shape[1:3] for o in outs] == [(5, 9), (10, 18), (20, 36)]
  np.testing.assert_array_equal(apply(params, ctx), outs[-1])
  disc = multiscale.Discriminator(scales=3, channels=(8, 8, 8), hidden=8)
  logits = disc.init_with_output(jax.random.key(1), ctx, outs)[0]
  assert [l.shape for l in logits] == [(2,)] * 3
  # The pyramid of a constant image is that constant at every scale.
  flat = multiscale.pyramid(jnp.full((1, 8, 8, 3), 0.3), 3)
  assert [f.shape[1] for f in flat] == [2, 4, 8]
  np.testing.assert_allclose(flat[0], 0.3, rtol=1e-6)


def test_gradient_difference_loss_penalises_blur_not_a_match():
  x = jnp.zeros((1, 16, 16, 3)).at[:, :, 8:].set(1.0)  # one sharp edge
  blur = (x + jnp.roll(x, 1, 2) + jnp.roll(x, -1, 2)) / 3
  assert float(multiscale.gdl(x, x)) == 0.0
  assert float(multiscale.gdl(x, blur)) > 0.05


def test_roll_feeds_each_output_back_as_the_newest_context_frame():
  # Frames are single numbers: the step returns newest + oldest, so the
  # output is a Fibonacci-like sequence only if the window slides right.
  ctx = jnp.array([1.0, 2.0]).reshape(1, 2, 1, 1, 1)
  out = next_frame.roll(lambda c: c[:, -1] + c[:, 0], ctx, 4)
  np.testing.assert_array_equal(out.reshape(-1), [3, 5, 8, 13])


def test_continue_frames_reads_only_the_last_inputs_frames():
  video = np.zeros((1, 3, 4, 4, 3), np.uint8)
  video[:, 2] = 255  # only the newest frame is white
  # A model that repeats its newest input: copy-last, in [0, 1].
  out = next_frame.continue_frames(lambda c: c[:, -1], jnp.asarray(video),
                                   inputs=1, n=2)
  np.testing.assert_allclose(out, 1.0)
  first = next_frame.continue_frames(lambda c: c[:, 0], jnp.asarray(video),
                                     inputs=2, n=1)
  np.testing.assert_allclose(first, 0.0)  # the older of the last two


# Without the discriminator the step differs only by what it leaves out: one
# model shows it.
@pytest.mark.parametrize('name,adversarial', [('pix2pix', True),
                                              ('multiscale', True),
                                              ('multiscale', False)])
def test_one_update_step_is_finite_and_moves_the_generator(name, adversarial):
  config = defaults.run()
  small = dict(pix2pix=dict(channels=(8, 16), disc_channels=(8,)),
               multiscale=dict(scales=2, channels=(8,), kernels=(3,),
                               disc_channels=(8, 8), disc_hidden=8))[name]
  config[name].update(small, adversarial_weight=1.0 if adversarial else 0.0)
  gen, disc = from_config.baseline(config, name)
  assert (disc is not None) == adversarial
  cfg = config[name]
  tx, disc_tx = optim.optimizer(cfg), optim.optimizer(cfg)
  video = np.random.default_rng(0).integers(0, 256, (2, 5, 16, 16, 3),
                                            dtype=np.uint8)
  ctx = next_frame.to_signed(jnp.asarray(video[:, :2]))
  params = gen.init(jax.random.key(0), ctx)['params']
  dparams = {}
  if disc is not None:
    fake = gen.apply({'params': params}, ctx,
                     **({'all_scales': True} if name == 'multiscale' else {}))
    dparams = disc.init(jax.random.key(1), ctx, fake)['params']
  state = baseline.State(
      step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
      ema_params=params, disc_params=dparams,
      disc_opt_state=disc_tx.init(dparams) if disc else {},
      nonfinite=jnp.zeros((), jnp.int32))
  update = jax.jit(baseline.make_update(name, cfg, gen, disc, tx, disc_tx, 2,
                                        seed=0))
  new, _ = update(state, {'video': jnp.asarray(video)})  # lr 0: warm-up
  new, metrics = update(new, {'video': jnp.asarray(video)})
  assert int(new.nonfinite) == 0 and int(new.step) == 2
  assert all(np.isfinite(float(v)) for v in metrics.values())
  assert ('g_adv' in metrics) == adversarial == ('d_loss' in metrics)
  moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()),
                       new.params, state.params)
  assert max(jax.tree.leaves(moved)) > 0
  if adversarial:
    dmoved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()),
                          new.disc_params, state.disc_params)
    assert max(jax.tree.leaves(dmoved)) > 0


def _fake_checkpoint(workdir, stage, step):
  os.makedirs(os.path.join(workdir_lib.checkpoint_dir(workdir, stage),
                           str(step)))


def test_report_runs_only_what_is_missing(tmp_path, monkeypatch):
  config = defaults.run()
  work = str(tmp_path)
  everything = ['data', 'tokenizer', 'tokenize', 'transformer', 'pix2pix',
                'multiscale', 'evaluate', 'report']
  assert workdir_lib.report_stages(config, work) == everything
  for stage in workdir_lib.REPORTED:
    _fake_checkpoint(work, stage, config[stage].steps)
  # Token records of the tokenizer's last step: nothing left to train.
  read = lambda step: lambda d: type('R', (), {'tokenizer_step': step})()
  monkeypatch.setattr(workdir_lib.tokens, 'current', lambda d: d)
  monkeypatch.setattr(workdir_lib.tokens, 'read_records',
                      read(config.tokenizer.steps))
  assert workdir_lib.report_stages(config, work) == ['data', 'evaluate',
                                                     'report']
  # Records of an older tokenizer step are made again; a baseline stopped
  # half way is resumed.
  monkeypatch.setattr(workdir_lib.tokens, 'read_records', read(7))
  _fake_checkpoint(work, 'tokenizer', config.tokenizer.steps + 5)
  config.multiscale.steps += 100
  assert workdir_lib.report_stages(config, work) == [
      'data', 'tokenize', 'multiscale', 'evaluate', 'report']
