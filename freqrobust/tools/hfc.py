"""`analyze hfc`: HFC's accuracy on the low- and high-frequency components of the images
(Wang, Wu, Huang & Xing 2020): of one model, or with --curves over every kept checkpoint, on the
first --num_images training and test images (the curves over training of their Figure 2).
`analyze smoothing` is HFC's first-layer kernel smoothing."""
from __future__ import annotations

import os

from absl import flags
import numpy as np

from freqrobust import data
from freqrobust import workdir as workdir_lib
from freqrobust.analysis import hfc, records
from freqrobust.tools import base


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
  summary = ("HFC's kernel smoothing: accuracy (clean, and low/high-pass at one radius) as the "
             "first layer's 3x3 kernels are smoothed with rho")
  default_images = hfc.DEFAULT_NUM_IMAGES

  def define_flags(self, fv):
    flags.DEFINE_list("rhos", ["0", "0.05", "0.1", "0.25", "0.5", "1"], "Smoothing strengths.",
                      flag_values=fv)
    flags.DEFINE_enum("boundary", "symmetric", list(hfc.SMOOTH_BOUNDARIES),
                      "Padding of the kernel convolution (HFC's code: symmetric).",
                      flag_values=fv)

  def run(self, values, context):
    from freqrobust import trained as trained_lib
    run = context.trained()
    images, labels = base.load_test_images(run.config, base.num_images(values, self))
    predictor = trained_lib.predictor_of(run.config, run.model)

    def evaluate(variables):
      logits = np.asarray(predictor(variables, images))
      return {"clean_accuracy": 100.0 * float(np.mean(logits.argmax(-1) == labels))}

    return hfc.run_smoothing(context.out_dir, evaluate, run.variables,
                             [float(r) for r in values.rhos], values.boundary)
