"""What every analysis tool of `python -m freqrobust.analyze TOOL` shares.

A tool is one module of `freqrobust.tools` with one `Tool` subclass: its name, a line of help,
its own flags (`define_flags`, defined only when that tool runs, so `analyze TOOL --help` lists
them) and `run(values, context)`, which writes arrays, JSON and figures into `context.out_dir`
and returns a JSON-able summary naming its figures. The numbers come from the pure functions of
`freqrobust.analysis`; a tool is the glue between them and a trained run.
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, ClassVar, Optional

from absl import flags
import numpy as np

from freqrobust import workdir as workdir_lib


class Context:
  """The run a tool analyses: its workdir, the checkpoint step (None: the newest), where outputs
  go (DIR/analysis/TOOL, or DIR/steps/<step>/analysis/TOOL for a kept checkpoint) and the common
  flags' values; `trained()` loads the model once."""

  def __init__(self, tool: str, workdir: str, step: Optional[int] = None):
    self.tool, self.workdir, self.step = tool, workdir, step
    self._trained = None

  @property
  def out_root(self) -> str:
    if self.step is None:
      return self.workdir
    return workdir_lib.step_dir(self.workdir, self.step)

  @property
  def out_dir(self) -> str:
    return workdir_lib.tool_dir(self.out_root, self.tool)

  def trained(self):
    if self._trained is None:
      from freqrobust import trained
      self._trained = trained.load_trained(self.workdir, self.step)
    return self._trained


class Tool:
  name: ClassVar[str] = ""
  summary: ClassVar[str] = ""
  default_images: ClassVar[int] = 0  # Test images used when --num_images=0.

  def define_flags(self, fv) -> None:
    """Defines this tool's own flags on `fv` (absl FlagValues)."""
    del fv

  def run(self, values, context: Context) -> dict[str, Any]:
    raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Bound:
  """The values a numeric flag (or each entry of a numeric list flag) may take."""
  kind: type  # int or float
  low: float  # the smallest value (or the bound it must exceed, with `open_low`)
  meaning: str  # what the flag is, for the error
  open_low: bool = False
  high: float = math.inf

  def problem(self, entry) -> Optional[str]:
    """Why `entry` (a number, or a list flag's string) is out of bounds, or None."""
    try:
      value = self.kind(entry.strip() if isinstance(entry, str) else entry)
    except (TypeError, ValueError):
      return f"must be {'an integer' if self.kind is int else 'a number'}"
    if not math.isfinite(value) or value > self.high or value < self.low or (
        self.open_low and value == self.low):
      low = f"> {self.low:g}" if self.open_low else f">= {self.low:g}"
      return f"must be {low}" + ("" if math.isinf(self.high) else f" and <= {self.high:g}")
    return None


# Every numeric flag of `analyze` and its tools (tools_test checks that none is left out): checked
# in one place, before anything is loaded.
FLAG_BOUNDS: dict[str, Bound] = {
    "step": Bound(int, 0, "a kept checkpoint's step"),
    "num_images": Bound(int, 0, "the number of images (0 = the tool's default)"),
    "batch_size": Bound(int, 0, "images per device call (0 = the tool's default)"),
    "seed": Bound(int, 0, "the seed of the tool's randomness"),
    "num_bands": Bound(int, 1, "the number of frequency bands"),
    "num_dct_bands": Bound(int, 0, "the number of DCT bands (0 = one per diagonal)"),
    "attack_eps": Bound(float, 0, "the attack's L-inf radius (0 = the dataset's)"),
    "pgd_steps": Bound(int, 1, "PGD iterations (0 would be the spectrum of no attack)"),
    "attack_steps": Bound(int, 0, "PGD iterations (0 = leave the attack out)"),
    "corruption_severity": Bound(int, 0, "a corruption severity 1..5 (0 = leave it out)",
                                 high=5),
    "severity": Bound(int, 1, "a corruption severity 1..5", high=5),
    "max_deltas_drawn": Bound(int, 1, "the number of deltas drawn as curves"),
    "eps": Bound(float, 0, "the perturbation's L2 norm", open_low=True),
    "radius": Bound(float, 0, "a radius (0 = min(H, W) / 4)"),
    "pdm_strength": Bound(float, 0, "the point perturbation's L2 norm", open_low=True),
    "ignore_fraction": Bound(float, 0, "a fraction of extreme values ignored", high=0.5),
    "min_peak_fraction": Bound(float, 0, "a fraction of the strongest channel's vote", high=1),
    # Lists: each entry.
    "deltas": Bound(float, 0, "the Gaussian widths", open_low=True),
    "radii": Bound(float, 0, "the radii", open_low=True),
    "rhos": Bound(float, 0, "the smoothing strengths"),
    "bandwidths": Bound(int, 1, "the bandwidths"),
    "steps": Bound(int, 0, "the checkpoint steps"),
}


def check_flags(values) -> None:
  """Every numeric flag defined in `values` (FLAG_BOUNDS) within its bounds, and each entry of a
  numeric list flag; a UserError naming the flag otherwise (before anything is loaded)."""
  for name, bound in FLAG_BOUNDS.items():
    if name not in values or values[name].value is None:
      continue
    value = values[name].value
    is_list = isinstance(value, (list, tuple))
    for entry in (value if is_list else [value]):
      problem = bound.problem(entry)
      if problem:
        shown = ",".join(map(str, value)) if is_list else value
        subject = f"entry {entry!r} " if is_list else ""
        raise workdir_lib.UserError(f"--{name}={shown}: {subject}{problem}. --{name}: "
                                    f"{bound.meaning}.")


def load_test_images(config, num_images: int) -> tuple[np.ndarray, np.ndarray]:
  """The first `num_images` test images of a run's dataset (`config.data`), float32 in [0, 1]."""
  from freqrobust import data
  if num_images <= 0:
    raise workdir_lib.UserError(f"--num_images={num_images}: must be > 0.")
  images, labels = data.load_split(config.data, "test")
  return images[:num_images].astype(np.float32) / 255.0, labels[:num_images]


def num_images(values, tool: Tool) -> int:
  return values.num_images or tool.default_images


def batch_size(values, context: Context) -> int:
  """--batch_size, or the run's eval.batch_size (its predict function is compiled for it)."""
  return values.batch_size or context.trained().config.eval.batch_size


def define_once(define, name: str, *args, flag_values, **kwargs) -> None:
  """Defines a flag unless `flag_values` has it already (tools may share a flag)."""
  if name not in flag_values:
    define(name, *args, flag_values=flag_values, **kwargs)


def written(summary: dict, tool: str, out_dir: str) -> str:
  return (f"{tool}: wrote {', '.join(summary['figures'])} and the arrays (.npz) and numbers "
          f"(.json) to {os.path.normpath(out_dir)}")


def kept_steps(workdir: str) -> list[int]:
  """The checkpoint steps a run keeps (config.train.keep_every_epochs keeps one per N epochs)."""
  from freqrobust import checkpoint
  config = workdir_lib.read_config(workdir)
  manager = checkpoint.make_manager(workdir, config.train.keep_checkpoints)
  try:
    return sorted(int(s) for s in manager.all_steps())
  finally:
    manager.close()


def epochs_of(workdir: str, step: int) -> float:
  """A step of a run in epochs (from results.json's step and epochs; the step when unknown)."""
  results = workdir_lib.read_results(workdir) or {}
  if results.get("epochs") and results.get("step"):
    return step * float(results["epochs"]) / float(results["step"])
  return float(step)


def over_steps(values, context: Context, row_fn) -> dict[float, dict]:
  """{epoch: row_fn(trained model)} over the kept checkpoints (--steps, default all), with a
  progress line per checkpoint: the curves over training of HFC and the F-principle."""
  import time
  from freqrobust import trained as trained_lib
  steps = [int(s) for s in values.steps] if values.steps else kept_steps(context.workdir)
  if not steps:
    raise workdir_lib.UserError(f"No checkpoint in {context.workdir}: train it first.")
  rows, started = {}, time.time()
  for k, step in enumerate(steps):
    run = trained_lib.load_trained(context.workdir, step)
    rows[epochs_of(context.workdir, step)] = row_fn(run)
    done = k + 1
    eta = (time.time() - started) / done * (len(steps) - done)
    print(f"{context.tool}: step {step} ({done}/{len(steps)} checkpoints, ETA {eta:.0f} s)",
          flush=True)
  return rows


def define_steps_flag(fv) -> None:
  define_once(flags.DEFINE_list, "steps", [], "Kept checkpoints to trace, e.g. 100,200 "
              "(default: every kept one; config.train.keep_every_epochs keeps one per N epochs).",
              flag_values=fv)
