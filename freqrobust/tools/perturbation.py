"""`analyze perturbation`: the Fourier spectrum of the model's adversarial perturbations (Yin et
al. 2019) and the relative change of DCT coefficients by band (Wang et al.'s RCT): PGD (L-inf,
--eps, --pgd_steps) on the first --num_images test images of the reported function, then
E|DFT(x_adv - x)| centred, its radial profile and the radius holding half its power."""
from __future__ import annotations

import functools

from absl import flags
import jax
import numpy as np

from freqrobust.analysis import perturbation, records
from freqrobust.evaluators import adversarial
from freqrobust.tools import base

# The main L-inf radius of the adversarial evaluation per dataset (Fashion-MNIST 0.1, CIFAR-10
# 8/255).
DEFAULT_EPS = {dataset: radii["linf"][0] for dataset, radii in adversarial.DEFAULT_EPS.items()}


class Perturbation(base.Tool):
  name = "perturbation"
  summary = ("spectrum of PGD perturbations (Yin et al.) and RCT per DCT band (Wang et al.); "
             "half-power radius")
  default_images = 500

  def define_flags(self, fv):
    base.define_once(flags.DEFINE_float, "attack_eps", 0.0, "L-inf radius (0 = the dataset's: "
                     "Fashion-MNIST 0.1, CIFAR-10 8/255).", flag_values=fv)
    flags.DEFINE_integer("pgd_steps", 20, "PGD iterations.", flag_values=fv)
    flags.DEFINE_integer("num_dct_bands", 0, "RCT bands (0 = one per diagonal u + v).",
                         flag_values=fv)

  def run(self, values, context):
    from freqrobust import attacks
    run = context.trained()
    images, labels = base.load_test_images(run.config, base.num_images(values, self))
    eps = values.attack_eps or DEFAULT_EPS[run.config.data.dataset]
    logits_fn = functools.partial(run.apply, run.variables)
    key = jax.random.key(values.seed)
    size = values.batch_size or 250
    adversarial = np.concatenate([
        np.asarray(attacks.pgd(logits_fn, jax.random.fold_in(key, i), images[i:i + size],
                               labels[i:i + size], eps=eps, norm="linf",
                               steps=values.pgd_steps, select="last"))
        for i in range(0, len(images), size)])
    fooled = float(np.mean(np.asarray(run.predict(adversarial)).argmax(-1) != labels))
    summary = perturbation.run_perturbation(
        context.out_dir, adversarial, images, values.num_dct_bands or None,
        f"PGD-{values.pgd_steps} L-inf eps {eps:.3g}, {len(images)} images, "
        f"{100 * fooled:.0f}% fooled", progress=values.progress)
    summary.update(eps=eps, pgd_steps=values.pgd_steps, fooled=fooled)
    records.save_json(context.out_dir, "perturbation", summary)
    return summary
