"""What a run leaves in its workdir: config.json, metrics.jsonl, TensorBoard events, results.json,
and the live progress line on stdout."""
import json
import math
import os
import sys
import time
from typing import Any, Dict, List, Optional

import jax
import numpy as np


def mean_metrics(pending: List[Dict[str, Any]]) -> Dict[str, float]:
  """Means of per-step device metrics (one host transfer); `nonfinite` is summed instead."""
  stacked = jax.device_get(pending)
  out = {}
  for k in stacked[0]:
    values = np.asarray([m[k] for m in stacked], np.float64)
    out[k] = float(values.sum()) if k == "nonfinite" else float(values.mean())
  return out


def _jsonable(x):
  if isinstance(x, dict):
    return {k: _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if isinstance(x, (np.generic,)):
    return x.item()
  return x


def _flatten(d, prefix=""):
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def config_changes(workdir: str, config) -> List[str]:
  """Fields whose value differs from the config.json a previous run left in `workdir`."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    old = _flatten(json.load(f))
  new = _flatten(json.loads(config.to_json_best_effort()))
  return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


class RunLog:
  """Writes the run's files; only process 0 writes (the others get a disabled instance)."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.workdir, self.enabled = workdir, enabled
    self._metrics = None
    self._tb = None
    if enabled:
      self._metrics = open(os.path.join(workdir, "metrics.jsonl"), "a")
      try:
        from tensorboardX import SummaryWriter
        self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
      except ImportError:  # TensorBoard events are optional; JSONL always exists.
        self._tb = None

  def info(self, message: str) -> None:
    if self.enabled:
      print(message, flush=True)

  def write_config(self, config) -> None:
    if self.enabled:
      with open(os.path.join(self.workdir, "config.json"), "w") as f:
        f.write(config.to_json_best_effort(indent=2, sort_keys=True))

  def metrics(self, step: int, values: Dict[str, float]) -> None:
    if not self.enabled:
      return
    self._metrics.write(json.dumps({"step": step, "time": time.time(), **values}) + "\n")
    self._metrics.flush()
    if self._tb is not None:
      for k, v in values.items():
        if isinstance(v, (int, float)) and math.isfinite(v):
          self._tb.add_scalar(k, v, step)

  def write_results(self, results: Dict[str, Any]) -> None:
    if not self.enabled:
      return
    path = os.path.join(self.workdir, "results.json")
    with open(path + ".tmp", "w") as f:
      json.dump(_jsonable(results), f, indent=2)
    os.replace(path + ".tmp", path)

  def close(self) -> None:
    if self._metrics is not None:
      self._metrics.close()
    if self._tb is not None:
      self._tb.close()


def read_finished_results(workdir: str) -> Optional[Dict[str, Any]]:
  """The results.json of a run that finished (status "finished"), or None."""
  path = os.path.join(workdir, "results.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    results = json.load(f)
  return results if results.get("status") == "finished" else None


def _duration(seconds: float) -> str:
  seconds = int(max(0, seconds))
  h, rest = divmod(seconds, 3600)
  m, s = divmod(rest, 60)
  return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class Progress:
  """One progress line per logging interval: step, epoch, loss, accuracy, steps/s, ETA."""

  def __init__(self, start_step: int, total_steps: int, steps_per_epoch: int):
    self.total, self.steps_per_epoch = total_steps, steps_per_epoch
    self.last_step, self.last_time = start_step, time.time()
    self.enabled = jax.process_index() == 0

  def update(self, step: int, m: Dict[str, float]) -> None:
    now = time.time()
    rate = (step - self.last_step) / max(now - self.last_time, 1e-9)
    self.last_step, self.last_time = step, now
    if not self.enabled:
      return
    parts = [f"step {step}/{self.total}", f"epoch {step / self.steps_per_epoch:.2f}",
             f"loss {m['loss']:.4f}", f"acc {100 * m['accuracy']:.1f}%"]
    if "aux_loss" in m:
      parts += [f"aux {m['aux_loss']:.4f}", f"open {m['open_ratio']:.3f}"]
    if "b_L" in m:
      parts.append(f"b(LMH) {m['b_L']:.2f}/{m['b_M']:.2f}/{m['b_H']:.2f}")
    parts += [f"lr {m['learning_rate']:.4g}", f"{rate:.2f} steps/s",
              f"ETA {_duration((self.total - step) / max(rate, 1e-9))}"]
    print(" | ".join(parts), file=sys.stdout, flush=True)
