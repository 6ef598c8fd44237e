"""Occluded-frequency attribution (Wang et al. 2020, "Towards Frequency-Based Explanation for
Robust CNN"; METHOD §7).

One radial band of each test image's spectrum is removed (`frequency.remove_radial_band`), the
image is inverted back, and the drop of the true-class softmax probability is recorded: per band,
averaged over all images and per true class.
"""
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from freqrobust import frequency
from freqrobust.analysis import _batching

PredictFn = Callable[[jax.Array], jax.Array]


def radial_bands(h: int, w: int, num_bands: int) -> list[tuple[float, float]]:
  """`num_bands` equal-width rings `[r_lo, r_hi)` that together cover every frequency of h x w."""
  if num_bands <= 0:
    raise ValueError(f"num_bands must be positive, got {num_bands}")
  r_max = float(np.max(np.asarray(frequency.radial_distance(h, w))))
  edges = np.linspace(0.0, r_max + 1e-3, num_bands + 1)
  return [(float(lo), float(hi)) for lo, hi in zip(edges[:-1], edges[1:])]


def occlusion_attribution(predict_fn: PredictFn, images: np.ndarray, labels: np.ndarray,
                          bands: Sequence[tuple[float, float]], num_classes: int | None = None,
                          batch_size: int = 512, progress: bool = True) -> dict[str, np.ndarray]:
  """Drop of the true-class probability when each radial band is removed.

  Args:
    predict_fn: float32 NHWC images in [0, 1] -> logits `(N, K)`.
    images: float32 `(N, H, W, C)`; labels: int `(N,)`.
    bands: `(r_lo, r_hi)` pairs, radii as in `frequency.radial_distance`.
    num_classes: K (default: the number of logits).

  Returns:
    `bands` `(B, 2)`, `drop` `(B,)` averaged over all images, `drop_per_class` `(B, K)` averaged
    over the images of each true class (NaN for a class without images), `class_counts` `(K,)`
    and `clean_probability` (mean true-class probability of the unmodified images).
  """
  images = jnp.asarray(images, jnp.float32)
  labels_np = np.asarray(labels, np.int32)
  labels = jnp.asarray(labels_np)
  n = images.shape[0]
  if labels.shape != (n,):
    raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
  band_array = np.asarray(list(bands), np.float32).reshape(-1, 2)
  if band_array.shape[0] == 0:
    raise ValueError("bands is empty: pass at least one (r_lo, r_hi) pair")
  lo, hi = jnp.asarray(band_array[:, 0]), jnp.asarray(band_array[:, 1])

  clean_logits = np.asarray(predict_fn(images), np.float32)
  num_classes = num_classes or clean_logits.shape[-1]
  clean_prob = np.asarray(_true_probability(jnp.asarray(clean_logits), labels))

  def run(idx: np.ndarray) -> np.ndarray:
    pair = jnp.asarray(idx, jnp.int32)
    logits = jnp.asarray(predict_fn(_occlude(pair, images, lo, hi)), jnp.float32)
    return np.asarray(_true_probability(logits, labels[pair % n]))

  prob = _batching.map_chunks(run, band_array.shape[0] * n, batch_size, desc="occlusion",
                              progress=progress).reshape(-1, n)
  drop = clean_prob[None, :] - prob  # (B, N)
  onehot = np.eye(num_classes)[labels_np]  # (N, K)
  counts = onehot.sum(axis=0)
  with np.errstate(invalid="ignore", divide="ignore"):
    per_class = (drop @ onehot) / counts[None, :]
  return {"bands": band_array, "drop": drop.mean(axis=1), "drop_per_class": per_class,
          "class_counts": counts, "clean_probability": np.float64(clean_prob.mean())}


@jax.jit
def _true_probability(logits: jax.Array, labels: jax.Array) -> jax.Array:
  probs = jax.nn.softmax(logits, axis=-1)
  return jnp.take_along_axis(probs, labels[:, None], axis=-1)[:, 0]


@jax.jit
def _occlude(pair: jax.Array, images: jax.Array, lo: jax.Array, hi: jax.Array) -> jax.Array:
  """Image `pair % N` without the radial band `[lo[b], hi[b])`, `b = pair // N`."""
  n = images.shape[0]
  b, m = pair // n, pair % n
  return jax.vmap(frequency.remove_radial_band)(images[m], lo[b], hi[b])
