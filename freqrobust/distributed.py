"""Cross-process agreement for multi-process (multi-host) runs; with one process, plain values.

Every process of a run executes the same program on its own devices (`jax.distributed`), and each
of these helpers is a collective: every process must call it, in the same order, or the run hangs.
Process 0 is the run's *writer*: it alone holds the workdir's lock, reads config.json, writes every
file, and decides what all must do; the others follow its decision (docs/SCALING.md).

  is_writer()                   this process writes the workdir's files (process 0)
  decide(fn)                    fn() runs on process 0 only; its result, or its UserError, reaches
                                every process (a refused run fails in all with the same message)
  held_by_writer(make_context)  a context manager (the lock) entered by process 0 alone, its
                                refusal raised in every process
  any_process(flag)             True in every process when any process's flag is True (SIGTERM)
  agree(value, what)            every process's value must be the same; a UserError otherwise
  barrier(name)                 waits for every process
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Any, Callable, ContextManager, Iterator, TypeVar

import numpy as np

T = TypeVar("T")

# A decision's JSON travels as a fixed-size byte array (collectives need equal shapes).
_MAX_MESSAGE_BYTES = 1 << 16


def process_count() -> int:
  import jax
  return jax.process_count()


def process_index() -> int:
  import jax
  return jax.process_index()


def is_writer() -> bool:
  """Whether this process writes the workdir's files (process 0; True in a one-process run)."""
  return process_index() == 0


def _broadcast_json(value: Any) -> Any:
  """Process 0's JSON-able `value`, in every process."""
  if process_count() == 1:
    return value
  from jax.experimental import multihost_utils
  buffer = np.zeros(_MAX_MESSAGE_BYTES + 4, np.uint8)
  if is_writer():
    data = json.dumps(value).encode()
    if len(data) > _MAX_MESSAGE_BYTES:  # Every process must still hear (and fail) at once.
      data = json.dumps({_TOO_LARGE: len(data)}).encode()
    buffer[:4] = np.frombuffer(np.uint32(len(data)).tobytes(), np.uint8)
    buffer[4:4 + len(data)] = np.frombuffer(data, np.uint8)
  buffer = np.asarray(multihost_utils.broadcast_one_to_all(buffer))
  size = int(np.frombuffer(buffer[:4].tobytes(), np.uint32)[0])
  out = json.loads(buffer[4:4 + size].tobytes().decode())
  if isinstance(out, dict) and _TOO_LARGE in out:
    raise ValueError(f"distributed: process 0's value is {out[_TOO_LARGE]} bytes of JSON, more "
                     f"than the {_MAX_MESSAGE_BYTES} a decision carries.")
  return out


_TOO_LARGE = "__freqrobust_too_large__"


# Exception classes a decision re-raises as themselves in every process (by name); any other
# becomes a RuntimeError there. `register_error` adds one (e.g. checkpoint.IncompatibleCheckpoint).
_ERRORS: dict = {}


def register_error(cls: type) -> type:
  _ERRORS[cls.__name__] = cls
  return cls


def _error_kind(error: BaseException) -> str:
  from freqrobust import workdir as workdir_lib
  register_error(workdir_lib.UserError)
  register_error(workdir_lib.WorkdirBusy)
  for cls in type(error).__mro__:
    if _ERRORS.get(cls.__name__) is cls:
      return cls.__name__
  return "other"


def _raise(kind: str, message: str) -> None:
  from freqrobust import workdir as workdir_lib
  register_error(workdir_lib.UserError)
  register_error(workdir_lib.WorkdirBusy)
  cls = _ERRORS.get(kind)
  if cls is None:
    raise RuntimeError(f"Process 0 failed: {message}")
  raise cls(message)


def decide(fn: Callable[[], T]) -> T:
  """`fn()` run on process 0 alone; its (JSON-able) result is returned in every process, and the
  exception it raises is raised in every process: a `UserError` (`WorkdirBusy`) with the same
  class and message, anything else as a RuntimeError naming it in the other processes (process 0
  re-raises the original). With one process: `fn()`."""
  if process_count() == 1:
    return fn()
  error, result = None, None
  if is_writer():
    try:
      result = fn()
    except Exception as e:  # pylint: disable=broad-except  Every process must hear of it.
      error = e
  outcome = _broadcast_json(
      {"ok": True, "result": result} if error is None else
      {"ok": False, "kind": _error_kind(error), "message": str(error)[:_MAX_MESSAGE_BYTES // 8]})
  if outcome["ok"]:
    return outcome["result"]
  if error is not None:
    raise error
  _raise(outcome["kind"], outcome["message"])
  raise AssertionError("unreachable")


@contextlib.contextmanager
def held_by_writer(make_context: Callable[[], ContextManager[Any]]) -> Iterator[None]:
  """Enters `make_context()` (e.g. `workdir.locked(DIR)`) on process 0 only and holds it for the
  block; when process 0 cannot enter it (the workdir is busy), every process raises process 0's
  error, at once, before any other collective."""
  with contextlib.ExitStack() as stack:
    def enter() -> None:  # Runs on process 0 alone (`decide`).
      stack.enter_context(make_context())
    decide(enter)
    yield


def any_process(flag: bool) -> bool:
  """Whether `flag` is True in any process; the same answer in every process."""
  if process_count() == 1:
    return bool(flag)
  from jax.experimental import multihost_utils
  flags = multihost_utils.process_allgather(np.asarray([bool(flag)], np.int32))
  return bool(np.any(np.asarray(flags)))


def gather(value: Any) -> list:
  """Every process's JSON-able `value`, in process order, in every process."""
  if process_count() == 1:
    return [value]
  from jax.experimental import multihost_utils
  data = json.dumps(value).encode()
  if len(data) > _MAX_MESSAGE_BYTES:  # Compared by digest: every process takes the same path.
    data = json.dumps({"sha256": hashlib.sha256(data).hexdigest()}).encode()
  buffer = np.zeros(_MAX_MESSAGE_BYTES + 4, np.uint8)
  buffer[:4] = np.frombuffer(np.uint32(len(data)).tobytes(), np.uint8)
  buffer[4:4 + len(data)] = np.frombuffer(data, np.uint8)
  rows = np.asarray(multihost_utils.process_allgather(buffer[None], tiled=True))
  out = []
  for row in rows:
    size = int(np.frombuffer(row[:4].tobytes(), np.uint32)[0])
    out.append(json.loads(row[4:4 + size].tobytes().decode()))
  return out


def agree(value: T, what: str = "value") -> T:
  """`value`, checked to be the same in every process (JSON-able); a `UserError` naming `what`
  and each process's value otherwise, raised in every process."""
  values = gather(value)
  if any(v != values[0] for v in values[1:]):
    from freqrobust import workdir as workdir_lib
    listed = "; ".join(f"process {i}: {str(v)[:200]}" for i, v in enumerate(values))
    raise workdir_lib.UserError(
        f"The processes of this run disagree on the {what} ({listed}). Start every process with "
        "the same command line, code and data.")
  return value


def barrier(name: str) -> None:
  """Waits until every process has reached the barrier `name`."""
  if process_count() == 1:
    return
  from jax.experimental import multihost_utils
  multihost_utils.sync_global_devices(name)
