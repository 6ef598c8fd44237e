"""Spectra of adversarial (or any) perturbations (Yin et al. 2019) and the relative change of DCT
coefficients per band, RCT (Wang et al. 2020); issue #30.

For clean images x and perturbed images x' (same shape, NHWC in [0, 1]):

- `mean_abs_spectrum` = mean over images and channels of |DFT(x' - x)| (NumPy layout, norm
  "backward" as everywhere in the package; `_shifted` for the centred, fftshift-ed copy), and
  `power_spectrum` = the same mean of |DFT(x' - x)|^2;
- the radial profile: the mean of |DFT(x' - x)| over the frequencies whose radius
  r(i, j) = sqrt(fi^2 + fj^2) (`frequency.radial_distance`) rounds to k = 0, 1, ...;
- `half_power_radius`: the smallest radius R such that the frequencies with r <= R hold at least
  half of the perturbation's power (sum of `power_spectrum`); NaN for a zero perturbation;
- RCT per diagonal DCT band b (bands of `dct_attribution.diagonal_bands`, u + v from the top-left
  low-frequency corner):

      RCT_b = sum_{n, c, (u, v) in b} |DCT(x')[u, v] - DCT(x)[u, v]|
              / sum_{n, c, (u, v) in b} |DCT(x)[u, v]|,

  a ratio of means rather than a mean of per-coefficient ratios: clean coefficients near 0 (most
  high-frequency ones of smooth images) would make single ratios explode. NaN for a band whose
  clean coefficients are all 0. `rct_map` (H, W) is the same ratio per coefficient (u, v).
"""
from collections.abc import Mapping
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from freqrobust import frequency
from freqrobust.analysis import _batching
from freqrobust.analysis import dct_attribution
from freqrobust.analysis import records


@jax.jit
def _chunk_sums(perturbed: jax.Array, clean: jax.Array, weight: jax.Array
                ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """Weighted sums over images and channels of |DFT(d)|, |DFT(d)|^2, |dDCT| and |DCT(x)|."""
  perturbed = jnp.asarray(perturbed, jnp.float32)
  clean = jnp.asarray(clean, jnp.float32)
  w = weight[:, None, None, None]
  spectrum = jnp.abs(jnp.fft.fft2(perturbed - clean, axes=(1, 2)))
  clean_dct = dct_attribution.dct2(clean)
  change = jnp.abs(dct_attribution.dct2(perturbed - clean))  # DCT is linear: no cancellation
  total = lambda a: jnp.sum(a * w, axis=(0, 3))  # noqa: E731
  return total(spectrum), total(spectrum ** 2), total(change), total(jnp.abs(clean_dct))


def radial_profile(spectrum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(radii k = 0..K, mean of `spectrum` (FFT layout, (..., H, W)) over round(r) == k)."""
  spectrum = np.asarray(spectrum, np.float64)
  h, w = spectrum.shape[-2:]
  bins = np.rint(np.asarray(frequency.radial_distance(h, w), np.float64)).astype(np.int64)
  count = np.bincount(bins.ravel())
  flat = spectrum.reshape(spectrum.shape[:-2] + (-1,))
  sums = np.stack([flat[..., bins.ravel() == k].sum(axis=-1) for k in range(len(count))], -1)
  return np.arange(len(count)), sums / count


def half_power_radius(power: np.ndarray) -> float:
  """Smallest R with sum(power[r <= R]) >= sum(power) / 2; `power` (H, W) in FFT layout."""
  power = np.asarray(power, np.float64)
  total = power.sum()
  if not total > 0:
    return float("nan")
  r = np.asarray(frequency.radial_distance(*power.shape), np.float64).ravel()
  order = np.argsort(r, kind="stable")
  radii, cumulative = r[order], np.cumsum(power.ravel()[order])
  # The cumulative power at a radius counts every frequency of that radius (ties).
  last_of_radius = np.r_[radii[1:] != radii[:-1], True]
  radii, cumulative = radii[last_of_radius], cumulative[last_of_radius]
  return float(radii[np.argmax(cumulative >= 0.5 * total * (1 - 1e-9))])


def perturbation_spectra(perturbed: np.ndarray, clean: np.ndarray, num_bands: int | None = None,
                         batch_size: int = 256, progress: bool = True) -> dict[str, np.ndarray]:
  """Spectrum, radial profile, half-power radius and RCT of x' - x (module docstring).

  Args:
    perturbed, clean: float (N, H, W, C) of equal shape.
    num_bands: the number of diagonal DCT bands of RCT (default H + W - 1: one per u + v).

  Returns:
    `mean_abs_spectrum`, `power_spectrum` (H, W) FFT layout, `mean_abs_spectrum_shifted`,
    `radii` and `radial_profile` (K,), `half_power_radius` (scalar), `rct` (B,),
    `band_diagonals` (B, 2), `band_index` (H, W), `rct_map` (H, W), `num_images`.
  """
  perturbed = np.asarray(perturbed, np.float32)
  clean = np.asarray(clean, np.float32)
  if perturbed.shape != clean.shape or clean.ndim != 4:
    raise ValueError(f"need two NHWC batches of equal shape, got {perturbed.shape} and "
                     f"{clean.shape}")
  n, h, w, c = clean.shape
  sums = [np.zeros((h, w)) for _ in range(4)]
  for idx, valid in _batching.padded_chunks(n, batch_size, desc="perturbation spectra",
                                            progress=progress):
    weight = (np.arange(len(idx)) < valid).astype(np.float32)
    for total, part in zip(sums, _chunk_sums(perturbed[idx], clean[idx], weight)):
      total += np.asarray(part, np.float64)
  abs_sum, power_sum, change_sum, clean_sum = sums
  spectrum, power = abs_sum / (n * c), power_sum / (n * c)
  bands = dct_attribution.diagonal_bands(h, w, num_bands)
  count = int(bands.max()) + 1
  band_change = np.bincount(bands.ravel(), change_sum.ravel(), count)
  band_clean = np.bincount(bands.ravel(), clean_sum.ravel(), count)
  with np.errstate(invalid="ignore", divide="ignore"):
    rct = np.where(band_clean > 0, band_change / band_clean, np.nan)
    rct_map = np.where(clean_sum > 0, change_sum / clean_sum, np.nan)
  radii, profile = radial_profile(spectrum)
  return {"mean_abs_spectrum": spectrum, "power_spectrum": power,
          "mean_abs_spectrum_shifted": np.fft.fftshift(spectrum), "radii": radii,
          "radial_profile": profile, "half_power_radius": np.float64(half_power_radius(power)),
          "rct": rct, "band_diagonals": dct_attribution.band_diagonals(h, w, num_bands),
          "band_index": bands, "rct_map": rct_map, "num_images": np.int64(n)}


def run_perturbation(out_dir: str, perturbed: np.ndarray, clean: np.ndarray,
                     num_bands: int | None = None, title: str = "", batch_size: int = 256,
                     progress: bool = True) -> dict[str, Any]:
  """Perturbation spectra tool: `perturbation.npz`, `perturbation.json`, `perturbation.png`."""
  from freqrobust.analysis import explain_plots  # matplotlib only when drawing
  result = perturbation_spectra(perturbed, clean, num_bands, batch_size, progress)
  path = explain_plots.plot_perturbation(os.path.join(out_dir, "perturbation.png"), result,
                                         title)
  records.save_arrays(out_dir, "perturbation", result)
  summary = _summary(result, ("half_power_radius", "num_images", "radii", "radial_profile",
                              "rct", "band_diagonals"))
  norms = np.sqrt(np.sum((np.asarray(perturbed, np.float64) - np.asarray(clean, np.float64)) ** 2,
                         axis=(1, 2, 3)))
  summary.update(mean_l2_norm=float(norms.mean()), figures=[os.path.basename(path)])
  records.save_json(out_dir, "perturbation", summary)
  return summary


def _summary(result: Mapping[str, Any], keys) -> dict[str, Any]:
  return {k: np.asarray(result[k]).tolist() for k in keys}

