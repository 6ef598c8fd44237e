"""`analyze occlusion`: drop of the true-class probability when a radial band of the spectrum is
removed (Wang et al. 2020)."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
import json
import os
from typing import Any

from absl import app, flags
import jax
import numpy as np

from freqrobust import analysis
from freqrobust import workdir as workdir_lib
from freqrobust.analysis import plots, records
from freqrobust.tools import base


def run_occlusion(out_dir: str, predict_fn: Callable, images: np.ndarray, labels: np.ndarray,
                  num_bands: int = 8, class_names: Sequence[str] | None = None,
                  batch_size: int = 256, progress: bool = True) -> dict[str, Any]:
  """Occluded-frequency attribution tool."""
  h, w = np.shape(images)[1:3]
  bands = analysis.radial_bands(h, w, num_bands)
  result = analysis.occlusion_attribution(predict_fn, images, labels, bands,
                                          len(class_names) if class_names else None,
                                          batch_size, progress)
  path = plots.plot_occlusion(os.path.join(out_dir, "occlusion.png"), result, class_names)
  records.save_arrays(out_dir, "occlusion", result)
  summary = {k: v for k, v in result.items()}
  summary.update(num_images=int(len(labels)), class_names=list(class_names or []),
                 figures=[os.path.basename(path)])
  records.save_json(out_dir, "occlusion", summary)
  return summary


CLASS_NAMES = {
    "fashion_mnist": ("T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                "truck"),
}


class Occlusion(base.Tool):
  name = "occlusion"
  summary = "drop of the true-class probability when a radial band is removed (Wang et al.)"
  default_images = 1000

  def define_flags(self, fv):
    base.define_once(flags.DEFINE_integer, "num_bands", 8, "Number of bands.", flag_values=fv)

  def run(self, values, context):
    run = context.trained()
    images, labels = base.load_test_images(run.config, base.num_images(values, self))
    return run_occlusion(context.out_dir, run.predict, images, labels, values.num_bands,
                         CLASS_NAMES.get(run.config.data.dataset),
                         base.batch_size(values, context), values.progress)
