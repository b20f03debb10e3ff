"""Stage 3: the transformer, its KV-cache sampler, tasks, and its training
machinery on 4 fake CPU devices (sharding, resume, NaN guard)."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import helpers
from mirai_jax import checkpoint
from mirai_jax import inference
from mirai_jax import mesh as mesh_lib
from mirai_jax import sample
from mirai_jax import tasks
from mirai_jax.data import tokens as tokens_lib
from mirai_jax.models import audio as audio_lib
from mirai_jax.models import transformer as transformer_lib
from mirai_jax.train import transformer as train_transformer

GRID = (4, 3, 3)
V = 37
SR = 16000


def _model(**kw):
  return transformer_lib.Transformer(codebook_size=V, grid=GRID, width=32,
                                     depth=2, heads=4, audio_channels=16, **kw)


def _init(model, order, b=2, steps=GRID[0]):
  def fn(m):
    feats = m.audio_features(jnp.zeros((b, 4000), jnp.int16),
                             jnp.full((b,), 24.0), SR, 1, steps,
                             jnp.ones((b,), bool))
    seq = jnp.zeros((b, order.perm.size), jnp.int32)
    return m(*transformer_lib.inputs(seq, order, V), feats)
  return model.init(jax.random.key(1), method=fn)


def _audio(model, params, pcm, use=True):
  b = pcm.shape[0]
  return model.apply(params, jnp.asarray(pcm), jnp.full((b,), 24.0), SR, 1,
                     GRID[0], jnp.full((b,), use), method=model.audio_features)


def _pcm(seed, b=3, n=4000):
  rng = np.random.default_rng(seed)
  env = rng.uniform(0, 1, (b, n // 400)).repeat(400, 1)  # loudness per 25 ms
  return (env * rng.normal(0, 8000, (b, n))).astype(np.int16)


def _tokens(seed, b=3):
  return np.random.default_rng(seed).integers(0, V, (b, *GRID))


def _copy_gates(params, kernel_scale, bias):
  """Copy gates set by hand (they start at zero)."""
  rng = np.random.default_rng(11)
  old = params['params']['copy_gate']
  gate = dict(kernel=jnp.asarray(rng.normal(0, kernel_scale,
                                            old['kernel'].shape)),
              bias=jnp.broadcast_to(jnp.asarray(bias, jnp.float32),
                                    old['bias'].shape))
  return {'params': dict(params['params'], copy_gate=gate)}


@pytest.mark.parametrize('task', tasks.TASKS)
def test_cached_greedy_decoding_equals_uncached(task):
  # The end keyframe's tokens read in both, and copy gates that act.
  model = _model(later=True, copy_hints=True)
  order = tasks.make_order(task, GRID, context=2)
  params = _copy_gates(_init(model, order), 1.0, 0.5)
  feats = _audio(model, params, _pcm(0))
  known = sample.known_sequence(_tokens(0), order)
  for kw in (dict(temperature=0.0), dict(temperature=1.0, top_k=5, top_p=0.9),
             dict(temperature=0.0, hold_bias=1.5)):
    a = jax.jit(lambda p, s, f: sample.generate(model, p, s, order, f,
                                                jax.random.key(7), **kw))(
                                                    params, known, feats)
    b = jax.jit(lambda p, s, f: sample.generate_uncached(
        model, p, s, order, f, jax.random.key(7), **kw))(params, known, feats)
    np.testing.assert_array_equal(a, b)
    # Known positions are never written; the rest is filled with real codes.
    k = order.num_known
    np.testing.assert_array_equal(a[:, :k], known[:, :k])
    assert (np.asarray(a[:, k:]) >= 0).all() and (np.asarray(a[:, k:]) < V).all()


def test_copy_gates_raise_exactly_the_hinted_tokens():
  order = tasks.make_order('interpolate', GRID, context=2)
  model, plain = _model(later=True, copy_hints=True), _model(later=True)
  params = _init(model, order)
  feats = _audio(model, params, _pcm(8))
  seq = jnp.asarray(order.to_sequence(_tokens(8)))
  inputs = transformer_lib.inputs(seq, order, V)
  above = np.asarray(inputs[3])
  logits = lambda p, m=model: np.asarray(m.apply(p, *inputs, feats))
  without = {'params': {k: v for k, v in params['params'].items()
                        if k != 'copy_gate'}}
  # At zero (their start) the gates leave the plain model's logits.
  np.testing.assert_allclose(logits(params), logits(without, plain), atol=1e-6)
  # Gates of +3 (above) and +5 (later) add exactly that to those tokens.
  gated = _copy_gates(params, 0.0, [3.0, 5.0])
  diff = logits(gated) - logits(params)
  want = np.zeros_like(diff)
  for j, g in enumerate((3.0, 5.0)):
    rows = np.nonzero(above[..., j] < V)
    want[(*rows, above[..., j][rows])] += g
  np.testing.assert_allclose(diff, want, atol=1e-5)
  assert (above[..., 1] < V).any() and (above[..., 0] < V).any()
  with pytest.raises(ValueError, match='copy_hints=True needs `above`'):
    model.apply(params, jnp.zeros((1, 1, 32)), method=model.logits)


@pytest.mark.parametrize('task', ('continue', 'interpolate'))
def test_a_strong_hold_bias_holds_the_last_drawing_and_a_mild_one_less(task):
  model = _model()
  order = tasks.make_order(task, GRID, context=2)
  params = _init(model, order)
  feats = _audio(model, params, _pcm(4))
  toks = _tokens(4)
  known = sample.known_sequence(toks, order)
  run = lambda bias: order.to_grid(np.asarray(jax.jit(
      lambda p, s, f: sample.generate(model, p, s, order, f, temperature=0.0,
                                      hold_bias=bias))(params, known, feats)))
  free, mild, held = run(0.0), run(2.0), run(1e4)
  steps = slice(2, GRID[0] - (task == 'interpolate'))  # the drawn steps
  copies = lambda g: (g[:, steps] == toks[:, 1:2]).mean()
  assert copies(held) == 1.0  # every drawn step repeats step 1
  assert copies(free) < copies(mild) < 1.0
  np.testing.assert_array_equal(held[:, :2], toks[:, :2])


@pytest.mark.parametrize('rows', (1, 3))  # 3: two rows padded to three
def test_expected_latents_are_the_probability_weighted_codes(rows):
  # sample.decode='mean': the drawn tokens are unchanged, known positions
  # carry their own code, and each generated one the mean of the codes
  # under the softmax of the logits the uncached model gives there.
  model = _model()
  order = tasks.make_order('continue', GRID, context=2)
  params = _init(model, order)
  feats = _audio(model, params, _pcm(6, b=2))
  known = sample.known_sequence(_tokens(6, b=2), order)
  codes = np.random.default_rng(0).normal(size=(V, 3)).astype(np.float32)
  gen = lambda c: jax.jit(lambda p, s, f: sample.generate(
      model, p, s, order, f, temperature=0.0, codes=c, min_rows=rows))(
          params, known, feats)
  toks, means = map(np.asarray, gen(codes))
  np.testing.assert_array_equal(toks, np.asarray(gen(None)))
  k = order.num_known
  np.testing.assert_allclose(means[:, :k], codes[toks[:, :k]])
  logits = np.asarray(model.apply(params, *transformer_lib.inputs(
      jnp.asarray(toks), order, V), feats))
  want = np.asarray(jax.nn.softmax(logits[:, k:], -1)) @ codes
  np.testing.assert_allclose(means[:, k:], want, atol=1e-4)
  # Not the drawn token's code: the mean weighs the others too.
  assert np.abs(means[:, k:] - codes[toks[:, k:]]).max() > 1e-2


def test_a_forced_prefix_is_read_as_drawn_and_never_written():
  # A widening's next window is given the sides it generated over its first
  # steps: the first unknown positions, read as if the model drew them.
  model = _model()
  order = tasks.make_order('outpaint', GRID)
  params = _init(model, order)
  feats = _audio(model, params, _pcm(3))
  seq = order.to_sequence(_tokens(3)).astype(np.int32)
  prefix = order.num_known + 5
  kw = dict(temperature=1.0, top_k=6)
  cached = jax.jit(lambda p, s, f: sample.generate(
      model, p, s, order, f, jax.random.key(3), prefix=prefix, **kw))
  a = np.asarray(cached(params, seq, feats))
  b = np.asarray(jax.jit(lambda p, s, f: sample.generate_uncached(
      model, p, s, order, f, jax.random.key(3), prefix=prefix, **kw))(
          params, seq, feats))
  np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(a[:, :prefix], seq[:, :prefix])
  # Other forced tokens change what follows: they are read.
  other = seq.copy()
  other[:, order.num_known:prefix] = (other[:, order.num_known:prefix] + 7) % V
  c = np.asarray(cached(params, other, feats))
  assert (c[:, prefix:] != a[:, prefix:]).any()


def test_a_padded_single_row_draws_what_it_draws_alone():
  # sample.generate pads a single row to two on GPUs: the row's tokens must
  # not depend on it (the padding copy is dropped).
  model = _model()
  order = tasks.make_order('continue', GRID, context=2)
  params = _init(model, order)
  feats = _audio(model, params, _pcm(2, b=1))
  known = sample.known_sequence(_tokens(2, b=1), order)
  run = lambda rows: np.asarray(jax.jit(lambda p, s, f: sample.generate(
      model, p, s, order, f, jax.random.key(5), temperature=1.0, top_k=8,
      min_rows=rows))(params, known, feats))
  alone, padded = run(1), run(3)
  assert padded.shape == alone.shape == known.shape
  np.testing.assert_array_equal(padded, alone)


def test_sampling_is_deterministic_per_seed_and_varies_across_seeds():
  model = _model()
  order = tasks.make_order('continue', GRID, context=1)
  params = _init(model, order)
  known = sample.known_sequence(_tokens(1), order)
  run = lambda seed: np.asarray(sample.generate(
      model, params, known, order, None, jax.random.key(seed), temperature=1.0))
  np.testing.assert_array_equal(run(3), run(3))
  assert (run(3) != run(4)).any()


def test_the_future_never_leaks_into_earlier_logits():
  model = _model()
  order = tasks.make_order('continue', GRID, context=1)
  params = _init(model, order)
  seq = order.to_sequence(_tokens(2))
  logits = lambda s: np.asarray(model.apply(params, *transformer_lib.inputs(
      jnp.asarray(s), order, V)))
  j = 20
  changed = seq.copy()
  changed[:, j] = (changed[:, j] + 1) % V
  a, b = logits(seq), logits(changed)
  # Input j + 1 carries token j: outputs 0..j are untouched, j + 1 is not.
  np.testing.assert_allclose(a[:, :j + 1], b[:, :j + 1], atol=1e-6)
  assert np.abs(a[:, j + 1] - b[:, j + 1]).max() > 1e-4


def test_the_audio_changes_the_logits_at_its_own_time_step():
  model = _model()
  order = tasks.make_order('continue', GRID, context=1)
  params = _init(model, order)
  seq = jnp.asarray(order.to_sequence(_tokens(3)))
  pcm = _pcm(3)
  logits = lambda f: np.asarray(model.apply(
      params, *transformer_lib.inputs(seq, order, V), f))
  base = logits(_audio(model, params, pcm))
  assert np.abs(base - logits(_audio(model, params, pcm[::-1]))).max() > 1e-3
  assert np.abs(base - logits(_audio(model, params, pcm, use=False))).max() > 1e-3
  # Sound after step 1 changes nothing for targets at steps 0 and 1.
  later = pcm.copy()
  # Past step 1 by the STFT half-window and the encoder convs (4 x 10 ms).
  cut = int(2 / 24 * SR) + 256 + 4 * 160 + 1
  later[:, cut:] = 0
  steps = order.coords[:, 0]
  moved = logits(_audio(model, params, later))
  np.testing.assert_allclose(base[:, steps <= 1], moved[:, steps <= 1],
                             atol=1e-5)
  assert np.abs(base[:, steps == 3] - moved[:, steps == 3]).max() > 1e-4


def test_audio_features_follow_each_latent_step():
  # Loud frame k and silence elsewhere: only step k's mel energy rises.
  pcm = np.zeros((1, SR), np.int16)
  fps, k = 24.0, 5
  a, b = int(k / fps * SR), int((k + 1) / fps * SR)
  pcm[0, a:b] = (np.sin(np.arange(b - a) * 0.3) * 20000).astype(np.int16)
  mel = audio_lib.log_mel(jnp.asarray(pcm), SR)
  w = audio_lib.frame_to_step(mel.shape[1], 160, SR, jnp.asarray([fps]), 1, 24)
  per_step = np.asarray(jnp.einsum('bmn,bmt->bt', mel, w))[0]
  assert per_step.argmax() == k
  assert per_step[k] > per_step[k - 2] + 5 and per_step[k] > per_step[k + 2] + 5
  fb = audio_lib.mel_filterbank(SR, 512, 64)
  assert fb.shape == (257, 64) and (fb.sum(0) > 0).all()


def test_task_masks_and_orders():
  grid = (5, 2, 8)
  order = tasks.make_order('continue', grid, context=2)
  assert order.num_known == 2 * 16
  assert (order.coords[:order.num_known, 0] < 2).all()
  x = np.arange(2 * np.prod(grid)).reshape(2, *grid)
  np.testing.assert_array_equal(order.to_grid(order.to_sequence(x)), x)
  inter = tasks.known_mask('interpolate', grid, context=1)
  assert inter[0].all() and inter[-1].all() and not inter[1:-1].any()
  out = tasks.known_mask('outpaint', grid)
  assert out[:, :, 1:7].all() and not out[:, :, [0, 7]].any()
  # The place one step earlier: read before each target in every task.
  for task in tasks.TASKS:
    o = tasks.make_order(task, grid, context=2)
    above, coords = o.above_index, o.coords
    for i in range(o.perm.size):
      if coords[i, 0] == 0:
        assert above[i] == -1
      elif above[i] >= 0:
        assert above[i] < i
        np.testing.assert_array_equal(coords[above[i]],
                                      coords[i] - [1, 0, 0])
    assert (above[o.num_known:][coords[o.num_known:, 0] > 0] >= 0).all()
    # The place at the nearest later step read before the target: for an
    # in-between's generated places, the end keyframe; else nothing.
    later = o.later_index
    gen = slice(o.num_known, None)
    if task == 'interpolate':
      assert (later[gen] >= 0).all() and (later[gen] < o.num_known).all()
      np.testing.assert_array_equal(coords[later[gen]][:, 1:],
                                    coords[gen][:, 1:])
      assert (coords[later[gen], 0] == grid[0] - 1).all()
    else:
      assert (later[gen] == -1).all()
    assert (later[:o.num_known] == -1).all()  # the known part reads none
  with pytest.raises(ValueError, match='context=5'):
    tasks.known_mask('continue', grid, context=5)
  with pytest.raises(ValueError, match='unknown task'):
    tasks.known_mask('zoom', grid)


def test_top_k_and_top_p_filters():
  logits = jnp.log(jnp.asarray([[0.5, 0.3, 0.15, 0.05]]))
  k2 = np.asarray(sample.filter_logits(logits, top_k=2))
  assert np.isfinite(k2[0, :2]).all() and np.isinf(k2[0, 2:]).all()
  p = np.asarray(sample.filter_logits(logits, top_p=0.7))
  assert np.isfinite(p[0, :2]).all() and np.isinf(p[0, 2:]).all()
  tiny = np.asarray(sample.filter_logits(logits, top_p=0.1))
  assert np.isfinite(tiny[0, 0]) and np.isinf(tiny[0, 1:]).all()


# ------------------------------------------------------ training machinery

def _config(**overrides):
  config = helpers.demo_config()
  t = config.transformer
  t.frames, t.context, t.width, t.depth, t.heads = 4, 2, 32, 2, 4
  t.audio_channels, t.batch_size, t.eval_batch_size = 16, 8, 4
  t.log_every, t.checkpoint_every, t.eval_every, t.eval_batches = 1, 3, 6, 2
  t.warmup_steps, t.steps = 2, 6
  for k, v in overrides.items():
    helpers._set(t, k, v)  # pylint: disable=protected-access
  return config


def _workdir(tmp_path, name):
  workdir = str(tmp_path / name)
  helpers.write_fake_tokens(os.path.join(workdir, 'tokens'))
  return workdir


def _losses(workdir):
  with open(os.path.join(workdir, 'transformer', 'metrics.jsonl')) as f:
    rows = [json.loads(l) for l in f]
  return {r['step']: r['train/loss'] for r in rows if 'train/loss' in r}


def _params(config, workdir):
  records = tokens_lib.read_records(os.path.join(workdir, 'tokens'))
  _, _, params, step = inference.load_transformer(
      config, workdir, records, mesh_lib.make_mesh(1, 1))
  return jax.device_get(params), step


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
  workdir = _workdir(tmp_path_factory.mktemp('tf'), 'ref')
  result = train_transformer.train_and_evaluate(_config(), workdir)
  return workdir, result


def test_training_learns_and_validates(reference):
  workdir, result = reference
  losses = _losses(workdir)
  assert sorted(losses) == [1, 2, 3, 4, 5, 6]
  assert losses[6] < losses[1]
  for k in ('loss', 'loss_mismatched_audio', 'loss_no_audio', 'accuracy'):
    assert np.isfinite(result[k]), k
  assert json.load(open(os.path.join(workdir, 'transformer',
                                     'validation.json')))['step'] == 6


def test_sharded_steps_equal_single_device_steps(reference, tmp_path):
  ref = _losses(reference[0])
  for devices, fsdp in ((1, 1), (4, 2)):
    config = _config()
    config.mesh.devices, config.mesh.fsdp = devices, fsdp
    workdir = _workdir(tmp_path, f'd{devices}_f{fsdp}')
    train_transformer.train_and_evaluate(config, workdir)
    got = _losses(workdir)
    np.testing.assert_allclose([got[s] for s in sorted(got)],
                               [ref[s] for s in sorted(ref)], rtol=2e-5)


def test_unrolled_layers_compute_what_the_scan_computes():
  from mirai_jax.models import from_config  # pylint: disable=g-import-not-at-top
  assert from_config.transformer(_config(unroll=2), GRID, V).unroll == 2
  order = tasks.make_order('continue', GRID, context=1)
  seq = jnp.asarray(order.to_sequence(_tokens(4)))
  outs = []
  for unroll in (1, 2):  # the same parameters: stacked alike either way
    model = _model(remat='dots', unroll=unroll)
    params = _init(model, order)
    loss = lambda p, m=model: jnp.mean(m.apply(
        p, *transformer_lib.inputs(seq, order, V)) ** 2)
    outs.append(jax.value_and_grad(loss)(params))
  np.testing.assert_allclose(outs[1][0], outs[0][0], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4,
                                                       atol=1e-6),
               outs[1][1], outs[0][1])


def test_tasks_are_drawn_per_batch_with_their_weights():
  draws = np.asarray(jax.vmap(lambda k: train_transformer.draw_task(
      k, [3.0, 1.0]))(jax.random.split(jax.random.key(0), 4000)))
  assert set(draws) == {0, 1}
  assert abs((draws == 0).mean() - 0.75) < 0.03


def test_a_task_mix_trains_and_validates_every_task(reference, tmp_path):
  workdir = _workdir(tmp_path, 'mix')
  result = train_transformer.train_and_evaluate(
      _config(tasks='continue:1,interpolate:1'), workdir)
  per = result['tasks']
  assert list(per) == ['continue', 'interpolate']
  for r in per.values():
    assert np.isfinite(r['loss']) and 0 <= r['accuracy'] <= 1
  assert result['loss'] == per['continue']['loss']  # the main task on top
  # Other losses than the single-task run's: the batches drew both tasks.
  ref = _losses(reference[0])
  got = _losses(workdir)
  assert [got[s] for s in sorted(got)] != [ref[s] for s in sorted(ref)]


def test_resume_continues_exactly(reference, tmp_path):
  ref_dir = reference[0]
  workdir = str(tmp_path / 'resumed')
  shutil.copytree(ref_dir, workdir)
  shutil.rmtree(os.path.join(workdir, 'transformer', 'checkpoints', '6'))
  os.remove(os.path.join(workdir, 'transformer', 'metrics.jsonl'))
  train_transformer.train_and_evaluate(_config(), workdir)
  ref, got = _losses(ref_dir), _losses(workdir)
  assert sorted(got) == [4, 5, 6]
  assert [got[s] for s in (4, 5, 6)] == [ref[s] for s in (4, 5, 6)]
  a, step_a = _params(_config(), ref_dir)
  b, step_b = _params(_config(), workdir)
  assert step_a == step_b == 6
  jax.tree.map(np.testing.assert_array_equal, a, b)


def _damage(step_dir, how, every=False):
  """What a disk, a copy or a sync can do to a finished checkpoint step: to
  its largest data file, or with `every` to all of them (inference reads
  only the EMA parameters, which need not be in the largest)."""
  data = sorted((os.path.getsize(os.path.join(d, f)), os.path.join(d, f))
                for d, _, fs in os.walk(os.path.join(step_dir, 'state'))
                for f in fs if os.sep + 'd' + os.sep in os.path.join(d, f))
  if how in ('missing_data_file', 'truncated_data_file'):
    for size, path in data if every else data[-1:]:
      if how == 'missing_data_file':
        os.remove(path)
      else:
        with open(path, 'r+b') as f:
          f.truncate(size // 2)
  elif how == 'empty_metadata':
    open(os.path.join(step_dir, 'state', '_METADATA'), 'w').close()
  elif how == 'empty_step_folder':
    shutil.rmtree(step_dir)
    os.mkdir(step_dir)


DAMAGE = ['missing_data_file', 'truncated_data_file', 'empty_metadata',
          'empty_step_folder']


def test_inference_walks_back_past_a_damaged_step_and_moves_nothing(
    reference, tmp_path, capsys):
  for how in DAMAGE:
    workdir = str(tmp_path / how)
    shutil.copytree(reference[0], workdir)
    step_dir = os.path.join(workdir, 'transformer', 'checkpoints', '6')
    _damage(step_dir, how, every=True)
    assert _params(_config(), workdir)[1] == 3, how
    out = capsys.readouterr().out
    assert 'step 6 in' in out and 'does not restore' in out, (how, out)
    assert os.path.isdir(step_dir)


def test_training_sets_a_damaged_step_aside_and_redoes_its_steps(
    reference, tmp_path, capsys):
  ref_dir = reference[0]
  workdir = str(tmp_path / 'damaged')
  shutil.copytree(ref_dir, workdir)
  ckpts = os.path.join(workdir, 'transformer', 'checkpoints')
  _damage(os.path.join(ckpts, '6'), 'missing_data_file')
  os.remove(os.path.join(workdir, 'transformer', 'metrics.jsonl'))
  train_transformer.train_and_evaluate(_config(), workdir)
  out = capsys.readouterr().out
  assert 'transformer: step 6 in' in out and 'does not restore' in out, out
  assert len(os.listdir(os.path.join(ckpts, 'damaged'))) == 1
  ref, got = _losses(ref_dir), _losses(workdir)
  assert sorted(got) == [4, 5, 6]
  assert [got[s] for s in (4, 5, 6)] == [ref[s] for s in (4, 5, 6)]
  a, _ = _params(_config(), ref_dir)
  b, step = _params(_config(), workdir)
  assert step == 6
  jax.tree.map(np.testing.assert_array_equal, a, b)


def test_no_restorable_step_is_reported_not_a_traceback(reference, tmp_path):
  workdir = str(tmp_path / 'all_damaged')
  shutil.copytree(reference[0], workdir)
  ckpts = os.path.join(workdir, 'transformer', 'checkpoints')
  for step in ('3', '6'):
    _damage(os.path.join(ckpts, step), 'empty_metadata')
  with pytest.raises(checkpoint.Unusable, match='no checkpoint in .* restores'):
    _params(_config(), workdir)
  with pytest.raises(checkpoint.Unusable, match='Nothing was moved'):
    train_transformer.train_and_evaluate(_config(), workdir)
  assert sorted(os.listdir(ckpts)) == ['3', '6']
  assert issubclass(checkpoint.Unusable, FileNotFoundError)  # main: one message


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(reference, tmp_path):
  workdir = str(tmp_path / 'nan')
  shutil.copytree(reference[0], workdir)
  shutil.rmtree(os.path.join(workdir, 'transformer', 'checkpoints', '6'))
  with pytest.raises(FloatingPointError, match='last good checkpoint .step 3.'):
    train_transformer.train_and_evaluate(_config(lr=float('nan')), workdir)
  ckpt = checkpoint.Checkpoints(os.path.join(workdir, 'transformer',
                                             'checkpoints'))
  assert ckpt.latest_step() == 3
  ckpt.close()


def test_bad_transformer_configs_are_explained(tmp_path):
  workdir = _workdir(tmp_path, 'bad')
  with pytest.raises(ValueError, match='transformer.frames=9'):
    train_transformer.train_and_evaluate(_config(frames=9), workdir)
  with pytest.raises(ValueError, match='batch_size=6 does not divide'):
    train_transformer.train_and_evaluate(_config(batch_size=6), workdir)
  with pytest.raises(FileNotFoundError, match='tokenize'):
    train_transformer.train_and_evaluate(_config(), str(tmp_path / 'empty'))


def test_a_checkpoint_moves_to_another_device_layout(reference, tmp_path):
  """Saved on 4 devices, resumed on 2 with the parameters split over both:
  training goes on with the same batches and (up to float reassociation) the
  same losses."""
  ref_dir = reference[0]
  workdir = str(tmp_path / 'moved')
  shutil.copytree(ref_dir, workdir)
  shutil.rmtree(os.path.join(workdir, 'transformer', 'checkpoints', '6'))
  os.remove(os.path.join(workdir, 'transformer', 'metrics.jsonl'))
  config = _config()
  config.mesh.devices, config.mesh.fsdp = 2, 2
  train_transformer.train_and_evaluate(config, workdir)
  ref, got = _losses(ref_dir), _losses(workdir)
  np.testing.assert_allclose([got[s] for s in (4, 5, 6)],
                             [ref[s] for s in (4, 5, 6)], rtol=1e-5)


def test_checkpoints_restore_onto_any_sharding(tmp_path):
  big = jnp.arange(4 * 2 ** 12, dtype=jnp.float32).reshape(64, 256)
  tree = dict(w=big, b=jnp.ones(3))
  four = mesh_lib.make_mesh(fsdp=4)
  saved = jax.device_put(tree, mesh_lib.param_shardings(tree, four, min_size=8))
  assert saved['w'].sharding.spec == jax.sharding.PartitionSpec(None, 'fsdp')
  ckpt = checkpoint.Checkpoints(str(tmp_path / 'ckpt'))
  ckpt.save(1, saved)
  ckpt.wait()
  two = mesh_lib.make_mesh(fsdp=1, devices=2)
  restored, step = ckpt.restore(checkpoint.abstract(
      tree, mesh_lib.param_shardings(tree, two)))
  ckpt.close()
  assert step == 1 and restored['w'].sharding.mesh.size == 2
  jax.tree.map(np.testing.assert_array_equal, restored, tree)


def test_a_workdir_of_another_model_is_refused_before_training(reference,
                                                               tmp_path):
  workdir = str(tmp_path / 'other')
  shutil.copytree(reference[0], workdir)
  with pytest.raises(ValueError, match=r'(?s)another transformer model.*'
                     r'config\.transformer\.width: checkpoint 32, now 48.*'
                     'new --workdir'):
    train_transformer.train_and_evaluate(_config(width=48, steps=9), workdir)
  _, step = _params(_config(), workdir)
  assert step == 6  # nothing was written


def test_inference_from_another_models_checkpoint_is_refused(reference):
  # A single-task checkpoint has no table for an in-between's end keyframe
  # tokens; a wider config has other shapes. Both named, with what to do.
  with pytest.raises(checkpoint.ConfigMismatch,
                     match=r'(?s)step 6\) holds another transformer model.*'
                     r'embed_later/embedding: not in the checkpoint.*'
                     'new --workdir'):
    _params(_config(tasks='continue:1,interpolate:1'), reference[0])
  with pytest.raises(checkpoint.ConfigMismatch, match=r'saved \(32,\)'):
    _params(_config(width=48), reference[0])


def test_parameters_beyond_the_configs_model_are_refused_too(tmp_path):
  # A model without copy gates would restore a checkpoint trained with them
  # and silently drop them; the optimiser's state is never read.
  w = np.ones((2, 3), np.float32)
  ckpt = checkpoint.Checkpoints(str(tmp_path / 'ckpt'))
  ckpt.save(4, {'ema_params': {'head': w, 'copy_gate': w[0]},
                'opt_state': {'mu': w}})
  ckpt.wait()
  ckpt.close()
  abstract = lambda tree: jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)
  read = lambda tree: checkpoint.Checkpoints(
      str(tmp_path / 'ckpt'), partial=True).restore_for_inference(
          abstract(tree), label='transformer', dataset=None, fix='')
  with pytest.raises(checkpoint.ConfigMismatch,
                     match=r'(?s)ema_params/copy_gate: only in the checkpoint'):
    read({'ema_params': {'head': w}})
  state, step = read({'ema_params': {'head': w, 'copy_gate': w[0]}})
  assert step == 4 and set(state['ema_params']) == {'head', 'copy_gate'}


def test_task_mixes_are_read_in_order_with_default_weights():
  assert tasks.parse_weights('continue') == {'continue': 1.0}
  got = tasks.parse_weights(' interpolate:2, continue ')
  assert list(got) == ['interpolate', 'continue']  # the first is the main one
  assert got == {'interpolate': 2.0, 'continue': 1.0}
  for bad in ('', 'continue:x', 'continue:-1', 'jump', 'continue,continue:2'):
    with pytest.raises(ValueError, match='config.transformer.tasks'):
      tasks.parse_weights(bad)
