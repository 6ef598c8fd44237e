"""Orbax I/O of a train state, and nothing else: save, and restore the newest intact checkpoint.

A checkpoint is first compared with the state the config builds through its saved metadata (the
tree paths, shapes and dtypes Orbax records): a difference is a config change
(`IncompatibleCheckpoint`), refused. A checkpoint whose metadata matches (or cannot be read) but
that fails to restore (truncated data, a missing `_METADATA` or item) is damage: it is moved
aside to DIR/checkpoints_damaged/<step> (never deleted) with a warning naming it, and the next
older one is tried.

Multi-process runs: every process calls `save` and `restore_latest` (Orbax's multi-process
protocol: process 0 writes the metadata and commits, each process its own shards); process 0
decides which step to restore, whether it is compatible and what is damaged, and alone moves
damaged checkpoints aside (`freqrobust.distributed`). Paths go through `etils.epath`, as Orbax's.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Dict, Optional, Tuple

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from freqrobust import distributed
from freqrobust import workdir as workdir_lib


@distributed.register_error
class IncompatibleCheckpoint(workdir_lib.UserError):
  """The checkpoint holds a state of another structure than the config builds."""


def _directory(workdir: str) -> epath.Path:
  if workdir_lib.is_remote(workdir):
    return workdir_lib.check_workdir(workdir) / workdir_lib.CHECKPOINTS
  return epath.Path(os.path.abspath(workdir)) / workdir_lib.CHECKPOINTS


def _manager(directory, keep: Optional[int],
             keep_period: Optional[int] = None) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, keep_period=keep_period,
                                                      create=True))


def make_manager(workdir: str, keep: int, keep_period: Optional[int] = None
                 ) -> ocp.CheckpointManager:
  """`keep` newest checkpoints, and besides them every one whose step is a multiple of
  `keep_period` (config.train.keep_every_epochs: curves over training computed afterwards)."""
  return _manager(_directory(workdir), keep, keep_period or None)


def save(manager: ocp.CheckpointManager, step: int, state) -> None:
  manager.save(step, args=ocp.args.StandardSave(state), force=True)


def restore(manager: ocp.CheckpointManager, state, step: int):
  """Restores checkpoint `step` into `state`'s structure and sharding."""
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  return manager.restore(step, args=ocp.args.StandardRestore(abstract))


# ----------------------------------------------------------------------------- the comparison


def _key_name(key) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def _leaves(tree, leaf_of) -> Dict[str, Tuple[tuple, str]]:
  """'a/b/0' -> (shape, dtype) of every array leaf (None and empty nodes have none)."""
  flat = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: x is None)[0]
  out = {}
  for path, leaf in flat:
    described = leaf_of(leaf)
    if described is not None:
      out["/".join(_key_name(k) for k in path)] = described
  return out


def _state_leaf(leaf):
  if leaf is None or not hasattr(leaf, "shape"):
    return None
  return tuple(int(d) for d in leaf.shape), str(np.dtype(leaf.dtype))


def _metadata_leaf(leaf):
  if leaf is None or not hasattr(leaf, "shape") or getattr(leaf, "shape", None) is None:
    return None
  return tuple(int(d) for d in leaf.shape), str(np.dtype(leaf.dtype))


def structure_differences(manager: ocp.CheckpointManager, step: int, state) -> list:
  """How the saved tree of checkpoint `step` (Orbax's metadata: paths, shapes, dtypes) differs
  from `state`'s: [] when it matches; raises when the metadata cannot be read (damage)."""
  item = epath.Path(manager.directory) / str(step) / "default"
  metadata = ocp.StandardCheckpointHandler().metadata(item)
  tree = getattr(metadata, "tree", metadata)
  if tree is None:
    raise ValueError(f"checkpoint {step} has no readable tree metadata")
  saved = _leaves(tree, _metadata_leaf)
  if not saved:
    raise ValueError(f"checkpoint {step}'s metadata lists no arrays")
  built = _leaves(state, _state_leaf)
  out = [f"{k}: saved, not built by this config" for k in sorted(set(saved) - set(built))]
  out += [f"{k}: built by this config, not saved" for k in sorted(set(built) - set(saved))]
  out += [f"{k}: saved {saved[k][0]} {saved[k][1]}, built {built[k][0]} {built[k][1]}"
          for k in sorted(set(saved) & set(built)) if saved[k] != built[k]]
  return out


def _move_aside(manager: ocp.CheckpointManager, step: int) -> str:
  source = epath.Path(manager.directory) / str(step)
  target_dir = epath.Path(manager.directory).parent / workdir_lib.DAMAGED_CHECKPOINTS
  target_dir.mkdir(parents=True, exist_ok=True)
  target = target_dir / str(step)
  k = 1
  while target.exists():
    target = target_dir / f"{step}.{k}"
    k += 1
  source.rename(target)
  return os.fspath(target)


def _first_line(error: BaseException) -> str:
  return str(error).splitlines()[0][:200] if str(error) else ""


def restore_latest(manager: ocp.CheckpointManager,
                   state) -> Tuple[Any, int, ocp.CheckpointManager]:
  """(state, step, manager) from the newest checkpoint that restores; (state, 0, manager) if none.

  Each checkpoint's saved metadata is compared with `state` first: a difference raises
  `IncompatibleCheckpoint` (the config changed the model), whatever the words of Orbax's errors.
  A checkpoint that matches but does not restore, or whose metadata cannot be read, is damaged:
  it is moved aside and the manager is re-created without it (it caches its list of steps).
  Every process of a multi-process run calls this; process 0 decides and moves, all agree.
  """
  keep = manager._options.max_to_keep if hasattr(manager, "_options") else None
  while True:
    step = distributed.decide(manager.latest_step)
    if step is None:
      return state, 0, manager

    def check(step=step):
      try:
        differences = structure_differences(manager, step, state)
      except Exception as e:  # pylint: disable=broad-except  Unreadable metadata: damage.
        return {"damaged": f"{type(e).__name__}: {_first_line(e)}"}
      if differences:
        raise IncompatibleCheckpoint(
            f"The checkpoint of step {step} in {manager.directory} holds a state of another "
            f"structure than this config builds ({'; '.join(differences[:5])}"
            f"{'; ...' if len(differences) > 5 else ''}). The config changed the model or the "
            "APS configuration; train into a fresh --workdir.")
      return {"damaged": None}

    damage = distributed.decide(check)["damaged"]
    restored, error = None, None
    if damage is None:
      try:
        restored = restore(manager, state, step)
      except Exception as e:  # pylint: disable=broad-except  Orbax raises many types for damage.
        error = e
      if not distributed.any_process(error is not None):
        return restored, int(step), manager
      damage = distributed.decide(
          lambda: f"{type(error).__name__}: {_first_line(error)}" if error is not None
          else "failed to restore in another process")

    def move(step=step, damage=damage):
      moved = _move_aside(manager, step)
      print(f"WARNING: the checkpoint of step {step} could not be restored ({damage}); moved it "
            f"to {moved} and trying the next older one.", file=sys.stderr, flush=True)

    distributed.decide(move)
    distributed.barrier(f"freqrobust_moved_checkpoint_{step}")
    manager.close()
    manager = _manager(manager.directory, keep, getattr(manager._options, "keep_period", None))
