"""`analyze spectra`: E|DFT(C(X) - X)| per corruption; with --workdirs, the high-frequency fraction
against each model's accuracy change relative to --baseline (Yin et al. 2019). Needs a run's data
(the first of --workdirs), not its model."""
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


def run_spectra(out_dir: str, key: jax.Array, images: np.ndarray, names: Sequence[str],
                severity: int, radius: float = 0.0, corrupt_fn: Callable | None = None,
                accuracies: Mapping[str, Mapping[str, Mapping[int, float]]] | None = None,
                baseline: str | None = None, batch_size: int = 256,
                progress: bool = True) -> dict[str, Any]:
  """Corruption spectra tool; with accuracies of >= 2 models also the high-frequency scatter.

  `accuracies[label][name][severity]` in percent (from `analysis.corruption_accuracies`).
  """
  h, w = np.shape(images)[1:3]
  radius = radius or min(h, w) / 4
  spectra = analysis.corruption_spectra(key, images, names, severity, corrupt_fn, batch_size,
                                        progress)
  hf = {n: float(analysis.high_frequency_fraction(s, radius)) for n, s in spectra.items()}
  figures = [plots.plot_spectra_grid(
      os.path.join(out_dir, "spectra.png"), [spectra[n] for n in names], list(names),
      f"E|DFT(C(X) - X)|, severity {severity}, DC centred (colour scale without DC)", cols=5,
      scale_without_dc=True)]
  summary: dict[str, Any] = {"severity": severity, "radius": radius,
                             "num_images": int(len(images)), "corruptions": list(names),
                             "high_frequency_fraction": hf}
  if accuracies and len(accuracies) >= 2:
    baseline = baseline or next(iter(accuracies))
    changes = analysis.accuracy_changes(accuracies, baseline, names)
    summary.update(baseline=baseline, accuracy_change=changes)
    figures.append(plots.plot_hf_scatter(os.path.join(out_dir, "hf_vs_accuracy.png"), hf,
                                         changes, baseline, radius))
  records.save_arrays(out_dir, "spectra", spectra)
  summary["figures"] = [os.path.basename(f) for f in figures]
  records.save_json(out_dir, "spectra", summary)
  return summary


def _spectra_main(out_dir: str, key: jax.Array, images: np.ndarray, workdirs: list[str],
                  common: dict[str, Any], values: flags.FlagValues) -> dict[str, Any]:
  from freqrobust import corruptions
  names = list(values.corruptions) or list(corruptions.CORRUPTIONS)
  unknown = [n for n in names if n not in corruptions.ALL_CORRUPTIONS]
  if unknown:
    raise app.UsageError(f"unknown corruptions {unknown}; valid: "
                         f"{', '.join(corruptions.ALL_CORRUPTIONS)}")
  if values.severity not in corruptions.SEVERITIES:
    raise app.UsageError(f"--severity={values.severity}; valid: {corruptions.SEVERITIES}")
  accuracies = {}
  labels = analysis.run_labels(workdirs, values.labels or None) if workdirs else []
  for label, d in zip(labels, workdirs):
    results = workdir_lib.read_corruption_results(d, required=False)
    if results is None:
      print(f"spectra: {d} has no corruption results (corruption_eval/results.json); left out "
            "of the scatter")
      continue
    accuracies[label] = analysis.corruption_accuracies(results)
  baseline = None
  if values.baseline:
    if values.baseline not in workdirs:
      raise app.UsageError(f"--baseline={values.baseline} must be one of --workdirs")
    baseline = labels[workdirs.index(values.baseline)]
    if baseline not in accuracies:
      raise app.UsageError(f"--baseline={values.baseline} has no corruption_eval/results.json")
  return run_spectra(out_dir, key, images, names, values.severity, values.radius,
                     accuracies=accuracies, baseline=baseline, **common)


class Spectra(base.Tool):
  name = "spectra"
  summary = ("E|DFT(C(X) - X)| per corruption; with --workdirs, high-frequency fraction against "
             "each model's accuracy change relative to --baseline")
  default_images = 200

  def define_flags(self, fv):
    flags.DEFINE_string("baseline", None, "The workdir (of --workdirs) accuracy changes are "
                        "measured against; default the first.", flag_values=fv)
    flags.DEFINE_list("corruptions", [], "Corruption names (default the 15 benchmark ones).",
                      flag_values=fv)
    flags.DEFINE_integer("severity", 3, "Corruption severity 1..5.", flag_values=fv)
    flags.DEFINE_float("radius", 0.0, "Radius above which energy counts as high frequency "
                       "(0 = min(H, W) / 4).", flag_values=fv)

  def run(self, values, context):
    workdirs = list(values.workdirs)
    images, _ = base.load_test_images(
        workdir_lib.read_config(workdirs[0] if workdirs else context.workdir),
        base.num_images(values, self))
    return _spectra_main(context.out_dir, jax.random.key(values.seed), images, workdirs,
                         dict(batch_size=values.batch_size or 256, progress=values.progress),
                         values)
