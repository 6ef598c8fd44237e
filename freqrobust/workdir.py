"""The workdir of a run: its layout, its readers and writers, the one atomic write, and its lock.

    DIR/config.json                 the resolved configuration (written once the restore succeeded)
    DIR/metrics.jsonl               one JSON line per logged step (the last line of a step wins)
    DIR/tensorboard/                TensorBoard events of the same metrics
    DIR/checkpoints/<step>/         Orbax checkpoints (`freqrobust.checkpoint`)
    DIR/checkpoints_damaged/        checkpoints that failed to restore, moved aside, never deleted
    DIR/results.json                status ("trained", then "finished" once every evaluation
                                    listed at_end is done), the model's fingerprint and step,
                                    the evaluations' records ("evals") and scalars ("metrics")
    DIR/corruption_eval/            the corruption report (evaluation type `corruptions`)
    DIR/evals/<name>/               other evaluations' tables and figures (freqrobust.evaluators)
    DIR/analysis/<tool>/            outputs of `python -m freqrobust.analyze TOOL`
    DIR/steps/<step>/               the same, of a kept checkpoint (`--step=N`)
    DIR/.lock                       held by the one process training into DIR

Every file is written through `atomic_write` (a unique temporary name in the same folder, then
`os.replace`), so a reader never sees half a file and two writers never share a temporary file.

Every read and write goes through one path layer, `etils.epath` (as Orbax's checkpoints do): a
workdir is a local folder or a URL epath knows (gs://, s3://, az://; docs/SCALING.md). On an
object store an object appears whole when its writer closes it (so `atomic_write` writes it
directly), nothing can be appended (metrics.jsonl is rewritten whole), and there is no `flock`:
the lock is a lease file that process 0 renews while it trains (`locked`). Any other URL scheme is
refused up front (`check_workdir`), never taken for a local folder named `scheme:`.
"""
from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import socket
import re
import tempfile
import threading
import time
from typing import Any, Callable, Dict, IO, Iterator, List, Mapping, Optional

import numpy as np
from etils import epath

CONFIG = "config.json"
METRICS = "metrics.jsonl"
RESULTS = "results.json"
TENSORBOARD = "tensorboard"
CHECKPOINTS = "checkpoints"
DAMAGED_CHECKPOINTS = "checkpoints_damaged"
CORRUPTION_EVAL = "corruption_eval"
ANALYSIS = "analysis"
LOCK = ".lock"
STEPS = "steps"


class UserError(ValueError):
  """An error the user caused and can fix; the CLIs print its message without a traceback."""


# The URL schemes of etils.epath (its `gpath` module): gs://, s3://, az://.
REMOTE_SCHEMES = ("gs", "s3", "az")
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def is_remote(workdir) -> bool:
  """Whether `workdir` is a URL (an object store) rather than a local path."""
  return _URL.match(os.fspath(workdir)) is not None


def check_workdir(workdir) -> epath.Path:
  """`workdir` as an epath.Path; a URL whose scheme epath cannot read or write (memory://,
  http://, a typo) is refused with the schemes that work, never made a local folder."""
  text = os.fspath(workdir)
  match = _URL.match(text)
  if match and match.group(1) not in REMOTE_SCHEMES:
    raise UserError(f"--workdir={text}: the URL scheme {match.group(1)}:// is not supported; "
                    "use a local or mounted folder, or one of "
                    f"{', '.join(s + '://' for s in REMOTE_SCHEMES)} (etils.epath, which Orbax "
                    "writes checkpoints with).")
  return epath.Path(text)


def path(workdir: str, *parts: str) -> str:
  """DIR/part/...: a local path joined as `os.path.join`, a URL with '/'."""
  if is_remote(workdir):
    return os.fspath(check_workdir(workdir).joinpath(*parts))
  return os.path.join(workdir, *parts)


def exists(target: str) -> bool:
  """Whether a file or folder of a workdir exists (local path or URL)."""
  return _exists(target)


def make_dir(target: str) -> str:
  """Creates a folder of a workdir (and its parents) if missing; returns it."""
  epath.Path(target).mkdir(parents=True, exist_ok=True)
  return target


def _exists(target: str) -> bool:
  if not is_remote(target):
    return os.path.exists(target)
  try:  # A command's first touch of an object store: one that does not answer is named here.
    return epath.Path(target).exists()
  except Exception as error:  # pylint: disable=broad-except  An OSError, or gfile's own errors.
    raise UserError(f"{target} could not be read: the object store did not answer ("
                    f"{type(error).__name__}: {' '.join(str(error).split())[:300]}). Check the "
                    "network and the credentials (`gcloud auth application-default login` for "
                    "gs://), or use a local --workdir.") from error


def _read_text(source: str) -> str:
  if is_remote(source):
    return epath.Path(source).read_text()
  with open(source) as f:
    return f.read()


def step_dir(workdir: str, step: int) -> str:
  """DIR/steps/<step>/: where evaluations and analyses of a kept checkpoint (not the newest) go,
  laid out as a workdir's own (results.json, corruption_eval/, evals/, analysis/)."""
  return path(workdir, STEPS, str(int(step)))


def tool_dir(workdir: str, tool: str) -> str:
  """`DIR/analysis/<tool>/`, created if missing."""
  out = path(workdir, ANALYSIS, tool)
  epath.Path(out).mkdir(parents=True, exist_ok=True)
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
  """Writes `target` via a uniquely named temporary file in its folder and `os.replace`; on an
  object store directly (the object appears whole when it is closed)."""
  if is_remote(target):
    remote = check_workdir(target)
    remote.parent.mkdir(parents=True, exist_ok=True)
    with remote.open(mode) as f:
      write(f)
    return
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
    return json.loads(_read_text(source))
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
  if not _exists(source):
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
  if not _exists(source):
    return []
  old = _flatten(read_json(source))
  new = _flatten(json.loads(config.to_json_best_effort()))
  return [f"{k}: {old.get(k, '(absent)')!r} -> {new.get(k, '(absent)')!r}"
          for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def write_results(workdir: str, results: Mapping[str, Any]) -> None:
  write_json(path(workdir, RESULTS), results)


def read_results(workdir: str) -> Optional[Dict[str, Any]]:
  source = path(workdir, RESULTS)
  return read_json(source) if _exists(source) else None


def read_finished_results(workdir: str) -> Optional[Dict[str, Any]]:
  """The results.json of a run that finished (status "finished"), or None."""
  results = read_results(workdir)
  return results if results is not None and results.get("status") == "finished" else None


def read_corruption_results(workdir: str, required: bool = True) -> Optional[Dict[str, Any]]:
  """DIR/corruption_eval/results.json of a finished corruption evaluation; when there is none,
  a UserError naming the command that makes it (`required`) or None."""
  source = path(workdir, CORRUPTION_EVAL, RESULTS)
  if not _exists(source):
    if not required:
      return None
    raise UserError(
        f"{source} not found: evaluate that run first (`python -m freqrobust.evaluate "
        f"--workdir={workdir} --evals=corruptions`, or train it with "
        "config.evals.corruptions.at_end=True).")
  content = read_json(source)
  if not isinstance(content, Mapping):
    raise UserError(f"{source} holds a {type(content).__name__}, not a corruption report; "
                    f"re-evaluate: python -m freqrobust.evaluate --workdir={workdir} "
                    "--evals=corruptions.")
  return content


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


METRIC_KINDS = ("train", "eval")


def line_kind(entry: Dict[str, Any]) -> str:
  """"train" or "eval": a metrics.jsonl line's `kind` field (every line written since evaluations
  became modules has one); older lines: "eval" when a key starts with "test_"."""
  if "kind" in entry:
    return entry["kind"]
  return "eval" if any(k.startswith("test_") for k in entry) else "train"


def read_metrics(workdir: str) -> List[Dict[str, Any]]:
  """The lines of metrics.jsonl, one per (step, kind), the last written winning: a run
  resumed from an older checkpoint logs those steps again. Sorted by step; unreadable lines (a
  kill in mid-write) are skipped."""
  source = path(workdir, METRICS)
  if not _exists(source):
    return []
  latest: Dict[tuple, Dict[str, Any]] = {}
  for line in _read_text(source).splitlines():
    try:
      entry = json.loads(line)
    except json.JSONDecodeError:
      continue
    latest[(entry.get("step", 0), line_kind(entry))] = entry
  return [latest[k] for k in sorted(latest, key=lambda k: k[0])]


def truncate_metrics(workdir: str, last_step: int) -> int:
  """Drops the metrics.jsonl lines after `last_step` (logged after the checkpoint a run resumes
  from, and about to be logged again); returns how many were dropped."""
  source = path(workdir, METRICS)
  if not _exists(source):
    return 0
  lines = _read_text(source).splitlines(keepends=True)
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
  """Appends to metrics.jsonl and TensorBoard; disabled (a no-op) on processes other than 0.

  On an object store (no appends) the file is rewritten whole at each write, and TensorBoard
  events are not written (metrics.jsonl holds the same values)."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    self._target = path(workdir, METRICS)
    self._remote = is_remote(workdir)
    self._file, self._lines, self._tb = None, None, None
    if not enabled:
      return
    if self._remote:
      self._lines = _read_text(self._target).splitlines(True) if _exists(self._target) else []
      return
    self._file = open(self._target, "a")
    try:
      from tensorboardX import SummaryWriter
      self._tb = SummaryWriter(path(workdir, TENSORBOARD))
    except ImportError:  # TensorBoard events are optional; JSONL always exists.
      self._tb = None

  def write(self, step: int, values: Mapping[str, Any], kind: str = "train") -> None:
    """One line: {"step", "time", "kind", **values}; `kind` is "train" (the loop's averages) or
    "eval" (evaluations, named `<evaluation>/<metric>`), so neither can replace the other."""
    if kind not in METRIC_KINDS:
      raise ValueError(f"kind={kind!r}; valid: {', '.join(METRIC_KINDS)}.")
    reserved = {"step", "time", "kind"} & set(values)
    if reserved:
      raise ValueError(f"metric names {sorted(reserved)} are reserved in metrics.jsonl.")
    if not self.enabled:
      return
    line = json.dumps(to_jsonable({"step": step, "time": time.time(), "kind": kind,
                                   **values})) + "\n"
    if self._remote:
      self._lines.append(line)
      atomic_write(self._target, lambda f: f.writelines(self._lines))
    else:
      self._file.write(line)
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


# An object store's lease: valid this long after its last renewal, renewed every third of it.
LEASE_SECONDS = 300.0


def _holder() -> str:
  return f"pid {os.getpid()} on host {socket.gethostname()}"


@contextlib.contextmanager
def locked(workdir: str) -> Iterator[None]:
  """Holds DIR/.lock while a run trains into DIR; in a multi-process run, process 0 alone holds
  it for all (`distributed.held_by_writer`).

  A second run on the same workdir is refused with the holder's pid and host. On a local or
  mounted filesystem it is an exclusive `flock`: the kernel drops it when its process dies,
  however it dies, so a stale lock never blocks a later run; the file itself stays and is reused.
  (On NFS, flock is emulated with byte-range locks where the server supports them; on other
  shared filesystems it may be local to one machine: docs/SCALING.md.) An object store has no
  locking primitive: there the lock is a lease (`lease_lock`).
  """
  if is_remote(workdir):
    with lease_lock(workdir):
      yield
    return
  import fcntl
  check_workdir(workdir)
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
    os.pwrite(fd, _holder().encode(), 0)
    yield
  finally:
    os.close(fd)  # Releases the flock.


@contextlib.contextmanager
def lease_lock(workdir: str, seconds: Optional[float] = None) -> Iterator[None]:
  """The lock of a workdir on an object store, which has no locking primitive: DIR/.lock holds
  {"holder", "expires"}, renewed by a thread every third of `seconds` (LEASE_SECONDS) and
  deleted on exit. A lease that has not expired refuses a second run; one whose holder died
  expires after `seconds`. Not atomic: two runs started within the same second can both take
  it (the write-then-read-back check narrows this window, it cannot close it)."""
  seconds = float(LEASE_SECONDS if seconds is None else seconds)
  target = check_workdir(workdir) / LOCK
  target.parent.mkdir(parents=True, exist_ok=True)

  def current() -> Optional[Dict[str, Any]]:
    try:
      return json.loads(target.read_text())
    except (FileNotFoundError, json.JSONDecodeError, ValueError):
      return None

  def busy(lease: Optional[Dict[str, Any]]) -> None:
    raise WorkdirBusy(
        f"{workdir} is in use by another run ({lease.get('holder', 'unknown')}; its lease on "
        f"{target} runs until {time.strftime('%H:%M:%S UTC', time.gmtime(lease['expires']))}); "
        "wait for it to finish, or use another --workdir. An object store has no lock: a run "
        f"that died frees the workdir when its lease expires ({seconds:.0f} s after its last "
        "renewal).")

  me = f"{_holder()} [{time.time():.6f}]"
  lease = current()
  if lease and lease.get("holder") != me and lease.get("expires", 0) > time.time():
    busy(lease)
  write = lambda: target.write_text(json.dumps({"holder": me, "expires": time.time() + seconds}))
  write()
  lease = current()
  if not lease or lease.get("holder") != me:  # Another run wrote its lease at the same time.
    busy(lease or {"expires": time.time() + seconds})
  stop = threading.Event()

  def renew() -> None:
    while not stop.wait(seconds / 3):
      with contextlib.suppress(Exception):  # A failed renewal is retried at the next one.
        write()

  thread = threading.Thread(target=renew, name="freqrobust-lease", daemon=True)
  thread.start()
  try:
    yield
  finally:
    stop.set()
    thread.join(timeout=5)
    with contextlib.suppress(Exception):
      if (current() or {}).get("holder") == me:
        target.unlink()
