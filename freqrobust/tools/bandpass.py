"""`analyze bandpass`: accuracy under centred low-pass / high-pass square filters over the
bandwidth (Yin et al. 2019). (HFC's radial low/high split at a few radii is the `hfc_split`
evaluation of `freqrobust.evaluators`.)"""
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


def run_bandpass(out_dir: str, predict_fn: Callable, images: np.ndarray, labels: np.ndarray,
                 bandwidths: Sequence[int] | None = None, batch_size: int = 256,
                 progress: bool = True) -> dict[str, Any]:
  """Band-limited accuracy tool."""
  h, w = np.shape(images)[1:3]
  if not bandwidths:
    bandwidths = list(range(1, max(h, w) + 2, 2))
  result = analysis.bandlimited_accuracy(predict_fn, images, labels, bandwidths, batch_size,
                                         progress)
  path = plots.plot_bandpass(os.path.join(out_dir, "bandpass.png"), result,
                             f"band-limited accuracy, {len(labels)} test images")
  records.save_arrays(out_dir, "bandpass", result)
  summary = {k: v for k, v in result.items()}
  summary.update(num_images=int(len(labels)), figures=[os.path.basename(path)])
  records.save_json(out_dir, "bandpass", summary)
  return summary


class Bandpass(base.Tool):
  name = "bandpass"
  summary = "accuracy under centred low-pass / high-pass filtering over bandwidth (Yin et al.)"
  default_images = 1000

  def define_flags(self, fv):
    flags.DEFINE_list("bandwidths", [], "Bandwidths B (default 1, 3, ..., max(H, W) + 1).",
                      flag_values=fv)

  def run(self, values, context):
    run = context.trained()
    images, labels = base.load_test_images(run.config, base.num_images(values, self))
    return run_bandpass(context.out_dir, run.predict, images, labels,
                        [int(b) for b in values.bandwidths], base.batch_size(values, context),
                        values.progress)
