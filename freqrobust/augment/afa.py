"""AFA, Auxiliary Fourier-basis Augmentation (Vaish, Wang, Strisciuglio, CVPR 2024).

Official code: github.com/nis-research/afa-augment. The auxiliary ("adversarial") view is
Fourier-basis noise (`fourier_basis.fourier_noise`, project/augs/fba/fourier_basis.py) of the
clean, cropped and flipped image (utils.py:146-167 `make_attack` returns the generator itself for
attack='afa'); the model sees it through auxiliary BatchNorm layers ("route 'A'", DuBIN/DuBN
models, project/models/image_classification/dubn.py) and the loss without JSD (`AdvModule`,
project/trainers/base_module.py:285-357, the README's configuration `use_jsd: False`, "ACE") is

    loss = (CE(main view) + CE(Fourier-basis view)) / 2.

The main view is the image after the dataset's visual augmentation; for AFA alone that is the
crop and flip (utils.py:32-44: RandomCrop(32, padding=4), RandomHorizontalFlip).

The strengths are not optimised in the official code: "adversarial" there means large random
strengths sigma ~ min_str + Exp(mean mean_str) kept out of the main BatchNorm statistics (the
paper's Table 1 counts 2x the FLOPs of standard training, i.e. no inner gradient steps). This
module reproduces that by default (ascent_steps = 0). As an option that is not part of AFA,
ascent_steps > 0 runs that many signed-gradient ascent steps on the strengths,

    sigma <- clip(sigma + ascent_step_size sign(d CE(forward(x'(sigma)), y) / d sigma),
                  min_str, max_str),

through `forward` (the model with its parameters held fixed; the gradient flows to the strengths
only).

Auxiliary BatchNorm: `aux_bn_views = (1,)` routes the Fourier-basis view through the model's
auxiliary BatchNorms (own statistics and affine parameters, the reference's DualBatchNorm2d, route
'A'), as the train step does when `config.train.aux_bn` is True (the default);
`config.train.aux_bn=False` normalises both views with the main BatchNorms instead.
"""
from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Optional

import jax
import jax.numpy as jnp

from freqrobust.augment import base, fourier_basis, ops

Array = jax.Array


def ascend_strengths(forward: base.Forward, images: Array, labels: Array, waves: Array,
                     strengths: Array, steps: int, step_size: float, lo: float,
                     hi: float) -> Array:
  """`steps` projected signed-gradient ascent steps on the strengths (N, C, F, P) of the CE of
  forward(clip(images + waves . strengths)); returns the strengths, without gradient."""
  def loss(s):
    adv = jax.vmap(lambda x, w, t: fourier_basis.apply_waves(x, w, t)[0])(images, waves, s)
    return ops.cross_entropy(forward(adv), labels)

  def step(s, _):
    g = jax.grad(loss)(s)
    return jnp.clip(s + step_size * jnp.sign(g), lo, hi), None

  return jax.lax.stop_gradient(jax.lax.scan(step, strengths, None, length=steps)[0])


@dataclasses.dataclass(frozen=True)
class AFA(fourier_basis._FourierFields):
  """Views (main, Fourier-basis auxiliary view); loss (CE(view 0) + CE(view 1)) / 2.

  Attributes (besides the generator's, see fourier_basis):
    max_str: upper bound on the strengths (the reference has none: inf).
    ascent_steps: signed-gradient ascent steps on the strengths through `forward` (0, the
      official behaviour; > 0 is an extension, see the module docstring).
    ascent_step_size: the step, in strength units.
  """
  name: ClassVar[str] = "afa"
  num_views: ClassVar[int] = 2
  ce_views: ClassVar[tuple[int, ...]] = (0, 1)
  aux_bn_views: ClassVar[tuple[int, ...]] = (1,)

  max_str: float = math.inf
  ascent_steps: int = 0
  ascent_step_size: float = 1.0

  def __post_init__(self):
    super().__post_init__()
    ops.set_float(self, "max_str", self.min_str)
    ops.set_int(self, "ascent_steps", 0)
    ops.set_float(self, "ascent_step_size", 0.0, lo_open=True)

  def views(self, key: Array, images: Array, labels: Array,
            forward: Optional[base.Forward] = None) -> tuple[Array, dict]:
    ops.check_batch(images, self)
    k_crop, k_waves = jax.random.split(key)
    clean = ops.crop_flip_batch(k_crop, images, self.pad, self.flip, self.crop_fill)
    waves, strengths = self._draw(k_waves, clean)
    strengths = jnp.clip(strengths, self.min_str, self.max_str)
    if self.ascent_steps:
      if forward is None:
        raise ValueError("AFA with ascent_steps > 0 needs `forward` (the model with fixed "
                         "parameters).")
      strengths = ascend_strengths(forward, clean, labels, waves, strengths, self.ascent_steps,
                                   self.ascent_step_size, self.min_str, self.max_str)
    adv = jax.vmap(lambda x, w, s: fourier_basis.apply_waves(x, w, s)[0])(clean, waves, strengths)
    return jnp.stack([clean, adv]), {"afa_strength": strengths.reshape(images.shape[0], -1)}
