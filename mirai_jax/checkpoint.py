"""Orbax checkpoints of a training stage: the train state and the config.

Saved asynchronously every N steps and at the end, the last K kept. A stage
started again on the same workdir restores the latest step and, because the
input pipeline is a function of the step (data/pipeline.py), continues with
the same batches: a resumed run equals one that never stopped. Orbax writes a
step into a temporary directory and renames it when complete, so a process
killed mid-write leaves the previous steps restorable. A finished step that a
disk, a copy or a sync damaged later is skipped: `restore_newest` walks back
to the newest step that restores and says which it skipped and why. The
directory may be a gs:// path.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any, Callable, Optional

from absl import logging
import jax
import orbax.checkpoint as ocp

from mirai_jax import distributed
from mirai_jax import errors
from mirai_jax import storage
from mirai_jax.data import identity


# Where a checkpoint's config item keeps the identity of the dataset it was
# trained on (data/identity.py).
DATASET_KEY = 'dataset_identity'


class Unusable(errors.UserError, FileNotFoundError):
  """No step of a checkpoint directory restores (main.py reports it in a
  few lines, as it does a missing input)."""


class Checkpoints:
  """A thin layer over ocp.CheckpointManager with the three items we keep."""

  def __init__(self, directory: str, keep: int = 3, asynchronous: bool = True,
               *, partial: bool = False):
    """With `partial` (inference) a restore reads only the parts of the
    state its abstract tree names, e.g. {'ema_params': ...}: no optimiser
    state is read, and none needs to be built to shape it."""
    directory = storage.expand(directory)
    if not storage.is_url(directory):
      directory = os.path.abspath(directory)
    self.directory = directory
    self._partial = partial
    # Both handlers read the same files; only the pytree one restores part
    # of a tree.
    state = (ocp.PyTreeCheckpointHandler() if partial
             else ocp.StandardCheckpointHandler())
    self._mngr = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=asynchronous,
            create=True),
        item_handlers=dict(state=state, config=ocp.JsonCheckpointHandler()))

  def latest_step(self) -> Optional[int]:
    return self._mngr.latest_step()

  def save(self, step: int, state: Any, config: Optional[dict] = None,
           force: bool = False) -> None:
    items = dict(state=ocp.args.StandardSave(state),
                 config=ocp.args.JsonSave(json.loads(json.dumps(
                     config or {}, default=str))))
    self._require_room(state)
    try:
      self._mngr.save(step, args=ocp.args.Composite(**items), force=force)
    except Exception as e:  # pylint: disable=broad-except
      self._raise_refused(e)
      raise

  def _require_room(self, state: Any) -> None:
    """A disk without room for the state refuses the save here, in one
    line, rather than in orbax's threads halfway through writing it. One
    process only: processes that disagreed would wait for each other in
    the save's collectives."""
    if (storage.is_url(self.directory) or jax.process_count() > 1
        or not os.path.isdir(self.directory)):
      return
    need = sum(getattr(x, 'nbytes', 0) for x in jax.tree.leaves(state))
    free = shutil.disk_usage(self.directory).free
    if free < need:
      raise errors.UserError(
          f'{self.directory}: a checkpoint needs about {errors.size(need)} '
          f'and the disk has {errors.size(free)} free: free space or give '
          'another --workdir (the previous steps are intact)')

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
    if self._partial:
      state = ocp.args.PyTreeRestore(
          item=abstract_state, partial_restore=True,
          restore_args=ocp.checkpoint_utils.construct_restore_args(
              abstract_state))
    else:
      state = ocp.args.StandardRestore(abstract_state)
    items = dict(state=state)
    restored = self._mngr.restore(step, args=ocp.args.Composite(**items))
    logging.info('restored step %d from %s', step, self.directory)
    return restored['state'], step

  def restore_newest(self, abstract_state: Any, *, label: str,
                     check: Optional[Callable[[int], None]] = None,
                     set_aside: bool = False) -> tuple[Any, int]:
    """(state, step) of the newest step that restores.

    A step that fails to read (a missing or truncated file, empty metadata,
    a folder left half copied) is reported in one line and the step before
    is tried. With `set_aside` (a training run that will save again) the
    damaged steps newer than the one restored are moved to
    <directory>/damaged/, kept for inspection, so that new saves are not
    refused as older than them. `check(step)` runs
    first and its exceptions stop the walk: a checkpoint of another model is
    the user's config, not damage. Raises Unusable when no step restores.
    """
    tried = []
    for step in sorted(self._mngr.all_steps(), reverse=True):
      try:
        if check is not None:
          check(step)
        restored = self.restore(abstract_state, step)
      except errors.UserError:  # another model or dataset: not damage
        raise
      except Exception as e:  # pylint: disable=broad-except
        tried.append((step, _one_line(e)))
        if jax.process_index() == 0:
          print(f'{label}: step {step} in {self.directory} does not restore '
                f'({tried[-1][1]}); trying the step before', flush=True)
        continue
      # Only once an older step restored: a directory none of whose steps
      # reads (a bucket out of reach, say) is left exactly as it was.
      for bad, _ in tried if set_aside else ():
        where = self._set_aside(bad)
        if jax.process_index() == 0:
          print(f'{label}: moved the damaged step {bad} to {where}',
                flush=True)
      return restored
    if tried:
      raise Unusable(
          f'{label}: no checkpoint in {self.directory} restores:\n  '
          + '\n  '.join(f'step {st}: {why}' for st, why in tried)
          + '\nNothing was moved or deleted. Move that directory away to '
          'start from scratch, or restore it from a copy.')
    raise FileNotFoundError(f'no {label} checkpoint in {self.directory}')

  def _set_aside(self, step: int) -> Optional[str]:
    src = os.path.join(self.directory, str(step))
    dst = os.path.join(self.directory, 'damaged', f'{step}.{int(time.time())}')
    if jax.process_index() == 0 and storage.exists(src):
      if storage.is_url(src):
        storage.filesystem(src).mv(src, dst, recursive=True)
      else:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.rename(src, dst)
    distributed.meet(f'checkpoint {step} set aside')
    self._mngr.reload()
    return dst

  def saved_config(self, step: Optional[int] = None) -> dict:
    step = self._mngr.latest_step() if step is None else step
    return self._mngr.restore(step, args=ocp.args.Composite(
        config=ocp.args.JsonRestore()))['config']

  def restore_for_inference(self, abstract_state: Any, *, label: str,
                            dataset: Optional[dict], fix: str
                            ) -> tuple[Any, int]:
    """(state, step) of the newest step that restores, refusing one trained
    on another dataset than `dataset` (`fix` says what to do); closes the
    manager. FileNotFoundError, with the command to run, when there is none."""
    try:
      if self.latest_step() is None:
        raise FileNotFoundError(
            f'no {label} checkpoint in {self.directory}: train it first with '
            f'--mode={label}')

      read = tuple(f'{k}/' for k in abstract_state)

      def check(step):
        # The training state's other parts (optimiser, raw parameters) are
        # not read; in the parts read, a parameter the checkpoint lacks,
        # holds in another shape or has beyond the config's model (a copy
        # gate, say, that the model would silently drop) is another model.
        bad = [m for m in self.shape_mismatches(abstract_state, step)
               if not m.endswith('only in the checkpoint')
               or m.startswith(read)]
        if bad:
          raise ConfigMismatch(
              f'{self.directory} (step {step}) holds another {label} model '
              'than the config describes:\n  ' + '\n  '.join(bad[:6])
              + (f'\n  ... {len(bad) - 6} more' if len(bad) > 6 else '')
              + '\nRun with the config it was trained with, or train it '
              f'again with --mode={label} in a new --workdir (the code may '
              'have changed the model since it was trained).')
        self.require_dataset(step, dataset, label, fix)

      return self.restore_newest(abstract_state, label=label, check=check)
    finally:
      self.close()

  def require_dataset(self, step: int, current: Optional[dict], label: str,
                      fix: str) -> None:
    """Raises identity.Changed when `step` was trained on another dataset
    than `current` (nothing to compare when either is unknown)."""
    if current is None:
      return
    identity.require_same(
        self.saved_config(step).get(DATASET_KEY), current,
        what=f'the {label} checkpoint (step {step} in {self.directory})',
        fix=fix)

  def wait(self) -> None:
    """Until the pending save is written; a disk that refused it (full,
    read-only, over quota) raises the OSError it reported (errno, path),
    which main.py prints in one line."""
    try:
      self._mngr.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      self._raise_refused(e)
      raise

  def _raise_refused(self, e: Exception) -> None:
    """Raises the OSError of a disk that refused a save (the async one
    fails in orbax's threads, as tensorstore's ValueError), naming the
    checkpoint directory rather than a shard file deep inside it."""
    disk = errors.disk_error(e)
    if disk is not None:
      raise OSError(disk.errno, disk.strerror, self.directory) from e

  def close(self) -> None:
    try:
      self.wait()
    finally:
      self._mngr.close()


class ConfigMismatch(errors.UserError, ValueError):
  """The checkpoint holds another model than the config describes."""


def _one_line(e: Exception) -> str:
  text = ' '.join(str(e).split()) or type(e).__name__
  return f'{type(e).__name__}: {text[:200]}'


def abstract(tree: Any, shardings: Any) -> Any:
  """ShapeDtypeStructs of `tree` placed with `shardings`: what restore needs."""
  return jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      tree, shardings)
