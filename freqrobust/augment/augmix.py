"""AugMix (Hendrycks, Mu, Cubuk, Zoph, Gilmer, Lakshminarayanan, ICLR 2020).

Official code: github.com/google-research/augmix, cifar.py (CIFAR training) and
augmentations.py (the operations). Per training image x (already randomly cropped and flipped,
cifar.py:294-296):

    w ~ Dirichlet(alpha, ..., alpha)   (width chains),   m ~ Beta(alpha, alpha)
    chain_i = op_{i,d_i} o ... o op_{i,1}(x),   d_i = depth, or ~ U{1, 2, 3} when depth = -1
    x_augmix = (1 - m) x + m sum_i w_i chain_i                                  (cifar.py:152-181)

each op drawn uniformly from {autocontrast, equalize, posterize, rotate, solarize, shear_x,
shear_y, translate_x, translate_y} at the given severity (augmentations.py:141-144; the
`augmentations_all` ops color, contrast, brightness, sharpness overlap the test corruptions and
are not available). The views are (x, x_augmix1, x_augmix2), two independent AugMix draws of the
same crop (cifar.py:197-199); the loss is CE on the clean view only plus

    12 * JS(p_clean, p_aug1, p_aug2),  JS = 1/3 sum_v KL(p_v || clamp(M, 1e-7, 1)),  M = mean_v p_v
                                                                                (cifar.py:224-236)

Hyperparameters (cifar.py argparse defaults, lines 85-99): width 3, depth -1, severity 3,
Dirichlet/Beta alpha 1 (cifar.py:166-167 hard-codes 1; augment_and_mix.py:40 alpha=1.),
JSD weight 12; preprocessing RandomCrop(32, padding=4) with zero fill and horizontal flip.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar

import jax
import jax.numpy as jnp

from freqrobust.augment import base, ops

Array = jax.Array


@functools.partial(jax.jit, static_argnames=("severity", "width", "depth", "alpha"))
def augment_and_mix(key: Array, image: Array, severity: float = 3.0, width: int = 3,
                    depth: int = -1, alpha: float = 1.0) -> tuple[Array, Array, Array, Array]:
  """One AugMix draw for one HWC image in [0, 1] (cifar.py `aug`).

  Returns (mixed, chains (width, H, W, C), w (width,), m): mixed = (1 - m) image + m sum w_i
  chain_i exactly, so callers (and tests) can check the convex combination.
  """
  max_depth = depth if depth > 0 else 3
  # All scalar choices from one uniform draw (one PRNG call compiles much faster than many):
  # per chain its depth and (op, level, sign) per step; then w and m when alpha = 1.
  u = jax.random.uniform(key, (width * (1 + 3 * max_depth) + width + 1,))
  u_chains = u[:width * (1 + 3 * max_depth)].reshape(width, 1 + 3 * max_depth)
  if alpha == 1.0:  # Dirichlet(1, ..., 1) = normalised Exp(1); Beta(1, 1) = U(0, 1)
    e = -jnp.log1p(-u[-width - 1:-1])
    w, m = e / jnp.sum(e), u[-1]
  else:
    k_w, k_m = jax.random.split(jax.random.fold_in(key, 1))
    w, m = ops.dirichlet(k_w, alpha, width), ops.beta(k_m, alpha, alpha)

  def chain(uc):
    # np.random.randint(1, 4) when depth <= 0.
    d = depth if depth > 0 else jnp.minimum(1 + jnp.floor(uc[0] * 3).astype(jnp.int32), 3)

    def step(x, inputs):  # a scan keeps one copy of the op in the compiled graph
      index, u_op = inputs
      y = ops.augmix_op(x, *ops.sample_augmix_op(u_op, severity))
      return jnp.where(index < d, y, x), None

    steps = (jnp.arange(max_depth), uc[1:].reshape(max_depth, 3))
    return jax.lax.scan(step, image, steps)[0]

  chains = jax.vmap(chain)(u_chains)
  mix = jnp.tensordot(w, chains, axes=1)
  mixed = (1.0 - m) * image + m * mix
  return mixed, chains, w, m


@functools.partial(jax.jit, static_argnames=("severity", "width", "depth", "alpha"))
def augment_and_mix_batch(keys: Array, images: Array, severity: float = 3.0, width: int = 3,
                          depth: int = -1, alpha: float = 1.0):
  """`augment_and_mix` of each image of a batch with its own key: (mixed, chains, w, m), batched;
  compiled once per shape and setting (an eager `views` call makes one compiled call)."""
  return jax.vmap(lambda k, x: augment_and_mix(k, x, severity, width, depth, alpha))(keys, images)


@dataclasses.dataclass(frozen=True)
class AugMix(base.CleanAndTwoAugmented):
  """AugMix with the Jensen-Shannon consistency loss (views: clean, AugMix, AugMix).

  Attributes:
    severity: operation severity; levels ~ U(0.1, severity) (cifar.py --aug-severity 3).
    width: number of chains mixed (--mixture-width 3).
    depth: ops per chain, or -1 for U{1, 2, 3} (--mixture-depth -1).
    alpha: Dirichlet and Beta concentration (1, cifar.py:166-167).
    jsd_weight: weight of the JS consistency term (12, cifar.py:234).
    pad, flip, crop_fill: the preprocessing RandomCrop(padding=pad, fill) + flip applied to the
      clean image before AugMix (cifar.py:294-296: pad 4, fill 0, flip).
  """
  name: ClassVar[str] = "augmix"
  num_views: ClassVar[int] = 3
  ce_views: ClassVar[tuple[int, ...]] = (0,)

  severity: float = 3.0
  width: int = 3
  depth: int = -1
  alpha: float = 1.0
  jsd_weight: float = 12.0
  pad: int = 4
  flip: bool = True
  crop_fill: float = 0.0

  def __post_init__(self):
    ops.set_float(self, "severity", 0.1, 10.0, lo_open=True)
    ops.set_int(self, "width", 1)
    ops.set_int(self, "depth", 1, extra=(-1,))
    ops.set_float(self, "alpha", 0.0, lo_open=True)
    ops.set_float(self, "jsd_weight", 0.0)
    ops.set_crop_fields(self)

  def _augment_batch(self, keys: Array, images: Array) -> Array:
    return augment_and_mix_batch(keys, images, severity=self.severity, width=self.width,
                                 depth=self.depth, alpha=self.alpha)[0]
