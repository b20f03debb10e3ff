"""config.mesh.cpu_devices: the host CPU split into devices (mesh.split_cpu)."""

import os
import subprocess
import sys

import jax
import pytest

from mirai_jax import mesh as mesh_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code: str, *args):
  return subprocess.run([sys.executable, *args] if args else
                        [sys.executable, '-c', code], cwd=ROOT, text=True,
                        capture_output=True, check=False)


def test_split_before_jax_starts_overrides_the_forced_count():
  # The tests' XLA_FLAGS force 4 devices; the config's count wins.
  proc = _python('import os, jax\n'
                 'from mirai_jax import mesh\n'
                 'mesh.split_cpu(2)\n'
                 'print(jax.device_count(), mesh.usable_cores())\n'
                 "print('eigen off' if mesh.ONE_THREAD_FLAG in "
                 "os.environ['XLA_FLAGS'].split() else 'eigen on')")
  assert proc.returncode == 0, proc.stderr[-2000:]
  counts, threads = proc.stdout.strip().splitlines()[-2:]
  devices, cores = map(int, counts.split())
  assert devices == 2
  # One thread a device only when the devices cover the cores.
  assert threads == ('eigen off' if cores <= 2 else 'eigen on')


def test_zero_leaves_jax_alone_and_a_running_jax_is_not_resplit():
  assert jax.device_count() == 4  # conftest's forced count
  mesh_lib.split_cpu(0)
  mesh_lib.split_cpu(4)  # what it already is: nothing to do
  with pytest.raises(ValueError, match=r'cpu_devices=3: jax already started '
                     r'with 4 CPU device\(s\)'):
    mesh_lib.split_cpu(3)
  assert jax.device_count() == 4


@pytest.mark.parametrize('bad', [-1, 1.5, True, '2'])
def test_bad_counts_are_refused_by_name(bad):
  with pytest.raises(ValueError, match='config.mesh.cpu_devices'):
    mesh_lib.split_cpu(bad)


def test_main_splits_before_its_checks_count_the_devices(tmp_path):
  # 3 devices cannot share a batch of 4: the check names the field, and says
  # 3, so main split the CPU before anything asked jax for its devices.
  proc = _python('', '-m', 'mirai_jax.main', '--config=configs/demo.py',
                 f'--workdir={tmp_path}', '--mode=tokenizer',
                 '--config.mesh.cpu_devices=3',
                 '--config.tokenizer.batch_size=4')
  assert proc.returncode == 1, proc.stderr[-2000:]
  assert 'tokenizer.batch_size' in proc.stderr
  assert 'multiple of the 3 devices' in proc.stderr
