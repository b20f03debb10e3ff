"""Orbax checkpoints of a training stage: the train state and the config.

Saved asynchronously every N steps and at the end, the last K kept. A stage
started again on the same workdir restores the latest step and, because the
input pipeline is a function of the step (data/pipeline.py), continues with
the same batches: a resumed run equals one that never stopped. Orbax writes a
step into a temporary directory and renames it when complete, so a process
killed mid-write leaves the previous steps restorable. The directory may be a
gs:// path.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

from absl import logging
import jax
import orbax.checkpoint as ocp

from mirai_jax import storage


class Checkpoints:
  """A thin layer over ocp.CheckpointManager with the three items we keep."""

  def __init__(self, directory: str, keep: int = 3, asynchronous: bool = True):
    directory = storage.expand(directory)
    if not storage.is_url(directory):
      directory = os.path.abspath(directory)
    self.directory = directory
    self._mngr = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=asynchronous,
            create=True),
        item_handlers=dict(state=ocp.StandardCheckpointHandler(),
                           config=ocp.JsonCheckpointHandler()))

  def latest_step(self) -> Optional[int]:
    return self._mngr.latest_step()

  def save(self, step: int, state: Any, config: Optional[dict] = None,
           force: bool = False) -> None:
    items = dict(state=ocp.args.StandardSave(state),
                 config=ocp.args.JsonSave(json.loads(json.dumps(
                     config or {}, default=str))))
    self._mngr.save(step, args=ocp.args.Composite(**items), force=force)

  def shape_mismatches(self, abstract_state: Any,
                       step: Optional[int] = None) -> list[str]:
    """Where the saved state's arrays differ from `abstract_state`'s (names,
    shapes, dtypes); empty when it restores. Reads metadata only."""
    step = self._mngr.latest_step() if step is None else step
    saved = self._mngr.item_metadata(step)['state']
    # Orbax's metadata names dataclass fields with dict keys: compare names.
    name = lambda path: '/'.join(
        str(getattr(k, 'key', getattr(k, 'name', getattr(k, 'idx', k))))
        for k in path)
    flat = lambda tree: {name(p): v for p, v in
                         jax.tree_util.tree_leaves_with_path(tree)}
    old, new = flat(saved), flat(abstract_state)
    out = [f'{k}: only in the checkpoint' for k in sorted(old.keys() - new.keys())]
    out += [f'{k}: not in the checkpoint' for k in sorted(new.keys() - old.keys())]
    for k in sorted(old.keys() & new.keys()):
      a, b = old[k], new[k]
      if tuple(getattr(a, 'shape', ())) != tuple(getattr(b, 'shape', ())) or (
          getattr(a, 'dtype', None) is not None
          and jax.numpy.dtype(a.dtype) != jax.numpy.dtype(b.dtype)):
        out.append(f'{k}: saved {getattr(a, "shape", ())} {a.dtype}, now '
                   f'{getattr(b, "shape", ())} {b.dtype}')
    return out

  def restore(self, abstract_state: Any,
              step: Optional[int] = None) -> tuple[Any, int]:
    """State (with the shardings of `abstract_state`) of `step` or the latest:
    any device layout, whatever the layout it was saved from."""
    step = self._mngr.latest_step() if step is None else step
    items = dict(state=ocp.args.StandardRestore(abstract_state))
    restored = self._mngr.restore(step, args=ocp.args.Composite(**items))
    logging.info('restored step %d from %s', step, self.directory)
    return restored['state'], step

  def saved_config(self, step: Optional[int] = None) -> dict:
    step = self._mngr.latest_step() if step is None else step
    return self._mngr.restore(step, args=ocp.args.Composite(
        config=ocp.args.JsonRestore()))['config']

  def wait(self) -> None:
    self._mngr.wait_until_finished()

  def close(self) -> None:
    self._mngr.wait_until_finished()
    self._mngr.close()


def abstract(tree: Any, shardings: Any) -> Any:
  """ShapeDtypeStructs of `tree` placed with `shardings`: what restore needs."""
  return jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      tree, shardings)
