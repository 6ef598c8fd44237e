"""The live progress line of long work (training, evaluation): rate and ETA."""
from __future__ import annotations

import os
import sys
import time
from typing import Mapping, Optional, TextIO


class ConsoleStream:
  """A console stream that outlives its reader. When a write or flush fails because nobody reads
  the other end any more (a broken pipe: the sweep or `tee` that read this run's output was
  killed), the stream's descriptor is pointed at /dev/null and the text is dropped, instead of an
  exception that would end a run on its way to saving a checkpoint after SIGTERM."""

  def __init__(self, stream: TextIO):
    self._stream = stream

  def _drop(self) -> None:
    try:  # Later writes, and Python's flush at exit, then go to /dev/null.
      devnull = os.open(os.devnull, os.O_WRONLY)
      os.dup2(devnull, self._stream.fileno())
      os.close(devnull)
    except (OSError, ValueError, AttributeError):
      pass

  def write(self, text: str) -> int:
    try:
      return self._stream.write(text)
    except (BrokenPipeError, ValueError):  # ValueError: the stream was closed.
      self._drop()
      return len(text)

  def flush(self) -> None:
    try:
      self._stream.flush()
    except (BrokenPipeError, ValueError):
      self._drop()

  def __getattr__(self, name):
    return getattr(self._stream, name)


def say(text: str, stream: Optional[TextIO] = None) -> None:
  """print(text, flush=True) to stdout (or `stream`) that never raises for a lost reader."""
  print(text, file=ConsoleStream(sys.stdout if stream is None else stream), flush=True)


def duration(seconds: float) -> str:
  seconds = int(max(0, seconds))
  h, rest = divmod(seconds, 3600)
  m, s = divmod(rest, 60)
  return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class TrainProgress:
  """One line per logging interval: step, epoch, loss, accuracy, method metrics, steps/s, ETA."""

  def __init__(self, start_step: int, total_steps: int, steps_per_epoch: int,
               enabled: bool = True):
    self.total, self.steps_per_epoch, self.enabled = total_steps, steps_per_epoch, enabled
    self.last_step, self.last_time = start_step, time.time()

  def update(self, step: int, m: Mapping[str, float]) -> None:
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
              f"ETA {duration((self.total - step) / max(rate, 1e-9))}"]
    say(" | ".join(parts))


class BatchBar:
  """A tqdm bar over an attack's batches, called with (done, total); console only, and nothing
  where `enabled` is False."""

  def __init__(self, desc: str, enabled: bool):
    self.bar, self.desc, self.enabled = None, desc, enabled

  def __call__(self, done: int, total: int) -> None:
    if not self.enabled:
      return
    if self.bar is None:
      import tqdm
      self.bar = tqdm.tqdm(total=total, desc=self.desc, unit="batch",
                           file=ConsoleStream(sys.stderr))
    self.bar.update(done - self.bar.n)

  def close(self) -> None:
    if self.bar is not None:
      self.bar.close()
