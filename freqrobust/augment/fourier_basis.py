"""Fourier-basis noise: additive planar waves of random frequency, direction and strength.

The generator of AFA (Vaish, Wang, Strisciuglio, CVPR 2024), github.com/nis-research/afa-augment,
project/augs/fba/fourier_basis.py (`GeneralFourierOnline`), built by utils.py:174-185
(`gen_afa_from_config`: groups = range(1, S + 1), phases = (0, 1)). Used alone as a training
augmentation it is the repository's `use_fourier` option (utils.py:137-141: appended to the
main branch's augmentations); `afa.AFA` uses it as the auxiliary adversarial view.

For an S x S image (square, as in the reference) and each channel c independently:

    x'_c = clip(x_c + 1/(F P) sum_{f,p} sigma_cfp (S / 32) A_{nu_cf, omega_cfp}, 0, 1)
    A_{nu, omega}(u, v) = sin(2 pi nu (u cos omega + v sin omega) - pi / 4) / ||.||_2

on the grid u (rows), v (columns) = linspace(-S/2, S/2, S); nu ~ U{1/S, 2/S, ..., 1}, omega ~
U{-pi t : t in linspace(0, 1, granularity)}, sigma ~ min_str + Exp(mean mean_str)
(`exponential_(1 / mean_str) + min_str`). Every wave has unit L2 norm, so each channel's
perturbation before the clip has L2 norm sigma S / 32 (F = P = 1).

Defaults: F = freq_cut = 1, P = phase_cut = 1, granularity = 448 (config_utils.py:339-341),
min_str = 0 and mean_str = 10 (the README's example configuration, given there for ImageNet; the
CIFAR value is not in the repository, and GeneralFourierOnline's own default is mean_str = 5).
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Optional

import jax
import jax.numpy as jnp
import numpy as np

from freqrobust.augment import base, ops

Array = jax.Array


def check_square(image_shape, method_name: str) -> int:
  h, w = image_shape[-3], image_shape[-2]
  if h != w:
    raise ValueError(f"{method_name} needs square images (the reference's img_size x img_size "
                     f"grid), got {h}x{w}.")
  return h


def draw_waves(key: Array, size: int, channels: int, freq_cut: int = 1, phase_cut: int = 1,
               granularity: int = 448, min_str: float = 0.0,
               mean_str: float = 10.0) -> tuple[Array, Array, Array, Array]:
  """Draws the waves of one image (`sample_f_p`, `gen_planar_waves`).

  Returns (waves (C, F, P, S, S) unit-L2 planar waves times S/32, strengths (C, F, P),
  frequencies nu (C, F) in cycles per unit of the grid, directions omega (C, F, P)).
  """
  # One PRNG call for all the draws (each call site costs compile time): uniforms for the
  # frequency index, the direction index and the strength.
  n_f, n_p = channels * freq_cut, channels * freq_cut * phase_cut
  u = ops.bits_to_uniform(jax.random.bits(key, (n_f + 2 * n_p,), jnp.uint32))
  freq_index = jnp.minimum(jnp.floor(u[:n_f] * size), size - 1).astype(jnp.int32)
  nu = (freq_index.reshape(channels, freq_cut) + 1).astype(jnp.float32) / size
  phase_index = jnp.minimum(jnp.floor(u[n_f:n_f + n_p] * granularity), granularity - 1)
  phase_grid = -np.pi * np.linspace(0.0, 1.0, granularity)
  omega = jnp.asarray(phase_grid, jnp.float32)[phase_index.astype(jnp.int32)]
  omega = omega.reshape(channels, freq_cut, phase_cut)
  # Exp(mean mean_str) + min_str by inversion (torch's exponential_(1 / mean_str) + min_str).
  strengths = -mean_str * jnp.log(u[n_f + n_p:]).reshape(channels, freq_cut, phase_cut) + min_str
  grid = jnp.asarray(np.linspace(-size / 2, size / 2, size), jnp.float32)
  u, v = grid[:, None], grid[None, :]  # meshgrid(_x, _x, indexing='ij')
  nu_ = nu[:, :, None, None, None]
  omega_ = omega[..., None, None]
  waves = jnp.sin(2 * jnp.pi * nu_ * (u * jnp.cos(omega_) + v * jnp.sin(omega_)) - jnp.pi / 4)
  waves = waves / jnp.linalg.norm(waves, axis=(-2, -1), keepdims=True)
  return (size / 32.0) * waves, strengths, nu, omega


def apply_waves(image: Array, waves: Array, strengths: Array) -> tuple[Array, Array]:
  """(clip(image + perturbation, 0, 1), perturbation) with perturbation (H, W, C) =
  sum_{f,p} strengths * waves / (F P) (`apply_fourier_aug`)."""
  f, p = waves.shape[1], waves.shape[2]
  perturbation = jnp.einsum("cfp,cfphw->hwc", strengths, waves) / (f * p)
  return jnp.clip(image + perturbation, 0.0, 1.0), perturbation


def fourier_noise(key: Array, image: Array, freq_cut: int = 1, phase_cut: int = 1,
                  granularity: int = 448, min_str: float = 0.0,
                  mean_str: float = 10.0) -> Array:
  """GeneralFourierOnline on one square HWC image in [0, 1]."""
  size = check_square(image.shape, "Fourier-basis noise")
  waves, strengths, _, _ = draw_waves(key, size, image.shape[-1], freq_cut, phase_cut,
                                      granularity, min_str, mean_str)
  return apply_waves(image, waves, strengths)[0]


@dataclasses.dataclass(frozen=True)
class _FourierFields(base.Method):
  """The generator's fields (see the module docstring for their sources).

  Attributes:
    min_str, mean_str: strength sigma ~ min_str + Exp(mean mean_str).
    freq_cut, phase_cut: frequencies per channel (F) and directions per frequency (P).
    granularity: number of directions in [-pi, 0].
    pad, flip, crop_fill: RandomCrop(32, padding=4) + flip first (utils.py:34-37).
  """
  min_str: float = 0.0
  mean_str: float = 10.0
  freq_cut: int = 1
  phase_cut: int = 1
  granularity: int = 448
  pad: int = 4
  flip: bool = True
  crop_fill: float = 0.0

  def __post_init__(self):
    ops.set_float(self, "min_str", 0.0)
    ops.set_float(self, "mean_str", 0.0, lo_open=True)
    ops.set_int(self, "freq_cut", 1)
    ops.set_int(self, "phase_cut", 1)
    ops.set_int(self, "granularity", 1)
    ops.set_crop_fields(self)

  def _draw(self, key: Array, images: Array) -> tuple[Array, Array]:
    """Waves (N, C, F, P, S, S) and strengths (N, C, F, P) for a batch."""
    size = check_square(images.shape, type(self).__name__)
    keys = jax.random.split(key, images.shape[0])
    draw = lambda k: draw_waves(k, size, images.shape[-1], self.freq_cut, self.phase_cut,
                                self.granularity, self.min_str, self.mean_str)[:2]
    return jax.vmap(draw)(keys)


@dataclasses.dataclass(frozen=True)
class FourierBasisNoise(_FourierFields):
  """Fourier-basis noise as a plain augmentation (AFA repository's `use_fourier`): one view, CE."""
  name: ClassVar[str] = "fourier_basis"
  num_views: ClassVar[int] = 1

  def views(self, key: Array, images: Array, labels: Array,
            forward: Optional[base.Forward] = None) -> tuple[Array, dict]:
    del labels, forward
    ops.check_batch(images, self)
    k_crop, k_waves = jax.random.split(key)
    clean = ops.crop_flip_batch(k_crop, images, self.pad, self.flip, self.crop_fill)
    waves, strengths = self._draw(k_waves, clean)
    noised = jax.vmap(lambda x, w, s: apply_waves(x, w, s)[0])(clean, waves, strengths)
    return noised[None], {}
