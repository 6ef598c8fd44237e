"""Corruption-robustness metrics (docs/METHOD.md §6): pure functions on accuracy tables.

An accuracy table maps corruption name -> {severity (1..5): accuracy in percent}. Conventions:
- "Robust." (the paper): mean accuracy over the corruptions x severities.
- Corruption error: CE_c = 100 - mean_s acc(c, s).
- Unnormalised mCE (AugMix, PRIME): mean_c CE_c.
- mCE against a baseline (the paper's mCE column; Hendrycks & Dietterich 2019's mCE with the
  baseline model in AlexNet's place): per corruption CE_c^rel = sum_s E(c, s) / sum_s
  E_baseline(c, s), then mCE = 100 * mean_c CE_c^rel (a mean of ratios, not the ratio of the sums:
  a model that trades errors between corruptions changes it). Stored under the key
  `mce_relative`, printed as "mCE vs baseline" (evaluate) and "mCE (vs base, %)" (report): it
  is NOT what Hendrycks & Dietterich call "Relative mCE", which is the next one.
- Relative mCE of Hendrycks & Dietterich (their section 3): the degradation against the clean
  error, 100 * mean_c [sum_s (E(c, s) - E_clean) / sum_s (E_baseline(c, s) - E_baseline_clean)]
  (`relative_mce_hd`); it asks how much a model loses under corruption rather than how many
  errors it makes.
Every summary figure averages over the corruptions it is given: the 15 benchmark corruptions, or
19 when the 4 extras are included; reports state that number beside the convention.
"""
import math
from typing import Mapping, Sequence, Tuple

import numpy as np

AccuracyTable = Mapping[str, Mapping[int, float]]

SEVERITIES = (1, 2, 3, 4, 5)

NUM_BENCHMARK = 15  # corruptions of the benchmark; 19 with the 4 extras

CONVENTIONS = {
    "clean_accuracy": "accuracy (%) on the clean images the corrupted sets were made from (the "
                      "whole test set, or its first corruptions.num_examples images)",
    "robust_accuracy": "'Robust.' of the paper: mean accuracy (%) over the corruptions averaged "
                       "x 5 severities",
    "corruption_error": "CE_c = 100 - mean over severities of accuracy (%) on corruption c",
    "mce_unnormalized": "unnormalised mCE (AugMix / PRIME convention): mean_c CE_c over the "
                        "corruptions averaged",
    "mce_relative": "mCE against a baseline run (the paper's mCE; Hendrycks & Dietterich's mCE "
                    "with the baseline in AlexNet's place, baseline = 100): "
                    "100 * mean_c [sum_s E(c, s) / sum_s E_baseline(c, s)], the mean over the "
                    "corruptions averaged of per-corruption error ratios; not H&D's 'Relative "
                    "mCE'",
    "relative_mce_hd": "Relative mCE of Hendrycks & Dietterich: 100 * mean_c [sum_s (E(c, s) - "
                       "E_clean) / sum_s (E_baseline(c, s) - E_baseline_clean)], errors measured "
                       "from each model's own clean error on the same images (baseline = 100)",
    "accuracy_by_severity": "mean accuracy (%) over the corruptions averaged, per severity",
    "corruptions_averaged": "number of corruptions the summary figures average over (15 "
                            "benchmark corruptions; 19 with the 4 extras)",
}


def averaged_note(num_corruptions: int) -> str:
  """How many corruptions the summary figures average over, for every report."""
  kind = {NUM_BENCHMARK: "the 15 benchmark corruptions",
          NUM_BENCHMARK + 4: "the 15 benchmark corruptions and the 4 extras"}.get(
              num_corruptions, f"{num_corruptions} of the 15 benchmark corruptions")
  return f"summary figures average over {num_corruptions} corruptions ({kind})"


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
  """The paper's mCE against a baseline run (H&D's mCE, baseline in AlexNet's place), in percent.

  CE_c^rel = sum_s E(c, s) / sum_s E_baseline(c, s) per corruption, mCE = 100 * mean_c CE_c^rel:
  the mean of per-corruption ratios, not the ratio of the summed errors.
  """
  if not names:
    raise ValueError("mce_relative needs at least one corruption.")
  model = corruption_errors(table, names, severities)
  base = corruption_errors(baseline, names, severities)
  undefined = baseline_without_error(baseline, names, severities)
  if undefined:
    raise ValueError(f"The baseline makes no error on {undefined}; the mCE against it is "
                     "undefined there.")
  # CE_c is the mean error over the same severities for both runs: CE_c / CE_c(baseline) equals
  # the ratio of the summed errors.
  return 100. * sum(model[name] / base[name] for name in names) / len(names)


def relative_mce_hd(table: AccuracyTable, clean_accuracy: float, baseline: AccuracyTable,
                    baseline_clean_accuracy: float, names: Sequence[str],
                    severities: Sequence[int] = SEVERITIES) -> float:
  """Hendrycks & Dietterich's Relative mCE against a baseline run, in percent.

  Relative CE_c = sum_s (E(c, s) - E_clean) / sum_s (E_baseline(c, s) - E_baseline_clean), and
  Relative mCE = 100 * mean_c Relative CE_c. Undefined (ValueError) where the baseline loses
  nothing under a corruption (its summed degradation <= 0): see `baseline_without_degradation`.
  """
  if not names:
    raise ValueError("relative_mce_hd needs at least one corruption.")
  undefined = baseline_without_degradation(baseline, baseline_clean_accuracy, names, severities)
  if undefined:
    raise ValueError(f"The baseline loses no accuracy on {undefined} (its corrupted error is not "
                     "above its clean error); the Relative mCE is undefined there.")
  model = corruption_errors(table, names, severities)
  base = corruption_errors(baseline, names, severities)
  # mean_s (E - E_clean) = CE_c - E_clean: the sums over the same severities share the factor.
  clean_error, base_clean_error = 100. - clean_accuracy, 100. - baseline_clean_accuracy
  return 100. * sum((model[n] - clean_error) / (base[n] - base_clean_error)
                    for n in names) / len(names)


def baseline_without_degradation(baseline: AccuracyTable, baseline_clean_accuracy: float,
                                 names: Sequence[str],
                                 severities: Sequence[int] = SEVERITIES) -> list[str]:
  """The corruptions under which the baseline's error is not above its clean error: their
  Relative CE, and so H&D's Relative mCE, is undefined."""
  base_clean_error = 100. - baseline_clean_accuracy
  return [name for name, ce in corruption_errors(baseline, names, severities).items()
          if ce - base_clean_error <= 0]


def baseline_without_error(baseline: AccuracyTable, names: Sequence[str],
                           severities: Sequence[int] = SEVERITIES) -> list[str]:
  """The corruptions on which the baseline makes no error: their CE_c^rel, and so the relative
  mCE, is undefined."""
  return [name for name, ce in corruption_errors(baseline, names, severities).items() if ce <= 0]


def accuracy_by_severity(table: AccuracyTable, names: Sequence[str],
                         severities: Sequence[int] = SEVERITIES) -> dict[int, float]:
  """Mean accuracy over `names` at each severity."""
  return {s: sum(_row(table, n, (s,))[0] for n in names) / len(names) for s in severities}


def summarize(table: AccuracyTable, clean_accuracy: float, names: Sequence[str],
              baseline: AccuracyTable | None = None,
              baseline_clean_accuracy: float | None = None) -> dict:
  """All figures of the report for the corruptions `names`, each under its convention's key.
  The baseline-relative figures are None without a baseline (the Relative mCE also without its
  clean accuracy) or where they are undefined."""
  summary = {
      "clean_accuracy": clean_accuracy,
      "robust_accuracy": robust_accuracy(table, names),
      "corruption_error": corruption_errors(table, names),
      "mce_unnormalized": mce_unnormalized(table, names),
      "accuracy_by_severity": accuracy_by_severity(table, names),
      # None without a baseline, or where it is undefined (see `baseline_without_error`).
      "mce_relative": (mce_relative(table, baseline, names)
                       if baseline is not None and not baseline_without_error(baseline, names)
                       else None),
      "relative_mce_hd": (
          relative_mce_hd(table, clean_accuracy, baseline, baseline_clean_accuracy, names)
          if baseline is not None and baseline_clean_accuracy is not None
          and not baseline_without_degradation(baseline, baseline_clean_accuracy, names)
          else None),
      "corruptions_averaged": len(names),
  }
  return summary


# The benchmark's four families (Hendrycks & Dietterich 2019, Figure 1).
CATEGORIES = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
    "weather": ("snow", "frost", "fog", "brightness"),
    "digital": ("contrast", "elastic_transform", "pixelate", "jpeg_compression"),
}
# Corruptions that lift a black background (Fashion-MNIST's): they test the background more than
# the object, so the report also gives Robust. without them.
BACKGROUND_LIFTING = ("brightness", "contrast", "fog", "frost", "snow")


def accuracy_by_category(table: AccuracyTable,
                         severities: Sequence[int] = SEVERITIES) -> dict[str, float]:
  """Mean accuracy over each family's corruptions x severities (families present in `table`)."""
  return {cat: robust_accuracy(table, [n for n in names if n in table], severities)
          for cat, names in CATEGORIES.items() if any(n in table for n in names)}


# The two-sided 95% normal quantile (Phi^-1(0.975)).
Z95 = 1.959963984540054


def binomial_interval(correct: int, n: int, method: str = "wilson",
                      confidence: float = 0.95) -> Tuple[float, float]:
  """The `confidence` interval (lo, hi), fractions in [0, 1], of an accuracy of `correct` out of
  `n` test images: the binomial error of the test set (the spread over seeds on the same images
  does not show it; 1000 images at 70% carry about +-2.8 points).

  method "wilson" (Wilson 1927, the score interval: centre (k + z^2/2) / (n + z^2), half-width
  z sqrt(k (n - k) / n + z^2 / 4) / (n + z^2)) or "clopper_pearson" (the exact interval: the
  beta quantiles B(a/2; k, n - k + 1) and B(1 - a/2; k + 1, n - k), 0 and 1 at the ends).
  """
  correct, n = int(correct), int(n)
  if n <= 0 or not 0 <= correct <= n:
    raise ValueError(f"binomial_interval needs 0 <= correct <= n and n > 0, got {correct}, {n}.")
  if not 0.0 < confidence < 1.0:
    raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
  alpha = 1.0 - confidence
  if method == "clopper_pearson":
    from scipy import stats
    lo = 0.0 if correct == 0 else float(stats.beta.ppf(alpha / 2, correct, n - correct + 1))
    hi = 1.0 if correct == n else float(stats.beta.ppf(1 - alpha / 2, correct + 1, n - correct))
    return lo, hi
  if method != "wilson":
    raise ValueError(f"method={method!r}; valid: 'wilson', 'clopper_pearson'.")
  z = Z95 if confidence == 0.95 else _normal_quantile(1.0 - alpha / 2)
  z2 = z * z
  centre = (correct + z2 / 2) / (n + z2)
  half = z * math.sqrt(correct * (n - correct) / n + z2 / 4) / (n + z2)
  return max(0.0, centre - half), min(1.0, centre + half)


def _normal_quantile(p: float) -> float:
  """Phi^-1(p) by bisection on erf (no scipy needed for Wilson)."""
  lo, hi = -10.0, 10.0
  for _ in range(100):
    mid = 0.5 * (lo + hi)
    if 0.5 * (1.0 + math.erf(mid / math.sqrt(2.0))) < p:
      lo = mid
    else:
      hi = mid
  return 0.5 * (lo + hi)


def accuracy_interval(accuracy_percent: float, n: int) -> Tuple[float, float]:
  """The 95% Wilson interval, in percent, of an accuracy in percent measured on `n` images."""
  lo, hi = binomial_interval(int(round(accuracy_percent * n / 100.0)), n)
  return 100.0 * lo, 100.0 * hi


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
  """Spearman's rank correlation of two paired samples (ties get their average rank, as
  scipy.stats.spearmanr); NaN when either sample is constant. Needs >= 2 pairs."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
    raise ValueError(f"spearman needs two samples of equal length >= 2, got {a.shape} and "
                     f"{b.shape}.")
  if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
    raise ValueError("spearman needs finite values (a missing figure is left out, not NaN).")

  def ranks(x):
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(1, len(x) + 1)
    for value in np.unique(x):  # Ties: their average rank.
      tied = x == value
      r[tied] = r[tied].mean()
    return r
  ra, rb = ranks(a), ranks(b)
  if ra.std() == 0 or rb.std() == 0:
    return float("nan")
  return float(np.corrcoef(ra, rb)[0, 1])
