"""The report's rows: runs grouped over seeds and compared with the baseline of their backbone.

`aggregate(records) -> [Row]` is pure: it reads `runs.RunRecord`s (built in memory by a test, or
by `records.load_runs` from a root) and writes nothing. A row holds one `Stat` (mean, sample
standard deviation over seeds (ddof = 1), seed count, difference to the baseline) per figure it
has; `render.COLUMNS` declares how each is shown.
"""
import dataclasses
import re
from typing import Dict, List, Optional, Set, Tuple

import numpy as np

from freqrobust import metrics
from freqrobust import workdir as workdir_lib
from freqrobust.corruptions import CORRUPTIONS
from freqrobust.runs import RunRecord


@dataclasses.dataclass(frozen=True)
class Stat:
  """A figure of a row over its seeds: `delta` is the difference of `mean` to the baseline's
  (None where the baseline lacks it); `std` the sample std (0 for one seed, whose spread is
  unknown: shown as nothing). `lo`, `hi`: the 95% interval of an accuracy over the test images
  where its evaluator declares one (`evaluators.base.Column.interval`): a single seed's own
  interval, and for several seeds the range of the seeds' intervals (the lowest lower bound to
  the highest upper bound; `intervals_of`); None otherwise."""
  mean: float
  std: float = 0.0
  seeds: int = 1
  delta: Optional[float] = None
  lo: Optional[float] = None
  hi: Optional[float] = None


@dataclasses.dataclass
class Row:
  """One row of the tables: a group of runs (one run per seed). `stats` holds the report's own
  figures by key (`render.COLUMNS`), `metrics` the evaluations' scalars (`<evaluation>/<metric>`)
  and `columns` the columns the runs' evaluators declare for them; a baseline row carries the
  corrupted sets its figures were measured on (`sets`)."""
  name: str
  seeds: int
  baseline: bool
  baseline_of: str
  stats: Dict[str, Stat] = dataclasses.field(default_factory=dict)
  metrics: Dict[str, Stat] = dataclasses.field(default_factory=dict)
  columns: Dict[str, Dict] = dataclasses.field(default_factory=dict)
  sets: Optional[Dict] = None
  stale: Dict[str, int] = dataclasses.field(default_factory=dict)
  other_sets: List[str] = dataclasses.field(default_factory=list)
  left_out: List[str] = dataclasses.field(default_factory=list)
  other_model: List[str] = dataclasses.field(default_factory=list)


def aggregate(records: List[RunRecord], baseline: Optional[str] = None) -> List[Row]:
  """Rows of the tables; each run is compared with the baseline group of its own backbone (the
  natural-training group, read from the runs' config.json, or the group named by `baseline`)."""
  groups: Dict[str, List[RunRecord]] = {}
  for r in records:  # Stale runs form a row of their own, never averaged with fresh ones.
    groups.setdefault(r.name.group + (" (stale)" if r.stale else ""), []).append(r)
  if not groups:
    raise workdir_lib.UserError("No finished runs to report.")
  model_of = {g: backbone_of(runs) for g, runs in groups.items()}
  base_of_model = _baseline_groups(groups, model_of, baseline)
  # Differences, mCE and Relative mCE compare a run with its baseline on the same corrupted sets.
  base_sets = {model: _merged_sets(name, groups[name]) for model, name in base_of_model.items()}
  other_sets = _split_other_sets(groups, model_of, base_of_model, base_sets)
  stats = {model: _baseline_stats(name, groups[name], base_sets[model])
           for model, name in base_of_model.items()}
  rows = []
  for name, runs in groups.items():
    model = model_of.get(name.replace(" (other sets)", ""), model_of.get(name))
    if model not in stats:
      raise workdir_lib.UserError(
          f"No baseline for {name} ({model}): the baselines are "
          + ", ".join(f"{b['name']} ({m})" for m, b in stats.items())
          + ". Add natural-training runs of that backbone, or pass --baseline=TOKEN.")
    rows.append(_row(name, runs, stats[model], other_sets))
  rows.sort(key=lambda r: (r.baseline_of, not r.baseline, r.name))
  return rows


def backbone_of(runs: List[RunRecord]) -> str:
  """The backbone (and dataset) a group's runs trained: what its rows are compared within."""
  found = sorted({r.backbone for r in runs})
  return found[0] if len(found) == 1 else " / ".join(found)


def _baseline_groups(groups: Dict[str, List[RunRecord]], model_of: Dict[str, str],
                     baseline: Optional[str]) -> Dict[str, str]:
  """backbone -> its baseline group; a backbone with two is an error naming both."""
  if baseline:
    candidates = [g for g in groups if re.search(rf"(^|_){re.escape(baseline)}($|_)", g)]
    what = f"whose name contains {baseline!r}"
  else:
    candidates = [g for g, runs in groups.items()
                  if all(r.natural for r in runs) and "(stale)" not in g]
    what = "of natural training (by their config.json)"
  base_of_model: Dict[str, str] = {}
  for g in candidates:
    if model_of[g] in base_of_model:
      raise workdir_lib.UserError(
          f"Two baseline groups {what} for {model_of[g]}: {base_of_model[model_of[g]]} and {g}; "
          "name one with --baseline=TOKEN.")
    base_of_model[model_of[g]] = g
  if not base_of_model:
    raise workdir_lib.UserError(
        f"No baseline group {what} among the runs; groups: {', '.join(groups)}. Pass "
        "--baseline=TOKEN (a token of the baseline's run name).")
  return base_of_model


def describe_sets(sets: Optional[Dict]) -> str:
  if not sets:
    return "no corruption evaluation"
  known = lambda k: "?" if sets.get(k) is None else sets[k]
  return (f"{known('dataset')} ({known('source')}), {known('num_examples')} images per set, "
          f"generation seed {known('seed')}, recipe version {known('recipe_version')}, "
          f"frost: {known('frost')}")


def reevaluate_note() -> str:
  from freqrobust.corruptions import RECIPE_VERSION
  return ("Evaluate the baseline and the runs compared with it on the same sets: re-evaluate the "
          f"older side (the current code generates recipe version {RECIPE_VERSION}), every seed "
          "of it, with python -m freqrobust.evaluate --workdir=DIR.")


def _merged_sets(name: str, runs: List[RunRecord]) -> Optional[Dict]:
  """The corrupted sets of a baseline group: every field's known value across its seeds. Seeds
  that saw different sets cannot be averaged into one reference: refused, naming them."""
  with_sets = [r for r in runs if r.sets]
  for i, a in enumerate(with_sets):
    for b in with_sets[i + 1:]:
      if workdir_lib.corrupted_set_differences(a.sets, b.sets):
        raise ValueError(
            f"The baseline runs of {name} were evaluated on different corrupted sets "
            f"({a.workdir}: {describe_sets(a.sets)}; {b.workdir}: "
            f"{describe_sets(b.sets)}). {reevaluate_note()}")
  if not with_sets:
    return None
  return {k: next((r.sets[k] for r in with_sets if r.sets.get(k) is not None), None)
          for k in workdir_lib.CORRUPTED_SET_FIELDS}


def _split_other_sets(groups, model_of, base_of_model, base_sets) -> Dict[str, List[str]]:
  """Moves the runs evaluated on other corrupted sets than their baseline into a group of their
  own, "<group> (other sets)" (compared on clean accuracy only), in place; returns workdir ->
  the differences."""
  other_sets: Dict[str, List[str]] = {}
  for name in [g for g in groups if g not in base_of_model.values()]:
    model = model_of[name]
    if model not in base_sets:
      continue  # Refused by `aggregate`, naming the baselines there are.
    for r in groups[name]:
      other_sets[r.workdir] = [
          f"{k}: {r.sets.get(k)!r} (baseline {base_sets[model].get(k)!r})"
          for k in workdir_lib.corrupted_set_differences(base_sets[model], r.sets)]
    other = [r for r in groups[name] if other_sets[r.workdir]]
    if other:
      groups[name] = [r for r in groups[name] if r not in other]
      if not groups[name]:
        del groups[name]
      groups.setdefault(name + " (other sets)", []).extend(other)
  return other_sets


def _baseline_stats(name: str, base: List[RunRecord], sets: Optional[Dict]) -> Dict:
  """The baseline group's seed means that the other rows are compared with."""
  with_c = [r for r in base if r.table]
  rates = [r.images_per_s for r in base if r.images_per_s]
  cleans = [r.clean for r in base if r.clean is not None]
  return dict(
      name=name, clean=float(np.mean(cleans)) if cleans else None, sets=sets,
      metrics={k: float(np.mean(v)) for k, v in _metric_values(base).items()},
      corrupted_clean=(float(np.mean([r.corrupted_clean for r in with_c]))
                       if with_c and all(r.corrupted_clean is not None for r in with_c)
                       else None),
      images_per_s=float(np.mean(rates)) if rates else None,
      robust=(float(np.mean([metrics.robust_accuracy(r.table, CORRUPTIONS) for r in with_c]))
              if with_c else None),
      # The baseline's seed-mean accuracy table: each run's mCE is taken against it.
      table=({c: {s: float(np.mean([r.table[c][s] for r in with_c]))
                  for s in metrics.SEVERITIES} for c in CORRUPTIONS} if with_c else None))


def _std(values) -> float:
  """Sample standard deviation over seeds (ddof = 1); 0 for a single seed."""
  return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _stat(values, base_mean: Optional[float] = None, delta: bool = True) -> Stat:
  mean = float(np.mean(values))
  return Stat(mean, _std(values), len(values),
              mean - base_mean if delta and base_mean is not None else None)


def _row(name: str, runs: List[RunRecord], base: Dict, other_sets: Dict[str, List[str]]) -> Row:
  stale: Dict[str, int] = {}
  for r in runs:
    for note in r.stale:
      stale[note] = stale.get(note, 0) + 1
  row = Row(name=name, seeds=len(runs), baseline=name == base["name"], baseline_of=base["name"],
            stale=stale, other_sets=sorted({d for r in runs for d in other_sets.get(r.workdir, ())}),
            left_out=[n for r in runs for n in r.left_out],
            other_model=[n for r in runs for n in r.other_model])
  if row.baseline:
    row.sets = base["sets"]
  for r in runs:
    row.columns.update(r.columns)
  cleans = [r.clean for r in runs if r.clean is not None]
  if cleans:
    row.stats["clean"] = _stat(np.array(cleans), base["clean"])
  rates = [r.images_per_s for r in runs if r.images_per_s]
  if rates:  # Cost: training speed, and as a fraction of the baseline's.
    row.stats["images_per_s"] = _stat(rates, delta=False)
    if base["images_per_s"]:
      row.stats["relative_speed"] = Stat(row.stats["images_per_s"].mean / base["images_per_s"],
                                         seeds=len(rates))
  tabled = [r for r in runs if r.table]
  if tabled and base["robust"] is not None and not row.other_sets:
    row.stats.update(_corruption_stats(tabled, base))
  intervals, bounds = intervals_of(runs, row.columns)
  for key, values in _metric_values(runs).items():
    if key in bounds:
      continue  # An interval's bound: shown with its figure (`Stat.lo`, `Stat.hi`).
    lo, hi = intervals.get(key, (None, None))
    row.metrics[key] = dataclasses.replace(_stat(values, base["metrics"].get(key)), lo=lo, hi=hi)
  return row


def intervals_of(runs: List[RunRecord], columns: Dict[str, Dict]
                 ) -> Tuple[Dict[str, Tuple[float, float]], Set[str]]:
  """({key: (lo, hi)}, the bound keys) of the figures whose column declares an interval (the
  evaluation records `<key>_lo` and `<key>_hi`, which are no figures of their own), over the runs
  that recorded the figure: one run's own interval, several runs' range (min lo, max hi: seeds on
  the same test images share its binomial error, so the interval of a pooled count would be too
  narrow, and a mean of intervals is no interval); none when a run recorded the figure without
  its bounds."""
  intervals: Dict[str, Tuple[float, float]] = {}
  bounds: Set[str] = set()
  for key, column in columns.items():
    if not column.get("interval"):
      continue
    bounds.update((f"{key}_lo", f"{key}_hi"))
    recorded = [r.metrics for r in runs if key in r.metrics]
    if recorded and all(f"{key}_lo" in m and f"{key}_hi" in m for m in recorded):
      intervals[key] = (min(float(m[f"{key}_lo"]) for m in recorded),
                        max(float(m[f"{key}_hi"]) for m in recorded))
  return intervals, bounds


def _metric_values(runs: List[RunRecord]) -> Dict[str, List[float]]:
  values: Dict[str, List[float]] = {}
  for r in runs:
    for k, v in r.metrics.items():
      values.setdefault(k, []).append(float(v))
  return values


def _corruption_stats(tabled: List[RunRecord], base: Dict) -> Dict[str, Stat]:
  """Robust., the mCEs, Robust. without the background-lifting corruptions, and accuracy per
  corruption family and per severity of the runs with a corruption table."""
  tables = [r.table for r in tabled]
  without_bg = [c for c in CORRUPTIONS if c not in metrics.BACKGROUND_LIFTING]
  out = {"robust": _stat(np.array([metrics.robust_accuracy(t, CORRUPTIONS) for t in tables]),
                         base["robust"]),
         "mce_unnorm": _stat(np.array([metrics.mce_unnormalized(t, CORRUPTIONS) for t in tables]),
                             delta=False),
         "robust_no_bg": _stat(np.array([metrics.robust_accuracy(t, without_bg) for t in tables]),
                               metrics.robust_accuracy(base["table"], without_bg))}
  # Per-corruption ratios (metrics.mce_relative); undefined (n/a) where the baseline makes no
  # error on a corruption.
  if not metrics.baseline_without_error(base["table"], CORRUPTIONS):
    out["mce"] = _stat(np.array([metrics.mce_relative(t, base["table"], CORRUPTIONS)
                                 for t in tables]), delta=False)
  # Hendrycks & Dietterich's Relative mCE (degradation from each model's own clean error).
  if (base["corrupted_clean"] is not None
      and all(r.corrupted_clean is not None for r in tabled)
      and not metrics.baseline_without_degradation(base["table"], base["corrupted_clean"],
                                                    CORRUPTIONS)):
    out["relative_mce_hd"] = _stat(np.array([
        metrics.relative_mce_hd(r.table, r.corrupted_clean, base["table"],
                                base["corrupted_clean"], CORRUPTIONS) for r in tabled]),
                                   delta=False)
  base_cat = metrics.accuracy_by_category(base["table"])
  for cat in base_cat:
    out[cat] = _stat([metrics.accuracy_by_category(t)[cat] for t in tables], base_cat[cat])
  for s in metrics.SEVERITIES:
    out[f"severity{s}"] = _stat([metrics.accuracy_by_severity(t, CORRUPTIONS)[s]
                                 for t in tables], delta=False)
  return out
