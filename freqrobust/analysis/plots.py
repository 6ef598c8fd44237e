"""Figures of the analysis tools (matplotlib, Agg backend). Spectra are shown shifted, DC centred.

Every function takes arrays in FFT layout (as the tools return them), writes one PNG and returns
its path.
"""
from collections.abc import Mapping, Sequence
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np


def shifted(spectrum: np.ndarray) -> np.ndarray:
  """`fftshift` over the last two axes: lowest frequency in the centre."""
  return np.fft.fftshift(np.asarray(spectrum), axes=(-2, -1))


def _extent(h: int, w: int) -> tuple[float, float, float, float]:
  # Shifted row r holds frequency r - h // 2; image origin at the top.
  return (-(w // 2) - 0.5, w - w // 2 - 0.5, h - h // 2 - 0.5, -(h // 2) - 0.5)


def show_spectrum(ax, spectrum: np.ndarray, title: str, cmap: str = "inferno",
                   colorbar: bool = True, ticks: bool = True, scale_without_dc: bool = False,
                   vmin: float | None = None, vmax: float | None = None) -> None:
  """One spectrum, DC centred; `vmin`/`vmax` fix the colour scale (panels to compare share it)."""
  h, w = spectrum.shape[-2:]
  if scale_without_dc and spectrum.size > 1:  # A large DC term would hide everything else.
    rest = np.asarray(spectrum, np.float64).copy()
    rest[0, 0] = rest.min()
    vmax = rest.max() if rest.max() > rest.min() else None
  im = ax.imshow(shifted(spectrum), cmap=cmap, extent=_extent(h, w), interpolation="nearest",
                 vmin=vmin, vmax=vmax)
  ax.set_title(title, fontsize=8)
  if ticks:
    ax.tick_params(labelsize=6)
  else:
    ax.set_xticks([])
    ax.set_yticks([])
  if colorbar:
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04).ax.tick_params(labelsize=6)


def save_figure(fig, path: str, dpi: int = 110, bbox_inches: str | None = "tight") -> str:
  """Writes a PNG to a local path or a URL (etils.epath, as every workdir file) and closes the
  figure."""
  from etils import epath
  with epath.Path(path).open("wb") as f:
    fig.savefig(f, format="png", dpi=dpi, bbox_inches=bbox_inches)
  plt.close(fig)
  return path


def plot_spectra_row(path: str, spectra: Sequence[np.ndarray], titles: Sequence[str],
                     suptitle: str = "", cmap: str = "inferno") -> str:
  """Spectra `(H, W)` side by side, in the order given (e.g. PDM histograms of several models)."""
  if len(spectra) != len(titles) or not spectra:
    raise ValueError("need one title per spectrum and at least one spectrum")
  fig, axes = plt.subplots(1, len(spectra), figsize=(2.6 * len(spectra), 2.6), squeeze=False)
  for ax, spectrum, title in zip(axes[0], spectra, titles):
    show_spectrum(ax, np.asarray(spectrum), title, cmap)
  if suptitle:
    fig.suptitle(suptitle, fontsize=9)
  fig.tight_layout()
  return save_figure(fig, path)


def plot_spectra_grid(path: str, spectra: Sequence[np.ndarray], titles: Sequence[str],
                      suptitle: str = "", cols: int = 8, cmap: str = "inferno",
                      scale_without_dc: bool = False) -> str:
  """A grid of small spectra, each on its own colour scale, without ticks.

  `scale_without_dc`: the colour scale ends at the largest non-DC value (DC saturates).
  """
  if len(spectra) != len(titles) or not spectra:
    raise ValueError("need one title per spectrum and at least one spectrum")
  cols = min(cols, len(spectra))
  rows = math.ceil(len(spectra) / cols)
  fig, axes = plt.subplots(rows, cols, figsize=(1.5 * cols, 1.6 * rows + 0.4), squeeze=False)
  for ax in axes.ravel():
    ax.axis("off")
  for ax, spectrum, title in zip(axes.ravel(), spectra, titles):
    ax.axis("on")
    show_spectrum(ax, np.asarray(spectrum), title, cmap, colorbar=False, ticks=False,
                   scale_without_dc=scale_without_dc)
  if suptitle:
    fig.suptitle(suptitle, fontsize=9)
  fig.tight_layout()
  return save_figure(fig, path)


def plot_images(path: str, images: Sequence[np.ndarray], titles: Sequence[str],
                suptitle: str = "", cols: int = 6) -> str:
  """Images HWC in [0, 1] (e.g. cPDM examples), grey when single-channel."""
  cols = min(cols, len(images))
  rows = math.ceil(len(images) / cols)
  fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.7 * rows + 0.4), squeeze=False)
  for ax in axes.ravel():
    ax.axis("off")
  for ax, image, title in zip(axes.ravel(), images, titles):
    image = np.clip(np.asarray(image), 0.0, 1.0)
    if image.shape[-1] == 1:
      ax.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
      ax.imshow(image, interpolation="nearest")
    ax.set_title(title, fontsize=7)
  if suptitle:
    fig.suptitle(suptitle, fontsize=9)
  fig.tight_layout()
  return save_figure(fig, path)


def plot_bandpass(path: str, result: Mapping[str, np.ndarray], title: str = "") -> str:
  """Low-pass and high-pass accuracy against bandwidth, with the clean accuracy as a line."""
  fig, ax = plt.subplots(figsize=(4.2, 3.0))
  bands = np.asarray(result["bandwidths"])
  ax.plot(bands, 100 * np.asarray(result["lowpass_accuracy"]), "o-", label="low-pass")
  ax.plot(bands, 100 * np.asarray(result["highpass_accuracy"]), "s-", label="high-pass")
  ax.axhline(100 * float(result["clean_accuracy"]), color="gray", ls="--", label="clean")
  ax.set_xlabel("bandwidth B (side of the centred square)")
  ax.set_ylabel("test accuracy (%)")
  ax.set_ylim(0, 100)
  ax.legend(fontsize=7)
  ax.set_title(title, fontsize=9)
  fig.tight_layout()
  return save_figure(fig, path)


def plot_hf_scatter(path: str, hf_fraction: Mapping[str, float],
                    changes: Mapping[str, Mapping[str, float]], baseline: str,
                    radius: float) -> str:
  """Each corruption's high-frequency fraction against each model's accuracy change."""
  fig, ax = plt.subplots(figsize=(5.0, 3.6))
  markers = "osd^v<>p*h"
  for k, (model, per_name) in enumerate(changes.items()):
    names = [n for n in hf_fraction if np.isfinite(per_name.get(n, np.nan))]
    xs = [hf_fraction[n] for n in names]
    ys = [per_name[n] for n in names]
    ax.scatter(xs, ys, marker=markers[k % len(markers)], label=model)
    for x, y, n in zip(xs, ys, names):
      ax.annotate(n, (x, y), fontsize=5, alpha=0.7)
  ax.axhline(0.0, color="gray", lw=0.8)
  ax.set_xlabel(f"fraction of E|DFT(C(X)-X)| at r > {radius:g}")
  ax.set_ylabel(f"accuracy change vs {baseline} (points)")
  ax.legend(fontsize=6)
  fig.tight_layout()
  return save_figure(fig, path)


def plot_occlusion(path: str, result: Mapping[str, np.ndarray],
                   class_names: Sequence[str] | None = None) -> str:
  """Overall probability drop per band (left) and per class and band (right)."""
  bands = np.asarray(result["bands"])
  labels = [f"{lo:.1f}-{hi:.1f}" for lo, hi in bands]
  per_class = np.asarray(result["drop_per_class"], np.float64)
  fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.2))
  left.bar(np.arange(len(labels)), np.asarray(result["drop"]))
  left.set_xticks(np.arange(len(labels)), labels, rotation=60, fontsize=6)
  left.set_xlabel("removed radial band [r_lo, r_hi)")
  left.set_ylabel("drop of true-class probability")
  left.axhline(0.0, color="gray", lw=0.8)
  limit = float(np.nanmax(np.abs(per_class))) if np.isfinite(per_class).any() else 0.0
  limit = limit or 1.0  # symmetric colour scale around "no change"
  im = right.imshow(per_class.T, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto",
                    interpolation="nearest")
  right.set_xticks(np.arange(len(labels)), labels, rotation=60, fontsize=6)
  names = class_names or [str(k) for k in range(per_class.shape[1])]
  right.set_yticks(np.arange(len(names)), names, fontsize=6)
  right.set_xlabel("removed radial band")
  right.set_ylabel("true class")
  fig.colorbar(im, ax=right)
  fig.tight_layout()
  return save_figure(fig, path)
