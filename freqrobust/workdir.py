"""The workdir of a run: its layout, its readers and writers, the one atomic write, and its lock.

    DIR/config.json                 the resolved configuration (written once the restore succeeded)
    DIR/metrics.jsonl               one JSON line per logged step (the last line of a step wins)
    DIR/tensorboard/                TensorBoard events of the same metrics
    DIR/checkpoints/<step>/         Orbax checkpoints (`freqrobust.checkpoint`)
    DIR/checkpoints_damaged/        checkpoints that failed to restore, moved aside, never deleted
    DIR/results.json                status, clean accuracy, learned theta_b, method choices
    DIR/corruption_eval/            corruption report (`freqrobust.evaluate`)
    DIR/analysis/<tool>/            outputs of `python -m freqrobust.analyze TOOL`
    DIR/.lock                       held by the one process training into DIR

Every file is written through `atomic_write` (a unique temporary name in the same folder, then
`os.replace`), so a reader never sees half a file and two writers never share a temporary file.
"""
from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import socket
import tempfile
import time
from typing import Any, Callable, Dict, IO, Iterator, List, Mapping, Optional

import numpy as np

CONFIG = "config.json"
METRICS = "metrics.jsonl"
RESULTS = "results.json"
TENSORBOARD = "tensorboard"
CHECKPOINTS = "checkpoints"
DAMAGED_CHECKPOINTS = "checkpoints_damaged"
CORRUPTION_EVAL = "corruption_eval"
ANALYSIS = "analysis"
LOCK = ".lock"


class UserError(ValueError):
  """An error the user caused and can fix; the CLIs print its message without a traceback."""


def path(workdir: str, *parts: str) -> str:
  return os.path.join(workdir, *parts)


def corruption_dir(workdir: str) -> str:
  return path(workdir, CORRUPTION_EVAL)


def tool_dir(workdir: str, tool: str) -> str:
  """`DIR/analysis/<tool>/`, created if missing."""
  out = path(workdir, ANALYSIS, tool)
  os.makedirs(out, exist_ok=True)
  return out


# ----------------------------------------------------------------------------- writing


def to_jsonable(value: Any) -> Any:
  """NumPy/JAX scalars and arrays, tuples and non-finite floats -> plain JSON values."""
  if isinstance(value, Mapping):
    return {str(k): to_jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [to_jsonable(v) for v in value]
  if hasattr(value, "__array__") and not isinstance(value, (str, bytes)):
    array = np.asarray(value)
    return to_jsonable(array.item() if array.ndim == 0 else array.tolist())
  if isinstance(value, np.generic):
    return to_jsonable(value.item())
  if isinstance(value, float) and not math.isfinite(value):
    return None  # JSON has no NaN.
  return value


def atomic_write(target: str, write: Callable[[IO], None], mode: str = "w") -> None:
  """Writes `target` via a uniquely named temporary file in its folder and `os.replace`."""
  folder = os.path.dirname(os.path.abspath(target))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=os.path.basename(target) + ".", suffix=".tmp")
  try:
    with os.fdopen(fd, mode) as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, target)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise


def write_json(target: str, content: Any, indent: int = 2, sort_keys: bool = False) -> None:
  atomic_write(target, lambda f: json.dump(to_jsonable(content), f, indent=indent,
                                           sort_keys=sort_keys))


def read_json(source: str) -> Any:
  """A JSON file; a damaged one raises `UserError` naming it."""
  try:
    with open(source) as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise UserError(f"{source} is damaged ({e}); delete it or restore it from a backup.") from e


# ----------------------------------------------------------------------------- config and results


def write_config(workdir: str, config) -> None:
  atomic_write(path(workdir, CONFIG),
               lambda f: f.write(config.to_json_best_effort(indent=2, sort_keys=True)))


def read_config(workdir: str):
  """The run's config.json as a ConfigDict."""
  import ml_collections
  source = path(workdir, CONFIG)
  if not os.path.exists(source):
    raise UserError(f"{source} not found: {workdir} is not a freqrobust workdir (train into it "
                    "with `python -m freqrobust.main --config=... --workdir=...`).")
  return ml_collections.ConfigDict(read_json(source))


def _flatten(d: Mapping, prefix: str = "") -> Dict[str, Any]:
  out = {}
  for k, v in d.items():
    if isinstance(v, Mapping):
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def config_changes(workdir: str, config) -> List[str]:
  """Fields whose value differs from the config.json a previous run left in `workdir`, as
  'field: old -> new'."""
  source = path(workdir, CONFIG)
  if not os.path.exists(source):
    return []
  old = _flatten(read_json(source))
  new = _flatten(json.loads(config.to_json_best_effort()))
  return [f"{k}: {old.get(k, '(absent)')!r} -> {new.get(k, '(absent)')!r}"
          for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def write_results(workdir: str, results: Mapping[str, Any]) -> None:
  write_json(path(workdir, RESULTS), results)


def read_results(workdir: str) -> Optional[Dict[str, Any]]:
  source = path(workdir, RESULTS)
  return read_json(source) if os.path.exists(source) else None


def read_finished_results(workdir: str) -> Optional[Dict[str, Any]]:
  """The results.json of a run that finished (status "finished"), or None."""
  results = read_results(workdir)
  return results if results is not None and results.get("status") == "finished" else None


def read_corruption_results(workdir: str) -> Dict[str, Any]:
  """DIR/corruption_eval/results.json of a finished evaluation."""
  source = path(workdir, CORRUPTION_EVAL, RESULTS)
  if not os.path.exists(source):
    raise UserError(
        f"{source} not found: evaluate that run first (`python -m freqrobust.evaluate "
        f"--workdir={workdir}`, or train it with config.corruptions.evaluate=True).")
  return read_json(source)


# What a corruption evaluation's sets were made from (fields of corruption_eval/results.json).
CORRUPTED_SET_FIELDS = ("dataset", "source", "num_examples", "seed", "recipe_version", "frost",
                        "clean_sha256")
# Fields that matter only for generated sets: TFDS's CIFAR-10-C is the published images whatever
# the code's recipe version, generation seed or frost source.
GENERATION_FIELDS = ("seed", "recipe_version", "frost")


def corrupted_set_differences(a: Optional[Mapping[str, Any]], b: Optional[Mapping[str, Any]],
                              missing_differs: bool = False) -> List[str]:
  """The fields in which two evaluations' corrupted sets differ; the generation fields are not
  compared between two TFDS evaluations. A field that either lacks (results written before it
  existed) is not compared, unless `missing_differs`: then a field `b` knows and `a` lacks
  differs (a baseline `a` must prove it saw the sets `b` describes)."""
  if not a or not b:
    return []
  both_tfds = a.get("source") == "tfds" and b.get("source") == "tfds"
  return [k for k in CORRUPTED_SET_FIELDS
          if not (both_tfds and k in GENERATION_FIELDS) and b.get(k) is not None
          and (a.get(k) != b[k] if missing_differs else a.get(k) not in (None, b[k]))]


def accuracy_table(results: Mapping[str, Any]) -> Dict[str, Dict[int, float]]:
  """The corruption -> severity -> accuracy table of a corruption results.json."""
  return {name: {int(s): float(a) for s, a in row.items()}
          for name, row in results["accuracy"].items()}


# ----------------------------------------------------------------------------- metrics.jsonl


def is_test_line(entry: Dict[str, Any]) -> bool:
  """Whether a metrics.jsonl line is a clean-evaluation line (its keys start with "test_")
  rather than a training line."""
  return any(k.startswith("test_") for k in entry)


def read_metrics(workdir: str) -> List[Dict[str, Any]]:
  """The lines of metrics.jsonl, one per (step, train or test line), the last written winning: a run
  resumed from an older checkpoint logs those steps again. Sorted by step; unreadable lines (a
  kill in mid-write) are skipped."""
  source = path(workdir, METRICS)
  if not os.path.exists(source):
    return []
  latest: Dict[tuple, Dict[str, Any]] = {}
  with open(source) as f:
    for line in f:
      try:
        entry = json.loads(line)
      except json.JSONDecodeError:
        continue
      kind = "test" if is_test_line(entry) else "train"
      latest[(entry.get("step", 0), kind)] = entry
  return [latest[k] for k in sorted(latest, key=lambda k: k[0])]


def truncate_metrics(workdir: str, last_step: int) -> int:
  """Drops the metrics.jsonl lines after `last_step` (logged after the checkpoint a run resumes
  from, and about to be logged again); returns how many were dropped."""
  source = path(workdir, METRICS)
  if not os.path.exists(source):
    return 0
  with open(source) as f:
    lines = f.readlines()
  keep = []
  for line in lines:
    try:
      if json.loads(line).get("step", 0) <= last_step:
        keep.append(line)
    except json.JSONDecodeError:
      pass  # Half a line from a kill.
  if len(keep) != len(lines):
    atomic_write(source, lambda f: f.writelines(keep))
  return len(lines) - len(keep)


class MetricsWriter:
  """Appends to metrics.jsonl and TensorBoard; disabled (a no-op) on processes other than 0."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    self._file = open(path(workdir, METRICS), "a") if enabled else None
    self._tb = None
    if enabled:
      try:
        from tensorboardX import SummaryWriter
        self._tb = SummaryWriter(path(workdir, TENSORBOARD))
      except ImportError:  # TensorBoard events are optional; JSONL always exists.
        self._tb = None

  def write(self, step: int, values: Mapping[str, Any]) -> None:
    if not self.enabled:
      return
    self._file.write(json.dumps(to_jsonable({"step": step, "time": time.time(), **values})) + "\n")
    self._file.flush()
    if self._tb is not None:
      for k, v in values.items():
        if isinstance(v, (int, float)) and math.isfinite(v):
          self._tb.add_scalar(k, v, step)

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
    if self._tb is not None:
      self._tb.close()


# ----------------------------------------------------------------------------- the lock


class WorkdirBusy(UserError):
  pass


@contextlib.contextmanager
def locked(workdir: str) -> Iterator[None]:
  """Holds DIR/.lock (an exclusive `flock`) while a run trains into DIR.

  A second run on the same workdir is refused with the holder's pid and host. The kernel drops
  the lock when its process dies, however it dies, so a stale lock never blocks a later run; the
  file itself stays and is reused.
  """
  import fcntl
  os.makedirs(workdir, exist_ok=True)
  lock_path = path(workdir, LOCK)
  fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      if e.errno not in (errno.EAGAIN, errno.EACCES):
        raise
      holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
      raise WorkdirBusy(f"{workdir} is in use by another run ({holder}); wait for it to finish, "
                        "or use another --workdir. (If that process is gone, the lock is free "
                        f"again: {lock_path} can stay.)") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}".encode(), 0)
    yield
  finally:
    os.close(fd)  # Releases the flock.
