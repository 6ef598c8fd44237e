"""Figures of the explanation tools of issue #30 (perturbation spectra and RCT, DCT attribution,
HFC, kernel smoothing, F-principle), in the style of `analysis/plots.py`: matplotlib (Agg),
spectra shown shifted (DC centred), panels meant to be compared share their axes and colour
scales. Every function writes one PNG and returns its path.
"""
from collections.abc import Mapping, Sequence
import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
from matplotlib.ticker import MaxNLocator  # pylint: disable=g-import-not-at-top
import numpy as np

from freqrobust.analysis import plots  # pylint: disable=g-import-not-at-top


def _save(fig, path: str) -> str:
  fig.savefig(path, dpi=110, bbox_inches="tight")
  plt.close(fig)
  return path


def _extent(h: int, w: int) -> tuple[float, float, float, float]:
  return (-(w // 2) - 0.5, w - w // 2 - 0.5, h - h // 2 - 0.5, -(h // 2) - 0.5)


def _band_labels(diagonals: np.ndarray) -> list[str]:
  return [f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in np.asarray(diagonals)]


def plot_perturbation(path: str, result: Mapping[str, Any], title: str = "") -> str:
  """Centred mean |DFT(x' - x)| (log scale), its radial profile with the half-power radius, and
  RCT per diagonal DCT band."""
  spectrum = np.asarray(result["mean_abs_spectrum"], np.float64)
  h, w = spectrum.shape
  fig, (left, middle, right) = plt.subplots(1, 3, figsize=(11.0, 3.2))
  positive = spectrum[spectrum > 0]
  floor = positive.min() if positive.size else 1.0
  im = left.imshow(np.log10(np.maximum(plots.shifted(spectrum), floor)), cmap="inferno",
                   extent=_extent(h, w), interpolation="nearest")
  left.set_title("log10 mean |DFT(x' - x)|, DC centred", fontsize=8)
  left.tick_params(labelsize=6)
  fig.colorbar(im, ax=left, fraction=0.046, pad=0.04).ax.tick_params(labelsize=6)
  middle.plot(np.asarray(result["radii"]), np.asarray(result["radial_profile"]), "o-", ms=3)
  radius = float(result["half_power_radius"])
  if math.isfinite(radius):
    middle.axvline(radius, color="gray", ls="--", label=f"half power at r = {radius:.2f}")
    middle.legend(fontsize=7)
  middle.set_xlabel("radius r (rounded)")
  middle.set_ylabel("mean |DFT(x' - x)|")
  middle.set_title("radial profile", fontsize=8)
  rct = np.asarray(result["rct"], np.float64)
  labels = _band_labels(result["band_diagonals"])
  right.bar(np.arange(len(rct)), np.nan_to_num(rct))
  step = max(1, len(labels) // 12)
  right.set_xticks(np.arange(len(labels))[::step], labels[::step], rotation=60, fontsize=6)
  right.set_xlabel("DCT band (u + v)")
  right.set_ylabel("RCT = sum|dDCT| / sum|DCT(x)|")
  right.set_title("relative change of DCT coefficients", fontsize=8)
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  return _save(fig, path)


def plot_dct_attribution(path: str, result: Mapping[str, Any],
                         class_names: Sequence[str] | None = None, title: str = "") -> str:
  """Band map (left), mean attribution per band with its spread (middle), per class and band
  on a colour scale symmetric around 0 (right)."""
  bands = np.asarray(result["band_index"])
  attribution = np.asarray(result["attribution"], np.float64)
  spread = np.asarray(result.get("attribution_std", np.zeros_like(attribution)), np.float64)
  per_class = np.asarray(result["attribution_per_class"], np.float64)
  labels = _band_labels(result["band_diagonals"])
  fig, (left, middle, right) = plt.subplots(1, 3, figsize=(12.0, 3.4),
                                            gridspec_kw={"width_ratios": [0.8, 1.2, 1.4]})
  im = left.imshow(bands, cmap="viridis", interpolation="nearest")
  left.set_title("DCT bands (u down, v across)", fontsize=8)
  left.tick_params(labelsize=6)
  fig.colorbar(im, ax=left, fraction=0.046, pad=0.04).ax.tick_params(labelsize=6)
  x = np.arange(len(labels))
  middle.bar(x, attribution, yerr=spread, capsize=2)
  middle.set_xticks(x, labels, rotation=60, fontsize=6)
  middle.axhline(0.0, color="gray", lw=0.8)
  middle.set_xlabel("replaced band (u + v)")
  middle.set_ylabel("f_c(x) - f_c(IDCT(H_i)) (logit)")
  limit = float(np.nanmax(np.abs(per_class))) if np.isfinite(per_class).any() else 0.0
  limit = limit or 1.0
  im = right.imshow(per_class.T, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto",
                    interpolation="nearest")
  right.set_xticks(x, labels, rotation=60, fontsize=6)
  names = list(class_names or [str(k) for k in range(per_class.shape[1])])
  right.set_yticks(np.arange(len(names)), names, fontsize=6)
  right.set_xlabel("replaced band")
  right.set_ylabel("true class")
  fig.colorbar(im, ax=right)
  if title:
    fig.suptitle(f"DCT frequency attribution, {title}", fontsize=9)
  fig.tight_layout()
  return _save(fig, path)


def plot_hfc(path: str, result: Mapping[str, Any], title: str = "") -> str:
  """Accuracy on the low and high components against the radius, clean accuracy as a line."""
  fig, ax = plt.subplots(figsize=(4.2, 3.0))
  radii = np.asarray(result["radii"])
  ax.plot(radii, 100 * np.asarray(result["low_accuracy"]), "o-", label="low (r < radius)")
  ax.plot(radii, 100 * np.asarray(result["high_accuracy"]), "s-", label="high (the rest)")
  ax.axhline(100 * float(result["clean_accuracy"]), color="gray", ls="--", label="clean")
  ax.set_xlabel("radius r")
  ax.set_ylabel("accuracy (%)")
  ax.set_ylim(0, 100)
  ax.legend(fontsize=7)
  ax.set_title(f"HFC accuracy, {title}" if title else "HFC accuracy", fontsize=9)
  fig.tight_layout()
  return _save(fig, path)


def _as_display(image: np.ndarray) -> np.ndarray:
  """Min-max scaled to [0, 1] (high components are around 0 with both signs)."""
  image = np.asarray(image, np.float64)
  lo, hi = image.min(), image.max()
  return (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)


def plot_hfc_examples(path: str, image: np.ndarray, lows: Sequence[np.ndarray],
                      highs: Sequence[np.ndarray], radii: Sequence[float]) -> str:
  """One image and its low / high components per radius (each min-max scaled for display)."""
  images = [image] + [_as_display(x) for x in lows] + [_as_display(x) for x in highs]
  titles = (["image"] + [f"low r={r:g}" for r in radii] + [f"high r={r:g}" for r in radii])
  return plots.plot_images(path, images, titles, "HFC components (min-max scaled)",
                           cols=len(radii) + 1 if len(radii) else 1)


def plot_hfc_curves(path: str, rows_by_epoch: Mapping[int, Mapping[str, Any]]) -> str:
  """Per radius (one panel each, shared y axis): low and high accuracy over epochs."""
  epochs = sorted(rows_by_epoch)
  radii = np.asarray(rows_by_epoch[epochs[0]]["radii"])
  low = np.asarray([rows_by_epoch[e]["low_accuracy"] for e in epochs], np.float64)
  high = np.asarray([rows_by_epoch[e]["high_accuracy"] for e in epochs], np.float64)
  clean = np.asarray([rows_by_epoch[e]["clean_accuracy"] for e in epochs], np.float64)
  fig, axes = plt.subplots(1, len(radii), figsize=(2.8 * len(radii), 2.8), sharey=True,
                           squeeze=False)
  for k, ax in enumerate(axes[0]):
    ax.plot(epochs, 100 * clean, color="gray", ls="--", label="clean")
    ax.plot(epochs, 100 * low[:, k], "o-", ms=3, label="low")
    ax.plot(epochs, 100 * high[:, k], "s-", ms=3, label="high")
    ax.set_title(f"r = {radii[k]:g}", fontsize=8)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, 100)
  axes[0][0].set_ylabel("accuracy (%)")
  axes[0][0].legend(fontsize=6)
  fig.suptitle("HFC: accuracy on low / high components over training", fontsize=9)
  fig.tight_layout()
  return _save(fig, path)


def plot_smoothing(path: str, curve: Mapping[str, Sequence[float]], title: str = "") -> str:
  """Every metric of a smoothing curve against rho."""
  fig, ax = plt.subplots(figsize=(4.2, 3.0))
  rhos = np.asarray(curve["rho"])
  for name, values in curve.items():
    if name != "rho":
      ax.plot(rhos, np.asarray(values, np.float64), "o-", label=name)
  ax.set_xlabel("rho")
  ax.set_ylabel("metric")
  ax.legend(fontsize=7)
  ax.set_title(title or "first-layer kernel smoothing", fontsize=9)
  fig.tight_layout()
  return _save(fig, path)


def plot_fprinciple_curves(path: str, rows_by_epoch: Mapping[int, Mapping[str, Any]],
                           max_deltas: int = 4) -> str:
  """Top: e_low and e_high over epochs for up to `max_deltas` deltas (evenly picked), shared y
  axis. Bottom: the official "hot" map per picked delta (rows low / high, columns epochs), one
  colour scale for all."""
  epochs = sorted(rows_by_epoch)
  deltas = np.asarray(rows_by_epoch[epochs[0]]["deltas"], np.float64)
  low = np.asarray([rows_by_epoch[e]["e_low"] for e in epochs], np.float64)
  high = np.asarray([rows_by_epoch[e]["e_high"] for e in epochs], np.float64)
  picks = np.unique(np.linspace(0, len(deltas) - 1, min(max_deltas, len(deltas))).round()
                    ).astype(int)
  fig, axes = plt.subplots(2, len(picks), figsize=(2.9 * len(picks), 5.0), squeeze=False,
                           sharey="row", layout="constrained")
  finite = np.concatenate([low[:, picks].ravel(), high[:, picks].ravel()])
  finite = finite[np.isfinite(finite)]
  vmax = float(finite.max()) if finite.size else 1.0
  for col, k in enumerate(picks):
    ax = axes[0][col]
    ax.plot(epochs, low[:, k], "r-o", ms=3, label="e_low")
    ax.plot(epochs, high[:, k], "b-s", ms=3, label="e_high")
    ax.set_title(f"delta = {deltas[k]:.3g}", fontsize=8)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    hot = axes[1][col]
    im = hot.imshow(np.stack([low[:, k], high[:, k]]), cmap="RdBu", vmin=0.0, vmax=vmax,
                    aspect="auto", interpolation="nearest",
                    extent=(epochs[0] - 0.5, epochs[-1] + 0.5, 1.5, -0.5))
    hot.set_yticks([0, 1], ["low", "high"], fontsize=7)
    hot.set_xlabel("epoch")
  axes[0][0].set_ylabel("relative error")
  axes[0][0].legend(fontsize=6)
  fig.colorbar(im, ax=list(axes[1]), fraction=0.02)
  fig.suptitle("F-principle: relative error of the low- and high-frequency parts", fontsize=9)
  return _save(fig, path)
