"""Adversarial Fourier bases: Yin et al.'s Fourier heat map (NeurIPS 2019, "A Fourier Perspective
on Model Robustness"; freqrobust/analysis/heatmap.py) made adversarial (docs/METHOD.md §12).

For each image the search tries every real Fourier basis U_ij (`frequency.fourier_basis`, one
per mirror pair {[i, j], [-i, -j]}, unit L2 norm) with both signs, the same basis and sign in
every channel, scaled so that the whole perturbation has L2 norm eps:
delta = s eps U_ij / sqrt(C), s = +-1, then clipped to [0, 1] (as Yin et al. clip). The worst
candidate of an image is the one of highest margin max_{k != y} z_k - z_y (so a misclassifying
one whenever there is one). The search is exhaustive: every candidate on every image, a chunk of
candidates per step of a `lax.scan`, on device; the first candidate wins a tie.
"""
from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from freqrobust import frequency
from freqrobust.attacks import losses

Array = jax.Array


def mirror_representatives(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(i, j, index_map): one [i, j] (FFT layout) per mirror pair {[i, j], [-i, -j]}, and the
  (h, w) map of every frequency to its pair's index (as analysis/heatmap.py's `mirror_pairs`)."""
  ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  linear = ii * w + jj
  representative = np.minimum(linear, ((-ii) % h) * w + (-jj) % w)
  unique = np.unique(representative)
  index_map = np.searchsorted(unique, representative).astype(np.int32)
  return (unique // w).astype(np.int32), (unique % w).astype(np.int32), index_map


def _candidates(h: int, w: int, channels: int) -> tuple[np.ndarray, np.ndarray, Array]:
  """Every (pair, sign): pair index (2F,), sign (2F,), and the unit-norm perturbations
  (2F, h, w) per channel (the whole C-channel perturbation has norm 1)."""
  fi, fj, _ = mirror_representatives(h, w)
  basis = jax.vmap(lambda a, b: frequency.fourier_basis(h, w, a, b))(jnp.asarray(fi),
                                                                     jnp.asarray(fj))
  pair = np.concatenate([np.arange(fi.size), np.arange(fi.size)]).astype(np.int32)
  sign = np.concatenate([np.ones(fi.size), -np.ones(fi.size)]).astype(np.float32)
  unit = jnp.concatenate([basis, -basis]) / np.sqrt(channels)
  return pair, sign, unit.astype(jnp.float32)


@functools.partial(jax.jit, static_argnums=(0,), static_argnames=("chunk", "clip"))
def _search(logits_fn, variables, images, labels, real, unit, valid, eps, *, chunk: int,
            clip: bool):
  """(worst candidate (N,), its margin (N,), correct under it (N,), the count of `real` images
  correct under each candidate (2F_padded,))."""
  n, h, w, c = images.shape

  def body(carry, index):
    best_value, best_index, best_correct = carry
    x = images[None] + eps * unit[index][:, None, :, :, None]
    x = jnp.clip(x, 0.0, 1.0) if clip else x
    x = x.reshape((chunk * n, h, w, c))
    logits = (logits_fn(x) if variables is None else logits_fn(variables, x)).astype(jnp.float32)
    logits = logits.reshape((chunk, n, -1))
    tiled = jnp.broadcast_to(labels, (chunk, n)).reshape(-1)
    value = losses.margin(logits.reshape(chunk * n, -1), tiled).reshape(chunk, n)
    correct = jnp.argmax(logits, -1) == labels[None]
    value = jnp.where(valid[index][:, None], value, -jnp.inf)
    k = jnp.argmax(value, axis=0)
    top = jnp.take_along_axis(value, k[None], axis=0)[0]
    take = top > best_value
    now_correct = jnp.take_along_axis(correct, k[None], axis=0)[0]
    carry = (jnp.where(take, top, best_value), jnp.where(take, index[k], best_index),
             jnp.where(take, now_correct, best_correct))
    return carry, jnp.sum(correct & real[None], axis=1)

  init = (jnp.full((n,), -jnp.inf, jnp.float32), jnp.zeros((n,), jnp.int32),
          jnp.ones((n,), bool))
  order = jnp.arange(unit.shape[0], dtype=jnp.int32).reshape(-1, chunk)
  (best_value, best_index, best_correct), counts = jax.lax.scan(body, init, order)
  return best_index, best_value, best_correct, counts.reshape(-1)


def worst_fourier_basis(logits_fn: Callable[[Array], Array], images, labels, *, eps: float,
                        bases_per_step: int = 16, images_per_call: int = 256,
                        clip: bool = True, variables=None) -> dict[str, np.ndarray]:
  """The per-image worst Fourier basis and sign at L2 norm `eps` (see the module docstring).

  Args:
    logits_fn: images (N, H, W, C) in [0, 1] -> logits; static under jit. With `variables`,
      logits_fn(variables, images): the variables are traced (new weights reuse the program).
    images: float (N, H, W, C) in [0, 1]; labels (N,) int.
    eps: the L2 norm of the whole perturbation (all channels).
    bases_per_step: candidates per scan step (each step evaluates bases_per_step x
      images_per_call images at once).
    images_per_call: images per jitted call (the last chunk is padded).

  Returns (NumPy): `worst_i`, `worst_j` (N,) the worst basis's representative in FFT layout,
  `worst_sign` (N,) +-1, `worst_margin` (N,), `correct` (N,) bool under the worst basis,
  `accuracy` (scalar), `heatmap` (H, W): the share of images whose worst basis is [i, j] (both
  members of a mirror pair hold the pair's share), `basis_accuracy` (2, H, W): the accuracy
  under each fixed basis with sign + (row 0) and - (row 1), `eps`.
  """
  images = np.asarray(images, np.float32)
  labels = np.asarray(labels, np.int32)
  if images.ndim != 4 or labels.shape != images.shape[:1]:
    raise ValueError(f"images (N, H, W, C) and labels (N,) expected, got {images.shape} and "
                     f"{labels.shape}.")
  if not float(eps) >= 0 or bases_per_step < 1 or images_per_call < 1:
    raise ValueError(f"eps >= 0, bases_per_step >= 1 and images_per_call >= 1 expected, got "
                     f"{eps}, {bases_per_step}, {images_per_call}.")
  n, h, w, c = images.shape
  pair, sign, unit = _candidates(h, w, c)
  total = unit.shape[0]
  padded = -(-total // bases_per_step) * bases_per_step
  unit = jnp.concatenate([unit, jnp.zeros((padded - total, h, w), jnp.float32)])
  valid = jnp.arange(padded) < total
  index, value, correct, counts = [], [], [], np.zeros((padded,), np.int64)
  for start in range(0, n, images_per_call):
    x, y = images[start:start + images_per_call], labels[start:start + images_per_call]
    m = x.shape[0]
    if m < images_per_call and n > images_per_call:  # Pad: one compiled shape.
      x = np.concatenate([x, np.repeat(x[-1:], images_per_call - m, 0)])
      y = np.concatenate([y, np.repeat(y[-1:], images_per_call - m, 0)])
    real = jnp.arange(x.shape[0]) < m
    i, v, ok, cnt = _search(logits_fn, variables, jnp.asarray(x), jnp.asarray(y), real, unit,
                            valid, jnp.float32(eps), chunk=bases_per_step, clip=bool(clip))
    index.append(np.asarray(i)[:m])
    value.append(np.asarray(v)[:m])
    correct.append(np.asarray(ok)[:m])
    counts += np.asarray(cnt).astype(np.int64)
  return _summary(np.concatenate(index), np.concatenate(value), np.concatenate(correct),
                  counts[:total], pair, sign, h, w, n, eps)


def _summary(index, value, correct, counts, pair, sign, h, w, n, eps) -> dict[str, np.ndarray]:
  fi, fj, index_map = mirror_representatives(h, w)
  share = np.bincount(pair[index], minlength=fi.size) / n
  per_pair = counts.reshape(2, fi.size) / n
  return {"worst_i": fi[pair[index]], "worst_j": fj[pair[index]], "worst_sign": sign[index],
          "worst_margin": value.astype(np.float32), "correct": correct,
          "accuracy": float(np.mean(correct)),
          "heatmap": share[index_map].astype(np.float32),
          "basis_accuracy": per_pair[:, index_map].astype(np.float32),
          "eps": float(eps)}
