"""The training augmentation (METHOD §2 and 4): pad, power suppression, NFD, crop, flip, clip.

`augment_batch(key, images, params)` is pure and meant to be jitted inside the train step with
`params` static. Every random choice is made per example from its own key and every optional
step is a compute-and-select (`jnp.where`), so the vmapped batch has no control flow. Steps that a
parameter switches off are left out of the trace altogether.

Order (METHOD §2, §4): zero-pad by `pad` -> power suppression with probability `suppress_prob`
(mask uniform over `suppress_masks`, keep ~ U(keep_range)) -> NFD on every image (control from
`frequency.nfd_control` over the band masks of the padded size) -> random crop back to the input
size -> random horizontal flip -> clip to [0, 1]. Suppression and NFD share one DFT: since the
suppression factor is real and symmetric, DFT(D(I)) = DFT(I) * factor; and as the spectrum stays
Hermitian they work on the rfft2 half-spectrum (`frequency.nfd_half_spectrum` draws NFD's noise
there with the same output distribution as `frequency.nfd`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from freqrobust import frequency

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class AugmentParams:
  """Static switches of the augmentation (hashable, so usable as a static jit argument).

  Attributes:
    pad: zero padding on each side before the frequency operations (CIFAR: 4, 32 -> 40).
    suppress_prob: probability of power suppression per image (paper: 1/3; 0 disables).
    suppress_masks: masks drawn uniformly when suppressing, a subset of ("L", "M", "H").
    keep_range: keep ~ U(lo, hi), the retained fraction of suppressed power (METHOD §2).
    nfd: apply Noise in Frequency Domain to every image.
    nfd_sigma: NFD noise variance sigma (paper: 1).
    crop: random crop back to the input size (else the centre crop).
    flip: random horizontal flip with probability 1/2.
    clip: clip the result to [0, 1].
  """
  pad: int = 4
  suppress_prob: float = 1.0 / 3.0
  suppress_masks: tuple[str, ...] = frequency.MASK_NAMES
  keep_range: tuple[float, float] = (0.0, 1.0)
  nfd: bool = False
  nfd_sigma: float = 1.0
  crop: bool = True
  flip: bool = True
  clip: bool = True

  def __post_init__(self):
    masks = self.suppress_masks
    if isinstance(masks, str):
      masks = tuple(masks.replace(",", "").replace(" ", ""))
    masks = tuple(str(m) for m in masks)
    unknown = [m for m in masks if m not in frequency.MASK_NAMES]
    if unknown:
      raise ValueError(f"Unknown suppress_masks {unknown}; use a subset of "
                       f"{frequency.MASK_NAMES}, e.g. ('L', 'M', 'H').")
    if len(set(masks)) != len(masks):
      raise ValueError(f"suppress_masks {masks} repeats a mask; list each mask once.")
    if not (isinstance(self.pad, (int, np.integer)) and self.pad >= 0):
      raise ValueError(f"pad must be a non-negative int, got {self.pad!r}.")
    prob = float(self.suppress_prob)
    if not 0.0 <= prob <= 1.0:
      raise ValueError(f"suppress_prob must be in [0, 1], got {self.suppress_prob!r}.")
    if prob > 0 and not masks:
      raise ValueError("suppress_prob > 0 needs at least one mask in suppress_masks.")
    keep_range = tuple(float(k) for k in self.keep_range)
    if len(keep_range) != 2 or not 0.0 <= keep_range[0] <= keep_range[1] <= 1.0:
      raise ValueError(f"keep_range must be (lo, hi) with 0 <= lo <= hi <= 1, got "
                       f"{self.keep_range!r}.")
    if float(self.nfd_sigma) < 0:
      raise ValueError(f"nfd_sigma is a variance and must be >= 0, got {self.nfd_sigma!r}.")
    for name in ("nfd", "crop", "flip", "clip"):
      if not isinstance(getattr(self, name), (bool, np.bool_)):
        raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}.")
    object.__setattr__(self, "pad", int(self.pad))
    object.__setattr__(self, "suppress_prob", prob)
    object.__setattr__(self, "suppress_masks", masks)
    object.__setattr__(self, "keep_range", keep_range)
    object.__setattr__(self, "nfd_sigma", float(self.nfd_sigma))
    for name in ("nfd", "crop", "flip", "clip"):
      object.__setattr__(self, name, bool(getattr(self, name)))

  @classmethod
  def from_config(cls, cfg: Mapping[str, Any]) -> "AugmentParams":
    """Builds the parameters from `config.augment` (a ConfigDict or dict); missing = default."""
    values = dict(cfg.to_dict() if hasattr(cfg, "to_dict") else cfg)
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
      raise ValueError(f"Unknown augment config fields {unknown}; known fields: {known}.")
    return cls(**values)

  @classmethod
  def identity(cls) -> "AugmentParams":
    """Every step switched off: `augment_example` returns the image unchanged."""
    return cls(pad=0, suppress_prob=0.0, nfd=False, crop=False, flip=False, clip=False)

  @property
  def suppresses(self) -> bool:
    return self.suppress_prob > 0 and bool(self.suppress_masks)


def augment_example(key: Array, image: Array, params: AugmentParams) -> tuple[Array, dict]:
  """Augments one HWC (or HW) float image.

  Returns:
    The augmented image (same shape and dtype) and `aux = {"suppressed": bool, "mask": int32
    (0=L, 1=M, 2=H), "keep": float32}`; for an image that was not suppressed keep is 1 (nothing
    suppressed) and mask is an unused draw.
  """
  image = jnp.asarray(image)
  if image.ndim == 2:
    out, aux = augment_example(key, image[:, :, None], params)
    return out[:, :, 0], aux
  if image.ndim != 3:
    raise ValueError(f"augment_example expects one HWC or HW image, got shape {image.shape}; "
                     "use augment_batch for NHWC batches.")
  if not jnp.issubdtype(image.dtype, jnp.floating):
    raise ValueError(f"Expected a float image in [0, 1], got dtype {image.dtype}; convert uint8 "
                     "with images.astype(jnp.float32) / 255.")
  dtype = image.dtype
  h, w, c = image.shape
  p = params.pad
  key_scalars, key_control, key_noise = jax.random.split(key, 3)
  # All per-example scalar choices from one uniform draw: suppress?, mask, keep, crop y, crop x,
  # flip?.
  u = jax.random.uniform(key_scalars, (6,))

  def pick(u, n):  # uniform integer in [0, n) from u ~ U[0, 1)
    return jnp.minimum(jnp.floor(u * n).astype(jnp.int32), n - 1)

  x = jnp.pad(image, ((p, p), (p, p), (0, 0))) if p else image
  ph, pw = h + 2 * p, w + 2 * p

  # Power suppression (METHOD §2, eq. 5 with keep = 1 - a).
  if params.suppresses:
    suppressed = u[0] < params.suppress_prob
    mask_ids = jnp.asarray([frequency.MASK_NAMES.index(m) for m in params.suppress_masks],
                           jnp.int32)
    mask_index = mask_ids[pick(u[1], len(params.suppress_masks))]
    lo, hi = params.keep_range
    keep = jnp.where(suppressed, lo + (hi - lo) * u[2], 1.0)
    mask = jnp.tensordot(jax.nn.one_hot(mask_index, 3, dtype=jnp.float32),
                         frequency.aps_masks(ph, pw), axes=1)
    factor = keep + (1.0 - keep) * mask
  else:
    suppressed, mask_index, keep = jnp.bool_(False), jnp.int32(0), jnp.float32(1.0)

  # Suppression and NFD (METHOD §4, eq. 11-12) on one spectrum of the padded image. The image is
  # real and both operations keep the spectrum Hermitian, so the rfft2 half-spectrum suffices and
  # irfft2 returns exactly the real part of the full inverse DFT (METHOD §1).
  if params.suppresses or params.nfd:
    half = pw // 2 + 1
    spectrum = jnp.fft.rfft2(x, axes=(0, 1))
    if params.suppresses:
      spectrum = spectrum * factor[:, :half, None]
    if params.nfd:
      control = frequency.nfd_control(key_control, frequency.nfd_band_masks(ph, pw))
      spectrum = frequency.nfd_half_spectrum(key_noise, spectrum, control, params.nfd_sigma)
    x = jnp.fft.irfft2(spectrum, s=(ph, pw), axes=(0, 1)).astype(dtype)

  # Crop back to the input size.
  if p:
    if params.crop:
      x = jax.lax.dynamic_slice(x, (pick(u[3], 2 * p + 1), pick(u[4], 2 * p + 1), 0), (h, w, c))
    else:
      x = x[p:p + h, p:p + w]

  if params.flip:
    x = jnp.where(u[5] < 0.5, x[:, ::-1], x)
  if params.clip:
    x = jnp.clip(x, 0.0, 1.0)

  aux = {"suppressed": jnp.asarray(suppressed, jnp.bool_),
         "mask": jnp.asarray(mask_index, jnp.int32),
         "keep": jnp.asarray(keep, jnp.float32)}
  return x.astype(dtype), aux


def augment_batch(key: Array, images: Array, params: AugmentParams) -> tuple[Array, dict]:
  """`augment_example` vmapped over an NHWC batch, one key per example (split from `key`)."""
  images = jnp.asarray(images)
  if images.ndim != 4:
    raise ValueError(f"augment_batch expects an NHWC batch, got shape {images.shape}.")
  keys = jax.random.split(key, images.shape[0])
  return jax.vmap(lambda k, x: augment_example(k, x, params))(keys, images)
