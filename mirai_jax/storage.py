"""Paths that are local or URLs (gs://bucket/run, or any fsspec protocol).

Orbax checkpoints and TFDS metadata read and write URLs themselves. ffmpeg,
array_record and TensorBoard's writer open local files only, so around them:
inputs at a URL are copied into a local cache (`$MIRAI_JAX_CACHE`, default
~/.cache/mirai_jax) and copied again only when the remote file changes, and
outputs are written to local scratch and uploaded once complete. An object
store's upload is all or nothing, so no reader sees half a file there either.
`writable` and `free_space` refuse a local output folder before any compute.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import tempfile
from typing import Iterator

from absl import logging

from mirai_jax import errors

STAMP = '.mirai-stamp-'  # beside each cached file: what it was copied from


def is_url(path) -> bool:
  return '://' in os.fspath(path)


def expand(path: str) -> str:
  return path if is_url(path) else os.path.expanduser(path)


def filesystem(url: str):
  """(fsspec file system, path within it) of a URL."""
  try:
    import fsspec  # pylint: disable=g-import-not-at-top
    return fsspec.core.url_to_fs(url)
  except ImportError as e:
    # fsspec names the package (gcsfs, s3fs, ...) in its message.
    raise ImportError(f'{url}: {e}. For gs:// paths: pip install -e .[gcs]'
                      ) from e
  except ValueError as e:
    raise ValueError(f'{url}: {e}') from e


def exists(path: str) -> bool:
  if not is_url(path):
    return os.path.exists(path)
  fs, p = filesystem(path)
  return fs.exists(p)


def makedirs(path: str) -> None:
  if not is_url(path):  # object stores have no folders to make
    os.makedirs(path, exist_ok=True)


def read_text(path: str) -> str:
  if not is_url(path):
    with open(path, encoding='utf-8') as f:
      return f.read()
  fs, p = filesystem(path)
  return fs.cat_file(p).decode('utf-8')


def write_text(path: str, text: str) -> None:
  """All or nothing: a local temporary renamed in place, or one upload."""
  if is_url(path):
    fs, p = filesystem(path)
    fs.pipe_file(p, text.encode('utf-8'))
    return
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f'{path}.partial-{os.getpid()}'
  with open(tmp, 'w', encoding='utf-8') as f:
    f.write(text)
  os.replace(tmp, path)


def cache_path(url: str) -> str:
  root = os.path.expanduser(os.environ.get('MIRAI_JAX_CACHE') or
                            '~/.cache/mirai_jax')
  protocol, rest = url.split('://', 1)
  return os.path.join(root, protocol, *[p for p in rest.split('/') if p])


def _stamp(info: dict) -> str:
  changed = next((str(info[k]) for k in ('md5Hash', 'etag', 'ETag', 'mtime',
                                         'updated', 'LastModified', 'created')
                  if info.get(k)), '')
  return f"{info.get('size')}|{changed}"


def local_copy(path: str) -> str:
  """A local path holding what `path` holds: a file or a folder's tree.

  Local paths are returned as they are. A URL is mirrored into the cache;
  files whose size and checksum are unchanged are not copied again, and files
  no longer at the URL are removed from the mirror. Several processes on one
  machine may mirror the same URL at once.
  """
  if not is_url(path):
    return path
  fs, root = filesystem(path)
  root = root.rstrip('/')
  local = cache_path(path)
  if fs.isfile(root):
    files = {'': fs.info(root)}
    dest = lambda rel: local
  else:
    found = fs.find(root, withdirs=False, detail=True)
    if not found:
      raise FileNotFoundError(f'{path}: nothing there')
    files = {p[len(root) + 1:]: info for p, info in found.items()}
    dest = lambda rel: os.path.join(local, *rel.split('/'))
  todo, wanted = [], set()
  for rel, info in sorted(files.items()):
    target = dest(rel)
    mark = os.path.join(os.path.dirname(target),
                        STAMP + os.path.basename(target))
    wanted.update((target, mark))
    stamp = _stamp(info)
    try:
      with open(mark, encoding='utf-8') as f:
        if f.read() == stamp and os.path.exists(target):
          continue
    except FileNotFoundError:
      pass
    todo.append((rel, target, mark, stamp, info.get('size') or 0))
  if todo:
    logging.info('copying %d file(s), %.1f MB, from %s to %s', len(todo),
                 sum(t[-1] for t in todo) / 1e6, path, local)
  for rel, target, mark, stamp, _ in todo:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = f'{target}.partial-{os.getpid()}'
    fs.get_file(posixpath.join(root, rel) if rel else root, tmp)
    os.replace(tmp, target)
    write_text(mark, stamp)
  if os.path.isdir(local):
    for dirpath, _, names in os.walk(local):
      for name in names:
        p = os.path.join(dirpath, name)
        if p not in wanted and '.partial-' not in name:
          os.remove(p)
  return local


def upload(local: str, url: str, append_only: bool = False) -> None:
  """Copies a local file, or every file under a local folder, to `url`.

  `append_only`: files only ever grow or are rewritten identically (logs,
  deterministic renders), so one already there with the same size is the
  same and is not sent again.
  """
  fs, root = filesystem(url)
  root = root.rstrip('/')
  if os.path.isfile(local):
    fs.put_file(local, root)
    return
  there = {}
  if append_only and fs.exists(root):
    there = {p: info.get('size') for p, info in
             fs.find(root, withdirs=False, detail=True).items()}
  for dirpath, _, names in os.walk(local):
    for name in names:
      path = os.path.join(dirpath, name)
      rel = os.path.relpath(path, local)
      remote = posixpath.join(root, *rel.split(os.sep))
      if there.get(remote) != os.path.getsize(path):
        fs.put_file(path, remote)


@contextlib.contextmanager
def output_file(path: str) -> Iterator[str]:
  """A local path to write the file `path` to; at a URL it is uploaded when
  the block ends without an error."""
  if not is_url(path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    yield path
    return
  with tempfile.TemporaryDirectory(prefix='mirai_jax-') as tmp:
    local = os.path.join(tmp, posixpath.basename(path.rstrip('/')))
    yield local
    if os.path.exists(local):
      upload(local, path)


@contextlib.contextmanager
def output_dir(path: str) -> Iterator[str]:
  """A local folder to write into; at a URL its files are uploaded there
  when the block ends without an error."""
  if not is_url(path):
    os.makedirs(path, exist_ok=True)
    yield path
    return
  tmp = tempfile.mkdtemp(prefix='mirai_jax-')
  try:
    yield tmp
    upload(tmp, path)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def writable(path: str, flag: str) -> None:
  """Raises UserError unless files can be made in the folder `path` (made
  later if missing): a probe file in it or its nearest existing parent.
  Nothing is left behind. URLs are left to the first write."""
  if not path or is_url(path):
    return
  path = os.path.abspath(expand(path))
  existing = path
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    where = '' if existing == path else f': {existing}'
    raise errors.UserError(
        f'{flag}={path}{where} is a file, not a folder: give a folder (or '
        'move the file away)')
  try:
    fd, probe = tempfile.mkstemp(prefix='.mirai-jax-probe-', dir=existing)
    os.close(fd)
    os.remove(probe)
  except OSError as e:
    raise errors.UserError(
        f'{flag}={path}: cannot write in {existing} ({e.strerror}): make it '
        f'writable or give another {flag}') from e


def free_space(path: str, needed: int, what: str, flag: str) -> None:
  """Raises UserError when the disk of `path` has less than `needed` bytes
  free (local paths only)."""
  if not path or is_url(path):
    return
  existing = os.path.abspath(expand(path))
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  free = shutil.disk_usage(existing).free
  if free < needed:
    raise errors.UserError(
        f'{flag}={path}: {what} needs about {errors.size(needed)} and the '
        f'disk has {errors.size(free)} free: free space or give another {flag}')
