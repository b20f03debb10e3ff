"""The episode folder: its files (local or at a URL), its fingerprint, and
split files that assign its episodes to splits by name."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Optional

from etils import epath

from mirai_jax import storage
from mirai_jax import video_io


def list_episodes(folder, *, stamps: bool = False) -> list[tuple[str, ...]]:
  """(episode name, path) of every file under `folder`, sorted by name; the
  folder may be a URL (gs://, s3://, ...).

  Every non-hidden file counts: a stray non-video file is reported by the
  build rather than silently ignored. Names are paths relative to `folder`.

  With `stamps`, each file also comes with a string that changes when it is
  replaced, resized or touched.
  """
  folder = os.fspath(folder)
  if not storage.is_url(folder):
    found = _local_episodes(folder)
    if not stamps:
      return found
    return [(name, path, f'{st.st_size}\0{st.st_mtime_ns}')
            for name, path in found for st in [os.stat(path)]]
  fs, root = storage.filesystem(folder)
  root = root.rstrip('/')
  out = []
  # One listing of the whole tree: a stat per file would be a request each.
  for path, info in fs.find(root, withdirs=False, detail=True).items():
    name = path[len(root) + 1:] if path.startswith(root + '/') else ''
    if not name or any(part.startswith('.') for part in name.split('/')):
      continue
    url = fs.unstrip_protocol(path)
    changed = next((info[k] for k in ('mtime', 'updated', 'LastModified',
                                      'created') if info.get(k)), '')
    out.append((name, url, f"{info.get('size')}\0{changed}") if stamps
               else (name, url))
  return sorted(out)


def probe_all(episodes: list[tuple[str, str]], limit: int
              ) -> Optional[dict[str, Optional[video_io.Probe]]]:
  """{name: probe, or None when it does not probe} of (name, path) pairs in
  a local folder of up to `limit` files; None for a bigger folder or one at
  a URL (a probe is one short ffmpeg run, on a local file)."""
  if len(episodes) > limit or any(storage.is_url(p) for _, p in episodes):
    return None
  out = {}
  for name, path in episodes:
    try:
      out[name] = video_io.probe(path)
    except Exception:  # pylint: disable=broad-except
      out[name] = None  # the build reports why when it decodes the file
  return out


def _local_episodes(folder: str) -> list[tuple[str, str]]:
  """(episode name, path) of every file under `folder`, sorted by name.

  Every non-hidden file counts: a stray non-video file is reported by the
  build rather than silently ignored. Names are paths relative to `folder`.
  """
  out = []
  for root, dirs, files in os.walk(folder):
    dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
    for f in files:
      if f.startswith('.'):
        continue
      path = os.path.join(root, f)
      out.append((os.path.relpath(path, folder).replace(os.sep, '/'), path))
  return sorted(out)


def fingerprint(listed: list[tuple[str, str, str]]) -> str:
  """Of a folder's `list_episodes(..., stamps=True)`: changes when an
  episode file is added, removed, resized or touched."""
  h = hashlib.sha256()
  for name, _, stamp in listed:
    h.update(f'{name}\0{stamp}\n'.encode())
  return h.hexdigest()


def split_file_digest(path: str) -> str:
  """The split file's name and a hash of its contents."""
  with epath.Path(path).open('rb') as f:
    return f'{os.path.basename(path)}:{hashlib.sha256(f.read()).hexdigest()[:16]}'


def read_split_file(path: str) -> dict[str, str]:
  """{episode: split} from a JSON file {"train": [names], "test": [...]}."""
  try:
    with open(path, encoding='utf-8') as f:
      data = json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(f'split_file {path}: cannot read it as JSON: {e}') from e
  if not isinstance(data, dict) or not all(
      isinstance(v, list) for v in data.values()):
    raise ValueError(f'split_file {path}: expected {{"train": ["ep1.mp4", ...], '
                     '"test": [...]}')
  out = {}
  for split, names in data.items():
    for name in names:
      if name in out:
        raise ValueError(f'split_file {path}: {name!r} is in both '
                         f'{out[name]!r} and {split!r}')
      out[name] = split
  return out
