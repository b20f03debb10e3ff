"""A dataset's identity: which episode files, in which splits, cut how.

Recorded in the dataset's metadata when it is built, copied into the token
records' meta.json and into every checkpoint, and compared when a later
stage starts: a tokenizer, token records or a transformer made from another
dataset would validate or test on episodes they were trained on. File
sizes stand in for contents (a replaced file almost always changes size);
modification times are left out, so a copied folder is the same dataset.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Optional

from mirai_jax import errors


def make(config_name: str, clip_spec: dict, splits: dict[str, list[str]],
         sizes: dict[str, int], split_file: Optional[str]) -> dict[str, Any]:
  ident = dict(builder_config=config_name, clip_spec=dict(clip_spec),
               splits={s: sorted(v) for s, v in sorted(splits.items())},
               sizes=dict(sorted(sizes.items())), split_file=split_file)
  ident['digest'] = digest(ident)
  return ident


def digest(ident: dict[str, Any]) -> str:
  body = {k: v for k, v in ident.items() if k != 'digest'}
  return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()
                        ).hexdigest()[:16]


def of_builder(builder) -> dict[str, Any]:
  """The identity a dataset recorded, or one made from the metadata of a
  dataset built before identities were recorded."""
  meta = builder.info.metadata or {}
  if 'identity' in meta:
    return meta['identity']
  return make(builder.builder_config.name, meta.get('clip_spec', {}),
              meta.get('split_episodes', {}), {}, None)


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
  """What differs, in words: the splits' episodes first (leakage)."""
  out = []
  if old.get('builder_config') != new.get('builder_config'):
    out.append(f"builder config {old.get('builder_config')} -> "
               f"{new.get('builder_config')}")
  spec_a, spec_b = old.get('clip_spec', {}), new.get('clip_spec', {})
  out += [f'clip field {k}: {spec_a.get(k)!r} -> {spec_b.get(k)!r}'
          for k in sorted(spec_a.keys() | spec_b.keys())
          if spec_a.get(k) != spec_b.get(k)]
  where = lambda ident: {e: s for s, eps in ident.get('splits', {}).items()
                         for e in eps}
  a, b = where(old), where(new)
  moved = sorted(e for e in a.keys() & b.keys() if a[e] != b[e])
  if moved:
    out.append('moved between splits: ' + _few(
        [f'{e} ({a[e]} -> {b[e]})' for e in moved]))
  if b.keys() - a.keys():
    out.append('episodes added: ' + _few(sorted(b.keys() - a.keys())))
  if a.keys() - b.keys():
    out.append('episodes removed: ' + _few(sorted(a.keys() - b.keys())))
  sa, sb = old.get('sizes', {}), new.get('sizes', {})
  replaced = sorted(e for e in sa.keys() & sb.keys() if sa[e] != sb[e])
  if replaced:
    out.append('episode files replaced (other size): ' + _few(replaced))
  if old.get('split_file') != new.get('split_file') and not out:
    out.append('split file changed')
  return out or ['the recorded identity differs']


def _few(items: list[str], n: int = 5) -> str:
  return ', '.join(items[:n]) + (f' and {len(items) - n} more'
                                 if len(items) > n else '')


class Changed(errors.UserError):
  """A stage's input was made from another dataset than the current one."""


def require_same(recorded: Optional[dict], current: dict, *, what: str,
                 fix: str) -> None:
  """Raises Changed, naming what changed, when `recorded` (the identity that
  `what` was made from) is not `current`. Nothing recorded: nothing to say
  (made before identities were recorded)."""
  if not recorded or recorded.get('digest') == current.get('digest'):
    return
  if digest(recorded) == digest(current):
    return
  raise Changed(f'{what} was made from another dataset than the one in use '
                f"now ({'; '.join(changes(recorded, current))}). {fix}")
