"""Accuracy on low- and high-pass versions of the test set (HFC, Wang, Wu, Huang & Xing 2020).

Each channel's centred spectrum is split by a radius r (`analysis.hfc.hfc_split`: low keeps the
disc r(i, j) < r, high the rest, low + high = the image); by default each filtered image is
divided by its own maximum before it is fed to the model, as HFC's scripts do (`rescale`: "max"
or "none"). The radii are given for a 32-pixel image (HFC's r = 4, 8, 12, 16 on CIFAR-10) and
scaled to the run's image size (r * min(H, W) / 32), so one entry serves Fashion-MNIST and
CIFAR-10. A small module on purpose: it shows what adding an evaluation takes.

Named `hfc_split` (it was `bandpass` until 2026-12; `bandpass` is Yin et al.'s square
band-limited accuracy, `python -m freqrobust.analyze bandpass`): entries and records of the old
name load as this one (`evaluators.LEGACY_TYPES`).
"""
from __future__ import annotations

import os
from typing import Dict

import numpy as np

from freqrobust import workdir as workdir_lib
from freqrobust.analysis import hfc
from freqrobust.evaluators import base


class HfcSplit(base.Evaluator):
  type = "hfc_split"
  defaults = {"radii": hfc.OFFICIAL_RADII, "num_examples": 1000, "rescale": "max"}

  def metric_columns(self):
    return tuple(base.Column(f"{part}_r{r:g}", f"{part}-pass r={r:g} (%)",
                             f"accuracy on the {part}-pass images, radius {r:g} at 32 px")
                 for r in self.settings["radii"] for part in ("low", "high"))

  def check(self, config) -> None:
    radii, n = self.settings["radii"], self.settings["num_examples"]
    if not radii or any(isinstance(r, bool) or not isinstance(r, (int, float)) or r <= 0
                        for r in radii):
      raise workdir_lib.UserError(f"config.evals.{self.name}.radii={radii!r} is invalid: "
                                  "positive numbers (radii at 32 pixels, e.g. 4,8,12,16).")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
      raise workdir_lib.UserError(f"config.evals.{self.name}.num_examples={n!r} is invalid: "
                                  "an integer >= 0 (0 = every test example).")
    if self.settings["rescale"] not in ("max", "none"):
      raise workdir_lib.UserError(f"config.evals.{self.name}.rescale="
                                  f"{self.settings['rescale']!r} is invalid: 'max' or 'none'.")

  def run(self, context: base.Context) -> Dict[str, float]:
    images, labels = context.first_examples(self.settings["num_examples"])
    n = len(images)
    h, w = images.shape[1:3]
    result = hfc.hfc_accuracies(context.model.predict, images, labels,
                                hfc.scaled_radii(h, w, self.settings["radii"]),
                                self.settings["rescale"], batch_size=512,
                                progress=context.progress and context.write_files)
    out = {}
    for k, r in enumerate(self.settings["radii"]):
      out[f"low_r{r:g}"] = 100.0 * float(result["low_accuracy"][k])
      out[f"high_r{r:g}"] = 100.0 * float(result["high_accuracy"][k])
    out["examples"] = int(n)
    if context.write_files:
      from freqrobust.analysis import explain_plots
      workdir_lib.make_dir(self.out_dir(context))
      dataset = context.config.data.dataset
      explain_plots.plot_hfc(workdir_lib.path(self.out_dir(context), "hfc_split.png"), result,
                             f"{n} test images of {dataset}")
    return out
