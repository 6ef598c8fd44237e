"""The spectral operators of the paper other than its noise (`freqrobust.frequency`, whose
conventions apply): radial distance and mask curves (eq. 1-4, 13), the DFT helpers, power
suppression and the auxiliary labels (eq. 5-9), point detection maps and the Fourier basis
(METHOD §5, §7), and the band-limited filters of the analysis tools (METHOD §7)."""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
ArrayLike = jax.typing.ArrayLike

# Indices of the three power-suppression masks (also used by the augmentation's aux output).
MASK_NAMES = ("L", "M", "H")
# METHOD §3: the eight fixed configurations and the learnable one.
APS_CONFIGURATIONS = ("LMH=111", "LMH=011", "LMH=101", "LMH=110", "LMH=001", "LMH=010",
                      "LMH=100", "LMH=000", "learnable")


def _xp(x):
  """NumPy for concrete NumPy/Python inputs (trace-time constants), jax.numpy otherwise."""
  if isinstance(x, (np.ndarray, np.generic, float, int)):
    return np
  return jnp


def _read_only(x: np.ndarray) -> np.ndarray:
  x.flags.writeable = False
  return x


# ---------------------------------------------------------------------------------------------
# Radial distance and mask curves (eq. 1-4, 13)
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def radial_distance(h: int, w: int) -> np.ndarray:
  """r(i, j) = sqrt(fi^2 + fj^2) in NumPy's FFT layout, shape (h, w) (METHOD §1)."""
  # Rounded integer frequencies: fftfreq(h) * h is off by ~1e-15, which would move points
  # lying exactly on an integer radius (e.g. (5, 12) at r = 13) across a band edge.
  fi, fj = (f.astype(np.float64) for f in _signed_frequencies(h, w))
  return _read_only(np.sqrt(fi[:, None] ** 2 + fj[None, :] ** 2).astype(np.float32))


@functools.lru_cache(maxsize=None)
def _signed_frequencies(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
  """Integer frequencies fi (h,), fj (w,) in FFT layout, e.g. [0, 1, ..., -2, -1]."""
  _check_size(h, w)
  fi = np.round(np.fft.fftfreq(h) * h).astype(np.float32)
  fj = np.round(np.fft.fftfreq(w) * w).astype(np.float32)
  return _read_only(fi), _read_only(fj)


def _check_size(h: int, w: int) -> None:
  if not (isinstance(h, (int, np.integer)) and isinstance(w, (int, np.integer))) or h < 1 or w < 1:
    raise ValueError(f"Image size must be two positive Python ints, got h={h!r}, w={w!r}.")


def mask_step(s: ArrayLike) -> ArrayLike:
  """m_step (eq. 2): 1 for s <= 0, 1 - s/3 on (0, 3], 0 beyond."""
  xp = _xp(s)
  s = xp.asarray(s, dtype=np.float32)
  return xp.where(s <= 0, 1.0, xp.where(s <= 3, 1.0 - s / 3.0, 0.0)).astype(np.float32)


def mask_hill(s: ArrayLike) -> ArrayLike:
  """m_hill (eq. 3): s/3 on (0, 3], 1 on (3, 8], 1 - (s-8)/3 on (8, 11], 0 elsewhere."""
  xp = _xp(s)
  s = xp.asarray(s, dtype=np.float32)
  out = xp.where((s > 0) & (s <= 3), s / 3.0, 0.0)
  out = xp.where((s > 3) & (s <= 8), 1.0, out)
  out = xp.where((s > 8) & (s <= 11), 1.0 - (s - 8.0) / 3.0, out)
  return out.astype(np.float32)


def hill(s: ArrayLike, a: float, b: float) -> ArrayLike:
  """The NFD hill curve m_{a,b} (eq. 13): ramps up on [a-1, a), 1 on [a, b), down on [b, b+1)."""
  xp = _xp(s)
  s = xp.asarray(s, dtype=np.float32)
  out = xp.where((a - 1 <= s) & (s < a), s - a + 1.0, 0.0)
  out = xp.where((a <= s) & (s < b), 1.0, out)
  out = xp.where((b <= s) & (s < b + 1), b - s + 1.0, out)
  return out.astype(np.float32)


def _mask_curve(kind: str, s):
  # eq. 4, with the METHOD §2 fix of m_H (the paper prints m_step(s-1) + m_step(s-13)).
  if kind == "L":
    return mask_step(s - 1) + mask_hill(s - 1)
  if kind == "M":
    return mask_step(s - 1) + mask_hill(s - 7)
  if kind == "H":
    return mask_step(s - 1) + 1.0 - mask_step(s - 13)
  raise ValueError(f"Unknown power-suppression mask {kind!r}; valid masks are {MASK_NAMES}.")


@functools.lru_cache(maxsize=None)
def aps_mask(kind: str, h: int, w: int) -> np.ndarray:
  """Mask matrix M_L, M_M or M_H (eq. 1, 4) for an h x w image, values in [0, 1]."""
  _check_size(h, w)
  return _read_only(_mask_curve(kind, radial_distance(h, w)).astype(np.float32))


@functools.lru_cache(maxsize=None)
def aps_masks(h: int, w: int) -> np.ndarray:
  """The three masks stacked in index order 0=L, 1=M, 2=H, shape (3, h, w)."""
  return _read_only(np.stack([aps_mask(k, h, w) for k in MASK_NAMES]))


# ---------------------------------------------------------------------------------------------
# Spectral helpers
# ---------------------------------------------------------------------------------------------


def _spatial_axes(image: Array) -> tuple[int, int]:
  if image.ndim in (2, 3):
    return (0, 1)
  if image.ndim == 4:
    return (1, 2)
  raise ValueError(f"Expected an HW, HWC or NHWC image, got shape {image.shape}.")


def _spatial_shape(image: Array) -> tuple[int, int]:
  ax = _spatial_axes(image)
  return image.shape[ax[0]], image.shape[ax[1]]


def _expand(mask: ArrayLike, image: Array) -> Array:
  """Broadcast an (h, w) frequency mask against an HW, HWC or NHWC array."""
  mask = jnp.asarray(mask)
  if mask.shape != _spatial_shape(image):
    raise ValueError(f"Mask of shape {mask.shape} does not match the image's spatial shape "
                     f"{_spatial_shape(image)} (image shape {image.shape}).")
  if image.ndim == 2:
    return mask
  if image.ndim == 3:
    return mask[:, :, None]
  return mask[None, :, :, None]


def _as_float_image(image: ArrayLike) -> Array:
  image = jnp.asarray(image)
  if not jnp.issubdtype(image.dtype, jnp.floating):
    image = image.astype(jnp.float32)
  return image


def _dft(image: Array) -> Array:
  return jnp.fft.fft2(image, axes=_spatial_axes(image))


def _idft_real(spectrum: Array, like: Array) -> Array:
  """Real part of the inverse DFT (METHOD §1), in the dtype of `like`."""
  return jnp.real(jnp.fft.ifft2(spectrum, axes=_spatial_axes(like))).astype(like.dtype)


def _filter(image: ArrayLike, mask: ArrayLike) -> Array:
  """Real part of IDFT(DFT(image) * mask)."""
  image = _as_float_image(image)
  return _idft_real(_dft(image) * _expand(mask, image), image)


def direction(spectrum: Array) -> Array:
  """Dir c = c / |c|, with Dir 0 = 1 (METHOD §1)."""
  magnitude = jnp.abs(spectrum)
  nonzero = magnitude > 0
  return jnp.where(nonzero, spectrum / jnp.where(nonzero, magnitude, 1.0), 1.0 + 0.0j)


# ---------------------------------------------------------------------------------------------
# Power suppression and auxiliary labels (eq. 5-9)
# ---------------------------------------------------------------------------------------------


def power_suppress(image: ArrayLike, mask: ArrayLike, keep: ArrayLike) -> Array:
  """D(I, M, keep) = IDFT(DFT(I) * (keep + (1 - keep) * M)) (eq. 5 with keep = 1 - a, METHOD §2).

  keep = 1 returns the image; keep = 0 applies the mask fully.
  """
  keep = jnp.asarray(keep, dtype=jnp.float32)
  return _filter(image, keep + (1.0 - keep) * jnp.asarray(mask))


def beta_suppressed(keep: ArrayLike) -> Array:
  """beta_0(keep) = sigmoid(7 keep - 3) + 1 - sigmoid(4) (eq. 6); beta_0(1) = 1."""
  keep = jnp.asarray(keep, dtype=jnp.float32)
  return jax.nn.sigmoid(7.0 * keep - 3.0) + 1.0 - jax.nn.sigmoid(4.0)


def beta_learnable(keep: ArrayLike, b: ArrayLike) -> Array:
  """beta_L = (1 - keep) * b(M) + keep (eq. 8)."""
  keep = jnp.asarray(keep, dtype=jnp.float32)
  return (1.0 - keep) * b + keep


def basic_open_ratios(theta: ArrayLike) -> Array:
  """(b(M_L), b(M_M), b(M_H)) = 1.1 * sigmoid(theta) / sum(sigmoid(theta)) (eq. 9)."""
  s = jax.nn.sigmoid(jnp.asarray(theta, dtype=jnp.float32))
  return 1.1 * s / jnp.sum(s, axis=-1, keepdims=True)


class ApsConfiguration(NamedTuple):
  """A parsed configuration: `learnable`, or per mask L, M, H whether beta_1 = 1 is used."""
  learnable: bool
  fully_open: tuple[bool, bool, bool]


@functools.lru_cache(maxsize=None)
def parse_aps_configuration(configuration: str) -> ApsConfiguration:
  """Parses "LMH=abc" (a, b, c in {0, 1}) or "learnable" (METHOD §3). "abc" alone is accepted."""
  if not isinstance(configuration, str):
    raise ValueError(f"APS configuration must be a string, got {configuration!r}; valid values: "
                     f"{', '.join(APS_CONFIGURATIONS)}.")
  text = configuration.strip()
  if text.lower() == "learnable":
    return ApsConfiguration(True, (False, False, False))
  digits = text[4:] if text.upper().startswith("LMH=") else text
  if len(digits) != 3 or any(d not in "01" for d in digits):
    raise ValueError(f"Invalid APS configuration {configuration!r}; valid values: "
                     f"{', '.join(APS_CONFIGURATIONS)} (digit 0: beta_0 of eq. 6 for that mask, "
                     "1: beta_1 = 1).")
  return ApsConfiguration(False, tuple(d == "1" for d in digits))


def aps_label(mask_index: ArrayLike, keep: ArrayLike, configuration: str,
              theta: ArrayLike | None = None) -> Array:
  """Auxiliary label beta of a suppressed image (METHOD §3, eq. 6-9).

  Args:
    mask_index: 0 = M_L, 1 = M_M, 2 = M_H (int array, traced is fine).
    keep: the retained fraction used in the suppression.
    configuration: static string "LMH=abc" or "learnable".
    theta: the learnable 3-vector theta_b (required, and differentiated, for "learnable").

  Returns:
    beta with the broadcast shape of mask_index and keep.
  """
  config = parse_aps_configuration(configuration)
  mask_index = jnp.asarray(mask_index, dtype=jnp.int32)
  keep = jnp.asarray(keep, dtype=jnp.float32)
  if config.learnable:
    if theta is None:
      raise ValueError("The 'learnable' APS configuration needs theta (the 3-vector theta_b).")
    theta = jnp.asarray(theta)
    if theta.shape != (3,):
      raise ValueError(f"theta must have shape (3,), got {theta.shape}.")
    b = basic_open_ratios(theta)[mask_index]
    return beta_learnable(keep, b)
  fully_open = jnp.asarray(config.fully_open)[mask_index]
  return jnp.where(fully_open, jnp.ones_like(keep), beta_suppressed(keep))


# ---------------------------------------------------------------------------------------------
# Point detection maps (METHOD §5) and Fourier basis (METHOD §7)
# ---------------------------------------------------------------------------------------------


def fourier_basis(h: int, w: int, i: ArrayLike, j: ArrayLike) -> Array:
  """Real unit-L2-norm image whose spectrum is non-zero only at [i, j] and [-i, -j].

  It is the cosine cos(2 pi (i y / h + j x / w)) normalised; i, j may be traced (vmap over a grid
  of frequencies).
  """
  _check_size(h, w)
  y = jnp.arange(h, dtype=jnp.float32)[:, None]
  x = jnp.arange(w, dtype=jnp.float32)[None, :]
  i = jnp.asarray(i, dtype=jnp.float32)
  j = jnp.asarray(j, dtype=jnp.float32)
  # Reduce the phase modulo 1 in float32 to keep it exact for large indices.
  phase = jnp.mod(i * y / h + j * x / w, 1.0)
  wave = jnp.cos(2.0 * jnp.pi * phase)
  return wave / jnp.linalg.norm(wave)


def cpdm(h: int, w: int, channels: int, c: ArrayLike, i: ArrayLike, j: ArrayLike,
         t: ArrayLike) -> Array:
  """Channel point detection map P_c(t, i, j), shape (h, w, channels) (METHOD §5).

  All channels are 0.5 except channel c, which is 0.5 + t * fourier_basis(h, w, i, j).
  """
  perturbation = jnp.asarray(t, dtype=jnp.float32) * fourier_basis(h, w, i, j)
  selected = (jnp.arange(channels) == c).astype(jnp.float32)
  return 0.5 + perturbation[:, :, None] * selected[None, None, :]


# ---------------------------------------------------------------------------------------------
# Band-limited filters for the analysis tools (METHOD §7)
# ---------------------------------------------------------------------------------------------


def _square_lowpass_mask(h: int, w: int, bandwidth: ArrayLike) -> Array:
  fi, fj = _signed_frequencies(h, w)
  half = jnp.asarray(bandwidth, dtype=jnp.float32) / 2.0
  return ((jnp.abs(fi)[:, None] < half) & (jnp.abs(fj)[None, :] < half)).astype(jnp.float32)


def lowpass_square(image: ArrayLike, bandwidth: ArrayLike) -> Array:
  """Keeps the centred square |fi| < B/2 and |fj| < B/2 of the shifted spectrum (Yin et al.).

  The kept square has side B for odd B (B = 1: DC only; B = 0: nothing; B > max(h, w): all).
  `bandwidth` may be traced. HW, HWC or NHWC.
  """
  image = _as_float_image(image)
  h, w = _spatial_shape(image)
  return _filter(image, _square_lowpass_mask(h, w, bandwidth))


def highpass_square(image: ArrayLike, bandwidth: ArrayLike) -> Array:
  """The complement of `lowpass_square`: lowpass + highpass = image."""
  image = _as_float_image(image)
  h, w = _spatial_shape(image)
  return _filter(image, 1.0 - _square_lowpass_mask(h, w, bandwidth))


def remove_radial_band(image: ArrayLike, r_lo: ArrayLike, r_hi: ArrayLike) -> Array:
  """Zeroes every coefficient with r_lo <= r(i, j) < r_hi (Wang et al. occlusion). HW/HWC/NHWC."""
  image = _as_float_image(image)
  r = radial_distance(*_spatial_shape(image))
  occluded = (r >= jnp.asarray(r_lo, jnp.float32)) & (r < jnp.asarray(r_hi, jnp.float32))
  return _filter(image, 1.0 - occluded.astype(jnp.float32))
