"""Gaussian noise augmentation, the noise-training baseline (Rusak, Schott, Zimmermann, Bitterwolf,
Bringmann, Bethge, Brendel, ECCV 2020, "A simple way to make neural networks robust against
diverse image corruptions").

Official code: github.com/bethgelab/game-of-noise, utils.py `generate_noisy_data` ('Gauss_single',
lines 210-217; 'Gauss_mult', 219-225) and main.py (lines 79, 88: --p_clean 0.5, --std_gauss 0.5
for ImageNet).
Of a batch of N images in [0, 1], the first round(N p_clean) stay clean and the others get

    x' = clip(x + sigma z, 0, 1),   z ~ N(0, I),

with one sigma ('Gauss_single') or sigma drawn per image from a list ('Gauss_mult':
stds = [.08, .12, .18, .26, .38], utils.py:238-246, which are ImageNet-C's own Gaussian-noise
severities, so not a default here). The label is unchanged; plain CE on the batch.

CIFAR-10 default: sigma = 0.1 on half of the batch, the CIFAR-10 Gaussian-augmentation baseline of
Kireev, Andriushchenko, Flammarion (UAI 2022), github.com/tml-epfl/adv-training-corruptions,
full_evaluation_results/cifar10/gauss-augment-50percent-sigma=0.1-cifar10.csv (their ImageNet-100
run uses Rusak et al.'s sigma = 0.5 on 50%). The crop and flip come first, as in any CIFAR
pipeline.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Optional

import jax
import jax.numpy as jnp

from freqrobust.augment import base, ops

Array = jax.Array


def noised_mask(n: int, clean_fraction: float) -> jnp.ndarray:
  """(n,) bool: images from index round(n clean_fraction) on are noised (np.round: half to even)."""
  start = int(round(n * clean_fraction))
  return jnp.arange(n) >= start


@dataclasses.dataclass(frozen=True)
class GaussianNoise(base.Method):
  """Additive Gaussian noise on part of the batch (one view, plain CE).

  Attributes:
    sigma: noise standard deviation on [0, 1] images (0.1; Rusak et al.'s ImageNet value 0.5).
    sigmas: if non-empty, each noised image draws its sigma uniformly from this tuple instead
      (the 'Gauss_mult' variant); empty by default.
    clean_fraction: the share of each batch left clean (p_clean = 0.5); 0 noises every image.
    clip: clip to [0, 1] after adding the noise (torch.clamp in the reference).
    pad, flip, crop_fill: RandomCrop(32, padding=4) + flip before the noise.
  """
  name: ClassVar[str] = "gaussian"
  num_views: ClassVar[int] = 1

  sigma: float = 0.1
  sigmas: tuple[float, ...] = ()
  clean_fraction: float = 0.5
  clip: bool = True
  pad: int = 4
  flip: bool = True
  crop_fill: float = 0.0

  def __post_init__(self):
    ops.set_float(self, "sigma", 0.0)
    sigmas = self.sigmas
    if isinstance(sigmas, (int, float)) and not isinstance(sigmas, bool):
      sigmas = (sigmas,)
    try:
      sigmas = tuple(float(s) for s in sigmas)
    except (TypeError, ValueError):
      raise ValueError(f"GaussianNoise.sigmas must be a tuple of numbers >= 0, got "
                       f"{self.sigmas!r}.") from None
    if any(not s >= 0 for s in sigmas):
      raise ValueError(f"GaussianNoise.sigmas must be a tuple of numbers >= 0, got "
                       f"{self.sigmas!r}.")
    object.__setattr__(self, "sigmas", sigmas)
    ops.set_float(self, "clean_fraction", 0.0, 1.0)
    ops.set_bool(self, "clip")
    ops.set_crop_fields(self)

  def views(self, key: Array, images: Array, labels: Array,
            forward: Optional[base.Forward] = None) -> tuple[Array, dict]:
    del labels, forward
    ops.check_batch(images, self)
    n = images.shape[0]
    k_crop, k_noise, k_sigma = jax.random.split(key, 3)
    clean = ops.crop_flip_batch(k_crop, images, self.pad, self.flip, self.crop_fill)
    if self.sigmas:
      choice = jax.random.randint(k_sigma, (n,), 0, len(self.sigmas))
      sigma = jnp.asarray(self.sigmas, jnp.float32)[choice]
    else:
      sigma = jnp.full((n,), self.sigma, jnp.float32)
    noised = noised_mask(n, self.clean_fraction)
    sigma = jnp.where(noised, sigma, 0.0)
    # A flat draw: a multi-axis shape makes the threefry bits take seconds to compile.
    noise = jax.random.normal(k_noise, (clean.size,), jnp.float32).reshape(clean.shape)
    out = clean + sigma[:, None, None, None] * noise
    if self.clip:
      out = jnp.clip(out, 0.0, 1.0)
    return out.astype(images.dtype)[None], {"noised": noised, "sigma": sigma}
