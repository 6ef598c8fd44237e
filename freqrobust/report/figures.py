"""The report's figures: accuracy and robustness per row (Figure 1(e)-style), the gain per
corruption family, and Robust. against adversarial accuracy."""
import os
from typing import List

import numpy as np

from freqrobust import metrics
from freqrobust.report.aggregate import Row


def _pyplot():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def write_all(rows: List[Row], out: str) -> None:
  plot_category_gains(rows, os.path.join(out, "category_gains.png"))
  plot_corruption_vs_adversarial(rows, os.path.join(out, "corruption_vs_adversarial.png"))
  plot_robustness(rows, os.path.join(out, "robustness.png"))


def _means(rows: List[Row], key: str, missing: float) -> np.ndarray:
  return np.asarray([r.stats[key].mean if key in r.stats else missing for r in rows],
                    np.float64)


def _stds(rows: List[Row], key: str) -> List[float]:
  return [r.stats[key].std if key in r.stats else 0 for r in rows]


def robust_bar_heights(rows: List[Row]) -> np.ndarray:
  """The robustness figure's Robust. bars: NaN (drawn as "n/a", no bar) for a row without the
  figure, never 0%."""
  return _means(rows, "robust", np.nan)


def plot_robustness(rows: List[Row], path: str) -> None:
  """Clean accuracy and Robust. per row, mean ± std over seeds; a missing figure is "n/a"."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(rows), 3.4))
  x = np.arange(len(rows))
  clean = _means(rows, "clean", np.nan)
  ax.bar(x - 0.2, clean, 0.4, yerr=_stds(rows, "clean"), label="clean accuracy", color="#4c72b0")
  robust = robust_bar_heights(rows)
  ax.bar(x + 0.2, robust, 0.4, yerr=_stds(rows, "robust"),
         label="Robust. (mean corrupted accuracy)", color="#dd8452")
  for shift, heights in ((-0.2, clean), (0.2, robust)):
    for xi, value in zip(x, heights):
      if np.isnan(value):
        ax.text(xi + shift, 0.02, "n/a", transform=ax.get_xaxis_transform(), ha="center",
                va="bottom", fontsize=7, rotation=90)
  ax.set_xticks(x, [r.name for r in rows], rotation=30, ha="right", fontsize=8)
  ax.set_ylabel("%")
  lo = np.nanmin(np.concatenate([clean, _means(rows, "robust", 100.0), [100.0]]))
  ax.set_ylim(max(0, lo - 10), 100)
  # Beside the axes, not over them: inside, it hid the last rows' bars.
  ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
  ax.set_title("Accuracy and robustness (mean ± std over seeds)", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=120, bbox_inches="tight")
  plt.close(fig)


def adversarial_keys(rows: List[Row]) -> List[str]:
  """The robust accuracies the rows recorded: the figures whose evaluator declares them so
  (`evaluators.base.Column.role` ROBUST_ACCURACY: accuracies under attack at the main radius, such
  as the adversarial evaluation's `autoattack_main`, `pgd_main`, `apgd_main` and `worst_main`,
  the worst case over every attack)."""
  from freqrobust.evaluators.base import ROBUST_ACCURACY
  return sorted({k for r in rows for k in r.metrics
                 if r.columns.get(k, {}).get("role") == ROBUST_ACCURACY})


def plot_corruption_vs_adversarial(rows: List[Row], path: str) -> None:
  """Robust. (corruptions) against adversarial accuracy, one point per row with its seed spread
  as error bars, one panel per adversarial figure (shared axes)."""
  keys = adversarial_keys(rows)
  points = [r for r in rows if "robust" in r.stats]
  if not keys or not points:
    return
  plt = _pyplot()
  fig, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys), 3.8), sharex=True,
                           sharey=True, squeeze=False)
  for ax, key in zip(axes[0], keys):
    for r in points:
      m, robust = r.metrics.get(key), r.stats["robust"]
      if m is None:
        continue
      ax.errorbar(robust.mean, m.mean, xerr=robust.std, yerr=m.std, fmt="o", capsize=3)
      ax.annotate(r.name, (robust.mean, m.mean), fontsize=7, xytext=(3, 3),
                  textcoords="offset points")
    ax.set_xlabel("Robust. (%, mean corrupted accuracy)")
    ax.set_title(key, fontsize=9)
    ax.grid(alpha=0.3)
  axes[0][0].set_ylabel("adversarial accuracy (%)")
  fig.suptitle("Corruption against adversarial robustness (mean ± std over seeds)", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def plot_category_gains(rows: List[Row], path: str) -> None:
  """Bar chart: accuracy gain per corruption family against the baseline, one group per run."""
  cats = list(metrics.CATEGORIES)
  others = [r for r in rows if not r.baseline and any(c in r.stats for c in cats)]
  if not others:
    return
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(max(4.5, 1.5 + 0.9 * len(others) * len(cats) / 4), 3.4))
  width = 0.8 / len(cats)
  x = np.arange(len(others))
  for k, cat in enumerate(cats):
    gains = [r.stats[cat].delta if cat in r.stats else 0.0 for r in others]
    ax.bar(x + (k - (len(cats) - 1) / 2) * width, gains, width, label=cat)
  ax.axhline(0, color="black", linewidth=0.6)
  ax.set_xticks(x, [r.name for r in others], rotation=30, ha="right", fontsize=8)
  ax.set_ylabel("accuracy gain vs baseline (points)")
  ax.legend(fontsize=8)
  ax.set_title("Gain per corruption family (mean over seeds)", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
