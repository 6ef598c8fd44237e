"""The analysis tools of `python -m freqrobust.analyze TOOL`, by name.

Adding one: a module here with a `base.Tool` subclass (its own flags, `run(values, context)`),
and one entry in `TOOLS`. The numbers come from `freqrobust.analysis` (pure functions).
"""
from __future__ import annotations

from freqrobust.tools import bandpass, base, compare, dct, fprinciple, heatmap, hfc, occlusion
from freqrobust.tools import pdm, perturbation, spectra

TOOLS: dict[str, base.Tool] = {tool.name: tool for tool in (
    pdm.PDM(), heatmap.Heatmap(), bandpass.Bandpass(), spectra.Spectra(), occlusion.Occlusion(),
    compare.Compare(), dct.DCT(), hfc.HFC(), hfc.Smoothing(), fprinciple.FPrinciple(),
    perturbation.Perturbation())}


def register(tool: base.Tool) -> base.Tool:
  TOOLS[tool.name] = tool
  return tool


__all__ = ["TOOLS", "register"]
