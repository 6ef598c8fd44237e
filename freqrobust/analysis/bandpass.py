"""Band-limited accuracy (Yin et al. 2019; METHOD §7).

Test accuracy when each test image keeps only a centred low-pass square of bandwidth `B` of its
shifted spectrum (`frequency.lowpass_square`), and under the complementary high-pass
(`frequency.highpass_square`), as curves over `B`.
"""
from collections.abc import Callable, Sequence

import functools

import jax
import jax.numpy as jnp
import numpy as np

from freqrobust import frequency
from freqrobust.analysis import _batching

PredictFn = Callable[[jax.Array], jax.Array]


def bandlimited_accuracy(predict_fn: PredictFn, images: np.ndarray, labels: np.ndarray,
                         bandwidths: Sequence[int], batch_size: int = 512,
                         progress: bool = True) -> dict[str, np.ndarray]:
  """Accuracy under low-pass and high-pass filtering for each bandwidth.

  Returns `bandwidths` `(B,)`, `lowpass_accuracy` and `highpass_accuracy` `(B,)` in [0, 1], and the
  scalar `clean_accuracy` on the unfiltered images.
  """
  images = jnp.asarray(images, jnp.float32)
  labels = jnp.asarray(labels, jnp.int32)
  n = images.shape[0]
  if labels.shape != (n,):
    raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
  bands = np.asarray(list(bandwidths), np.int32)
  if bands.ndim != 1 or bands.size == 0 or np.any(bands < 0):
    raise ValueError(f"bandwidths must be a non-empty list of non-negative ints, got {bandwidths}")
  band_values = jnp.asarray(bands)
  low, high = _batching.split_accuracy(
      predict_fn, images, labels, bands.size,
      lambda pair: (_bandlimit(pair, images, band_values, False),
                    _bandlimit(pair, images, band_values, True)), batch_size, "bandpass", progress)
  clean_logits = np.asarray(predict_fn(images), np.float32)
  clean = float(np.mean(np.argmax(clean_logits, -1) == np.asarray(labels)))
  return {"bandwidths": bands, "lowpass_accuracy": low, "highpass_accuracy": high,
          "clean_accuracy": np.float64(clean)}


@functools.partial(jax.jit, static_argnames=("highpass",))
def _bandlimit(pair: jax.Array, images: jax.Array, bandwidths: jax.Array,
               highpass: bool) -> jax.Array:
  """Image `pair % N` filtered with bandwidth `bandwidths[pair // N]`."""
  n = images.shape[0]
  filter_fn = frequency.highpass_square if highpass else frequency.lowpass_square
  return jax.vmap(filter_fn)(images[pair % n], bandwidths[pair // n])
