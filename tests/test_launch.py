"""Launchers and the multi-process start-up, as far as they run without a
cluster: the commands the TPU launcher sends, the SLURM script's syntax, and
the errors of a half-given coordinator."""

import os
import subprocess

import pytest

from mirai_jax import distributed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tpu(*args):
  env = dict(os.environ, DRY_RUN='1', PROJECT='proj')
  return subprocess.run(['bash', os.path.join(ROOT, 'launch', 'tpu_vm.sh'),
                         *args], env=env, capture_output=True, text=True,
                        check=False)


def test_tpu_launcher_runs_the_same_command_on_every_worker():
  out = _tpu('run', 'tpu1', 'us-central2-b', '--', '--config=configs/kny.py',
             '--workdir=gs://b/kny', '--config.data.episodes=/gcs/b/my eps')
  assert out.returncode == 0, out.stderr
  line = out.stdout.strip()
  assert line.startswith('gcloud compute tpus tpu-vm ssh tpu1 ')
  for part in ('--worker=all', '--zone=us-central2-b', '--project=proj',
               'python3\\ -m\\ mirai_jax.main\\ --distributed=on',
               '--workdir=gs://b/kny', 'my\\\\\\ eps'):
    assert part in line, (part, line)
  setup = _tpu('setup', 'tpu1', 'z').stdout
  assert 'tpu-vm scp --recurse' in setup and "pip\\ install" in setup
  assert "\\[tpu\\,gcs\\]" in setup  # gcsfs, for gs:// workdirs
  usage = _tpu('run', 'tpu1')
  assert usage.returncode == 2 and 'Exit status' in usage.stderr


def test_slurm_script_parses_and_requeues_on_preemption():
  path = os.path.join(ROOT, 'launch', 'slurm.sbatch')
  subprocess.run(['bash', '-n', path], check=True)
  text = open(path).read()
  assert '--distributed=on' in text and '--signal=TERM@' in text
  assert 'scontrol requeue' in text and '-eq 143' in text


def test_a_half_given_coordinator_is_refused(monkeypatch):
  for k in ('JAX_COORDINATOR_ADDRESS', 'JAX_NUM_PROCESSES', 'JAX_PROCESS_ID',
            'SLURM_NTASKS', 'SLURM_STEP_NUM_TASKS', 'OMPI_COMM_WORLD_SIZE'):
    monkeypatch.delenv(k, raising=False)
  with pytest.raises(ValueError, match='needs all of --coordinator_address'):
    distributed.initialize('auto', 'localhost:1234', num_processes=2)
  with pytest.raises(ValueError, match='process_id=2 must be in 0..1'):
    distributed.initialize('auto', 'localhost:1234', 2, 2)
  with pytest.raises(ValueError, match="use one of auto, on, off"):
    distributed.initialize('maybe')
  # One process and no cluster around it: nothing to join.
  assert not distributed.initialize('auto')
  monkeypatch.setenv('SLURM_NTASKS', '1')
  assert not distributed.initialize('auto')
  assert not distributed.initialize('off', 'localhost:1', 2, 0)
