"""Orbax checkpoints of a training stage: state, grain iterator and config.

Saved asynchronously every N steps and at the end, the last K kept. A stage
started again on the same workdir restores the latest step and continues with
the same batches, so a resumed run equals one that never stopped.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

from absl import logging
import grain
import jax
import orbax.checkpoint as ocp


class Checkpoints:
  """A thin layer over ocp.CheckpointManager with the three items we keep."""

  def __init__(self, directory: str, keep: int = 3, asynchronous: bool = True):
    self.directory = os.path.abspath(os.path.expanduser(directory))
    self._mngr = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=asynchronous,
            create=True),
        item_handlers=dict(state=ocp.StandardCheckpointHandler(),
                           data=grain.checkpoint.CheckpointHandler(),
                           config=ocp.JsonCheckpointHandler()))

  def latest_step(self) -> Optional[int]:
    return self._mngr.latest_step()

  def save(self, step: int, state: Any, data_iter=None,
           config: Optional[dict] = None, force: bool = False) -> None:
    items = dict(state=ocp.args.StandardSave(state),
                 config=ocp.args.JsonSave(json.loads(json.dumps(
                     config or {}, default=str))))
    if data_iter is not None:
      items['data'] = grain.checkpoint.CheckpointSave(data_iter)
    self._mngr.save(step, args=ocp.args.Composite(**items), force=force)

  def restore(self, abstract_state: Any, data_iter=None,
              step: Optional[int] = None) -> tuple[Any, int]:
    """State (with the shardings of `abstract_state`) of `step` or the latest."""
    step = self._mngr.latest_step() if step is None else step
    items = dict(state=ocp.args.StandardRestore(abstract_state))
    if data_iter is not None:
      items['data'] = grain.checkpoint.CheckpointRestore(data_iter)
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
