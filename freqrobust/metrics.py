"""Corruption-robustness metrics (SPEC section 6): pure functions on accuracy tables.

An accuracy table maps corruption name -> {severity (1..5): accuracy in percent}. Conventions:
- "Robust." (the paper): mean accuracy over the corruptions x severities.
- Corruption error: CE_c = 100 - mean_s acc(c, s).
- Unnormalised mCE (AugMix, PRIME): mean_c CE_c.
- Relative mCE (the paper): 100 * sum_c CE_c(model) / sum_c CE_c(baseline).
"""
from typing import Mapping, Sequence

AccuracyTable = Mapping[str, Mapping[int, float]]

SEVERITIES = (1, 2, 3, 4, 5)

CONVENTIONS = {
    "clean_accuracy": "accuracy (%) on the clean test set",
    "robust_accuracy": "'Robust.' of the paper: mean accuracy (%) over the 15 benchmark "
                       "corruptions x 5 severities",
    "corruption_error": "CE_c = 100 - mean over severities of accuracy (%) on corruption c",
    "mce_unnormalized": "unnormalised mCE (AugMix / PRIME convention): mean_c CE_c over the 15 "
                        "benchmark corruptions",
    "mce_relative": "mCE relative to a baseline run (the paper): 100 * sum_c CE_c(model) / "
                    "sum_c CE_c(baseline), over the 15 benchmark corruptions",
    "accuracy_by_severity": "mean accuracy (%) over the 15 benchmark corruptions, per severity",
}


def _row(table: AccuracyTable, name: str, severities: Sequence[int]) -> list[float]:
  if name not in table:
    raise ValueError(f"No accuracies for corruption {name!r}; the table has {sorted(table)}.")
  missing = [s for s in severities if s not in table[name]]
  if missing:
    raise ValueError(f"Corruption {name!r} lacks severities {missing}; re-run the evaluation.")
  return [float(table[name][s]) for s in severities]


def robust_accuracy(table: AccuracyTable, names: Sequence[str],
                    severities: Sequence[int] = SEVERITIES) -> float:
  """Mean accuracy over all (corruption, severity) pairs: the paper's "Robust."."""
  values = [v for name in names for v in _row(table, name, severities)]
  if not values:
    raise ValueError("robust_accuracy needs at least one corruption.")
  return sum(values) / len(values)


def corruption_error(table: AccuracyTable, name: str,
                     severities: Sequence[int] = SEVERITIES) -> float:
  """CE_c = 100 - mean_s acc(c, s), in percent."""
  row = _row(table, name, severities)
  return 100. - sum(row) / len(row)


def corruption_errors(table: AccuracyTable, names: Sequence[str],
                      severities: Sequence[int] = SEVERITIES) -> dict[str, float]:
  return {name: corruption_error(table, name, severities) for name in names}


def mce_unnormalized(table: AccuracyTable, names: Sequence[str],
                     severities: Sequence[int] = SEVERITIES) -> float:
  """mean_c CE_c (AugMix / PRIME convention), in percent."""
  errors = corruption_errors(table, names, severities)
  if not errors:
    raise ValueError("mce_unnormalized needs at least one corruption.")
  return sum(errors.values()) / len(errors)


def mce_relative(table: AccuracyTable, baseline: AccuracyTable, names: Sequence[str],
                 severities: Sequence[int] = SEVERITIES) -> float:
  """100 * sum_c CE_c(model) / sum_c CE_c(baseline) (the paper's mCE against a baseline run)."""
  model_sum = sum(corruption_errors(table, names, severities).values())
  baseline_sum = sum(corruption_errors(baseline, names, severities).values())
  if baseline_sum <= 0:
    raise ValueError("The baseline makes no error on these corruptions; the relative mCE is "
                     "undefined.")
  return 100. * model_sum / baseline_sum


def accuracy_by_severity(table: AccuracyTable, names: Sequence[str],
                         severities: Sequence[int] = SEVERITIES) -> dict[int, float]:
  """Mean accuracy over `names` at each severity."""
  return {s: sum(_row(table, n, (s,))[0] for n in names) / len(names) for s in severities}


def summarize(table: AccuracyTable, clean_accuracy: float, names: Sequence[str],
              baseline: AccuracyTable | None = None) -> dict:
  """All figures of the report for the corruptions `names`, each under its convention's key."""
  summary = {
      "clean_accuracy": clean_accuracy,
      "robust_accuracy": robust_accuracy(table, names),
      "corruption_error": corruption_errors(table, names),
      "mce_unnormalized": mce_unnormalized(table, names),
      "accuracy_by_severity": accuracy_by_severity(table, names),
      "mce_relative": mce_relative(table, baseline, names) if baseline is not None else None,
  }
  return summary
