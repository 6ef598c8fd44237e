"""What every evaluation shares: the model it is given, its columns, its resumable record.

An evaluation is one module of this package with one `Evaluator` subclass (big_vision's
evaluators): `run(context)` evaluates `context.model` (a `trained.TrainedModel`: the exact
function that is reported, EMA weights and test-time flip included) with the evaluator's own
settings, writes its detailed tables and figures into its output folder, and returns a flat dict
of named scalars. `run_evals` prefixes them `<name>/<metric>`, records them in results.json
("evals") keyed on the model's fingerprint, the step and the evaluator's settings, and skips an
evaluation whose record already matches (resumable). `columns` declares what the report shows.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, ClassVar, Dict, Mapping, Optional, Tuple

import numpy as np

from freqrobust import workdir as workdir_lib
from freqrobust.workdir import UserError

# Fields every `config.evals.<name>` entry has besides the evaluator's own settings.
COMMON_FIELDS = {"type": None, "at_end": True, "every_epochs": 0.0}


# A column's `role`: an accuracy under attack at the evaluation's main radius (the report plots
# these against corruption robustness).
ROBUST_ACCURACY = "robust_accuracy"


@dataclasses.dataclass(frozen=True)
class Column:
  """One summary column an evaluator contributes to `freqrobust.report`: the metric (the key in
  its result dict, without the `<name>/` prefix), a label, the convention it follows and whether
  higher is better. `interval`: the evaluator also records the metric's 95% interval as
  `<metric>_lo` and `<metric>_hi` (the report shows it beside the figure); `role`: what the
  figure is, for the report's figures ("" or `ROBUST_ACCURACY`)."""
  metric: str
  label: str
  convention: str
  higher_is_better: bool = True
  interval: bool = False
  role: str = ""


class Context:
  """What an evaluation gets: the loaded model, the run's config and workdir, the step, and the
  test set (loaded once, shared by every evaluation of a call)."""

  def __init__(self, model, workdir: str, *, test_set: Optional[Tuple[np.ndarray, np.ndarray]]
               = None, progress: bool = True, write_files: bool = True,
               out_root: Optional[str] = None):
    self.model = model
    self.config = model.config
    self.workdir = workdir
    self.step = int(model.step)
    self.progress = progress
    # False for in-loop evaluations (scalars only) and on every process but process 0 of a
    # multi-process run (one process writes; all compute).
    from freqrobust import distributed
    self.write_files = write_files and distributed.is_writer()
    self.out_root = out_root or workdir  # Where output folders go (per step for kept steps).
    self._test_set = test_set
    self.metrics: Dict[str, Any] = {}  # `<name>/<metric>` of the evaluations run so far.

  def test_set(self) -> Tuple[np.ndarray, np.ndarray]:
    """(uint8 NHWC images, int labels) of the run's test split, every example."""
    if self._test_set is None:
      from freqrobust import data as data_lib
      self._test_set = data_lib.load_split(self.config.data, "test")
    return self._test_set

  def first_examples(self, num_examples: int) -> Tuple[np.ndarray, np.ndarray]:
    """(float32 images in [0, 1], labels) of the first `num_examples` test examples (0 = all)."""
    images, labels = self.test_set()
    n = min(num_examples or len(images), len(images))
    return np.asarray(images[:n], np.float32) / 255.0, np.asarray(labels[:n])


class Evaluator:
  """Base class. Subclasses set `type`, `columns`, `defaults` (their own settings with default
  values) and implement `run`. `settings` holds the defaults overridden by the config entry."""
  type: ClassVar[str] = ""
  columns: ClassVar[Tuple[Column, ...]] = ()
  defaults: ClassVar[Mapping[str, Any]] = {}
  # The output folder under the run's folder; None = evals/<name>.
  folder: ClassVar[Optional[str]] = None
  # A top-level key of results.json that also holds this evaluation's metrics (the clean
  # evaluation's "clean", which readers of results.json have always found there); None: none.
  results_key: ClassVar[Optional[str]] = None

  def __init__(self, name: str, settings: Mapping[str, Any]):
    self.name = name
    self.settings = dict(settings)

  def metric_columns(self) -> Tuple[Column, ...]:
    """The report's columns for this entry (`columns`, unless they depend on the settings)."""
    return self.columns

  def out_dir(self, context: Context) -> str:
    if self.folder == ".":
      return context.out_root
    return workdir_lib.path(context.out_root, self.folder or f"evals/{self.name}")

  def key(self, config) -> Dict[str, Any]:
    """The settings a stored result must match to be reused (default: all of its own)."""
    del config
    return dict(self.settings)

  def check(self, config) -> None:
    """Raises UserError for settings that cannot work with this run's config (before training)."""
    del config

  def run(self, context: Context) -> Dict[str, float]:
    raise NotImplementedError

  def reread(self, context: Context) -> Optional[Dict[str, float]]:
    """The metrics summarised afresh from this evaluation's stored per-example results, running
    nothing (so a correction to the summary or its checks reaches a finished evaluation); None
    where the evaluator keeps no such results or they are incomplete."""
    del context
    return None


def settings_digest(settings: Mapping[str, Any]) -> str:
  text = json.dumps(workdir_lib.to_jsonable(dict(settings)), sort_keys=True)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def entry_settings(name: str, entry: Mapping[str, Any], cls: type) -> Tuple[Dict, Dict]:
  """(common fields, the evaluator's settings) of `config.evals.<name>`; unknown fields fail."""
  entry = dict(entry)
  unknown = sorted(set(entry) - set(COMMON_FIELDS) - set(cls.defaults))
  if unknown:
    raise UserError(f"config.evals.{name} has unknown field(s) {unknown}; an evaluation of type "
                    f"{cls.type!r} takes {sorted(set(COMMON_FIELDS) | set(cls.defaults))}.")
  common = {k: entry.get(k, v) for k, v in COMMON_FIELDS.items()}
  every = common["every_epochs"]
  if isinstance(every, bool) or not isinstance(every, (int, float)) or every < 0:
    raise UserError(f"config.evals.{name}.every_epochs={every!r} is invalid: a number >= 0 "
                    "(0 = at the end only).")
  if not isinstance(common["at_end"], bool):
    raise UserError(f"config.evals.{name}.at_end={common['at_end']!r} is invalid: true or false.")
  settings = {k: entry.get(k, v) for k, v in cls.defaults.items()}
  for k, v in settings.items():  # Lists from JSON stand for the tuples of the defaults.
    if isinstance(v, list):
      settings[k] = tuple(v)
  return common, settings
