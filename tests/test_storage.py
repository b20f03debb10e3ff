"""storage.py on fsspec's in-memory file system (memory://), and the token
records' shard selection."""

import os

import fsspec
import numpy as np
import pytest

from mirai_jax import storage
from mirai_jax.data import tokens as tokens_lib


@pytest.fixture
def bucket(tmp_path, monkeypatch):
  monkeypatch.setenv('MIRAI_JAX_CACHE', str(tmp_path / 'cache'))
  fs = fsspec.filesystem('memory')
  root = f'/t{os.getpid()}-{tmp_path.name}'
  yield fs, f'memory://{root}'
  fs.rm(root, recursive=True)


def test_local_copy_mirrors_and_follows_changes(bucket):
  fs, url = bucket
  fs.pipe(f'{url}/d/a.bin', b'aaaa')
  fs.pipe(f'{url}/d/sub/b.bin', b'bb')
  local = storage.local_copy(f'{url}/d')
  assert local == storage.cache_path(f'{url}/d')
  read = lambda *p: open(os.path.join(local, *p), 'rb').read()
  assert read('a.bin') == b'aaaa' and read('sub', 'b.bin') == b'bb'
  # Unchanged files are not copied again: a local edit survives.
  with open(os.path.join(local, 'a.bin'), 'wb') as f:
    f.write(b'xxxx')
  storage.local_copy(f'{url}/d')
  assert read('a.bin') == b'xxxx'
  # A changed file is copied again; a removed one leaves the mirror.
  fs.pipe(f'{url}/d/a.bin', b'new content')
  fs.rm(f'{url}/d/sub/b.bin')
  storage.local_copy(f'{url}/d')
  assert read('a.bin') == b'new content'
  assert not os.path.exists(os.path.join(local, 'sub', 'b.bin'))
  # One file, and a URL with nothing there.
  one = storage.local_copy(f'{url}/d/a.bin')
  assert open(one, 'rb').read() == b'new content'
  with pytest.raises(FileNotFoundError, match='nothing there'):
    storage.local_copy(f'{url}/missing')
  assert storage.local_copy('/some/local/path') == '/some/local/path'


def test_outputs_appear_only_when_complete(bucket):
  fs, url = bucket
  with storage.output_file(f'{url}/out/x.txt') as local:
    assert not storage.is_url(local)
    with open(local, 'w') as f:
      f.write('done')
  assert fs.cat(f'{url}/out/x.txt') == b'done'
  with pytest.raises(RuntimeError):
    with storage.output_file(f'{url}/out/y.txt') as local:
      with open(local, 'w') as f:
        f.write('half')
      raise RuntimeError('the writer failed')
  assert not fs.exists(f'{url}/out/y.txt')
  with storage.output_dir(f'{url}/tree') as local:
    os.makedirs(os.path.join(local, 'a'))
    with open(os.path.join(local, 'a', 'b.txt'), 'w') as f:
      f.write('b')
  assert fs.cat(f'{url}/tree/a/b.txt') == b'b'
  storage.write_text(f'{url}/meta.json', '{"k": 1}')
  assert storage.read_text(f'{url}/meta.json') == '{"k": 1}'
  assert storage.exists(f'{url}/meta.json')
  assert not storage.exists(f'{url}/nothing.json')


def test_append_only_upload_skips_same_size(bucket, tmp_path):
  fs, url = bucket
  src = tmp_path / 'logs'
  src.mkdir()
  (src / 'm.jsonl').write_text('1\n')
  storage.upload(str(src), f'{url}/logs', append_only=True)
  stamp = fs.info(f'{url}/logs/m.jsonl')['created']
  storage.upload(str(src), f'{url}/logs', append_only=True)
  assert fs.info(f'{url}/logs/m.jsonl')['created'] == stamp  # not sent again
  (src / 'm.jsonl').write_text('1\n2\n')
  storage.upload(str(src), f'{url}/logs', append_only=True)
  assert fs.cat(f'{url}/logs/m.jsonl') == b'1\n2\n'


def test_missing_protocol_package_is_named():
  with pytest.raises(ValueError, match='nosuchproto://bucket/x'):
    storage.filesystem('nosuchproto://bucket/x')
  # A protocol whose package is not installed (gs:// without gcsfs).
  missing = None
  for name in ('oci', 'adl', 'dropbox', 'box', 'wandb', 'lakefs', 'hf'):
    try:
      fsspec.get_filesystem_class(name)
    except ImportError:
      missing = name
      break
  if missing is None:
    pytest.skip('every candidate fsspec protocol is installed')
  with pytest.raises(ImportError, match=f'{missing}://b/x: .*pip install'):
    storage.filesystem(f'{missing}://b/x')


def test_token_records_at_a_url(bucket, tmp_path):
  """Shards written to a URL are uploaded whole and read from the mirror;
  only the latest run's shards (its process count) are read."""
  _, url = bucket
  d = f'{url}/tokens'
  for count in (1, 2):  # an older run with 1 process, the latest with 2
    for i in range(count):
      w = tokens_lib.Writer(tokens_lib.shard_path(d, 'train', i, count))
      for k in range(3):
        w.write(dict(tokens=np.full((2, 2, 2), 10 * count + i, np.int32),
                     k=np.int32(k)))
      w.close()
  tokens_lib.write_meta(d, dict(processes=2, audio_len=4))
  source = tokens_lib.TokenSource(d, 'train')
  values = sorted(int(source[i]['tokens'][0, 0, 0]) for i in range(len(source)))
  assert values == [20, 20, 20, 21, 21, 21]
