"""Stage 1 training machinery on 4 fake CPU devices: sharding, resume, NaN
guard, losses, evaluation and tokenize."""

import json
import os
import shutil

import jax
import numpy as np
import pytest

import helpers
from mirai_jax import checkpoint
from mirai_jax import inference
from mirai_jax import tokenize
from mirai_jax import workdir as workdir_lib
from mirai_jax.data import tokens
from mirai_jax.train import tokenizer as train_tokenizer


def _config(built, **overrides):
  config = helpers.demo_config(data__data_dir=built['data_dir'])
  return helpers.tiny_tokenizer(config, **overrides)


def _losses(workdir):
  with open(os.path.join(workdir, 'tokenizer', 'metrics.jsonl')) as f:
    rows = [json.loads(l) for l in f]
  return {r['step']: r['train/loss'] for r in rows if 'train/loss' in r}


def _params(config, workdir, built):
  from mirai_jax import mesh as mesh_lib  # pylint: disable=g-import-not-at-top
  spec = built['builder'].info.metadata['clip_spec']
  tok = inference.load_tokenizer(config, workdir, spec,
                                 mesh_lib.make_mesh(1, 1))
  return jax.device_get(tok.params), tok.step


@pytest.fixture(scope='module')
def reference(built, tmp_path_factory):
  """6 steps on all 4 devices, checkpoints at 3 and 6."""
  workdir = str(tmp_path_factory.mktemp('ref'))
  config = _config(built, steps=6)
  train_tokenizer.train_and_evaluate(config, workdir)
  return config, workdir


def test_sharded_steps_equal_single_device_steps(built, reference, tmp_path):
  _, ref_dir = reference
  for devices, fsdp in ((1, 1), (4, 2)):
    config = _config(built, steps=6)
    config.mesh.devices, config.mesh.fsdp = devices, fsdp
    workdir = str(tmp_path / f'd{devices}_f{fsdp}')
    train_tokenizer.train_and_evaluate(config, workdir)
    ref, got = _losses(ref_dir), _losses(workdir)
    assert sorted(got) == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose([got[s] for s in sorted(got)],
                               [ref[s] for s in sorted(ref)], rtol=2e-5)


def test_resume_continues_exactly(built, reference, tmp_path):
  config, ref_dir = reference
  # A run that stopped after its step-3 checkpoint: same workdir, minus the rest.
  workdir = str(tmp_path / 'resumed')
  shutil.copytree(ref_dir, workdir)
  shutil.rmtree(os.path.join(workdir, 'tokenizer', 'checkpoints', '6'))
  os.remove(os.path.join(workdir, 'tokenizer', 'metrics.jsonl'))
  train_tokenizer.train_and_evaluate(_config(built, steps=6), workdir)
  ref, got = _losses(ref_dir), _losses(workdir)
  assert sorted(got) == [4, 5, 6]  # it did not start again from step 0
  assert [got[s] for s in (4, 5, 6)] == [ref[s] for s in (4, 5, 6)]
  a, step_a = _params(config, ref_dir, built)
  b, step_b = _params(config, workdir, built)
  assert step_a == step_b == 6
  jax.tree.map(np.testing.assert_array_equal, a, b)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(built, reference,
                                                           tmp_path):
  config, ref_dir = reference
  workdir = str(tmp_path / 'nan')
  shutil.copytree(ref_dir, workdir)
  shutil.rmtree(os.path.join(workdir, 'tokenizer', 'checkpoints', '6'))
  bad = _config(built, steps=6, loss__recon_weight=float('nan'))
  with pytest.raises(FloatingPointError, match='last good checkpoint .step 3.'):
    train_tokenizer.train_and_evaluate(bad, workdir)
  ckpt = checkpoint.Checkpoints(os.path.join(workdir, 'tokenizer', 'checkpoints'))
  assert ckpt.latest_step() == 3
  ckpt.close()
  params, _ = _params(config, workdir, built)
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(params))


def test_vq_adversarial_and_perceptual_losses_train(built, tmp_path):
  rng = np.random.default_rng(0)
  weights = str(tmp_path / 'features.npz')
  np.savez(weights, **{'conv0/kernel': rng.normal(size=(3, 3, 3, 8)),
                       'conv0/bias': np.zeros(8),
                       'conv1/kernel': rng.normal(size=(3, 3, 8, 8)),
                       'conv1/bias': np.zeros(8), 'pool_after': np.array([0])})
  config = _config(built, steps=2, quantizer='vq', vq_codes=64, vq_dim=8,
                   loss__adversarial_weight=0.1, loss__adversarial_start=0,
                   loss__disc_channels=(8, 16), loss__perceptual_weight=0.5,
                   loss__perceptual_weights=weights)
  workdir = str(tmp_path / 'w')
  train_tokenizer.train_and_evaluate(config, workdir)
  with open(os.path.join(workdir, 'tokenizer', 'metrics.jsonl')) as f:
    last = [json.loads(l) for l in f][-1]
  for key in ('train/perceptual', 'train/g_adv', 'train/d_loss',
              'train/commitment'):
    assert np.isfinite(last[key]) and last[key] != 0, key
  missing = _config(built, steps=1, loss__perceptual_weight=0.5,
                    loss__perceptual_weights=str(tmp_path / 'nope.npz'))
  with pytest.raises(FileNotFoundError, match='tokenizer.loss.perceptual_weights'):
    train_tokenizer.train_and_evaluate(missing, str(tmp_path / 'x'))


def test_evaluation_and_tokenize(built, reference):
  config, workdir = reference
  spec = built['builder'].info.metadata['clip_spec']
  result = train_tokenizer.train_and_evaluate(config, workdir)  # already done
  assert len(result['psnr_per_frame']) == spec['frames']
  assert 0 < result['psnr'] < 60 and 0 < result['codebook_usage'] <= 1
  assert json.load(open(os.path.join(workdir, 'tokenizer', 'eval.json')))['step'] == 6
  meta = tokenize.run(config, workdir)
  assert meta['grid'] == [20, 16, 16]
  for split, info in built['builder'].info.splits.items():
    source = tokens.TokenSource(workdir_lib.tokens_dir(workdir), split)
    assert len(source) == info.num_examples == meta['splits'][split]
  # Tokens equal a direct encoding of the same clip; provenance rides along.
  clips = built['builder'].as_data_source(split='test')
  source = tokens.TokenSource(workdir_lib.tokens_dir(workdir), 'test')
  from mirai_jax import mesh as mesh_lib  # pylint: disable=g-import-not-at-top
  tok = inference.load_tokenizer(config, workdir, spec,
                                 mesh_lib.make_mesh(1, 1))
  for i in (0, len(source) - 1):
    rec, clip = source[i], clips[i]
    idx = tok.encode(clip['video'][None])
    np.testing.assert_array_equal(rec['tokens'], np.asarray(idx[0]))
    np.testing.assert_array_equal(rec['audio'], clip['audio'])
    assert rec['start_frame'] == clip['start_frame']
    assert rec['episode'] == clip['episode'].decode()


def test_mixed_precision_keeps_float32_parameters(built, tmp_path):
  config = _config(built, steps=2, mixed_precision=True)
  workdir = str(tmp_path / 'bf16')
  train_tokenizer.train_and_evaluate(config, workdir)
  params, _ = _params(config, workdir, built)
  assert {x.dtype for x in jax.tree.leaves(params)} == {np.dtype('float32')}
  losses = _losses(workdir)
  assert all(np.isfinite(v) for v in losses.values())


def test_bad_tokenizer_configs_are_named(built, tmp_path):
  with pytest.raises(ValueError, match='tokenizer.quantizer'):
    train_tokenizer.train_and_evaluate(_config(built, quantizer='lfq'),
                                       str(tmp_path / 'a'))
  with pytest.raises(ValueError, match='batch_size=6 does not divide'):
    train_tokenizer.train_and_evaluate(_config(built, batch_size=6),
                                       str(tmp_path / 'b'))
  with pytest.raises(ValueError, match='powers of 2'):
    train_tokenizer.train_and_evaluate(_config(built, spatial=6, patch=1),
                                       str(tmp_path / 'c'))
