"""Aggregates a sweep into the paper's table layout.

  python -m freqrobust.report --root=runs/table3_cpu [--baseline=NAME] [--out=DIR]
      [--robustbench=DIR]

Runs are grouped by name without the seed (`table3_nfd_seed-1` -> `table3_nfd`: `runs.parse_name`);
a run's backbone and dataset come from its config.json. The baseline group of each backbone
(Tables 1-2 have two) is the one whose runs are natural training (no augmentation beyond crop and
flip, no attention: read from config.json), or with `--baseline` the group whose name contains
that token; it is shown in absolute values, every other group of that backbone as differences to
it (as Tables 1-4 do), each cell mean +- sample standard deviation (ddof = 1) over seeds. mCE is
the paper's mCE against the baseline (`metrics.mce_relative`: Hendrycks & Dietterich's mCE with the
baseline in AlexNet's place): per corruption CE_c^rel = sum_s E(c, s) / sum_s E_baseline(c, s),
mCE = 100 * mean_c CE_c^rel over the 15 benchmark corruptions, per seed against the baseline's
seed-mean accuracy table; the second table adds H&D's Relative mCE (`metrics.relative_mce_hd`).
Runs evaluated on other corrupted sets than their baseline (another dataset, source, number of
images or clean images; for generated sets also another recipe version, generation seed or frost
source) form rows marked "(other sets)", compared on clean accuracy only. Every figure is of the
run's final model (results.json "model" and "step"): a corruption evaluation of another model (an
older step, a retrained run) is left out and the run's row says so; any other evaluation of
another model, or recorded with other settings than the current code runs, is left out of the
columns and listed with the command that redoes it. Every other scalar the runs' evaluations
recorded (results.json "metrics", `<evaluation>/<metric>`) forms a third table, with the columns
the evaluators declare; a column declared with an interval (`evaluators.base.Column.interval`:
the adversarial evaluation's accuracies) shows its 95% interval [lo, hi] beside the figure, one
seed's own or several seeds' range (`aggregate.intervals_of`). Writes table.md, table.csv, a Figure 1(e)-style bar chart (robustness),
the gains per corruption family and, when the runs were attacked, Robust. against the robust
accuracies the evaluators declare; with `--robustbench=DIR`, each run's RobustBench submission
files (`export`).

The stages: `records.load_runs(root) -> [runs.RunRecord]` (reads the workdirs),
`aggregate.aggregate(records) -> [Row]` (pure), `render` (table.md and table.csv from the
declared columns, `render.COLUMNS`) and `figures`.
"""
import os
from typing import List, Optional

from absl import app, flags

from freqrobust.report import export, figures, render
from freqrobust.report.aggregate import Row, Stat, aggregate, backbone_of
from freqrobust.report.figures import adversarial_keys, robust_bar_heights
from freqrobust.report.records import (built_evaluators, is_natural, load_run, load_runs,
                                           stale_evaluations, stale_notes, training_rate)
from freqrobust.report.render import COLUMNS, Column


def define_flags(flag_values: Optional[flags.FlagValues] = None) -> None:
  """Defines the CLI flags (on absl's global FLAGS unless `flag_values` is given)."""
  fv = flags.FLAGS if flag_values is None else flag_values
  flags.DEFINE_string("root", None, "Folder holding one workdir per run (a sweep's --root).",
                      flag_values=fv)
  flags.DEFINE_string("baseline", None, "Runs whose name contains this token are the baseline "
                      "of their backbone (default: the natural-training runs, from their "
                      "config.json).", flag_values=fv)
  flags.DEFINE_string("out", "", "Output folder (default ROOT/report).", flag_values=fv)
  flags.DEFINE_string("robustbench", "", "Also write each run's RobustBench model_info JSON "
                      "(per threat model it was evaluated on) and the unaggregated corruption "
                      "CSV into this folder (DIR/<dataset>/<threat model>/<run>.json).",
                      flag_values=fv)
  flags.mark_flag_as_required("root", flag_values=fv)


def report_root(root: str, baseline: Optional[str] = None) -> List[Row]:
  """The rows of the finished runs under `root`."""
  return aggregate(load_runs(root), baseline)


def write(rows: List[Row], out: str) -> None:
  """table.md, table.csv and the figures of `rows` into `out`."""
  os.makedirs(out, exist_ok=True)
  render.write_markdown(rows, os.path.join(out, "table.md"))
  render.write_csv(rows, os.path.join(out, "table.csv"))
  figures.write_all(rows, out)


def main(argv, flag_values: Optional[flags.FlagValues] = None):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  values = flags.FLAGS if flag_values is None else flag_values
  if values.robustbench:  # A bad folder is named before any run is read.
    export.check_dir(values.robustbench)
  records = load_runs(values.root)
  rows = aggregate(records, values.baseline or None)
  out = values.out or os.path.join(values.root, "report")
  write(rows, out)
  with open(os.path.join(out, "table.md")) as f:
    print(f.read())
  print(f"Written to {out}/ (table.md, table.csv, robustness.png, category_gains.png)")
  if values.robustbench:
    files, skipped = export.write_robustbench(records, values.robustbench)
    print(f"RobustBench files written to {values.robustbench}/: {len(files)} file(s)"
          + "".join(f"\n  {f}" for f in files))
    for why in skipped:
      print(f"Not exported to RobustBench: {why}.")


__all__ = ["COLUMNS", "Column", "Row", "Stat", "adversarial_keys", "aggregate", "backbone_of",
           "built_evaluators", "define_flags", "is_natural", "load_run", "load_runs", "main",
           "report_root", "robust_bar_heights", "stale_evaluations", "stale_notes",
           "training_rate", "write"]
