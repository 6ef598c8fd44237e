"""HybridAugment and HybridAugment++ (Yucel, Cinbis, Duygulu, ICCV 2023).

Official code: github.com/MKYucel/hybrid_augment; datasets/APR.py (single-image variants),
core/train.py (paired variants and the loss), main.py (defaults), datasets/transforms.py
(pipeline).

Low/high split: LF(x) = G * x with torchvision's GaussianBlur(kernel_size=3, sigma=0.5) (a
normalised 3x3 Gaussian, reflect padding), HF(x) = x - LF(x).

HA-P (core/train.py:68-88, `hybrid_augment`): with probability 0.6 for the whole batch, one
random permutation pi and x'_n = LF(x_n) + HF(x_pi(n)); the label stays x_n's (its low band).
HA++-P (core/train.py:13-37, `hybrid_augment_p`): x'_n = APR-P(LF(x))_n + HF(x_pi(n)), the
low-frequency parts amplitude-phase recombined across the batch by APR-P (`mix_data`, its own
probability 0.6 and permutation). Not clipped, as in the reference.

HA-S (datasets/APR.py:67-118): x1 = op(x) (AugMix op, severity 3); with probability 1 - 0.5 that
is the output; else x2 = op'(x1) and the output is LF(x1) + HF(x2) or LF(x2) + HF(x1) with
probability 1/2 each. HA++-S (datasets/APR.py:8-65) first replaces each low band by its APR-S
(`APRecombination`, on the uint8 low band). The result is cast to uint8 (ToPILImage).

Loss (core/train.py:121-134): CE(view 0) + CE(paired view) (a sum); view 0 is the single-image
augmentation's output (or the plain batch), view 1 its paired augmentation. Pipeline
(datasets/transforms.py:28-35): single augmentation -> RandomCrop(32, padding=4, fill=128) ->
RandomHorizontalFlip. Defaults (main.py:57-75): single_mode = paired_mode = 'ha_p' (HA++ PS),
kernel size 3, sigma 0.5, paired probability 0.6, single probability 0.5.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from freqrobust.augment import apr, base, ops
from freqrobust.corruptions import filters

Array = jax.Array


@functools.lru_cache(maxsize=None)
def gaussian_kernel1d(kernel_size: int, sigma: float) -> np.ndarray:
  """torchvision `_get_gaussian_kernel1d`: exp(-x^2 / (2 sigma^2)) at x = linspace(-(k-1)/2,
  (k-1)/2, k), normalised to sum 1."""
  half = (kernel_size - 1) * 0.5
  x = np.linspace(-half, half, kernel_size)
  pdf = np.exp(-0.5 * (x / sigma) ** 2)
  kernel = (pdf / pdf.sum()).astype(np.float32)
  kernel.flags.writeable = False
  return kernel


def low_pass(image: Array, kernel_size: int = 3, sigma: float = 0.5) -> Array:
  """torchvision GaussianBlur of an HWC image: separable kernel, 'reflect' padding (dcb|abcd)."""
  return filters.separable(image, gaussian_kernel1d(kernel_size, sigma), "mirror")


def hybrid_pair(key: Array, images: Array, plus: bool = True, prob: float = 0.6,
                kernel_size: int = 3, sigma: float = 0.5,
                apr_prob: float = 0.6, keep_black: bool = False) -> tuple[Array, Array, Array]:
  """HA-P (plus=False) or HA++-P of an NHWC batch. Returns (mixed, applied, partner).

  `keep_black` (an ablation, not HybridAugment): pixels that are exactly 0 in x_n stay 0 in
  mixed_n, as APR-P's `keep_black` (apr.apr_pair).
  """
  k_apply, k_perm, k_apr = jax.random.split(key, 3)
  applied = jax.random.uniform(k_apply) <= prob
  partner = jax.random.permutation(k_perm, images.shape[0])
  low = jax.vmap(lambda x: low_pass(x, kernel_size, sigma))(images)
  high = images - low
  if plus:
    low = apr.apr_pair(k_apr, low, apr_prob)[0]
  mixed = low + high[partner]
  if keep_black:
    mixed = jnp.where(images == 0, images, mixed)
  return jnp.where(applied, mixed, images), applied, partner


@functools.partial(jax.jit, static_argnames=("plus", "severity", "prob", "kernel_size", "sigma",
                                             "return_intermediates", "uint8_wrap"))
def hybrid_single(key: Array, image: Array, plus: bool = True, severity: float = 3.0,
                  prob: float = 0.5, kernel_size: int = 3, sigma: float = 0.5,
                  return_intermediates: bool = False, uint8_wrap: bool = True):
  """HA-S (plus=False) or HA++-S of one HWC image in [0, 1] (datasets/APR.py).

  With `return_intermediates`, returns (output, x1, x2): the images after the first and the
  second AugMix op. `uint8_wrap`: the reference's uint8 casts (ToPILImage, APR-S's astype) wrap
  (`ops.truncate_to_uint8`).
  """
  # One PRNG call (each call site costs compile time): 8 uniforms for the hybrid, then the
  # uniforms of the two APR-S of HA++.
  n = apr.APR_S_UNIFORMS
  u = jax.random.uniform(key, (8 + 2 * n,))
  x1, x2 = ops.augmix_sequence(image, jnp.stack([u[0:3], u[4:7]]), severity)
  low1 = low_pass(x1, kernel_size, sigma)
  low2 = low_pass(x2, kernel_size, sigma)
  high1, high2 = x1 - low1, x2 - low2
  if plus:  # APR-S of the uint8 low bands (ToPILImage -> APRecombination -> ToTensor)
    lows = jnp.stack([ops.truncate_to_uint8(low1, uint8_wrap),
                      ops.truncate_to_uint8(low2, uint8_wrap)])
    low1, low2 = jax.vmap(
        lambda v, x: apr.apr_single_from_uniforms(v, x, severity, uint8_wrap=uint8_wrap)[0])(
            u[8:].reshape(2, n), lows)
  # `if p > self.prob: lfc_f + hfc_s else lfc_s + hfc_f`, then ToPILImage.
  hybrid = ops.truncate_to_uint8(jnp.where(u[7] > prob, low1 + high2, low2 + high1), uint8_wrap)
  # `if p > self.prob: return x` after the first op.
  out = jnp.where(u[3] > prob, x1, hybrid)
  return (out, x1, x2) if return_intermediates else out


@dataclasses.dataclass(frozen=True)
class _HybridFields(base.SingleAndPaired):
  """Fields shared by the HybridAugment variants (defaults: the official main.py).

  Attributes:
    plus: HybridAugment++ (amplitude-phase recombination of the low bands) instead of
      HybridAugment (main.py: --single_mode/--paired_mode default 'ha_p' = HA++).
    severity: severity of the AugMix ops of the single-image variant (APR.py: `op(x, 3)`).
    single_prob: probability of the single-image hybrid (--prob_single 0.5).
    pair_prob: probability of the paired hybrid for a batch (--prob 0.6).
    apr_prob: probability of APR-P inside HA++-P (`mix_data(lfc)`, default prob=0.6).
    kernel_size, sigma: the Gaussian low-pass (--kernel_size 3, --sigma 0.5; the single-image
      --kernel_size_single 3 and --sigma_single 0.5 are the same).
    pad, flip, crop_fill: RandomCrop(32, padding=4, fill=128) + flip (transforms.py:28-35).
    uint8_wrap: the single-image hybrid's uint8 casts (ToPILImage's `mul(255).byte()`,
      APR.py:49, 53, 63, 116; APR-S's `astype(np.uint8)`) wrap values outside [0, 255] around,
      as they do on x86 (True, the reference); False clips them (the CPU runs of
      docs/results/five_epochs.md made before this field).
    keep_black: an ablation that is not HybridAugment (default off): pixels that are exactly 0
      in an image stay 0 in its paired view, so the paired views keep a black background; the
      single-image hybrid is unchanged (docs/results/five_epochs.md, the APR-P ablation's
      counterpart).
  """
  ce_views: ClassVar[tuple[int, ...]] = (0,)

  plus: bool = True
  severity: float = 3.0
  single_prob: float = 0.5
  pair_prob: float = 0.6
  apr_prob: float = 0.6
  kernel_size: int = 3
  sigma: float = 0.5
  pad: int = 4
  flip: bool = True
  crop_fill: float = 128.0 / 255.0
  uint8_wrap: bool = True
  keep_black: bool = False

  def __post_init__(self):
    ops.set_bool(self, "plus")
    ops.set_bool(self, "uint8_wrap")
    ops.set_bool(self, "keep_black")
    ops.set_float(self, "severity", 0.1, 10.0, lo_open=True)
    ops.set_float(self, "single_prob", 0.0, 1.0)
    ops.set_float(self, "pair_prob", 0.0, 1.0)
    ops.set_float(self, "apr_prob", 0.0, 1.0)
    ops.set_int(self, "kernel_size", 1)
    if self.kernel_size % 2 == 0:
      raise ValueError(f"{type(self).__name__}.kernel_size must be an odd int >= 1 (torchvision "
                       f"GaussianBlur), got {self.kernel_size!r}.")
    ops.set_float(self, "sigma", 0.0, lo_open=True)
    ops.set_crop_fields(self)

  def _single(self, key: Array, images: Array) -> Array:
    keys = jax.random.split(key, images.shape[0])
    return jax.vmap(lambda k, x: hybrid_single(k, x, self.plus, self.severity, self.single_prob,
                                               self.kernel_size, self.sigma,
                                               uint8_wrap=self.uint8_wrap))(keys, images)

  def _pair(self, key: Array, images: Array) -> tuple[Array, dict]:
    mixed, applied, partner = hybrid_pair(key, images, self.plus, self.pair_prob,
                                          self.kernel_size, self.sigma, self.apr_prob,
                                          self.keep_black)
    return mixed, {"partner": partner, "pair_applied": jnp.broadcast_to(applied, partner.shape)}


@dataclasses.dataclass(frozen=True)
class HybridAugmentS(_HybridFields):
  """HA-S / HA++-S: one view, the single-image hybrid (then crop and flip), plain CE."""
  name: ClassVar[str] = "hybrid_s"
  num_views: ClassVar[int] = 1
  structure: ClassVar[str] = "single"
  legacy_fields: ClassVar[dict] = {"uint8_wrap": False}  # clipped before the field


@dataclasses.dataclass(frozen=True)
class HybridAugmentP(_HybridFields):
  """HA-P / HA++-P: views (cropped batch, its paired hybrid); CE(view 0) + CE(view 1)."""
  name: ClassVar[str] = "hybrid_p"
  num_views: ClassVar[int] = 2
  structure: ClassVar[str] = "pair"


@dataclasses.dataclass(frozen=True)
class HybridAugmentPS(_HybridFields):
  """HA-PS / HA++-PS (the paper's and the code's default): views (single-image hybrid batch, its
  paired hybrid); CE(view 0) + CE(view 1)."""
  name: ClassVar[str] = "hybrid_ps"
  num_views: ClassVar[int] = 2
  structure: ClassVar[str] = "single_pair"
  legacy_fields: ClassVar[dict] = {"uint8_wrap": False}  # clipped before the field
