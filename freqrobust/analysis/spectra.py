"""Corruption spectra and high-frequency energy fractions (Yin et al. 2019; METHOD §7).

`E[|DFT(C(X) - X)|]` per corruption, averaged over test images and channels, and the fraction of
that spectrum above a radius, set against each model's accuracy change relative to a baseline.
Accuracies come from each workdir's `corruption_eval/results.json` (written by
`freqrobust.evaluate`), read defensively by `corruption_accuracies`.
"""
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from freqrobust import frequency
from freqrobust import workdir as workdir_lib
from freqrobust.analysis import _batching

CorruptFn = Callable[[jax.Array, np.ndarray, str, int], Any]


@jax.jit
def _abs_dft_sum(corrupted: jax.Array, clean: jax.Array) -> jax.Array:
  diff = jnp.asarray(corrupted, jnp.float32) - jnp.asarray(clean, jnp.float32)
  return jnp.abs(jnp.fft.fft2(diff, axes=(1, 2))).sum(axis=(0, 3))


def difference_spectrum(corrupted: np.ndarray, clean: np.ndarray) -> np.ndarray:
  """`mean_{n, c} |DFT(corrupted - clean)|` over NHWC batches: `(H, W)`, FFT layout."""
  if np.shape(corrupted) != np.shape(clean) or len(np.shape(clean)) != 4:
    raise ValueError(f"need two NHWC batches of equal shape, got {np.shape(corrupted)} and "
                     f"{np.shape(clean)}")
  n, _, _, c = np.shape(clean)
  return np.asarray(_abs_dft_sum(corrupted, clean), np.float64) / (n * c)


def corruption_spectra(key: jax.Array, images: np.ndarray, names: Sequence[str], severity: int,
                       corrupt_fn: CorruptFn | None = None, batch_size: int = 256,
                       progress: bool = True) -> dict[str, np.ndarray]:
  """`E|DFT(C(X) - X)|` `(H, W)` for every corruption name at one severity.

  Args:
    key: PRNG key; corruption `k` of `names` uses `fold_in(key, k)`, chunk `b` a further fold-in.
    images: float32 NHWC in [0, 1].
    names: corruption names understood by `corrupt_fn`.
    severity: 1..5.
    corrupt_fn: `(key, images, name, severity) -> images`; default
      `freqrobust.corruptions.corrupt`.
  """
  if corrupt_fn is None:
    from freqrobust import corruptions  # Only the default needs the corruptions.
    corrupt_fn = corruptions.corrupt
  images = np.asarray(images, np.float32)
  n = images.shape[0]
  out = {}
  for k, name in enumerate(names):
    name_key = jax.random.fold_in(key, k)
    total = np.zeros(images.shape[1:3])
    for b, (idx, valid) in enumerate(_batching.padded_chunks(
        n, batch_size, desc=f"spectra {name}", progress=progress)):
      clean = images[idx[:valid]]
      corrupted = np.asarray(corrupt_fn(jax.random.fold_in(name_key, b), clean, name, severity))
      total += difference_spectrum(corrupted, clean) * valid
    out[name] = total / n
  return out


def high_frequency_fraction(spectrum: np.ndarray, radius: float) -> np.ndarray:
  """Share of a non-negative spectrum's mass at `r(i, j) > radius` (METHOD §1 radii, FFT layout).

  `spectrum` is `(..., H, W)`; returns `(...)`. An all-zero spectrum gives 0.
  """
  spectrum = np.asarray(spectrum, np.float64)
  h, w = spectrum.shape[-2:]
  outside = np.asarray(frequency.radial_distance(h, w)) > radius
  total = spectrum.sum(axis=(-2, -1))
  high = (spectrum * outside).sum(axis=(-2, -1))
  return np.where(total > 0, high / np.where(total > 0, total, 1.0), 0.0)


# --- corruption_eval/results.json -------------------------------------------------------------

def corruption_accuracies(results: Mapping[str, Any]) -> dict[str, dict[int, float]]:
  """corruption -> severity -> accuracy (percent) of a `freqrobust.evaluate` results mapping."""
  if not isinstance(results.get("accuracy"), Mapping):
    raise ValueError("corruption results without an 'accuracy' table (corruption -> severity -> "
                     "percent); re-run `python -m freqrobust.evaluate --workdir=DIR`.")
  return workdir_lib.accuracy_table(results)


def accuracy_changes(accuracies: Mapping[str, Mapping[str, Mapping[int, float]]], baseline: str,
                     names: Sequence[str], severity: int | None = None
                     ) -> dict[str, dict[str, float]]:
  """Accuracy change (percentage points) of every non-baseline model per corruption.

  `accuracies[model][name][severity]` as from `corruption_accuracies`. With `severity=None` the
  mean over the severities both models have is used. Missing entries give NaN.
  """
  if baseline not in accuracies:
    raise ValueError(f"baseline {baseline!r} has no corruption results; available: "
                     f"{sorted(accuracies)}")
  base = accuracies[baseline]
  changes = {}
  for model, table in accuracies.items():
    if model == baseline:
      continue
    changes[model] = {}
    for name in names:
      mine, theirs = table.get(name, {}), base.get(name, {})
      levels = [severity] if severity is not None else sorted(set(mine) & set(theirs))
      levels = [s for s in levels if s in mine and s in theirs]
      changes[model][name] = (float(np.mean([mine[s] - theirs[s] for s in levels]))
                              if levels else float("nan"))
  return changes
