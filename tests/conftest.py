"""Shared fixtures. Four fake CPU devices stand in for an accelerator mesh."""

import os
import shutil
import subprocess
import sys
import tempfile

# XLA's CPU backend without LLVM's optimisations and with its older
# elemental fusion emitters: the tests' models are tiny, so compiling is
# most of their time, and these compile 3x quicker (the transformer test's
# training step on 4 devices: 25 s -> 8 s on 2 cores; the suite's time per
# change is in the README, "Set-up"). The HLO programs are the same; their
# machine code is plainer and runs slower. Users' runs keep XLA's defaults
# (test_tokenizer_model checks the compiled HLO under them). A jaxlib that
# no longer knows a flag would abort every test, so it is asked first.
FAST_COMPILE = ('--xla_backend_optimization_level=0 '
                '--xla_llvm_disable_expensive_passes=true '
                '--xla_cpu_use_fusion_emitters=false')
if 'MIRAI_JAX_TEST_FLAGS' not in os.environ:  # not yet (xdist workers inherit)
  os.environ['MIRAI_JAX_TEST_FLAGS'] = '1'
  if subprocess.run(
      [sys.executable, '-c', 'import jax; jax.devices()'],
      env=dict(os.environ, XLA_FLAGS=FAST_COMPILE, JAX_PLATFORMS='cpu'),
      capture_output=True, check=False).returncode:
    print(f'tests: this jaxlib rejects {FAST_COMPILE}; compiling at XLA\'s '
          'defaults (slower)', file=sys.stderr)
    FAST_COMPILE = ''
  # Must be set before jax is imported anywhere.
  os.environ['XLA_FLAGS'] = ' '.join([
      os.environ.get('XLA_FLAGS', ''),
      '--xla_force_host_platform_device_count=4', FAST_COMPILE]).strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
# One persistent compilation cache for the session, shared by the xdist
# workers (they inherit this environment from the controller, which imports
# this file first) and by every command the tests start: most tests compile
# the same tiny models, and XLA's compile is most of their time on CPU. The
# cached executables are the ones XLA would build, so results are unchanged.
# Every program is cached, however quick to compile: the restarts of
# test_distributed then load the binaries of the run before (the same
# binaries, so the same numbers) instead of compiling again.
_OWN_CACHE = 'JAX_COMPILATION_CACHE_DIR' not in os.environ
if _OWN_CACHE:
  os.environ['JAX_COMPILATION_CACHE_DIR'] = tempfile.mkdtemp(
      prefix='mirai-jax-test-cache-')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '0')

from absl import flags  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top

import helpers  # pylint: disable=g-import-not-at-top

# grain worker processes read absl flags; pytest does not parse them.
flags.FLAGS.mark_as_parsed()


def pytest_unconfigure(config):
  if _OWN_CACHE and not hasattr(config, 'workerinput'):  # the controller
    shutil.rmtree(os.environ['JAX_COMPILATION_CACHE_DIR'], ignore_errors=True)


MEDIA = os.path.normpath(os.path.join(os.path.dirname(__file__), '..', '..',
                                      'shared', 'media'))


@pytest.fixture(scope='session')
def media_dir():
  if not os.path.isdir(MEDIA):
    pytest.skip(f'real test media not found at {MEDIA}')
  return MEDIA


@pytest.fixture(scope='session')
def synthetic_episodes(tmp_path_factory):
  """Three short synthetic episodes (ep000..ep002) with their ground truth."""
  root = tmp_path_factory.mktemp('synthetic')
  return helpers.write_synthetic(str(root / 'episodes'), 3)


@pytest.fixture(scope='session')
def built(tmp_path_factory, synthetic_episodes):
  """anime_clips built from the synthetic episodes plus every kind of bad file."""
  return helpers.build_with_bad_files(tmp_path_factory.mktemp('built'),
                                      synthetic_episodes)
