"""The live progress line of long work (training, evaluation): rate and ETA."""
from __future__ import annotations

import sys
import time
from typing import Mapping


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
    print(" | ".join(parts), file=sys.stdout, flush=True)
