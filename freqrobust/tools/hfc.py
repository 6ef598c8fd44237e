"""`analyze hfc`: HFC's accuracy on the low- and high-frequency components of the images
(Wang, Wu, Huang & Xing 2020): of one model, or with --curves over every kept checkpoint, on the
first --num_images training and test images (the curves over training of their Figure 2).
`analyze smoothing` is HFC's first-layer kernel smoothing."""
from __future__ import annotations

import os

from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from freqrobust import data
from freqrobust import workdir as workdir_lib
from freqrobust.analysis import hfc, records
from freqrobust.tools import base
from freqrobust.tools import perturbation as perturbation_tool


def define_hfc_flags(fv) -> None:
  base.define_once(flags.DEFINE_list, "radii", [], "Radii at 32 px (default 4,8,12,16), scaled "
                   "to the image size.", flag_values=fv)
  base.define_once(flags.DEFINE_enum, "rescale", "max", list(hfc.RESCALE_MODES),
                   "Divide each filtered image by its maximum (HFC's scripts) or not.",
                   flag_values=fv)


def radii(values, image_shape) -> list[float]:
  given = [float(r) for r in values.radii] or list(hfc.OFFICIAL_RADII)
  return hfc.scaled_radii(image_shape[0], image_shape[1], given)


class HFC(base.Tool):
  name = "hfc"
  summary = ("HFC: accuracy on low/high-frequency components per radius; --curves over the "
             "kept checkpoints, train and test")
  default_images = hfc.DEFAULT_NUM_IMAGES

  def define_flags(self, fv):
    define_hfc_flags(fv)
    flags.DEFINE_bool("curves", False, "Over every kept checkpoint (--steps), on training and "
                      "test images, instead of the newest model only.", flag_values=fv)
    base.define_steps_flag(fv)

  def run(self, values, context):
    n = base.num_images(values, self)
    if not values.curves:
      run = context.trained()
      images, labels = base.load_test_images(run.config, n)
      return hfc.run_hfc(context.out_dir, run.predict, images, labels,
                         radii(values, images.shape[1:]), values.rescale,
                         base.batch_size(values, context), values.progress)
    config = workdir_lib.read_config(context.workdir)
    sets = {"test": base.load_test_images(config, n)}
    train_images, train_labels = data.training_set(config)  # The labels it trained on.
    sets["train"] = (train_images[:n].astype(np.float32) / 255.0, train_labels[:n])
    r = radii(values, sets["test"][0].shape[1:])
    summary = {}
    for split, (images, labels) in sets.items():
      rows = base.over_steps(values, context, lambda run: hfc.hfc_curve_row(
          run.predict, images, labels, r, values.rescale, values.batch_size or 512))
      out = os.path.join(context.out_dir, split)
      os.makedirs(out, exist_ok=True)
      summary[split] = hfc.run_hfc_curves(out, rows)
    summary["figures"] = [f"{s}/{f}" for s in sets for f in summary[s]["figures"]]
    records.save_json(context.out_dir, "hfc", summary)
    return summary


class Smoothing(base.Tool):
  name = "smoothing"
  summary = ("HFC's kernel smoothing: clean, corrupted (the 15 corruptions at one severity) and "
             "PGD accuracy as the first layer's 3x3 kernels are smoothed with rho")
  default_images = hfc.DEFAULT_NUM_IMAGES

  def define_flags(self, fv):
    flags.DEFINE_list("rhos", ["0", "0.05", "0.1", "0.25", "0.5", "1"], "Smoothing strengths.",
                      flag_values=fv)
    flags.DEFINE_enum("boundary", "symmetric", list(hfc.SMOOTH_BOUNDARIES),
                      "Padding of the kernel convolution (HFC's code: symmetric).",
                      flag_values=fv)
    flags.DEFINE_integer("corruption_severity", 3, "Severity of the corrupted accuracy (the "
                         "mean over the 15 benchmark corruptions; 0 = leave it out).",
                         flag_values=fv)
    base.define_once(flags.DEFINE_float, "attack_eps", 0.0, "L-inf radius (0 = the dataset's: "
                     "Fashion-MNIST 0.1, CIFAR-10 8/255).", flag_values=fv)
    flags.DEFINE_integer("attack_steps", 10, "PGD iterations of the adversarial accuracy (step "
                         "eps/4; 0 = leave it out).", flag_values=fv)

  def run(self, values, context):
    from freqrobust import corruptions
    from freqrobust import trained as trained_lib
    if values.corruption_severity not in (0,) + tuple(corruptions.SEVERITIES):
      raise workdir_lib.UserError(f"--corruption_severity={values.corruption_severity}: 0 or "
                                  f"one of {', '.join(map(str, corruptions.SEVERITIES))}.")
    rhos = [float(r) for r in values.rhos]
    run = context.trained()
    images, labels = base.load_test_images(run.config, base.num_images(values, self))
    predictor = trained_lib.predictor_of(run.config, run.model)
    corrupted = []
    if values.corruption_severity:  # Generated once, the same images for every rho.
      key = jax.random.key(values.seed)
      corrupted = [np.asarray(corruptions.corrupt(jax.random.fold_in(key, i), images, name,
                                                  values.corruption_severity))
                   for i, name in enumerate(corruptions.CORRUPTIONS)]
    eps = values.attack_eps or perturbation_tool.DEFAULT_EPS[run.config.data.dataset]
    attack = (_pgd_over_variables(run.apply, eps, values.attack_steps) if values.attack_steps
              else None)
    size = values.batch_size or 250

    def accuracy(logits):
      return 100.0 * float(np.mean(np.asarray(logits).argmax(-1) == labels))

    def evaluate(variables):
      out = {"clean_accuracy": accuracy(predictor(variables, images))}
      if corrupted:
        out[f"corrupted_accuracy_s{values.corruption_severity}"] = float(np.mean(
            [accuracy(predictor(variables, c)) for c in corrupted]))
      if attack is not None:
        key = jax.random.key(values.seed)
        adversarial = np.concatenate([
            np.asarray(attack(variables, jax.random.fold_in(key, i), images[i:i + size],
                              labels[i:i + size])) for i in range(0, len(images), size)])
        out[f"pgd{values.attack_steps}_accuracy"] = accuracy(predictor(variables, adversarial))
      return out

    summary = hfc.run_smoothing(context.out_dir, evaluate, run.variables, rhos, values.boundary)
    summary.update(num_images=int(len(labels)), corruption_severity=values.corruption_severity,
                   attack_eps=eps, attack_steps=values.attack_steps)
    records.save_json(context.out_dir, "smoothing", summary)
    return summary


def _pgd_over_variables(apply, eps: float, steps: int):
  """PGD (L-inf, step eps/4, random start) on `apply(variables, x)`, jitted once with the
  variables as an argument (every rho's smoothed kernels reuse the compilation)."""
  from freqrobust.attacks import fgsm_pgd

  @jax.jit
  def attack(variables, key, images, labels):
    return fgsm_pgd.pgd_core(lambda x: apply(variables, x), key, images, labels, eps, eps / 4,
                             norm="linf", steps=steps)
  return lambda variables, key, images, labels: attack(variables, key, jnp.asarray(images),
                                                       jnp.asarray(labels))
