"""One run of a sweep: its name, where the runs are, and what a finished run recorded.

A run's workdir is named `<args>_seed-N`: its config arguments in their order with `seed=N` last,
`,` written `_` and `=` written `-` (`natural,cpu,seed=0` -> `natural_cpu_seed-0`). `name_of`
writes it, `parse_name` reads it back into the group (the name without the seed: what seeds are
averaged over) and the seed; sweeps before 2026-11-30 put `seed=N` before `cpu`
(`natural_seed-0_cpu`, `legacy_name_of`), which parses to the same group and seed. `find` lists
the runs under a root; `RunRecord` is what the report reads from one finished run.
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Dict, List, Optional, Tuple

from freqrobust import workdir as workdir_lib

# `_seed-N` as a whole token: at the end of the name or before the next `_`.
_SEED = re.compile(r"_seed-(\d+)(?=_|$)")


@dataclasses.dataclass(frozen=True)
class RunName:
  """A run's name, parsed: `group` is the name without `_seed-N` (the runs of a group differ
  only in their seed), `seed` None for a name without one."""
  name: str
  group: str
  seed: Optional[int]


def name_of(arg: str) -> str:
  """The workdir name of the run of config arguments `arg` (`a,b,seed=N`): its arguments in their
  order, `seed=N` last, so that `natural,cpu,seed=0` and `natural,seed=0,cpu` name one run
  (`natural_cpu_seed-0`)."""
  return _join(_seed_last(arg.split(",")))


def legacy_name_of(arg: str) -> str:
  """The name sweeps before 2026-11-30 gave a `--table ... --cpu` run: `seed=N` before `cpu`
  (`natural_seed-0_cpu`)."""
  parts = arg.split(",")
  return _join(_seed_last([p for p in parts if p != "cpu"]) + ["cpu"] * ("cpu" in parts))


def _seed_last(parts: List[str]) -> List[str]:
  return [p for p in parts if not p.startswith("seed=")] + [p for p in parts
                                                            if p.startswith("seed=")]


def _join(parts: List[str]) -> str:
  return "_".join(parts).replace("=", "-")


def parse_name(name: str) -> RunName:
  """The group and seed of a run name of either scheme (`natural_cpu_seed-0` and
  `natural_seed-0_cpu` are both group `natural_cpu`, seed 0)."""
  found = _SEED.search(name)
  return RunName(name=name, group=_SEED.sub("", name),
                 seed=int(found.group(1)) if found else None)


def find(root: str) -> List[Tuple[RunName, str]]:
  """(name, workdir) of every run under `root` (its folders holding a results.json), sorted by
  name."""
  if not os.path.isdir(root):
    raise workdir_lib.UserError(f"{root} is not a folder of runs (a sweep's --root).")
  return [(parse_name(name), os.path.join(root, name)) for name in sorted(os.listdir(root))
          if os.path.exists(os.path.join(root, name, workdir_lib.RESULTS))]


@dataclasses.dataclass
class RunRecord:
  """What the report reads of one finished run: figures only of the run's final model.

  `clean` is None when the run's clean evaluation is of another model or step; `table`
  (corruption -> severity -> accuracy) None without a corruption evaluation of the final model
  over the 15 benchmark corruptions; `sets` the corrupted sets it was measured on
  (`workdir.CORRUPTED_SET_FIELDS`); `corrupted_clean` the clean accuracy on the images those
  sets were made from. `metrics` holds the other evaluations' scalars (`<evaluation>/<metric>`)
  and `columns` the columns the run's evaluators declare for them. `stale` says why the run
  trained otherwise than the current code would (its row is kept apart); `left_out` names the
  evaluations recorded with other settings than the current code runs, `other_model` those of
  another model or step than the final one: neither is shown, each is listed with the command
  that redoes it."""
  workdir: str
  name: RunName
  clean: Optional[float]
  model: str = ""
  dataset: str = ""
  natural: bool = False
  table: Optional[Dict[str, Dict[int, float]]] = None
  sets: Optional[Dict] = None
  corrupted_clean: Optional[float] = None
  images_per_s: Optional[float] = None
  metrics: Dict[str, float] = dataclasses.field(default_factory=dict)
  columns: Dict[str, Dict] = dataclasses.field(default_factory=dict)
  stale: List[str] = dataclasses.field(default_factory=list)
  left_out: List[str] = dataclasses.field(default_factory=list)
  other_model: List[str] = dataclasses.field(default_factory=list)

  @property
  def backbone(self) -> str:
    """What its row is compared within: the backbone and the dataset."""
    return f"{self.model} on {self.dataset}"
