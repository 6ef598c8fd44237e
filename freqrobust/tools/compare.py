"""`analyze compare`: the saved PDM histograms of several runs side by side, in the order given
(a run without one gets it computed first)."""
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
from freqrobust.tools import pdm


def run_compare(out_dir: str, workdirs: Sequence[str], load_histogram: Callable[[str], np.ndarray],
                labels: Sequence[str] | None = None) -> dict[str, Any]:
  """PDM histograms of several runs in one row, in the order given."""
  pairs = analysis.collect_histograms(workdirs, load_histogram, labels)
  names = [name for name, _ in pairs]
  histograms = [hist for _, hist in pairs]
  path = plots.plot_spectra_row(os.path.join(out_dir, "compare.png"), histograms, names,
                                "PDM response histograms (DC centred)")
  records.save_arrays(out_dir, "compare", {"histograms": np.stack(histograms)})
  h, w = histograms[0].shape
  radius = min(h, w) / 4
  settings = [pdm.saved_settings(d) for d in workdirs]
  if len({json.dumps(x, sort_keys=True) for x in settings if x is not None}) > 1:
    print("compare: the runs' PDMs were computed with different settings "
          f"{settings}; delete DIR/analysis/pdm of the odd ones to recompute them")
  summary = {"labels": names, "workdirs": list(workdirs), "radius": radius,
             "pdm_settings": settings,
             "histogram_high_frequency_fraction":
                 [float(analysis.high_frequency_fraction(x, radius)) for x in histograms],
             "figures": [os.path.basename(path)]}
  records.save_json(out_dir, "compare", summary)
  return summary


def saved_histogram(workdir: str, compute: Callable[[str], Any] | None = None) -> np.ndarray:
  """`DIR/analysis/pdm/pdm.npz`'s histogram, computed first with `compute(workdir)` if missing."""
  path = os.path.join(workdir_lib.path(workdir, workdir_lib.ANALYSIS, "pdm"), "pdm.npz")
  if not os.path.exists(path):
    if compute is None:
      raise FileNotFoundError(f"{path} not found: run `python -m freqrobust.analyze pdm "
                              f"--workdir={workdir}` first")
    compute(workdir)
  return records.load_arrays(path)["histogram"]


class Compare(base.Tool):
  name = "compare"
  summary = "PDM histograms of --workdirs side by side, in the order given"
  default_images = 1000

  def define_flags(self, fv):
    pdm.define_pdm_flags(fv)  # For runs whose PDM is computed first.

  def run(self, values, context):
    if not values.workdirs:
      raise app.UsageError("compare needs --workdirs=A,B,... (shown in that order)")
    n = base.num_images(values, self)
    compute = lambda d: pdm.pdm_for_workdir(d, n, context.step, **pdm.options(values))
    return run_compare(context.out_dir, list(values.workdirs),
                       lambda d: saved_histogram(d, compute), values.labels or None)
