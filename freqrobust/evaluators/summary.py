"""The quickstart's one figure, DIR/summary.png (METHOD §5-6): accuracy per corruption (mean over
the severities, from the `corruptions` evaluation when the run made one) beside the clean
accuracy, and the first semantic layer's PDM response histogram (`analysis.pdm_response` ->
`normalize_response_maps` -> `response_histogram`, DC centred).

Its scalars: the histogram's share of votes beyond a quarter of the image side, against the share
of the area there (the paper's robust models shift votes to low frequencies). List it after the
clean and corruption entries of config.evals: it draws what they recorded.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional

import jax
import numpy as np

from freqrobust import workdir as workdir_lib
from freqrobust.evaluators import base, clean, corruptions

SUMMARY_FIGURE = "summary.png"


class Summary(base.Evaluator):
  type = "summary"
  folder = "."  # DIR/summary.png
  columns = (base.Column("histogram_high_frequency_fraction", "PDM votes beyond r=side/4",
                         "share of the first layer's PDM histogram beyond a quarter of the side",
                         higher_is_better=False),)

  def run(self, context: base.Context) -> Dict[str, float]:
    from freqrobust import models
    model = context.model
    path = workdir_lib.path(self.out_dir(context), SUMMARY_FIGURE)
    report = workdir_lib.read_corruption_results(context.out_root, required=False)
    if report is not None and report.get("model") != model.fingerprint:
      report = None  # Another model's report: never drawn beside this one.
    accuracy = context.metrics.get("clean/accuracy")  # The clean evaluation's, when it ran.
    if accuracy is None:
      accuracy = clean.clean_accuracy(model.predict, *context.test_set())["accuracy"]
    layer_fn = jax.jit(lambda x: models.first_layer(model.model, model.variables, x))
    image_shape = context.test_set()[0].shape[1:]
    config = context.config
    title = (f"{config.model.name}, method {config.get('method', 'paper')}, "
             f"{config.data.dataset}")
    out = write_summary_figure(path, layer_fn, image_shape, accuracy, report, title,
                               write=context.write_files)
    return {k: out[k] for k in ("histogram_high_frequency_fraction",
                                "area_high_frequency_fraction")}


def write_summary_figure(path: str, layer_fn, image_shape, clean_acc: float,
                         corruption_results: Optional[Dict[str, Any]] = None, title: str = "",
                         write: bool = True) -> Dict[str, Any]:
  """Draws the figure (when `write`); returns {"path", "histogram_high_frequency_fraction",
  "area_high_frequency_fraction"}."""
  from freqrobust import analysis
  from freqrobust.analysis import plots  # Sets matplotlib's Agg backend.
  import matplotlib.pyplot as plt
  h, w, c = image_shape
  responses = analysis.pdm_response(layer_fn, h, w, c, progress=False)
  histogram = analysis.response_histogram(analysis.normalize_response_maps(responses))
  radius = min(h, w) / 4
  high = float(analysis.high_frequency_fraction(histogram, radius))
  area = float(analysis.high_frequency_fraction(np.ones((h, w)), radius))
  out = {"path": path, "histogram_high_frequency_fraction": high,
         "area_high_frequency_fraction": area}
  if not write:
    return out
  fig, (bars, spectrum) = plt.subplots(1, 2, figsize=(11.5, 4.0),
                                       gridspec_kw={"width_ratios": [2.3, 1]})
  if corruption_results:
    names = list(corruption_results["accuracy"])
    means = [float(np.mean(list(corruption_results["accuracy"][n].values()))) for n in names]
    bars.bar(np.arange(len(names)), means, color="tab:blue")
    bars.set_xticks(np.arange(len(names)), names, rotation=60, ha="right", fontsize=8)
    severities = len(next(iter(corruption_results["accuracy"].values()), {}))
    bars.set_title(f"accuracy per corruption (mean of {severities} severities, "
                   f"{corruption_results['num_examples']} images per set); robust accuracy "
                   f"{corruptions.format_value(corruption_results['robust_accuracy'])}%, "
                   "unnormalised mCE "
                   f"{corruptions.format_value(corruption_results['mce_unnormalized'])}",
                   fontsize=9)
  else:
    bars.text(0.5, 0.5, "no corruption evaluation of this model\n(config.evals.corruptions)",
              ha="center", va="center", transform=bars.transAxes)
    bars.set_xticks([])
    bars.set_title("accuracy per corruption", fontsize=9)
  bars.axhline(clean_acc, color="black", linestyle="--", linewidth=1,
               label=f"clean {clean_acc:.1f}%")
  bars.set_ylim(0, 100)
  bars.set_ylabel("accuracy (%)")
  bars.legend(fontsize=8, loc="lower left")
  plots.show_spectrum(spectrum, histogram,
                      f"first-layer PDM histogram (DC centred)\nvotes beyond r = {radius:g}: "
                      f"{100 * high:.0f}% (area there: {100 * area:.0f}%)")
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  plots.save_figure(fig, path)
  return out
