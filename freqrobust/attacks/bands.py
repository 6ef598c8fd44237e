"""Frequency bands for band-limited attacks (docs/METHOD.md §12): the band of a perturbation, its
orthogonal projection, the attack's parameterisation (`space`), and the out-of-band energy that
the [0, 1] pixel clip adds.

A band is a static, hashable tuple:
- `("dct", lo, hi)`: the orthonormal 2-D DCT-II coefficients [u, v] (per channel; u the row, v
  the column frequency) with lo <= u + v < hi. The full band is ("dct", 0, H + W - 1).
- `("fft", r_lo, r_hi)`: the DFT coefficients at radius r_lo <= r(i, j) < r_hi, r the project's
  radial distance (`frequency.radial_distance`, METHOD §1: integer frequencies, distance to DC of
  the centred spectrum). r(i, j) = r(-i, -j), so the mask is Hermitian-symmetric and a real
  perturbation stays real. The full band is ("fft", 0, inf).
Both projections are orthogonal projections of pixel space (the DCT is orthonormal; the masked
DFT is self-adjoint and idempotent), so the L2 norm of a projected vector never grows.

The attack's variable: every iterate is the image clip(x + delta, 0, 1) where delta, the
unclipped perturbation, lies in the band and the eps ball (`BandSpace.delta`):
- L2: delta = P v scaled to norm min(||P v||, eps): the exact projection onto band and ball (the
  band is a subspace through 0, so projecting onto it commutes with the radial scaling).
- L-inf: the band and the box do not commute, and the exact projection onto their intersection
  needs an iterative method; the choice here is clip v to [-eps, eps], project onto the band,
  then scale by min(1, eps / max|P v|). The result is always in both (scaling keeps it in the
  band), and for the full band it is exactly the unrestricted clip.
The step is taken from the image the model saw (x_k + a d), as the unrestricted attack does,
with d the steepest-ascent direction within the band: sign(P g) (L-inf; P sign(P g) has a
positive inner product ||P g||_1 with g) or P g / ||P g|| (L2). So the full band gives the
unrestricted attack (up to float), and the pixel clip never enters the variable: what it adds
outside the band is measured by `out_of_band_energy(adv, images, band)`.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from freqrobust import frequency
from freqrobust.attacks import ball

Array = jax.Array

BAND_KINDS = ("dct", "fft")
_SPATIAL = (-3, -2)


def check_band(band, h: Optional[int] = None, w: Optional[int] = None) -> Optional[tuple]:
  """The band as a hashable ("dct" | "fft", lo, hi) of floats (None stays None); raises
  ValueError for a malformed band or, when the size is given, one with no coefficient."""
  if band is None:
    return None
  if (not isinstance(band, (tuple, list)) or len(band) != 3 or band[0] not in BAND_KINDS):
    raise ValueError(f"band={band!r}; expected None, ('dct', lo, hi) or ('fft', r_lo, r_hi).")
  kind, lo, hi = band[0], float(band[1]), float(band[2])
  if not (lo >= 0 and hi > lo):
    raise ValueError(f"band={band!r}: 0 <= lo < hi expected.")
  out = (kind, lo, hi)
  if h is not None and not np.any(band_mask(out, h, w)):
    raise ValueError(f"band={band!r} holds no {kind.upper()} coefficient of a {h}x{w} image.")
  return out


def full_band(kind: str, h: int, w: int) -> tuple:
  """The band holding every coefficient of an h x w image."""
  return ("dct", 0.0, float(h + w - 1)) if kind == "dct" else ("fft", 0.0, math.inf)


def band_mask(band, h: int, w: int) -> np.ndarray:
  """(h, w) float32 0/1: DCT indices [u, v], or DFT indices in NumPy's FFT layout."""
  kind, lo, hi = band
  if kind == "dct":
    d = np.arange(h)[:, None] + np.arange(w)[None, :]
  else:
    d = frequency.radial_distance(h, w)
  return ((d >= lo) & (d < hi)).astype(np.float32)


def project_band(v: Array, band) -> Array:
  """The orthogonal projection of NHWC (or HWC) `v` onto the band, per channel."""
  h, w = v.shape[-3], v.shape[-2]
  mask = jnp.asarray(band_mask(band, h, w))[:, :, None]
  v = jnp.asarray(v, jnp.float32)
  if band[0] == "dct":
    coefficients = jax.scipy.fft.dctn(v, type=2, axes=_SPATIAL, norm="ortho")
    return jax.scipy.fft.idctn(coefficients * mask, type=2, axes=_SPATIAL, norm="ortho")
  spectrum = jnp.fft.fft2(v, axes=_SPATIAL)
  return jnp.real(jnp.fft.ifft2(spectrum * mask, axes=_SPATIAL)).astype(jnp.float32)


def _energy(v: Array) -> Array:
  return jnp.sum(jnp.reshape(v * v, (v.shape[0], -1)), axis=-1)


def out_of_band_energy(adv: Array, images: Array, band) -> dict[str, Array]:
  """Per example (N,): `energy`, the squared L2 norm of adv - images outside the band, and
  `fraction`, its share of ||adv - images||^2 (0 for a zero perturbation). For an attack of this
  module adv = clip(x + delta, 0, 1) with delta in the band, so this is what the clip added."""
  band = check_band(band)
  d = jnp.asarray(adv, jnp.float32) - jnp.asarray(images, jnp.float32)
  outside = _energy(d - project_band(d, band))
  total = _energy(d)
  return {"energy": outside, "fraction": jnp.where(total > 0, outside / jnp.where(
      total > 0, total, 1.0), 0.0)}


@dataclasses.dataclass(frozen=True)
class PixelSpace:
  """The unrestricted attack's operations (band=None): exactly `ball`'s."""

  def random_start(self, key, x, eps, norm):
    return ball.random_start(key, x, eps, norm)

  def initial(self, u, x, eps, norm):  # APGD's start: x + eps t / ||t||, clamped.
    return jnp.clip(u, 0.0, 1.0)

  def direction(self, grad, norm):
    return ball.step_direction(grad, norm)

  def project(self, v, x, eps, norm):
    return ball.project(v, x, eps, norm)

  def output(self, z, x, eps, norm):
    return ball.project(z, x, eps, norm)


@dataclasses.dataclass(frozen=True)
class BandSpace:
  """The band-limited attack's operations (see the module docstring); `band` a checked tuple."""
  band: tuple

  def delta(self, v, x, eps, norm):
    """The unclipped perturbation of `project(v)`: in the band and the eps ball."""
    e = jnp.reshape(jnp.broadcast_to(jnp.asarray(eps, jnp.float32), x.shape[:1]),
                    (-1,) + (1,) * (x.ndim - 1))
    d = v - x
    if norm == "linf":
      d = project_band(jnp.clip(d, -e, e), self.band)
    else:
      d = project_band(d, self.band)
    n = jnp.reshape(ball.norms(d, norm), e.shape)
    return d * jnp.where(n > e, e / jnp.maximum(n, 1e-30), 1.0)

  def project(self, v, x, eps, norm):
    return jnp.clip(x + self.delta(v, x, eps, norm), 0.0, 1.0)

  def random_start(self, key, x, eps, norm):
    return self.project(ball.random_start(key, x, eps, norm), x, eps, norm)

  def initial(self, u, x, eps, norm):
    return self.project(jnp.clip(u, 0.0, 1.0), x, eps, norm)

  def direction(self, grad, norm):
    return ball.step_direction(project_band(grad, self.band), norm)

  def output(self, z, x, eps, norm):
    return z  # Every iterate is already clip(x + delta); projecting again would re-project.


PIXEL = PixelSpace()


def space(band) -> PixelSpace | BandSpace:
  """The attack's operations for a checked band (None: the unrestricted attack)."""
  return PIXEL if band is None else BandSpace(band)


def masking_check(band_accuracy: Mapping[str, float], full_accuracy: float,
                  tolerance: float = 0.01) -> list[str]:
  """The bands whose attack left fewer examples correct than the unrestricted attack by more than
  `tolerance`: each band's ball lies inside the full ball, so the full attack, run at least as
  strongly, should never be beaten; a band that beats it flags the full attack as failing
  (gradient masking or too weak a budget)."""
  return sorted(name for name, acc in band_accuracy.items()
                if float(acc) < float(full_accuracy) - tolerance)
