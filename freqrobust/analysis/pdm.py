"""Point detection maps and frequency response histograms of the first semantic layer (METHOD §5).

A channel point detection map (cPDM) is the flat grey image `I_0.5` with one real cosine of L2
norm `t` added to input channel `c` at frequency `[i, j]` (section 3.4 of the paper). The
response of output channel `k` of the first semantic layer is the spatial mean of its activation
(after the ReLU) to the cPDM minus its spatial mean to `I_0.5`. Sweeping `<c, i, j>` gives one
response map `(C_in, H, W)` per output channel; each map is normalised to [0, 1] and the maps vote
(sum) into a 2-D histogram over `[i, j]` (Figure 6).

All arrays here are in NumPy's FFT layout (DC at `[0, 0]`); plots shift them.
"""
from collections.abc import Callable
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from freqrobust import frequency
from freqrobust.analysis import _batching

PAPER_STRENGTH = 4.0 * math.sqrt(2.0)  # t of Figure 5.

LayerFn = Callable[[jax.Array], jax.Array]


def frequency_triples(h: int, w: int, channels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """All `<c, i, j>` combinations, channel-major, as three int32 arrays of length C*H*W."""
  c, i, j = np.meshgrid(np.arange(channels), np.arange(h), np.arange(w), indexing="ij")
  return (c.ravel().astype(np.int32), i.ravel().astype(np.int32), j.ravel().astype(np.int32))


def cpdm_batch(h: int, w: int, channels: int, c: jax.Array, i: jax.Array, j: jax.Array,
               t: float = PAPER_STRENGTH) -> jax.Array:
  """cPDMs for vectors `c, i, j` of equal length: `(N, H, W, C)` float32."""
  build = jax.vmap(lambda cc, ii, jj: frequency.cpdm(h, w, channels, cc, ii, jj, t))
  return jnp.asarray(build(c, i, j), jnp.float32)


def pdm_response(layer_fn: LayerFn, h: int, w: int, channels: int,
                 t: float = PAPER_STRENGTH, batch_size: int = 256,
                 progress: bool = True) -> np.ndarray:
  """Frequency response maps of every output channel: `(K, C_in, H, W)` (METHOD §5).

  Args:
    layer_fn: maps float32 NHWC images in [0, 1] to the first semantic layer's activation
      `(N, H', W', K)` after its nonlinearity (pass a jitted function for speed).
    h, w, channels: input image shape.
    t: L2 norm of the point perturbation (paper: 4*sqrt(2)).
    batch_size: cPDMs per call of `layer_fn`.
    progress: show a tqdm bar over the batches.
  """
  flat = jnp.full((1, h, w, channels), 0.5, jnp.float32)
  flat_response = _spatial_mean(layer_fn(flat))[0]  # (K,)
  c, i, j = (jnp.asarray(a) for a in frequency_triples(h, w, channels))

  def respond(idx: np.ndarray) -> np.ndarray:
    batch = _cpdm_chunk(jnp.asarray(idx), c, i, j, jnp.float32(t), h, w, channels)
    return np.asarray(_spatial_mean(layer_fn(batch)) - flat_response)

  responses = _batching.map_chunks(respond, c.size, batch_size, desc="pdm", progress=progress)
  return np.transpose(responses.reshape(channels, h, w, -1), (3, 0, 1, 2))


@functools.partial(jax.jit, static_argnums=(5, 6, 7))
def _cpdm_chunk(idx: jax.Array, c: jax.Array, i: jax.Array, j: jax.Array, t: jax.Array,
                h: int, w: int, channels: int) -> jax.Array:
  return cpdm_batch(h, w, channels, c[idx], i[idx], j[idx], t)


def _spatial_mean(activation: jax.Array) -> jax.Array:
  if activation.ndim != 4:
    raise ValueError(f"layer_fn must return (N, H, W, K) activations, got shape {activation.shape}")
  return jnp.mean(activation, axis=(1, 2))


@jax.jit
def _normalize_one(response_map: jax.Array, ignore_fraction: jax.Array) -> jax.Array:
  lo = jnp.quantile(response_map, ignore_fraction / 2)
  hi = jnp.quantile(response_map, 1.0 - ignore_fraction / 2)
  span = hi - lo
  scaled = (response_map - lo) / jnp.where(span > 0, span, 1.0)
  return jnp.where(span > 0, jnp.clip(scaled, 0.0, 1.0), jnp.zeros_like(response_map))


def normalize_response_maps(maps: np.ndarray, ignore_fraction: float = 0.01) -> np.ndarray:
  """Scales each output channel's map (`maps[k]`, any shape) to [0, 1].

  The lowest and highest `ignore_fraction / 2` of the map's values are ignored (clipped), as the
  paper does "to keep visual clarity" (section 4.1). A constant map becomes all zeros.
  The clipped top values all become 1, so a map's (and the voted histogram's) maximum is a
  plateau of several frequencies: which of them `argmax` picks depends on the last bits of the
  float arithmetic (CPU model, XLA fusions); compare peaks on the raw responses instead.
  """
  if not 0.0 <= ignore_fraction < 1.0:
    raise ValueError(f"ignore_fraction must lie in [0, 1), got {ignore_fraction}")
  maps = jnp.asarray(maps, jnp.float32)
  return np.asarray(jax.vmap(_normalize_one, in_axes=(0, None))(maps, ignore_fraction))


def peak_response_without_dc(responses: np.ndarray) -> np.ndarray:
  """Each output channel's largest response `(K,)` over all `<c, i, j>` except DC.

  A DC cPDM is a brightness shift, to which even a channel in its linear regime responds; off DC
  such a channel's response is about zero, so a tiny peak marks a channel without frequency
  selectivity (its normalised map is mostly border effects).
  """
  off_dc = np.array(responses, np.float64)
  off_dc[..., 0, 0] = -np.inf
  return off_dc.reshape(off_dc.shape[0], -1).max(axis=1)


def voting_channels(responses: np.ndarray, min_peak_fraction: float) -> np.ndarray:
  """0/1 weights `(K,)`: channels whose off-DC peak is >= `min_peak_fraction` x the largest.

  `min_peak_fraction = 0` lets every channel vote (METHOD §5 as written).
  """
  if not 0.0 <= min_peak_fraction <= 1.0:
    raise ValueError(f"min_peak_fraction must lie in [0, 1], got {min_peak_fraction}")
  peaks = peak_response_without_dc(responses)
  return (peaks >= min_peak_fraction * peaks.max()).astype(np.float64)


def response_histogram(normalized_maps: np.ndarray,
                       weights: np.ndarray | None = None) -> np.ndarray:
  """Votes normalised maps `(K, ..., H, W)` into one `(H, W)` histogram.

  Every output channel's map (summed over its input channels) adds its [0, 1] votes; `weights`
  `(K,)` (e.g. the mean APS open ratio of each channel) scales each channel's vote.
  """
  maps = np.asarray(normalized_maps, np.float64)
  per_channel = maps.reshape(maps.shape[0], -1, *maps.shape[-2:]).sum(axis=1)  # (K, H, W)
  if weights is None:
    weights = np.ones(maps.shape[0])
  weights = np.asarray(weights, np.float64)
  if weights.shape != (maps.shape[0],):
    raise ValueError(f"weights must have shape ({maps.shape[0]},), got {weights.shape}")
  return np.tensordot(weights, per_channel, axes=1)


def kernel_spectrum(kernel: np.ndarray, h: int, w: int) -> np.ndarray:
  """|DFT| of each first-layer kernel `(kh, kw, cin, cout)` zero-padded to `(h, w)`.

  Returns `(h, w, cin, cout)` in FFT layout. (Flax convolutions are cross-correlations; the
  magnitude of the DFT is the same for the flipped kernel.)
  """
  kernel = np.asarray(kernel, np.float64)
  if kernel.ndim != 4:
    raise ValueError(f"kernel must be (kh, kw, cin, cout), got shape {kernel.shape}")
  kh, kw = kernel.shape[:2]
  if kh > h or kw > w:
    raise ValueError(f"kernel {kh}x{kw} is larger than the image {h}x{w}")
  padded = np.zeros((h, w) + kernel.shape[2:])
  padded[:kh, :kw] = kernel
  return np.abs(np.fft.fft2(padded, axes=(0, 1)))
