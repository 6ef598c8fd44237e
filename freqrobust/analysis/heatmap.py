"""Fourier heat map (Yin et al. 2019, "A Fourier Perspective on Model Robustness"; METHOD §7).

For each frequency `[i, j]` (one real basis image for the pair `[i, j]`, `[-i, -j]`) the unit-norm
Fourier basis `U_ij` is scaled by `eps`, given a random sign per image and channel, and added to
the test images. The error rate and the mean L2 change of the logits are recorded per frequency.
"""
from collections.abc import Callable

import functools

import jax
import jax.numpy as jnp
import numpy as np

from freqrobust import frequency
from freqrobust.analysis import _batching

PredictFn = Callable[[jax.Array], jax.Array]


def mirror_pairs(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """One representative `[i, j]` per mirror pair `{[i, j], [-i, -j]}`.

  Returns `(i, j, index_map)`: the representatives' coordinates and an `(h, w)` int map that sends
  every frequency to the index of its pair's representative.
  """
  ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  linear = ii * w + jj
  mirrored = ((-ii) % h) * w + (-jj) % w
  representative = np.minimum(linear, mirrored)
  unique = np.unique(representative)
  index_map = np.searchsorted(unique, representative).astype(np.int32)
  return (unique // w).astype(np.int32), (unique % w).astype(np.int32), index_map


def basis_stack(h: int, w: int, i: np.ndarray, j: np.ndarray) -> jax.Array:
  """Unit-norm real Fourier basis images `(F, h, w)` for the frequencies `(i[f], j[f])`."""
  build = jax.vmap(lambda a, b: frequency.fourier_basis(h, w, a, b))
  return jnp.asarray(build(jnp.asarray(i), jnp.asarray(j)), jnp.float32)


def fourier_heatmap(predict_fn: PredictFn, images: np.ndarray, labels: np.ndarray, eps: float,
                    key: jax.Array, batch_size: int = 512, clip: bool = True,
                    progress: bool = True) -> dict[str, np.ndarray]:
  """Error rate and mean logit change per frequency for perturbations `eps * sign * U_ij`.

  Args:
    predict_fn: float32 NHWC images in [0, 1] -> logits `(N, K)`.
    images: float32 `(N, H, W, C)` in [0, 1]; labels: int `(N,)`.
    eps: L2 norm `v` of the perturbation per channel (Yin et al. use 4 on CIFAR-10).
    key: PRNG key for the random signs (one sign per frequency, image and channel).
    batch_size: perturbed images per call of `predict_fn`.
    clip: clip perturbed images to [0, 1] (as Yin et al.).
    progress: tqdm bar.

  Returns:
    `error` and `logit_change` `(H, W)` in FFT layout (both members of a mirror pair hold the
    same value), plus scalars `clean_error` and `eps`.
  """
  images = jnp.asarray(images, jnp.float32)
  labels = jnp.asarray(labels, jnp.int32)
  n, h, w, c = images.shape
  if labels.shape != (n,):
    raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
  fi, fj, index_map = mirror_pairs(h, w)
  bases = basis_stack(h, w, fi, fj)
  clean_logits = jnp.asarray(np.asarray(predict_fn(images), np.float32))

  def run(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pair = jnp.asarray(idx, jnp.int32)
    perturbed = _perturb(pair, images, bases, key, jnp.float32(eps), clip)
    logits = jnp.asarray(predict_fn(perturbed), jnp.float32)
    return _score(pair, logits, labels, clean_logits)

  num_pairs = fi.size * n
  wrong, change = _batching.map_chunks(run, num_pairs, batch_size, desc="heatmap",
                                       progress=progress)
  error = wrong.reshape(fi.size, n).mean(axis=1)
  logit_change = change.reshape(fi.size, n).mean(axis=1)
  clean_error = float(np.mean(np.argmax(np.asarray(clean_logits), -1) != np.asarray(labels)))
  return {"error": error[index_map], "logit_change": logit_change[index_map],
          "clean_error": np.float64(clean_error), "eps": np.float64(eps)}


@functools.partial(jax.jit, static_argnames=("clip",))
def _perturb(pair: jax.Array, images: jax.Array, bases: jax.Array, key: jax.Array,
             eps: jax.Array, clip: bool) -> jax.Array:
  """Images `pair % N` plus `eps * sign * U_f`, `f = pair // N`, one sign per pair and channel."""
  n, c = images.shape[0], images.shape[-1]
  f, m = pair // n, pair % n
  signs = jax.vmap(lambda p: jax.random.rademacher(jax.random.fold_in(key, p), (c,)))(pair)
  x = images[m] + eps * signs[:, None, None, :].astype(jnp.float32) * bases[f][..., None]
  return jnp.clip(x, 0.0, 1.0) if clip else x


@jax.jit
def _score(pair: jax.Array, logits: jax.Array, labels: jax.Array,
           clean_logits: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Misclassification and L2 logit change of each perturbed image."""
  m = pair % labels.shape[0]
  wrong = (jnp.argmax(logits, -1) != labels[m]).astype(jnp.float32)
  change = jnp.linalg.norm(logits - clean_logits[m], axis=-1)
  return wrong, change
