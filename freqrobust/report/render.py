"""The report's tables, written from the rows' declared columns: table.md (the main table, the
corruption detail, the evaluations' table and the notes) and table.csv.

A figure of the report is one `Column` in `COLUMNS` (its `Row.stats` key, label, markdown table
and cell style, CSV parts); an evaluation's scalars are declared by its evaluator
(`base.Evaluator.columns`) and need nothing here.
"""
import csv
import dataclasses
from typing import Dict, List, Optional, Tuple

from freqrobust import metrics
from freqrobust import workdir as workdir_lib
from freqrobust.corruptions import CORRUPTIONS
from freqrobust.report.aggregate import Row, Stat, describe_sets, reevaluate_note


@dataclasses.dataclass(frozen=True)
class Column:
  """One figure of the report. `key`: its `Row.stats` key (or, with `attr`, a `Row` field);
  `csv`: the CSV fields `<key>_<part>` it writes (part "" writes `<key>` with the mean); `table`
  (1: main, 2: corruption detail, 0: CSV only) and `order`: where table.md shows it, under
  `label`, as `cell` says: "vs_base" (baseline absolute in parentheses, the rest as differences,
  ± std), "spread" (mean ± std with `digits`), "family" (like vs_base without std; only when
  some row has it), "absolute" (the mean), "speed" (images/s and its ratio to the baseline's)."""
  key: str
  csv: Tuple[str, ...] = ("mean", "std", "delta")
  table: int = 0
  order: int = 0
  label: str = ""
  cell: str = "vs_base"
  digits: int = 2
  attr: bool = False


# In table.csv's order.
COLUMNS: Tuple[Column, ...] = (
    Column("name", ("",), attr=True), Column("seeds", ("",), attr=True),
    Column("baseline", ("",), attr=True),
    Column("clean", table=1, order=0, label="Acc. (%)"),
    Column("images_per_s", ("",), table=1, order=3, label="train images/s (x baseline)",
           cell="speed"),
    Column("relative_speed", ("",)),
    Column("robust", table=1, order=1, label="Robust. (%)"),
    Column("mce", ("mean", "std"), table=1, order=2, label="mCE (vs base, %)", cell="spread",
           digits=0),
    Column("mce_unnorm", ("mean", "std"), table=2, order=0, label="mCE (unnorm., %)",
           cell="spread"),
    Column("relative_mce_hd", ("mean", "std"), table=2, order=1, label="Rel. mCE (H&D, %)",
           cell="spread", digits=0),
    Column("robust_no_bg", table=2, order=2, label="Robust. w/o bg (%)"),
    Column("other_sets", ("",), attr=True),
    *(Column(c, ("mean", "delta"), table=2, order=3 + i, label=f"{c} (%)", cell="family")
      for i, c in enumerate(metrics.CATEGORIES)),
    *(Column(f"severity{s}", ("mean",), table=2, order=10 + s, label=f"s{s} (%)",
             cell="absolute") for s in metrics.SEVERITIES),
)


def _pm(std, seeds: int, digits: int = 2) -> str:
  """" ± std", or nothing for a single seed (its spread is unknown, not zero)."""
  return f" ± {std:.{digits}f}" if seeds > 1 else ""


def vs_base(stat: Optional[Stat], is_base: bool) -> str:
  """The baseline absolute (in parentheses), the rest as differences to it, ± std over seeds;
  absolute where the baseline lacks the figure."""
  if stat is None:
    return "n/a"
  if is_base or stat.delta is None:
    return f"({stat.mean:.2f}{_pm(stat.std, stat.seeds)})"
  return f"{stat.delta:+.2f}{_pm(stat.std, stat.seeds)}"


def cell(column: Column, row: Row) -> str:
  """The markdown cell of `column` in `row`."""
  stat = row.stats.get(column.key)
  if stat is None:
    return "n/a"
  if column.cell == "vs_base":
    return vs_base(stat, row.baseline)
  if column.cell == "spread":
    return f"{stat.mean:.{column.digits}f}{_pm(stat.std, stat.seeds, column.digits)}"
  if column.cell == "family":
    return f"({stat.mean:.2f})" if row.baseline or stat.delta is None else f"{stat.delta:+.2f}"
  if column.cell == "speed":
    ratio = row.stats.get("relative_speed")
    return f"{stat.mean:.0f}" + (f" ({ratio.mean:.2f}x)" if ratio else "")
  return f"{stat.mean:.2f}"


def _table(rows: List[Row], table: int, first: List[str], lead) -> List[str]:
  """A markdown table of the columns declared for `table` (a "family" column only when some row
  has it); `first` heads the leading cells `lead(row)`."""
  columns = sorted((c for c in COLUMNS if c.table == table and (
      c.cell != "family" or any(c.key in r.stats for r in rows))), key=lambda c: c.order)
  head = first + [c.label for c in columns]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in rows:
    lines.append("| " + " | ".join(lead(r) + [cell(c, r) for c in columns]) + " |")
  return lines


def markdown(rows: List[Row]) -> List[str]:
  """table.md's lines."""
  lines = _table(rows, 1, ["run", "seeds"], lambda r: [r.name, str(r.seeds)])
  lines += ["", "Baseline in absolute values (parentheses), the rest as differences to it; "
            "mean ± sample standard deviation over seeds (no ± with one seed). Robust. = mean "
            f"accuracy over the {len(CORRUPTIONS)} benchmark corruptions x 5 severities; "
            "mCE (vs base) = 100 * mean_c [sum_s E(c, s) / sum_s E_baseline(c, s)], the mean over "
            f"the {len(CORRUPTIONS)} benchmark corruptions of per-corruption error ratios against "
            "the baseline of the same backbone (the paper's mCE: Hendrycks & Dietterich's mCE "
            "with the baseline in AlexNet's place; not their Relative mCE, which is in the "
            "second table). "
            f"{len(CORRUPTIONS)} corruptions averaged; the extras are not. Train images/s: the "
            "median logged training rate (metrics.jsonl) averaged over seeds, and its ratio to "
            "the baseline's (the cost of the method: 0.5x = twice the training time); measured "
            "wherever each run ran, so compare rows from one machine."]
  lines += _detail_lines(rows)
  lines += _evaluation_lines(rows)
  lines += _rank_lines(rows)
  lines += _sets_lines(rows)
  lines += _stale_lines(rows)
  lines += _left_out_lines(rows)
  return lines


def _detail_lines(rows: List[Row]) -> List[str]:
  """The second table: unnormalised mCE, Robust. without the background-lifting corruptions,
  per family (differences to the baseline) and per severity (absolute)."""
  detailed = [r for r in rows if "mce_unnorm" in r.stats]
  if not detailed:
    return []
  lines = [""] + _table(detailed, 2, ["run"], lambda r: [r.name])
  lines += ["", "mCE (unnorm.) = mean_c CE_c (AugMix / PRIME convention). Rel. mCE (H&D) = "
            "Hendrycks & Dietterich's Relative mCE, 100 * mean_c [sum_s (E(c, s) - E_clean) / "
            "sum_s (E_baseline(c, s) - E_baseline_clean)], with E_clean the clean error on the "
            "images the corrupted sets were made from (baseline = 100; below 100: the model loses "
            "less under corruption than the baseline does). Robust. w/o bg leaves "
            f"out {', '.join(metrics.BACKGROUND_LIFTING)} (they lift a black background). "
            "Families (Hendrycks & Dietterich): " + "; ".join(
                f"{c}: {', '.join(n)}" for c, n in metrics.CATEGORIES.items()) +
            ". s1..s5: mean accuracy over the benchmark corruptions at each severity."]
  return lines


def declared_columns(rows: List[Row]) -> Dict[str, Dict]:
  """The evaluators' declared columns over every row."""
  columns: Dict[str, Dict] = {}
  for r in rows:
    columns.update(r.columns)
  return columns


def _evaluation_lines(rows: List[Row]) -> List[str]:
  """The third table: every other scalar the runs' evaluations recorded (`<evaluation>/<metric>`,
  labelled as the evaluator declares; undeclared ones under their key), baseline absolute."""
  columns = declared_columns(rows)
  present = {k for r in rows for k in r.metrics}
  # The columns the evaluators declare (every recorded scalar is in table.csv).
  keys = sorted(present & set(columns)) if columns else sorted(present)
  if not keys:
    return []
  label = lambda k: columns.get(k, {}).get("label", k)
  lines = ["", "| run | " + " | ".join(label(k) for k in keys) + " |",
           "|---|" + "---|" * len(keys)]
  for r in rows:
    lines.append(f"| {r.name} | " + " | ".join(
        vs_base(r.metrics.get(k), r.baseline) + interval(r.metrics.get(k)) for k in keys) + " |")
  notes = [f"{label(k)}: {columns[k]['convention']}"
           + ("" if columns[k]["higher_is_better"] else " (lower is better)")
           for k in keys if k in columns]
  lines += ["", "Other evaluations (results.json \"metrics\"), baseline absolute, the rest as "
            "differences to it. " + "; ".join(notes) + ("." if notes else "")]
  if any(interval(r.metrics.get(k)) for r in rows for k in keys):
    lines[-1] += " " + INTERVAL_NOTE
  return lines


# Pairs of figures whose rankings of the rows are compared (`_rank_lines`): a `Row.stats` key or
# an evaluation's `<evaluation>/<metric>`. The two kinds of corruption robustness (random, and
# chosen by an adversary: Kaufmann et al.'s UA mean) and the L-inf robust accuracy.
RANK_PAIRS = (("robust", "adversarial_corruptions/ua_mean"),
              ("adversarial_corruptions/ua_mean", "adversarial/worst_main"),
              ("robust", "adversarial/worst_main"))


def _rank_lines(rows: List[Row]) -> List[str]:
  """Spearman's rho between the rows' rankings by each pair of `RANK_PAIRS`, over the rows that
  have both figures (at least 3), on their means over seeds."""
  columns = declared_columns(rows)

  def value(row, key):
    stat = row.stats.get(key) if "/" not in key else row.metrics.get(key)
    return None if stat is None else stat.mean

  def label(key):
    return "Robust." if key == "robust" else columns.get(key, {}).get("label", key)
  parts = []
  for a, b in RANK_PAIRS:
    both = [(value(r, a), value(r, b)) for r in rows]
    both = [p for p in both if None not in p]
    if len(both) >= 3:
      rho = metrics.spearman([p[0] for p in both], [p[1] for p in both])
      parts.append(f"{label(a)} against {label(b)}: {rho:+.2f} over {len(both)} rows")
  if not parts:
    return []
  return ["", "Rank agreement (Spearman's rho between the rows' rankings, on the means over "
          "seeds; +1 the same order, -1 the reverse; with few rows one swap moves it a lot): "
          + "; ".join(parts) + "."]


# The convention of `interval` (`aggregate.intervals_of`).
INTERVAL_NOTE = ("[lo, hi]: the accuracy's 95% interval over the test images (Wilson, absolute "
                 "percent, also beside a difference), the binomial error that the spread over "
                 "seeds on the same images does not show; with several seeds the range of the "
                 "seeds' intervals, from the lowest lower bound to the highest upper bound.")


def interval(stat: Optional[Stat]) -> str:
  """" [lo, hi]" of a figure with a 95% interval (`Stat.lo`, `Stat.hi`), else nothing."""
  if stat is None or stat.lo is None or stat.hi is None:
    return ""
  return f" [{stat.lo:.2f}, {stat.hi:.2f}]"


def _sets_lines(rows: List[Row]) -> List[str]:
  """Which corrupted sets the figures were measured on, and the rows measured on others."""
  from freqrobust.corruptions import RECIPE_VERSION
  lines = [""]
  for r in [r for r in rows if r.baseline]:
    note = ""
    if (r.sets and r.sets.get("source") != "tfds"
        and r.sets.get("recipe_version") not in (None, RECIPE_VERSION)):
      note = (f" (the current code generates recipe version {RECIPE_VERSION}: new runs will "
              "be evaluated on other sets and form rows marked \"(other sets)\")")
    lines.append(f"Corrupted sets of {r.name}: {describe_sets(r.sets)}{note}.")
  others = [r for r in rows if r.other_sets]
  for r in others:
    lines.append(f"- {r.name}: evaluated on other corrupted sets than its baseline ("
                 + "; ".join(r.other_sets) + "): only its clean accuracy is compared.")
  if others:
    lines.append(reevaluate_note())
  return lines


def _stale_lines(rows: List[Row]) -> List[str]:
  """The runs that trained otherwise than the current code would at their settings."""
  stale = [r for r in rows if r.stale]
  if not stale:
    return []
  lines = ["", "Stale rows: these runs trained differently from what the current code does at "
           "the same settings (kept apart from fresh seeds of the same run); rerun them in a "
           "fresh root to measure the method as it is now."]
  for r in stale:
    for note, count in r.stale.items():
      lines.append(f"- {r.name}: {count} of {r.seeds} run(s) {note}.")
  return lines


def _left_out_lines(rows: List[Row]) -> List[str]:
  """The evaluations not shown: recorded with other settings than the current code runs, or of
  another model or step than the run's final one."""
  lines = []
  if any(r.left_out for r in rows):
    lines += ["", "Evaluations left out: recorded with other settings than the current code runs "
              "for these runs' configs, so their figures are not shown under the columns above "
              "(whose seed counts say how many runs each figure averages); re-evaluate with:"]
    lines += [f"- {r.name}: {n}" for r in rows for n in r.left_out]
  if any(r.other_model for r in rows):
    lines += ["", "Evaluations of another model left out: recorded for another model or step "
              "than the run's final one (results.json \"model\" and \"step\"), so their figures "
              "are not shown under the columns above (whose seed counts say how many runs each "
              "figure averages); re-evaluate with:"]
    lines += [f"- {r.name}: {n}" for r in rows for n in r.other_model]
  return lines


def _csv_value(column: Column, part: str, row: Row):
  if column.attr:
    got = getattr(row, column.key)
    return "; ".join(got) if isinstance(got, list) else got
  stat = row.stats.get(column.key) if "/" not in column.key else row.metrics.get(column.key)
  if stat is None or (part == "std" and stat.seeds < 2):  # A single seed's std is unknown.
    return ""
  got = getattr(stat, part or "mean")
  return "" if got is None else got


def write_csv(rows: List[Row], path: str) -> None:
  """table.csv: the declared columns, then every scalar the evaluations recorded
  (`<evaluation>/<metric>` mean, std and delta; lo and hi, the 95% interval, where declared)."""
  evaluated = sorted({k for r in rows for k in r.metrics})
  # A figure with a 95% interval in some row also writes `<key>_lo` and `<key>_hi`.
  with_interval = {k for r in rows for k, stat in r.metrics.items() if interval(stat)}
  parts = lambda k: ("mean", "std", "delta") + (("lo", "hi") if k in with_interval else ())
  columns = list(COLUMNS) + [Column(k, parts(k)) for k in evaluated]
  fields = [(c, p, c.key if not p else f"{c.key}_{p}") for c in columns for p in c.csv]

  def write(f):
    w = csv.writer(f)
    w.writerow([name for _, _, name in fields])
    for r in rows:
      w.writerow([_csv_value(c, p, r) for c, p, _ in fields])
  workdir_lib.atomic_write(path, write)


def write_markdown(rows: List[Row], path: str) -> None:
  workdir_lib.atomic_write(path, lambda f: f.write("\n".join(markdown(rows)) + "\n"))
