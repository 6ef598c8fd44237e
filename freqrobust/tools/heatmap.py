"""`analyze heatmap`: Fourier heat map, error and logit change per basis perturbation (Yin et
al. 2019)."""
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


def run_heatmap(out_dir: str, predict_fn: Callable, images: np.ndarray, labels: np.ndarray,
                eps: float, key: jax.Array, clip: bool = True, batch_size: int = 256,
                progress: bool = True) -> dict[str, Any]:
  """Fourier heat map tool."""
  result = analysis.fourier_heatmap(predict_fn, images, labels, eps, key, batch_size, clip,
                                    progress)
  path = plots.plot_spectra_row(
      os.path.join(out_dir, "heatmap.png"), [100 * result["error"], result["logit_change"]],
      ["error rate (%)", "mean L2 norm of the logit change"],
      f"Fourier heat map, eps = {eps:g}, {len(labels)} images, clean error "
      f"{100 * float(result['clean_error']):.1f}%")
  records.save_arrays(out_dir, "heatmap", result)
  summary = {"eps": eps, "clip": clip, "num_images": int(len(labels)),
             "clean_error": float(result["clean_error"]),
             "mean_error": float(np.mean(result["error"])),
             "max_error": float(np.max(result["error"])), "figures": [os.path.basename(path)]}
  records.save_json(out_dir, "heatmap", summary)
  return summary


class Heatmap(base.Tool):
  name = "heatmap"
  summary = "Fourier heat map: error and logit change per basis perturbation (Yin et al.)"
  default_images = 100

  def define_flags(self, fv):
    flags.DEFINE_float("eps", 4.0, "L2 norm v of the Fourier basis perturbation.", flag_values=fv)
    flags.DEFINE_bool("clip", True, "Clip perturbed images to [0, 1].", flag_values=fv)

  def run(self, values, context):
    run = context.trained()
    images, labels = base.load_test_images(run.config, base.num_images(values, self))
    return run_heatmap(context.out_dir, run.predict, images, labels, values.eps,
                       jax.random.key(values.seed), values.clip, base.batch_size(values, context),
                       values.progress)
