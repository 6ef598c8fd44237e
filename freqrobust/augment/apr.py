"""Amplitude-Phase Recombination, APR (Chen, Peng, Ma, Li, Du, Tian, ICCV 2021).

Official code: github.com/iCGY96/APR; datasets/APR.py (APR-S), core/train.py (APR-P and the
loss), datasets/transforms.py (the CIFAR pipeline).

Recombination: with F = DFT over the image's height, width AND channel axes (`np.fft.fftn` of the
HWC array in APR.py:35-36, `torch.fft.fftn(x, dim=(1, 2, 3))` of NCHW in train.py:25-28),

    APR(phase source a, amplitude source b) = Re IDFT( |F(b)| exp(i angle F(a)) ).

APR-P (pairs within the batch, core/train.py:11-35): with probability 0.6 for the whole batch
(`p = U(0, 1); if p > prob: return x`), one random permutation pi of the batch and
x'_n = APR(x_n, x_pi(n)): the amplitude of the partner with the image's own phase; the label stays
the image's (the phase carries it). Not clipped (the reference normalises and feeds it as is).

APR-S (single image, datasets/APR.py:15-54, applied to the raw PIL image before the crop):
x1 = op(x) with an AugMix op at severity 3; with probability 1/2 that is the output; else
x2 = op'(x1) and the output is, with probability 1/2 each, APR(x2, x1) (x1's amplitude with x2's
phase) or APR(x1, x2), cast to uint8.

Loss (core/train.py:49-60): the batch and its APR-P counterpart both go through the network and
loss = CE(clean views) + CE(APR-P views) (a sum, not a mean); with `--aug aprs` the "clean" batch
is the APR-S-augmented one (APR-SP). Pipeline (datasets/transforms.py:11-27): APR-S ->
RandomCrop(32, padding=4, fill=128) -> RandomHorizontalFlip -> ToTensor.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar

import jax
import jax.numpy as jnp

from freqrobust.augment import base, ops

Array = jax.Array
_FFT_AXES_EXAMPLE = (0, 1, 2)  # H, W, C of one HWC image
_FFT_AXES_BATCH = (1, 2, 3)  # H, W, C of an NHWC batch


def recombine(phase_source: Array, amplitude_source: Array, axes=_FFT_AXES_EXAMPLE,
              keep_dc: bool = False) -> Array:
  """Re IDFT(|F(amplitude_source)| exp(i angle F(phase_source))) over `axes`.

  `keep_dc` (an ablation, not in APR): the DC amplitude, the mean intensity, stays the phase
  source's, so the output keeps its own mean brightness."""
  f_phase = jnp.fft.fftn(phase_source, axes=axes)
  f_amplitude = jnp.fft.fftn(amplitude_source, axes=axes)
  amplitude = jnp.abs(f_amplitude)
  if keep_dc:
    fft_axes = {ax % phase_source.ndim for ax in axes}
    dc = tuple(0 if a in fft_axes else slice(None) for a in range(phase_source.ndim))
    amplitude = amplitude.at[dc].set(jnp.abs(f_phase[dc]))
  spectrum = amplitude * jnp.exp(1j * jnp.angle(f_phase))
  return jnp.real(jnp.fft.ifftn(spectrum, axes=axes)).astype(phase_source.dtype)


def apr_pair(key: Array, images: Array, prob: float = 0.6, keep_dc: bool = False,
             keep_black: bool = False) -> tuple[Array, Array, Array]:
  """APR-P of an NHWC batch (core/train.py `mix_data`).

  Returns (mixed, applied (scalar bool), partner indices (N,)): mixed_n = APR(x_n, x_pi(n)) for
  every n when `applied`, else the batch unchanged. `keep_dc`: see `recombine`. `keep_black` (an
  ablation, not in APR): pixels that are exactly 0 in x_n stay 0 in mixed_n.
  """
  k_apply, k_perm = jax.random.split(key)
  applied = jax.random.uniform(k_apply) <= prob
  partner = jax.random.permutation(k_perm, images.shape[0])
  mixed = recombine(images, images[partner], _FFT_AXES_BATCH, keep_dc)
  if keep_black:
    mixed = jnp.where(images == 0, images, mixed)
  return jnp.where(applied, mixed, images), applied, partner


@functools.partial(jax.jit, static_argnames=("severity", "prob", "return_intermediates",
                                             "uint8_wrap"))
def apr_single(key: Array, image: Array, severity: float = 3.0, prob: float = 0.5,
               return_intermediates: bool = False, uint8_wrap: bool = True):
  """APR-S of one HWC image in [0, 1] (datasets/APR.py `APRecombination.__call__`).

  With `return_intermediates`, returns (output, x1, x2): the images after the first and the
  second AugMix op. `uint8_wrap`: the reference's uint8 cast wraps (`ops.truncate_to_uint8`).
  """
  out = apr_single_from_uniforms(jax.random.uniform(key, (APR_S_UNIFORMS,)), image, severity,
                                 prob, uint8_wrap)
  return out if return_intermediates else out[0]


APR_S_UNIFORMS = 8  # op 1 (3), recombine? (1), op 2 (3), which amplitude (1)


def apr_single_from_uniforms(u: Array, image: Array, severity: float = 3.0,
                             prob: float = 0.5,
                             uint8_wrap: bool = True) -> tuple[Array, Array, Array]:
  """APR-S driven by APR_S_UNIFORMS uniforms: (output, x1, x2)."""
  x1, x2 = ops.augmix_sequence(image, jnp.stack([u[0:3], u[4:7]]), severity)
  # fft_1 = |F x1| exp(i angle F x2) if p > 0.5, else fft_2 = |F x2| exp(i angle F x1).
  recombined = jnp.where(u[7] > 0.5, recombine(x2, x1), recombine(x1, x2))
  recombined = ops.truncate_to_uint8(recombined, uint8_wrap)  # `x.astype(np.uint8)`
  # `if p > 0.5: return x` (after the first op): recombination with probability `prob`.
  return jnp.where(u[3] > prob, x1, recombined), x1, x2


@dataclasses.dataclass(frozen=True)
class _APRFields(base.SingleAndPaired):
  """Fields shared by the APR variants (defaults from the official code).

  Attributes:
    severity: severity of the AugMix ops in APR-S (APR.py:22,30: `op(x, 3)`).
    single_prob: probability that APR-S recombines after its first op (APR.py:24-26: 0.5).
    pair_prob: probability that APR-P mixes the batch (core/train.py:11: prob=0.6).
    pad, flip, crop_fill: RandomCrop(32, padding=4, fill=128) + flip (transforms.py:16-18).
    uint8_wrap: APR-S's `x.astype(np.uint8)` of the recombined image (APR.py:51) wraps values
      outside [0, 255] around, as it does on x86 (True, the reference); False clips them (the
      CPU runs of docs/results/five_epochs.md made before this field).
    keep_dc: an ablation that is not APR (default off): APR-P keeps each image's own DC
      amplitude (its mean intensity) instead of the partner's, to test whether the pair-wise
      methods' gain on background-lifting corruptions comes from swapping mean brightness
      (docs/results/five_epochs.md).
    keep_black: an ablation that is not APR (default off): pixels that are exactly 0 in an image
      stay 0 in its APR-P view, so the mixed views keep a black background
      (docs/results/five_epochs.md).
  """
  ce_views: ClassVar[tuple[int, ...]] = (0,)

  severity: float = 3.0
  single_prob: float = 0.5
  pair_prob: float = 0.6
  pad: int = 4
  flip: bool = True
  crop_fill: float = 128.0 / 255.0
  uint8_wrap: bool = True
  keep_dc: bool = False
  keep_black: bool = False

  def __post_init__(self):
    ops.set_float(self, "severity", 0.1, 10.0, lo_open=True)
    ops.set_float(self, "single_prob", 0.0, 1.0)
    ops.set_float(self, "pair_prob", 0.0, 1.0)
    ops.set_bool(self, "uint8_wrap")
    ops.set_bool(self, "keep_dc")
    ops.set_bool(self, "keep_black")
    ops.set_crop_fields(self)

  def _single(self, key: Array, images: Array) -> Array:
    keys = jax.random.split(key, images.shape[0])
    return jax.vmap(lambda k, x: apr_single(k, x, self.severity, self.single_prob,
                                            uint8_wrap=self.uint8_wrap))(keys, images)

  def _pair(self, key: Array, images: Array) -> tuple[Array, dict]:
    mixed, applied, partner = apr_pair(key, images, self.pair_prob, self.keep_dc,
                                       self.keep_black)
    return mixed, {"partner": partner, "pair_applied": jnp.broadcast_to(applied, partner.shape)}


@dataclasses.dataclass(frozen=True)
class APRS(_APRFields):
  """APR-S: one view, the APR-S image (then crop and flip), plain CE."""
  name: ClassVar[str] = "apr_s"
  num_views: ClassVar[int] = 1
  structure: ClassVar[str] = "single"
  legacy_fields: ClassVar[dict] = {"uint8_wrap": False}  # clipped before the field


@dataclasses.dataclass(frozen=True)
class APRP(_APRFields):
  """APR-P: views (cropped batch, its APR-P); loss CE(view 0) + CE(view 1)."""
  name: ClassVar[str] = "apr_p"
  num_views: ClassVar[int] = 2
  structure: ClassVar[str] = "pair"


@dataclasses.dataclass(frozen=True)
class APRSP(_APRFields):
  """APR-SP (the paper's full method): views (APR-S batch, its APR-P); CE(view 0) + CE(view 1)."""
  name: ClassVar[str] = "apr_sp"
  num_views: ClassVar[int] = 2
  structure: ClassVar[str] = "single_pair"
  legacy_fields: ClassVar[dict] = {"uint8_wrap": False}  # clipped before the field
