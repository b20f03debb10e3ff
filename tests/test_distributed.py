"""Real processes: two-process training on CPU collectives, SIGTERM, kill -9.

Each run is `python -m mirai_jax.main --mode=transformer` on fake token
records, as a user would start it; the reference is one uninterrupted
process with the same 4 devices and global batch. Tokenizing in two
processes is checked against one process too.
"""

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import helpers
from mirai_jax import checkpoint
from mirai_jax import inference
from mirai_jax import mesh as mesh_lib
from mirai_jax.data import tokens as tokens_lib
from mirai_jax.train import loop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 24
OVERRIDES = dict(frames=4, context=2, width=32, depth=2, heads=4,
                 audio_channels=16, batch_size=8, eval_batch_size=4,
                 log_every=1, checkpoint_every=4, eval_every=0, eval_batches=1,
                 warmup_steps=2, steps=STEPS)


def _command(workdir, mode='transformer', flags=None, late=None, **extra):
  if flags is None:
    flags = [f'--config.transformer.{k}={v}' for k, v in OVERRIDES.items()]
  flags = list(flags) + [f'--{k}={v}' for k, v in extra.items()]
  program = (['-m', 'mirai_jax.main'] if late is None else
             [os.path.join(ROOT, 'tests', 'late_process.py'), str(late)])
  return [sys.executable, *program,
          f'--config={ROOT}/configs/demo.py', f'--workdir={workdir}',
          f'--mode={mode}', '--distributed=auto', *flags]


def _env(devices):
  env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=ROOT,
             XLA_FLAGS=helpers.xla_flags(devices))
  # The session's compilation cache (conftest.py) comes with os.environ: the
  # restarts load the programs of the run before instead of compiling again.
  for k in ('SLURM_NTASKS', 'OMPI_COMM_WORLD_SIZE', 'JAX_COORDINATOR_ADDRESS'):
    env.pop(k, None)
  return env


def _start(workdir, devices=4, logs=None, **extra):
  # Output to a file, not a pipe: a full pipe would stall one process of a
  # pair while the other waits for it in a collective.
  os.makedirs(logs or workdir, exist_ok=True)
  log = open(os.path.join(logs or workdir,
                          f'log{len(os.listdir(logs or workdir))}.txt'), 'w+')
  proc = subprocess.Popen(_command(workdir, **extra), env=_env(devices),
                          cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
  proc.log = log
  return proc


def _output(proc):
  proc.log.seek(0)
  return proc.log.read()


def _finish(proc, timeout=300):
  try:
    proc.wait(timeout=timeout)
  except subprocess.TimeoutExpired:
    proc.kill()
    proc.wait()
  out = _output(proc)
  proc.log.close()
  return proc.returncode, out


def _workdir(tmp_path, name):
  workdir = str(tmp_path / name)
  helpers.write_fake_tokens(os.path.join(workdir, 'tokens'))
  return workdir


def _params(workdir):
  config = helpers.demo_config()
  for k, v in OVERRIDES.items():
    config.transformer[k] = v
  records = tokens_lib.read_records(os.path.join(workdir, 'tokens'))
  _, _, params, step = inference.load_transformer(
      config, workdir, records, mesh_lib.make_mesh(1, 1))
  return jax.device_get(params), step


def _losses(workdir):
  with open(os.path.join(workdir, 'transformer', 'metrics.jsonl')) as f:
    rows = [json.loads(l) for l in f]
  return {r['step']: r['train/loss'] for r in rows if 'train/loss' in r}


def _free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
  workdir = _workdir(tmp_path_factory.mktemp('dist'), 'ref')
  code, out = _finish(_start(workdir))
  assert code == 0, out
  return workdir


def _latest(workdir):
  ckpt = checkpoint.Checkpoints(os.path.join(workdir, 'transformer',
                                             'checkpoints'))
  step = ckpt.latest_step()
  ckpt.close()
  return step


def test_two_processes_train_like_one_and_stop_together(reference, tmp_path):
  """Two processes of 2 devices each against one process of 4: the same
  global batches. SIGTERM reaches process 1 only; both save the same step and
  exit 143, and the restarted pair ends where the single process did."""
  workdir = _workdir(tmp_path, 'two')

  def pair():
    port = _free_port()
    return [_start(workdir, devices=2, coordinator_address=f'localhost:{port}',
                   num_processes=2, process_id=i) for i in range(2)]

  procs = pair()
  _wait_for_lines(workdir, 5, procs[0])
  procs[1].send_signal(signal.SIGTERM)
  for code, out in [_finish(p) for p in procs]:
    assert code == loop.PREEMPTED_EXIT_CODE, out
  saved = _latest(workdir)
  assert 5 <= saved < STEPS
  for code, out in [_finish(p) for p in pair()]:
    assert code == 0, out
  # Process 0 alone writes metrics, one line per step across the restart.
  ref, got = _losses(reference), _losses(workdir)
  assert _lines(workdir) == STEPS
  assert sorted(got) == sorted(ref) == list(range(1, STEPS + 1))
  np.testing.assert_allclose([got[s] for s in ref], list(ref.values()),
                             rtol=2e-5)
  (a, step_a), (b, step_b) = _params(reference), _params(workdir)
  assert step_a == step_b == STEPS
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-5), a, b)


def _lines(workdir):
  path = os.path.join(workdir, 'transformer', 'metrics.jsonl')
  if not os.path.exists(path):
    return 0
  with open(path) as f:
    return sum(1 for _ in f)


def _wait_for_lines(workdir, n, proc, timeout=600):
  """Until the run has logged n metric lines in all (one per step). The
  timeout only catches a hang: on a loaded 2-core machine (a CI suite
  beside a training run) two processes took over 180 s to compile and
  log 5 steps."""
  t0 = time.time()
  while time.time() - t0 < timeout and proc.poll() is None:
    if _lines(workdir) >= n:
      return
    time.sleep(0.02)
  raise AssertionError(f'{n} metric lines not reached in {timeout} s:\n'
                       + _output(proc)[-3000:])


def test_a_process_later_than_gloo_waits_is_waited_for(tmp_path):
  """Process 1 reaches its first batch 60 s after process 0; Gloo gives up
  on the first run of a program with collectives after 30 s. Both meet
  before the first step (distributed.meet) and train to the end. Process 0
  waits 60 s less its compile plus process 1's: still over Gloo's 30 when
  its compile, on a loaded machine, takes up to 30 s longer."""
  workdir = _workdir(tmp_path, 'late')
  flags = [f'--config.transformer.{k}={v}'
           for k, v in dict(OVERRIDES, steps=2, checkpoint_every=2).items()]
  port = _free_port()
  procs = [_start(workdir, devices=2, flags=flags, late=60,
                  coordinator_address=f'localhost:{port}', num_processes=2,
                  process_id=i) for i in range(2)]
  (code0, out0), (code1, out1) = [_finish(p) for p in procs]
  assert code0 == 0, out0
  assert code1 == 0, out1
  waited = re.search(r'waited (\d+) s for the other processes at '
                     r'"transformer: step 1 compiled"', out0)
  assert waited and int(waited.group(1)) >= 30, out0
  assert _latest(workdir) == 2


@pytest.mark.parametrize('sig,code,why', [
    (signal.SIGTERM, loop.PREEMPTED_EXIT_CODE, 'preempted (SIGTERM)'),
    (signal.SIGINT, loop.INTERRUPTED_EXIT_CODE, 'interrupted (Ctrl-C)')])
def test_sigterm_or_ctrl_c_saves_at_a_step_boundary_and_the_run_resumes(
    reference, tmp_path, sig, code, why):
  workdir = _workdir(tmp_path, 'term')
  proc = _start(workdir)
  _wait_for_lines(workdir, 5, proc)
  proc.send_signal(sig)
  got, out = _finish(proc)
  assert got == code, out
  assert why in out and 'Run the same command again to resume' in out
  assert 'Traceback' not in out
  saved = _latest(workdir)
  assert 5 <= saved < STEPS and saved % OVERRIDES['checkpoint_every'], (
      'the preemption save is its own, not a periodic one')
  if sig == signal.SIGINT:
    return  # the resume after that save is SIGTERM's, checked below
  got, out = _finish(_start(workdir))
  assert got == 0, out
  (a, _), (b, step) = _params(reference), _params(workdir)
  assert step == STEPS
  jax.tree.map(np.testing.assert_array_equal, a, b)


def test_kill_9_at_random_moments_never_breaks_a_checkpoint(reference,
                                                            tmp_path):
  """Killed while stepping or in the middle of an asynchronous save (every 4
  steps), three times: each restart restores, and the end state is the
  uninterrupted run's."""
  workdir = _workdir(tmp_path, 'kill')
  rng = random.Random(0)
  restarts = 0
  for _ in range(3):
    before = _lines(workdir)
    proc = _start(workdir)
    _wait_for_lines(workdir, before + 2, proc)
    time.sleep(rng.uniform(0.0, 0.3))
    if proc.poll() is not None:
      break
    proc.kill()
    _finish(proc)
    restarts += 1
  assert restarts >= 2
  code, out = _finish(_start(workdir))
  assert code == 0, out
  (a, _), (b, step) = _params(reference), _params(workdir)
  assert step == STEPS
  jax.tree.map(np.testing.assert_array_equal, a, b)


def _records(workdir):
  """{(split, episode, start frame): tokens} of a workdir's token records."""
  out = {}
  for split in ('train', 'validation', 'test'):
    source = tokens_lib.TokenSource(os.path.join(workdir, 'tokens'), split)
    for i in range(len(source)):
      r = source[i]
      out[(split, r['episode'], int(r['start_frame']))] = r['tokens']
  return out


def test_tokenize_in_two_processes_equals_one(tmp_path):
  """Each process encodes its share of every split (9 clips: 5 and 4, in
  batches of 2, so one process pads a whole batch) and writes its shard;
  the records are those of one process."""
  one = str(tmp_path / 'one')
  code, out = _finish(_start(one, mode='data,tokenizer,tokenize',
                             flags=helpers.TINY_DEMO, logs=str(tmp_path)))
  assert code == 0, out
  two = str(tmp_path / 'two')
  shutil.copytree(one, two, ignore=shutil.ignore_patterns('tokens'))
  port = _free_port()
  procs = [_start(two, devices=2, mode='tokenize', flags=helpers.TINY_DEMO,
                  logs=str(tmp_path), coordinator_address=f'localhost:{port}',
                  num_processes=2, process_id=i) for i in range(2)]
  for code, out in [_finish(p) for p in procs]:
    assert code == 0, out
  # One set, written by both processes and published once.
  current = tokens_lib.current(os.path.join(two, 'tokens'))
  assert os.listdir(os.path.join(two, 'tokens')) != ['CURRENT']
  assert sorted(os.listdir(current)) == [
      'meta.json'] + [f'{s}.array_record-0000{i}-of-00002'
                      for s in ('test', 'train', 'validation') for i in (0, 1)]
  meta = tokens_lib.read_meta(os.path.join(two, 'tokens'))
  assert meta['processes'] == 2
  assert meta['splits'] == tokens_lib.read_meta(os.path.join(one, 'tokens'))[
      'splits'] == {'train': 9, 'validation': 9, 'test': 9}
  a, b = _records(one), _records(two)
  assert sorted(a) == sorted(b) and len(a) == 27
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=str(k))


def test_one_process_stages_are_refused_with_the_command_to_run(tmp_path):
  """evaluate and predict, and building the dataset, are not for a
  multi-process run: it says what to run instead, before any work."""
  for mode, why in (('evaluate', 'evaluate run in one process'),
                    ('data', 'a multi-process run does not build one')):
    port = _free_port()
    procs = [_start(str(tmp_path), devices=1, mode=mode, flags=(),
                    coordinator_address=f'localhost:{port}', num_processes=2,
                    process_id=i) for i in range(2)]
    for code, out in [_finish(p, timeout=120) for p in procs]:
      assert code == 1, out
      assert why in out, out
      assert f'--workdir={tmp_path} --mode={mode} --distributed=off' in out
  assert not os.path.exists(os.path.join(tmp_path, 'episodes'))
