"""`analyze fprinciple`: the Frequency Principle's filtering method (Xu et al.): e_low and e_high
of the model's outputs against the labels on --num_images training images, at each kept
checkpoint (config.train.keep_every_epochs), for a few Gaussian widths delta. Memory: the
N x N float64 distance matrix (2000 images: 32 MB; 5000, the paper's: 200 MB)."""
from __future__ import annotations

from absl import flags
import numpy as np

from freqrobust import data
from freqrobust import workdir as workdir_lib
from freqrobust.analysis import fprinciple
from freqrobust.tools import base


class FPrinciple(base.Tool):
  name = "fprinciple"
  summary = ("Frequency Principle (filtering): e_low and e_high over the kept checkpoints on "
             "training images")
  default_images = fprinciple.DEFAULT_NUM_IMAGES

  def define_flags(self, fv):
    flags.DEFINE_list("deltas", [], "Gaussian widths delta (default: the official 20, scaled to "
                      "the image size).", flag_values=fv)
    flags.DEFINE_integer("max_deltas_drawn", 4, "Deltas drawn as curves.", flag_values=fv)
    base.define_steps_flag(fv)

  def run(self, values, context):
    config = workdir_lib.read_config(context.workdir)
    images, labels = data.training_set(config)  # The labels it trained on.
    n = base.num_images(values, self)
    images = images[:n].astype(np.float32) / 255.0
    labels = np.asarray(labels[:n])
    deltas = [float(d) for d in values.deltas] or None
    distances = fprinciple.pairwise_sq_distances(images)  # Once, for every checkpoint.
    rows = base.over_steps(values, context, lambda run: fprinciple.fprinciple_row(
        run.predict, images, labels, deltas, distances, batch_size=values.batch_size or 512))
    return fprinciple.run_fprinciple(context.out_dir, rows, values.max_deltas_drawn)
