"""Orbax I/O of a train state, and nothing else: save, and restore the newest intact checkpoint.

A checkpoint that fails to restore (truncated data, a missing `_METADATA` or item) is moved aside
to DIR/checkpoints_damaged/<step> (never deleted) with a warning naming it, and the next older one
is tried; a structure mismatch (the config changed the model) is not damage and is re-raised.
"""
from __future__ import annotations

import os
import shutil
import sys
from typing import Any, Optional, Tuple

import jax
import orbax.checkpoint as ocp

from freqrobust import workdir as workdir_lib


class IncompatibleCheckpoint(workdir_lib.UserError):
  """The checkpoint holds a state of another structure than the config builds."""


def make_manager(workdir: str, keep: int) -> ocp.CheckpointManager:
  directory = os.path.join(os.path.abspath(workdir), workdir_lib.CHECKPOINTS)
  return ocp.CheckpointManager(
      directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))


def save(manager: ocp.CheckpointManager, step: int, state) -> None:
  manager.save(step, args=ocp.args.StandardSave(state), force=True)


def restore(manager: ocp.CheckpointManager, state, step: int):
  """Restores checkpoint `step` into `state`'s structure and sharding."""
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  return manager.restore(step, args=ocp.args.StandardRestore(abstract))


def _is_structure_mismatch(error: Exception) -> bool:
  text = str(error).lower()
  return any(s in text for s in ("tree structure", "does not match", "mismatch", "shape",
                                 "not found in checkpoint", "missing keys", "unexpected keys"))


def _move_aside(manager: ocp.CheckpointManager, step: int) -> str:
  source = os.path.join(str(manager.directory), str(step))
  target_dir = os.path.join(os.path.dirname(str(manager.directory)),
                            workdir_lib.DAMAGED_CHECKPOINTS)
  os.makedirs(target_dir, exist_ok=True)
  target = os.path.join(target_dir, str(step))
  k = 1
  while os.path.exists(target):
    target = os.path.join(target_dir, f"{step}.{k}")
    k += 1
  shutil.move(source, target)
  return target


def restore_latest(manager: ocp.CheckpointManager, state,
                   workdir: Optional[str] = None) -> Tuple[Any, int, ocp.CheckpointManager]:
  """(state, step, manager) from the newest checkpoint that restores; (state, 0, manager) if none.

  Damaged checkpoints are moved aside and the manager is re-created without them (it caches its
  list of steps). An incompatible state structure raises `IncompatibleCheckpoint`.
  """
  while True:
    step = manager.latest_step()
    if step is None:
      return state, 0, manager
    try:
      return restore(manager, state, step), int(step), manager
    except Exception as e:  # Orbax raises many types for a damaged checkpoint.
      if _is_structure_mismatch(e) and _complete(manager, step):
        raise IncompatibleCheckpoint(
            f"The checkpoint of step {step} in {manager.directory} holds a state of another "
            f"structure than this config builds ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:200]}). The config "
            "changed the model or the APS configuration; train into a fresh --workdir.") from e
      keep = manager._options.max_to_keep if hasattr(manager, "_options") else None
      moved = _move_aside(manager, step)
      print(f"WARNING: the checkpoint of step {step} could not be restored "
            f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}); moved it to "
            f"{moved} and trying the next older one.", file=sys.stderr, flush=True)
      manager.close()
      manager = ocp.CheckpointManager(
          manager.directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))


def _complete(manager: ocp.CheckpointManager, step: int) -> bool:
  """Whether the step's folder has its metadata and every item (a structure mismatch in an
  incomplete checkpoint is damage, not a config change)."""
  folder = os.path.join(str(manager.directory), str(step))
  if not os.path.isdir(folder):
    return False
  entries = set(os.listdir(folder))
  return "_CHECKPOINT_METADATA" in entries and "default" in entries and os.path.exists(
      os.path.join(folder, "default", "_METADATA"))
