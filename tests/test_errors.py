"""Errors the user fixes: named in one or two lines, before any compute.

The many config fields are checked in-process (checks.validate); a few runs
of main show what a user sees: exit status 1, the field or folder and the
fix, no traceback unless asked for.
"""

import errno
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest

import helpers
from mirai_jax import checkpoint
from mirai_jax import checks
from mirai_jax import errors
from mirai_jax import evaluate
from mirai_jax import predict
from mirai_jax import storage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALL = ('data', 'preview', 'tokenizer', 'tokenize', 'transformer', 'evaluate',
       'predict')


def _config(path='configs/demo.py', arg=None, **fields):
  """A shipped config with fields set by dotted name (`sample.top_p`)."""
  spec = importlib.util.spec_from_file_location('cfg', os.path.join(ROOT, path))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(*(() if arg is None else (arg,)))
  for field, value in fields.items():
    *parents, last = field.split('.')
    node = config
    for key in parents:
      node = node[key]
    node[last] = value
  return config


@pytest.mark.parametrize('path,arg', [('configs/demo.py', None),
                                      ('configs/demo.py', 'long'),
                                      ('configs/demo.py', 'wide'),
                                      ('configs/kny.py', None)])
def test_the_shipped_configs_pass_and_every_field_has_a_rule(path, arg):
  config = _config(path, arg)
  checks.validate(config, ALL)
  assert checks.unchecked(config) == []


# (field, value, what the message says after `--config.field=value: `)
BAD = [
    ('transformer.steps', -5, 'must be an integer >= 1'),
    ('tokenizer.batch_size', 0, 'must be an integer >= 1'),
    ('data.builder_config', 'nope', 'must be one of 64x64_t20, 128x128_t16'),
    ('tokenizer.fsq_levels', (), 'non-empty tuple of integers >= 3'),
    ('tokenizer.fsq_levels', (8, 2), 'non-empty tuple of integers >= 3'),
    ('tokenizer.channels', (16, 0), 'integers >= 1'),
    ('sample.top_p', 2.0, 'must be a number in (0, 1]'),
    ('sample.top_p', 0.0, 'must be a number in (0, 1]'),
    ('sample.temperature', -1.0, 'must be a number >= 0'),
    ('sample.top_k', 5000, 'at most the 1000 codes'),
    ('sample.mean_top_k', 1001, 'at most the 1000 codes'),
    ('sample.decode', 'blur', 'one of tokens, mean'),
    ('evaluate.paste_threshold', 1.5, 'in [0, 1]'),
    ('transformer.lr', 0.0, 'must be a number > 0'),
    ('tokenizer.lr', float('nan'), 'must be a number > 0'),
    ('transformer.final_lr_ratio', 1.5, 'in [0, 1]'),
    ('tokenizer.schedule', 'step', 'must be one of cosine, wsd'),
    ('pix2pix.decay_fraction', 0.0, 'in (0, 1]'),
    ('transformer.b2', 1.0, 'in [0, 1)'),
    ('tokenizer.ema', -0.1, 'in [0, 1)'),
    ('transformer.dropout', 1.0, 'in [0, 1)'),
    ('transformer.warmup_steps', -1, 'integer >= 0'),
    ('transformer.keep', 0, 'integer >= 1'),
    ('transformer.eval_every', -1, 'integer >= 0'),
    ('mesh.fsdp', 3, 'must divide the 4 device(s)'),
    ('mesh.devices', 64, 'only 4 device(s) here'),
    ('mesh.cpu_devices', -2, 'integer >= 0'),
    ('transformer.batch_size', 6, 'multiple of the 4 devices'),
    ('tokenizer.batch_size', 6, 'multiple of the 4 devices'),
    ('transformer.frames', 21, 'at most 20, the latent steps'),
    ('transformer.context', 6, 'context=6 must be between 1 and 5'),
    ('transformer.width', 130, 'multiple of transformer.heads=4'),
    ('transformer.tasks', 'fly', "unknown task 'fly'; write one or more of "
     'continue, interpolate, outpaint'),
    ('transformer.tasks', 'continue:0', 'each task once, with a positive weight'),
    ('transformer.tasks', 'continue,continue', 'each task once'),
    ('predict.seconds', -2.0, 'must be a number >= 0'),
    ('predict.task', 'fly', "must be '' (the main task) or one of"),
    ('predict.task', 'interpolate', "'interpolate' was not trained"),
    ('predict.fps', -1.0, 'must be a number >= 0'),
    ('transformer.attention', 'flash', 'one of auto, xla, cudnn'),
    ('transformer.attention', 'cudnn', 'needs an NVIDIA GPU'),
    ('transformer.remat', 'some', 'one of none, dots, dots_attention, full'),
    ('transformer.heads', 0, 'integer >= 1'),
    ('tokenizer.norm', 'batch', "one of group, none"),
    ('tokenizer.quantizer', 'lfq', 'one of fsq, vq'),
    ('tokenizer.pixel_layers', 'dense', 'one of conv, linear'),
    ('tokenizer.spatial', 6, 'powers of 2'),
    ('tokenizer.temporal', 3, 'powers of 2'),
    ('tokenizer.patch', 3, 'must divide tokenizer.spatial=8'),
    ('tokenizer.train_frames', 25, 'up to the 20 frames per clip'),
    ('tokenizer.loss.recon', 'l3', 'one of l1, l2'),
    ('evaluate.paste', 'glue', 'one of residual, block, none'),
    ('evaluate.split', 'dev', 'one of train, validation, test'),
    ('preview.split', 'dev', 'one of train, validation, test'),
    ('evaluate.max_clips', 1, 'must be 0 (all) or an integer >= 2'),
    ('evaluate.fvd_clips', -1, 'integer >= 0'),
    ('pix2pix.inputs', 3, 'must be at most 2, the context frames evaluate'),
    ('multiscale.recon', 'l3', 'one of l1, l2'),
    ('multiscale.gdl_alpha', 0.0, 'must be a number > 0'),
    ('predict.windows', 0, 'integer >= 1'),
    ('predict.scale', 0, 'integer >= 1'),
    ('predict.video', '/no/such/episode.mp4', 'no such file'),
    ('data.split_file', '/no/such/splits.json', 'no such file'),
    ('data.synthetic.height', 241, 'must be even'),
    ('data.synthetic.seconds', 0.0, 'must be a number > 0'),
    ('data.workers', -1, 'integer >= 0'),
    ('data.beam_options', '--direct_num_workers=2',
     'needs --config.data.beam_runner'),
]


@pytest.mark.parametrize('field,value,why', BAD,
                         ids=[f'{f}={v}' for f, v, _ in BAD])
def test_a_wrong_field_is_named_as_typed_with_the_fix(field, value, why):
  with pytest.raises(errors.UserError) as e:
    checks.validate(_config(**{field: value}), ALL)
  (line,) = str(e.value).splitlines()
  assert line.startswith(f'--config.{field}={checks.show(value)}: '), line
  assert why in line


def test_a_perceptual_loss_needs_its_weights_file():
  config = _config(**{'tokenizer.loss.perceptual_weight': 1.0})
  with pytest.raises(errors.UserError, match='perceptual_weights=: give the'):
    checks.validate(config, ('tokenizer',))
  config.tokenizer.loss.perceptual_weights = '/no/such.npz'
  with pytest.raises(errors.UserError, match='such.npz: no such file'):
    checks.validate(config, ('tokenizer',))


def test_every_wrong_field_is_reported_at_once():
  config = _config(**{'transformer.steps': -5, 'sample.top_p': 2.0,
                      'data.builder_config': 'nope'})
  with pytest.raises(errors.UserError, match='3 config values to fix') as e:
    checks.validate(config, ALL)
  text = str(e.value)
  for field in ('transformer.steps=-5', 'sample.top_p=2.0',
                'data.builder_config=nope'):
    assert f'--config.{field}: ' in text


def test_files_and_devices_are_checked_only_for_the_stages_that_use_them():
  config = _config(**{'predict.video': '/no/such.mp4',
                      'transformer.attention': 'cudnn', 'mesh.devices': 64})
  checks.validate(config, ('data', 'preview'))


def test_unwritable_and_file_folders_are_refused(tmp_path):
  afile = tmp_path / 'afile'
  afile.write_text('x')
  with pytest.raises(errors.UserError, match='is a file, not a folder'):
    storage.writable(str(afile), '--workdir')
  with pytest.raises(errors.UserError, match=f': {afile} is a file'):
    storage.writable(str(afile / 'below'), '--workdir')
  with pytest.raises(errors.UserError,
                     match='cannot write in .*--config.predict.out'):
    storage.writable(_unwritable(tmp_path), '--config.predict.out')
  storage.writable(str(tmp_path / 'new' / 'deeper'), '--workdir')
  assert not os.path.exists(tmp_path / 'new')  # nothing made, nothing left
  assert not [f for f in os.listdir(tmp_path) if 'probe' in f]
  storage.writable('gs://bucket/run', '--workdir')  # left to the first write
  with pytest.raises(errors.UserError, match='free: free space or give'):
    storage.free_space(str(tmp_path), 2 ** 62, 'one transformer checkpoint',
                      '--workdir')


def test_a_save_without_room_is_refused_before_orbax_writes(tmp_path,
                                                            monkeypatch):
  ckpt = checkpoint.Checkpoints(str(tmp_path / 'ckpt'))
  state = {'w': np.ones(1000, np.float32)}
  ckpt.save(1, state)
  ckpt.wait()
  monkeypatch.setattr(shutil, 'disk_usage',
                      lambda _: types.SimpleNamespace(free=100))
  with pytest.raises(errors.UserError, match=r'needs about 4\.0 kB and the '
                     r'disk has 0\.1 kB free: free space'):
    ckpt.save(2, state)
  ckpt.close()
  assert sorted(os.listdir(tmp_path / 'ckpt')) == ['1']


def test_evaluate_and_predict_refuse_an_unwritable_output_before_loading(
    tmp_path):
  # The workdir holds nothing: a check after loading would say so instead.
  (tmp_path / 'evaluate').write_text('x')
  with pytest.raises(errors.UserError, match='evaluate is a file'):
    evaluate.run(_config(), str(tmp_path))
  config = _config(**{'predict.out': _unwritable(tmp_path)})
  with pytest.raises(errors.UserError, match='--config.predict.out'):
    predict.run(config, str(tmp_path))


def test_checkpoint_size_is_estimated_from_shapes():
  small = checks.checkpoint_bytes(_config(), 'transformer')
  # 1.24M parameters, kept four times (parameters, 2 Adam moments, EMA).
  assert 4 * 4 * 1.2e6 < small < 4 * 4 * 1.3e6


def test_disk_errors_read_in_one_line_and_bugs_are_left_alone():
  full = OSError(errno.ENOSPC, 'No space left on device', '/w/x.json')
  assert errors.message(full) == ('no space left on device writing '
                                  '/w/x.json: free space or give another '
                                  '--workdir')
  # tensorstore (orbax's writes) reports it as a ValueError.
  ts = ValueError('OUT_OF_RANGE: Error writing "a" in OCDBT database at local '
                  'file "/w/c/": Failed writing: "/w/c/d/ab": Failed to write '
                  "7 bytes to file 9: No space left on device "
                  "[os_error_code='28']")
  assert errors.message(ts).startswith(
      'no space left on device writing /w/c/d/ab')
  wrapped = RuntimeError('upload failed')
  wrapped.__cause__ = full
  assert errors.message(wrapped).startswith('no space left')
  assert errors.message(ValueError('a bug')) is None
  mismatch = checkpoint.ConfigMismatch('other model')
  assert errors.message(mismatch) == 'other model'
  assert issubclass(checkpoint.Unusable, FileNotFoundError)


def test_the_traceback_is_shown_when_asked_for(monkeypatch, capsys):
  monkeypatch.setenv('MIRAI_JAX_TRACEBACK', '1')
  with pytest.raises(SystemExit) as e:
    try:
      raise errors.UserError('--config.x=1: must be 2')
    except errors.UserError as err:
      errors.exit_if_users(err, 'stage: ')
  assert e.value.code == 1
  err = capsys.readouterr().err
  assert 'Traceback' in err and err.endswith('stage: --config.x=1: must be 2\n')


def test_console_lines_carry_the_time_and_message_only(monkeypatch):
  import logging as std_logging  # pylint: disable=g-import-not-at-top
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  fmt = errors.ConsoleFormatter()
  info = std_logging.LogRecord('absl', std_logging.INFO, '/x/loop.py', 7,
                               'step %d/%d', (5, 10), None)
  assert re.fullmatch(r'\d\d:\d\d:\d\d step 5/10', fmt.format(info))
  warn = std_logging.LogRecord('absl', std_logging.WARNING, '/x/loop.py', 7,
                               'slow disk', (), None)
  assert re.fullmatch(r'\d\d:\d\d:\d\d warning: slow disk',
                      fmt.format(warn))
  handler = absl_logging.get_absl_handler().python_handler
  before, filters = handler.formatter, list(
      absl_logging.get_absl_handler().filters)
  monkeypatch.delenv('MIRAI_JAX_TRACEBACK', raising=False)
  # quiet_console also wraps this hook: restored after the test.
  monkeypatch.setattr(sys, 'unraisablehook', sys.unraisablehook)
  try:
    errors.quiet_console()
    assert isinstance(handler.formatter, errors.ConsoleFormatter)
    handler.setFormatter(before)
    monkeypatch.setenv('MIRAI_JAX_TRACEBACK', '1')  # absl's own, with lines
    errors.quiet_console()
    assert handler.formatter is before
  finally:
    handler.setFormatter(before)
    absl_logging.get_absl_handler().filters[:] = filters


def _unwritable(tmp_path):
  """A folder this process cannot write in: a read-only one, or where root
  ignores permissions, one under /sys; else the test skips."""
  ro = tmp_path / 'ro'
  ro.mkdir()
  ro.chmod(0o555)
  try:
    (ro / 'probe').touch()
  except PermissionError:
    return str(ro / 'out')
  (ro / 'probe').unlink()
  if os.path.isdir('/sys') and _denied('/sys'):
    return '/sys/mirai_jax_test_out'
  pytest.skip('no folder here refuses writes to this user (root)')


def _denied(folder):
  try:
    os.close(os.open(os.path.join(folder, '.mirai-jax-probe'),
                     os.O_CREAT | os.O_WRONLY))
  except OSError:
    return True
  os.remove(os.path.join(folder, '.mirai-jax-probe'))
  return False


# --------------------------------------- What a user sees, run as a user

def _main(*args, env=None, file_size_limit=None):
  command = ['-m', 'mirai_jax.main']
  if file_size_limit:
    # Set in the child itself (a preexec_fn would fork a multithreaded
    # parent). Past the limit a write fails with EFBIG, as on a full disk,
    # rather than SIGXFSZ killing the process.
    command = ['-c', 'import resource, runpy, signal, sys; '
               'signal.signal(signal.SIGXFSZ, signal.SIG_IGN); '
               'resource.setrlimit(resource.RLIMIT_FSIZE, '
               f'({file_size_limit}, {file_size_limit})); '
               "sys.argv[0] = 'main'; "
               "runpy.run_module('mirai_jax.main', run_name='__main__')"]
  return subprocess.run([sys.executable, *command, '--config=configs/demo.py',
                         *args], cwd=ROOT, text=True, capture_output=True,
                        check=False, env=env)


def test_a_wrong_field_stops_main_in_a_few_lines(tmp_path):
  workdir = tmp_path / 'work'
  proc = _main(f'--workdir={workdir}', '--config.transformer.steps=-5',
               '--config.sample.top_p=2.0')
  assert proc.returncode == 1
  lines = proc.stderr.strip().splitlines()
  assert lines == ['2 config values to fix:',
                   '  --config.transformer.steps=-5: must be an integer >= 1',
                   '  --config.sample.top_p=2.0: must be a number in (0, 1]']
  assert not workdir.exists()  # nothing ran


def test_an_override_naming_no_field_stops_main_in_one_line(tmp_path):
  workdir = tmp_path / 'work'
  for override, line in [
      ('--config.transformer.stepz=3', "a --config override names no field "
       "'stepz' (Did you mean \"steps\" instead of \"stepz\"?); see the "
       'config file for the fields'),
      ('--config.nope.x=1', "a --config override names no field 'nope'; "
       'see the config file for the fields')]:
    proc = _main(f'--workdir={workdir}', override)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f'FATAL Flags parsing error: {line}']
  assert not workdir.exists()


def test_a_config_file_that_does_not_load_stops_main_in_one_line(tmp_path):
  workdir = tmp_path / 'work'
  broken = {'syntax.py': 'def get_config(:\n',
            'imports.py': 'import no_such_module\n',
            'raises.py': 'def get_config():\n  return 1 / 0\n'}
  for name, text in broken.items():
    (tmp_path / name).write_text(text)
  for config, says in [
      (tmp_path / 'missing.py', 'no config file'),
      ('configs/demo.py:nope', "ValueError: configs/demo.py takes '', "
       "'long' or 'wide' after a colon, got 'nope'"),
      (tmp_path / 'syntax.py', 'line 1: invalid syntax'),
      (tmp_path / 'imports.py', "No module named 'no_such_module' (config "
       f'file {tmp_path / "imports.py"}, line 1;'),
      (tmp_path / 'raises.py', 'ZeroDivisionError: division by zero (config '
       f'file {tmp_path / "raises.py"}, line 2;')]:
    proc = _main(f'--workdir={workdir}', f'--config={config}')
    assert proc.returncode == 1, proc.stderr
    assert 'Traceback' not in proc.stderr, proc.stderr
    first = proc.stderr.strip().splitlines()[0]
    assert first.startswith(f'FATAL Flags parsing error: ') and says in first
    assert str(config).split(':')[0] in first
  assert not workdir.exists()


def test_verbosity_adds_the_traceback_and_a_file_is_no_workdir(tmp_path):
  afile = tmp_path / 'afile'
  afile.write_text('x')
  proc = _main(f'--workdir={afile}', '--verbosity=1')
  assert proc.returncode == 1
  assert 'Traceback' in proc.stderr
  assert proc.stderr.strip().splitlines()[-1] == (
      f'--workdir={afile} is a file, not a folder: give a folder (or move '
      'the file away)')


def test_an_unwritable_output_stops_predict_before_any_compute(tmp_path):
  out = _unwritable(tmp_path)
  proc = _main(f'--workdir={tmp_path / "work"}', '--mode=evaluate,predict',
               f'--config.predict.out={out}')
  assert proc.returncode == 1 and 'Traceback' not in proc.stderr
  (line,) = proc.stderr.strip().splitlines()
  assert line.startswith(f'--config.predict.out={out}: cannot write in ')


def test_a_full_disk_during_an_async_save_is_one_line(tmp_path):
  workdir = tmp_path / 'work'
  helpers.write_fake_tokens(str(workdir / 'tokens'))
  # Files up to 64 kB (the metrics) are written; the checkpoint's are not.
  tiny = [f'--config.transformer.{k}' for k in (
      'steps=1', 'eval_every=0', 'batch_size=4', 'eval_batch_size=4',
      'width=32', 'depth=1', 'audio_channels=16', 'audio_layers=1')]
  # One step to compile: on one device (and unoptimised, as every test).
  env = dict(os.environ, XLA_FLAGS=helpers.xla_flags(1))
  proc = _main(f'--workdir={workdir}', '--mode=transformer', *tiny,
               env=env, file_size_limit=2 ** 16)
  assert proc.returncode == 1, proc.stderr[-3000:]
  # Before the fix: 3,265 lines of orbax threads' tracebacks. Now orbax's
  # own error log lines (one each) and the message.
  assert 'Traceback' not in proc.stderr
  assert len(proc.stderr.splitlines()) < 15, proc.stderr
  assert proc.stderr.strip().splitlines()[-1] == (
      f'transformer: file too large (a file size limit: ulimit -f, or the file '
      f'system) writing {workdir}/transformer/checkpoints: raise the limit or '
      'give another --workdir')


def test_keyframe_pictures_are_checked_before_any_work():
  with pytest.raises(errors.UserError) as e:
    checks.validate(_config(**{'transformer.tasks': 'continue,interpolate',
                               'predict.first': '/no/a.png'}), ALL)
  lines = [l.strip() for l in str(e.value).splitlines()]
  assert '--config.predict.first=/no/a.png: no such file' in lines
  assert any(l.startswith('--config.predict.last=: give both keyframe')
             for l in lines), lines
  with pytest.raises(errors.UserError) as e:  # a model that cannot fill in
    checks.validate(_config(**{'predict.first': __file__,
                               'predict.last': __file__}), ALL)
  assert "'interpolate' was not trained" in str(e.value)
  assert 'need a model trained to fill in' in str(e.value)
