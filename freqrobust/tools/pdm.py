"""`analyze pdm`: point detection maps of the first layer, per-channel response maps, the response
histogram (open-ratio weighted too) and the kernels' DFT (METHOD §5)."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
import json
import os
from typing import Any

from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from freqrobust import analysis, models
from freqrobust import workdir as workdir_lib
from freqrobust.analysis import plots, records
from freqrobust.tools import base


def run_pdm(out_dir: str, layer_fn: Callable, image_shape: Sequence[int],
            kernel: np.ndarray | None = None, open_ratio: np.ndarray | None = None,
            t: float = analysis.PAPER_STRENGTH, ignore_fraction: float = 0.01,
            min_peak_fraction: float = 0.0, batch_size: int = 256,
            progress: bool = True) -> dict[str, Any]:
  """PDM tool: cPDM examples, response maps, histogram (open-ratio weighted too), kernel DFT."""
  h, w, channels = image_shape
  responses = analysis.pdm_response(layer_fn, h, w, channels, t, batch_size, progress)
  normalized = analysis.normalize_response_maps(responses, ignore_fraction)
  votes = analysis.voting_channels(responses, min_peak_fraction)
  histogram = analysis.response_histogram(normalized, votes)
  arrays = {"responses": responses, "normalized": normalized, "histogram": histogram,
            "votes": votes}
  panels, titles = [histogram], ["response histogram"]
  if open_ratio is not None:
    arrays["open_ratio"] = np.asarray(open_ratio)
    arrays["weighted_histogram"] = analysis.response_histogram(normalized, votes * open_ratio)
    panels.append(arrays["weighted_histogram"])
    titles.append("weighted by mean open ratio")
  radius = min(h, w) / 4
  peaks = analysis.peak_response_without_dc(responses)
  summary = {"t": t, "ignore_fraction": ignore_fraction, "image_shape": list(image_shape),
             "num_output_channels": int(responses.shape[0]), "radius": radius,
             "min_peak_fraction": min_peak_fraction,
             "voting_channels": [int(k) for k in np.flatnonzero(votes)],
             "peak_response_without_dc": peaks.tolist(),
             "histogram_high_frequency_fraction":
                 float(analysis.high_frequency_fraction(histogram, radius)),
             "area_high_frequency_fraction":
                 float(analysis.high_frequency_fraction(np.ones((h, w)), radius))}
  voted = f", {int(votes.sum())} of {len(votes)} channels" if votes.sum() < len(votes) else ""
  figures = [plots.plot_spectra_row(os.path.join(out_dir, "histogram.png"), panels, titles,
                                    f"PDM response histogram (DC centred{voted})")]
  per_channel = normalized.sum(axis=1)[:64]
  figures.append(plots.plot_spectra_grid(
      os.path.join(out_dir, "response_maps.png"), list(per_channel),
      [f"ch {k} (peak {peaks[k]:.2g})" for k in range(len(per_channel))],
      "normalised response map per output channel (peak = largest raw response off DC)"))
  examples, example_titles = _cpdm_examples(h, w, channels, t)
  figures.append(plots.plot_images(os.path.join(out_dir, "cpdm_examples.png"), examples,
                                   example_titles, f"cPDM examples, t = {t:.3g}"))
  if kernel is not None:
    spectrum = analysis.kernel_spectrum(kernel, h, w)  # (h, w, cin, cout)
    arrays["kernel_spectrum"] = spectrum
    per_out = np.moveaxis(spectrum.mean(axis=2), -1, 0)[:64]
    figures.append(plots.plot_spectra_grid(
        os.path.join(out_dir, "kernel_spectrum.png"), [per_out.mean(axis=0)] + list(per_out),
        ["mean"] + [f"ch {k}" for k in range(len(per_out))],
        "|DFT| of first-layer kernels (zero-padded, mean over input channels)"))
  records.save_arrays(out_dir, "pdm", arrays)
  summary["figures"] = [os.path.basename(f) for f in figures]
  records.save_json(out_dir, "pdm", summary)
  return summary


def _cpdm_examples(h: int, w: int, channels: int, t: float) -> tuple[list[np.ndarray], list[str]]:
  freqs = [(0, 1), (1, 1), (2, 3), (h // 4, 0), (h // 4, w // 4), (h // 2, w // 2)]
  images, titles = [], []
  for c in range(min(channels, 3)):
    cs = jnp.full((len(freqs),), c)
    ii = jnp.asarray([f[0] for f in freqs])
    jj = jnp.asarray([f[1] for f in freqs])
    images += list(np.asarray(analysis.cpdm_batch(h, w, channels, cs, ii, jj, t)))
    titles += [f"c={c} [{i},{j}]" for i, j in freqs]
  if channels == 2:  # Show 2-channel inputs as grey per channel.
    images = [im[..., :1] for im in images]
  return images, titles


def pdm_inputs(trained, images: np.ndarray):
  """`(layer_fn, kernel, mean open ratio or None)` of a trained run."""
  layer_fn = jax.jit(lambda x: models.first_layer(trained.model, trained.variables, x))
  kernel = np.asarray(models.first_layer_kernel(trained.variables))
  ratios = trained.open_ratios(images)
  open_ratio = None if ratios is None else np.asarray(ratios).mean(axis=0)
  return layer_fn, kernel, open_ratio


def pdm_for_workdir(workdir: str, num_images: int, step: int | None = None,
                    **kwargs) -> dict[str, Any]:
  context = base.Context("pdm", workdir, step)
  run = context.trained()
  images, _ = base.load_test_images(run.config, num_images)
  layer_fn, kernel, open_ratio = pdm_inputs(run, images)
  return run_pdm(context.out_dir, layer_fn, images.shape[1:], kernel, open_ratio, **kwargs)


def saved_settings(workdir: str) -> dict[str, Any] | None:
  """t, ignore_fraction and min_peak_fraction of a run's saved PDM (None when not recorded)."""
  path = os.path.join(workdir_lib.path(workdir, workdir_lib.ANALYSIS, "pdm"), "pdm.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    saved = json.load(f)
  return {k: saved.get(k) for k in ("t", "ignore_fraction", "min_peak_fraction")}


def options(values) -> dict[str, Any]:
  """run_pdm's keyword arguments from the flags."""
  return dict(t=values.pdm_strength, ignore_fraction=values.ignore_fraction,
              min_peak_fraction=values.min_peak_fraction, batch_size=values.batch_size or 256,
              progress=values.progress)


def define_pdm_flags(fv) -> None:
  base.define_once(flags.DEFINE_float, "pdm_strength", analysis.PAPER_STRENGTH,
                   "L2 norm t of the point perturbation (paper 4*sqrt(2)).", flag_values=fv)
  base.define_once(flags.DEFINE_float, "ignore_fraction", 0.01, "Fraction of extreme values "
                   "ignored when a response map is normalised to [0, 1].", flag_values=fv)
  base.define_once(flags.DEFINE_float, "min_peak_fraction", 0.0, "Only channels whose largest "
                   "response off DC is at least this fraction of the strongest channel's vote "
                   "(0 = all, METHOD §5).", flag_values=fv)


class PDM(base.Tool):
  name = "pdm"
  summary = ("point detection maps, per-channel response maps, response histogram, kernel DFT "
             "(METHOD §5)")
  default_images = 1000

  def define_flags(self, fv):
    define_pdm_flags(fv)

  def run(self, values, context):
    return pdm_for_workdir(context.workdir, base.num_images(values, self), context.step,
                           **options(values))
