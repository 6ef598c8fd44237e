"""Noise in the frequency domain, NFD (eq. 11-18, METHOD §4): the bands and their coverage, the
random control, the Hermitian-symmetric noise, on a full or a half (rfft2) spectrum
(`freqrobust.frequency`, whose conventions apply)."""
from __future__ import annotations

import functools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from freqrobust.frequency.spectral import (_as_float_image, _check_size, _dft, _expand,
                                           _idft_real, _read_only, direction, hill,
                                           radial_distance)

Array = jax.Array
ArrayLike = jax.typing.ArrayLike
# METHOD §4: the paper's NFD bands for the 40x40 padded CIFAR image, m_k = m_{a,b}.
PAPER_NFD_BANDS_40 = ((0, 9), (10, 13), (14, 17), (18, 20), (21, 29))
NUM_NFD_BANDS = 5
# eq. 15-16: f(s) = alpha / (1 + s) with alpha = 1600, V(s) = log2(beta * pi * f(s)^2), beta = 1.
_COVERAGE_ALPHA = 1600.0


# ---------------------------------------------------------------------------------------------
# Noise in frequency domain (eq. 11-18)
# ---------------------------------------------------------------------------------------------


def _max_radius_int(h: int, w: int) -> int:
  """ceil(r_I), the number of the last sample of H(s) (METHOD §4)."""
  return int(math.ceil(float(radial_distance(h, w).max()) - 1e-6))


@functools.lru_cache(maxsize=None)
def _coverage_increments(h: int, w: int) -> np.ndarray:
  """H'_s (eq. 15-17): share of information at integer distances 0..ceil(r_I)."""
  r = radial_distance(h, w).astype(np.float64)
  v = np.log2(np.pi * (_COVERAGE_ALPHA / (1.0 + r)) ** 2)  # eq. 15-16
  samples = np.arange(_max_radius_int(h, w) + 1)
  cumulative = np.array([v[r <= s + 1e-9].sum() for s in samples]) / v.sum()  # eq. 17
  return _read_only(np.diff(cumulative, prepend=0.0))  # H'[0] = H(0)


def band_coverage(h: int, w: int, a: float, b: float) -> float:
  """Coverage degree C_v(m_{a,b}) = sum_i m_{a,b}(i) H'[i] (eq. 18) for an h x w image."""
  increments = _coverage_increments(h, w)
  return float(np.sum(hill(np.arange(len(increments), dtype=np.float64), a, b) * increments))


@functools.lru_cache(maxsize=None)
def nfd_band_edges(h: int, w: int) -> tuple[tuple[int, int], ...]:
  """The five NFD bands (a, b) of m_{a,b} (METHOD §4).

  40x40 returns the paper's edges. Other sizes split the integer distances 0..ceil(r_I) into five
  contiguous bands, a_0 = 0, a_{k+1} = b_k + 1, b_4 = ceil(r_I), chosen (dynamic programming) to
  minimise the sum of squared deviations of the coverages from 1/5.
  """
  _check_size(h, w)
  if (h, w) == (40, 40):
    return PAPER_NFD_BANDS_40
  increments = _coverage_increments(h, w)
  n = len(increments)
  if n < NUM_NFD_BANDS:
    raise ValueError(f"A {h}x{w} image has only {n} integer frequency distances; NFD needs at "
                     f"least {NUM_NFD_BANDS}.")
  prefix = np.concatenate([[0.0], np.cumsum(increments)])
  target = 1.0 / NUM_NFD_BANDS
  # cost[k][e]: best cost of covering distances 0..e-1 with k bands; choice[k][e]: last start.
  cost = np.full((NUM_NFD_BANDS + 1, n + 1), np.inf)
  choice = np.zeros((NUM_NFD_BANDS + 1, n + 1), dtype=int)
  cost[0, 0] = 0.0
  for k in range(1, NUM_NFD_BANDS + 1):
    for end in range(k, n + 1):
      starts = np.arange(k - 1, end)
      totals = cost[k - 1, starts] + (prefix[end] - prefix[starts] - target) ** 2
      best = int(np.argmin(totals))
      cost[k, end], choice[k, end] = totals[best], starts[best]
  edges, end = [], n
  for k in range(NUM_NFD_BANDS, 0, -1):
    start = choice[k, end]
    edges.append((int(start), int(end - 1)))
    end = start
  return tuple(reversed(edges))


@functools.lru_cache(maxsize=None)
def nfd_band_masks(h: int, w: int) -> np.ndarray:
  """Mask matrices M_0..M_4 of the NFD bands, shape (5, h, w); they sum to one everywhere."""
  r = radial_distance(h, w)
  return _read_only(np.stack([hill(r, a, b) for a, b in nfd_band_edges(h, w)]).astype(np.float32))


def nfd_control(key: Array, band_masks: ArrayLike) -> Array:
  """Random control matrix M = sum_k alpha_r[k] M_k (eq. 14, METHOD §4).

  One element of alpha_r, chosen uniformly, is ~ U(0, 1); each other element is 0 or 1 with
  probability 1/2.
  """
  band_masks = jnp.asarray(band_masks)
  num_bands = band_masks.shape[0]
  # One draw of num_bands + 2 uniforms (cheaper to compile and run than three samplers).
  u = jax.random.uniform(key, (num_bands + 2,))
  pick = jnp.minimum(jnp.floor(u[0] * num_bands).astype(jnp.int32), num_bands - 1)
  bits = (u[2:] < 0.5).astype(jnp.float32)
  alpha = jnp.where(jnp.arange(num_bands) == pick, u[1], bits)
  return jnp.tensordot(alpha, band_masks, axes=1)


def _mirror(x: Array, axis: int) -> Array:
  """x[..., -i mod n, ...] along `axis`."""
  return jnp.roll(jnp.flip(x, axis=axis), 1, axis=axis)


def _reshape_axis(v: np.ndarray, axis: int, ndim: int) -> np.ndarray:
  return v.reshape([-1 if a == axis else 1 for a in range(ndim)])


def _symmetrize(standard: Array, axes: Sequence[int]) -> Array:
  """Hermitian-symmetric (real, even) standard normal noise from independent N(0, 1) draws.

  z_s[k] = (z[k] + z[-k]) * s[k] over the frequency index k on `axes` (mirrored on all of them
  at once), with s = 1/sqrt(2) where k != -k and 1/2 where k = -k (then z[k] + z[-k] = 2 z[k]):
  z_s[k] = z_s[-k], and every element still has variance 1.
  """
  mirrored = standard
  for axis in axes:
    mirrored = _mirror(mirrored, axis)
  self_mirrored = np.ones((), bool)
  for axis in axes:
    i = np.arange(standard.shape[axis])
    self_mirrored = self_mirrored & _reshape_axis(i == (-i) % len(i), axis, standard.ndim)
  scale = np.where(self_mirrored, 0.5, np.sqrt(0.5)).astype(np.float32)
  return (standard + mirrored) * scale.astype(standard.dtype)


def nfd_noise(key: Array, shape: Sequence[int], control: ArrayLike, sigma: ArrayLike,
              dtype=jnp.float32) -> Array:
  """R_sigma(M): real Gaussian noise with variance sigma * (1 - M[i, j]) per coefficient
  (eq. 11), Hermitian-symmetric: R[i, j] = R[-i, -j].

  `shape` is the image's shape (HW, HWC or NHWC); each channel draws its own noise. The
  symmetry makes R * Dir DFT(I) Hermitian for a real image, so the inverse DFT of eq. 12 is
  real and each coefficient keeps the full variance sigma (1 - M); independent draws at
  [i, j] and [-i, -j] would be averaged by the real part, halving it.
  """
  control = jnp.asarray(control, dtype=dtype)
  # 1 - M can dip below 0 by rounding when the bands of the control sum to 1.
  variance = jnp.asarray(sigma, dtype=dtype) * jnp.maximum(1.0 - control, 0.0)
  if len(shape) not in (2, 3, 4):
    raise ValueError(f"Expected an HW, HWC or NHWC shape, got {tuple(shape)}.")
  standard = jax.random.normal(key, tuple(shape), dtype)
  axes = (1, 2) if len(shape) == 4 else (0, 1)
  symmetric = _symmetrize(standard, axes)
  return symmetric * jnp.sqrt(_expand(variance, symmetric))


def nfd_spectrum(key: Array, spectrum: Array, control: ArrayLike, sigma: ArrayLike) -> Array:
  """F + R * Dir F (eq. 12) on a DFT taken over the spatial axes of an HW/HWC/NHWC layout."""
  dtype = jnp.real(spectrum).dtype
  noise = nfd_noise(key, spectrum.shape, control, sigma, dtype)
  return spectrum + noise * direction(spectrum)


def _lowbias32(x: Array) -> Array:
  """A bijective 32-bit integer hash with strong avalanche (C. Wellons' "lowbias32")."""
  x = x ^ (x >> 16)
  x = x * jnp.uint32(0x7FEB352D)
  x = x ^ (x >> 15)
  x = x * jnp.uint32(0x846CA68B)
  return x ^ (x >> 16)


def fast_standard_normal(key: Array, shape: Sequence[int], dtype=jnp.float32) -> Array:
  """Standard normal samples from a counter-based hash seeded by `key`; ~4x cheaper than
  `jax.random.normal` on CPU.

  Threefry draws 64 seed bits from `key`; each element then hashes its index with them twice
  (`_lowbias32`, bijective, so a stream never repeats a value) to 23 uniform bits, mapped through
  the inverse error function (|z| <= 5.3). Meant for bulk augmentation noise, where threefry's
  bit generation dominated the augmentation's cost; use `jax.random.normal` where statistical
  guarantees matter more than speed.
  """
  shape = tuple(shape)
  seed = jax.random.bits(key, (2,), jnp.uint32)
  counter = jax.lax.iota(jnp.uint32, max(math.prod(shape), 1))[:math.prod(shape)].reshape(shape)
  bits = _lowbias32(_lowbias32(counter ^ seed[0]) + seed[1])
  return bits_to_standard_normal(bits).astype(dtype)


def bits_to_standard_normal(bits: Array) -> Array:
  """Maps uint32 bits to N(0, 1) through the inverse error function; finite for every input.

  Uses 23 bits: with 24, (2^24 - 1) + 0.5 rounds to 2^24 in float32, the uniform hits 1.0 and
  erf_inv(1) = inf (this put NaN into about one training image in 30 000).
  """
  uniform = ((bits >> 9).astype(jnp.float32) + 0.5) * (2.0 ** -23)  # in (0, 1), exactly
  return np.sqrt(2.0) * jax.lax.erf_inv(2.0 * uniform - 1.0)


def nfd_half_spectrum(key: Array, half_spectrum: Array, control: ArrayLike,
                      sigma: ArrayLike, fast_noise: bool = True) -> Array:
  """`nfd` on the rfft2 half-spectrum (h, w // 2 + 1[, C]) of an HW/HWC image; w from `control`.

  `nfd`'s noise is Hermitian-symmetric, R[i, j] = R[-i, -j], variance sigma (1 - M) at every
  coefficient; the half-spectrum holds one coefficient of each mirrored pair, so this draws
  independent noise of variance sigma (1 - M) there, except on the self-conjugate columns (0,
  and w/2 for even w), which hold both [i, j] and [-i, -j] and get the column-wise symmetric
  noise. `irfft2` of the result has the same distribution as `nfd` with half the noise draws
  and half the FFT work. With `fast_noise` the draws come from `fast_standard_normal`, else
  from `jax.random.normal`.
  """
  control = jnp.asarray(control)
  h, w = control.shape
  if half_spectrum.shape[:2] != (h, w // 2 + 1):
    raise ValueError(f"Half-spectrum of shape {half_spectrum.shape} does not match the rfft2 of "
                     f"an image of spatial shape {(h, w)}.")
  dtype = jnp.real(half_spectrum).dtype
  draw = fast_standard_normal if fast_noise else jax.random.normal
  key_interior, key_mirrored = jax.random.split(key)
  width = w // 2 + 1
  # Columns 0 (and w/2 for even w) hold both [i, j] and [-i, j] = [-i, -j]: their noise must be
  # equal on +-i, (n[i] + n[-i]) / sqrt(2), or n[i] where i = -i (variance 1 either way). The
  # other columns hold one coefficient of each mirrored pair: independent, variance 1. (Drawn as
  # two arrays: reusing one noise array in several places makes XLA recompute it in each fused
  # consumer.)
  mirrored_columns = [0] + ([w // 2] if w % 2 == 0 and w > 1 else [])
  extra = half_spectrum.shape[2:]
  standard = draw(key_interior, (h, width) + extra, dtype)
  columns = draw(key_mirrored, (h, len(mirrored_columns)) + extra, dtype)
  columns = _symmetrize(columns, (0,))
  symmetric = standard.at[:, np.asarray(mirrored_columns)].set(columns)
  variance = jnp.asarray(sigma, dtype) * jnp.maximum(1.0 - control[:, :width], 0.0)
  noise = symmetric * jnp.sqrt(_expand_to(variance, standard))
  # F + noise * Dir F, Dir F = F * (1 / |F|) (a real scale: cheaper than a complex division, and
  # bounded even for the tiniest |F|), Dir 0 = 1.
  magnitude = jnp.abs(half_spectrum)
  nonzero = magnitude > 0
  unit = half_spectrum * (1.0 / jnp.where(nonzero, magnitude, 1.0))
  return half_spectrum + noise * jnp.where(nonzero, unit, 1.0 + 0.0j)


def _expand_to(array: ArrayLike, like: Array) -> Array:
  """Appends trailing axes so that an (h, w') array broadcasts against an HW'/HW'C one."""
  array = jnp.asarray(array)
  return array.reshape(array.shape + (1,) * (like.ndim - array.ndim))


def nfd(key: Array, image: ArrayLike, control: ArrayLike, sigma: ArrayLike) -> Array:
  """N_sigma(I, M) = IDFT(DFT(I) + R_sigma(M) * Dir DFT(I)) (eq. 11-12), real part (METHOD §1).

  R is Hermitian-symmetric (`nfd_noise`), so the perturbed spectrum stays that of a real image:
  the returned image's spectrum is F + R * Dir F exactly (up to rounding), each coefficient
  stays on the line of its original phase (kept, or flipped by pi where the noise exceeds the
  amplitude), and the noise amplitude has the stated variance sigma (1 - M) at every
  coefficient.
  """
  image = _as_float_image(image)
  return _idft_real(nfd_spectrum(key, _dft(image), control, sigma), image)
