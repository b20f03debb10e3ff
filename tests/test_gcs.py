"""Every stage of main.py with the workdir on a bucket (gs://), against a
local GCS server (tests/gcs_emulator.py): gcsfs and Orbax's tensorstore talk
to it as they would to GCS."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

import helpers

gcsfs = pytest.importorskip('gcsfs')
pytest.importorskip('gcp_storage_emulator')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUCKET = 'mirai-test'


@pytest.fixture(scope='module')
def gcs(tmp_path_factory):
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  server = subprocess.Popen(
      [sys.executable, os.path.join(ROOT, 'tests', 'gcs_emulator.py'),
       str(port), BUCKET], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  url = f'http://127.0.0.1:{port}'
  deadline = time.time() + 60
  while True:
    try:
      socket.create_connection(('127.0.0.1', port), timeout=1).close()
      break
    except OSError:
      if time.time() > deadline or server.poll() is not None:
        server.kill()
        pytest.fail('the GCS emulator did not start')
      time.sleep(0.2)
  env = dict(os.environ, STORAGE_EMULATOR_HOST=url,
             TENSORSTORE_GCS_HTTP_URL=url, JAX_PLATFORMS='cpu',
             PYTHONPATH=ROOT,
             # gcsfs's zonal-bucket probe speaks gRPC, which the emulator
             # does not: it would wait a minute before falling back.
             GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT='false',
             MIRAI_JAX_CACHE=str(tmp_path_factory.mktemp('cache')))
  # The plain class: the default one probes the bucket over gRPC (above).
  fs = gcsfs.core.GCSFileSystem(endpoint_url=url, token='anon',
                                skip_instance_cache=True)
  yield env, fs
  server.kill()
  server.wait()


def _main(env, cwd, *args):
  proc = subprocess.run(
      [sys.executable, '-m', 'mirai_jax.main',
       f'--config={ROOT}/configs/demo.py', *args],
      cwd=cwd, env=env, text=True, capture_output=True, check=False)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  return proc.stdout


def test_every_stage_with_the_workdir_on_a_bucket(gcs, tmp_path):
  env, fs = gcs
  run = f'gs://{BUCKET}/run'
  out = _main(env, tmp_path, f'--workdir={run}', *helpers.TINY_DEMO,
              '--config.predict.start=2.0', *helpers.NO_LPIPS_FVD)
  assert f'evaluate: wrote {run}/evaluate/test.json' in out
  fs.invalidate_cache()
  files = {p[len(BUCKET) + 5:] for p in fs.find(f'{BUCKET}/run')}
  for name in ('episodes/ep000.mp4', 'episodes_truth/ep000.json',
               'tensorflow_datasets/anime_clips/64x64_t20/1.2.0/'
               'dataset_info.json',
               'preview/train_grid.gif', 'preview/train_clips.mp4',
               'tokenizer/eval.json', 'tokenizer/metrics.jsonl',
               'tokens/CURRENT',
               'transformer/validation.json', 'transformer/metrics.jsonl',
               'evaluate/test.json', 'evaluate/test_examples.gif',
               'predict/ep002_2.00s.mp4', 'predict/ep002_2.00s.json'):
    assert name in files, sorted(files)
  assert any(f.startswith('tokenizer/tb/events.') for f in files)
  tokens_set = fs.cat(f'{BUCKET}/run/tokens/CURRENT').decode().strip()
  for name in ('meta.json', 'train.array_record-00000-of-00001'):
    assert f'tokens/{tokens_set}/{name}' in files, sorted(files)
  assert any(f.startswith('transformer/checkpoints/3/') for f in files)
  assert not [f for f in files if 'partial' in f or 'incomplete' in f]
  result = json.loads(fs.cat(f'{BUCKET}/run/evaluate/test.json'))
  assert result['clips'] == 5 and 'audio' in result['methods']
  assert os.listdir(tmp_path) == []  # nothing written beside the command

  # The transformer resumes from its checkpoint in the bucket, and its
  # metrics file keeps the first run's lines.
  more = [a.replace('transformer.steps=3', 'transformer.steps=5')
          for a in helpers.TINY_DEMO]
  out = _main(env, tmp_path, f'--workdir={run}', '--mode=transformer',
              *more, '--config.transformer.log_every=1')
  assert 'transformer val step 5' in out
  fs.invalidate_cache()
  rows = [json.loads(l) for l in
          fs.cat(f'{BUCKET}/run/transformer/metrics.jsonl').splitlines()]
  steps = [r['step'] for r in rows if 'train/loss' in r]
  assert steps[-2:] == [4, 5] and 3 in steps[:-2], steps
  assert any(f.startswith('transformer/checkpoints/5/') for f in
             (p[len(BUCKET) + 5:] for p in fs.find(f'{BUCKET}/run')))
