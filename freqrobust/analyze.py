"""Command line: `python -m freqrobust.analyze TOOL --workdir=DIR [options]`.

Tools (docs/ANALYSIS.md explains each figure):
  pdm        point detection maps, per-channel response maps, response histogram, kernel
             DFT (METHOD §5)
  heatmap    Fourier heat map: error and logit change per basis perturbation (Yin et al.)
  bandpass   accuracy under centred low-pass / high-pass filtering over bandwidth (Yin et al.)
  spectra    E|DFT(C(X) - X)| per corruption; with --workdirs, high-frequency fraction against
             each model's accuracy change relative to --baseline
  occlusion  drop of the true-class probability when a radial band is removed (Wang et al.)
  compare    PDM histograms of --workdirs side by side, in the order given

Outputs go to DIR/analysis/TOOL/: PNG figures, TOOL.npz (arrays, FFT layout) and TOOL.json.
For `spectra` and `compare` with --workdirs, DIR (where outputs go) defaults to the first of
them; `spectra` takes its test images from the first of --workdirs.
"""
from collections.abc import Callable, Mapping, Sequence
import json
import os
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from freqrobust import analysis, data, models, trained  # noqa: E402
from freqrobust import workdir as workdir_lib  # noqa: E402
from freqrobust.analysis import plots, records  # noqa: E402

TOOLS = ("pdm", "heatmap", "bandpass", "spectra", "occlusion", "compare")
DEFAULT_NUM_IMAGES = {"pdm": 1000, "heatmap": 100, "bandpass": 1000, "spectra": 200,
                      "occlusion": 1000}
CLASS_NAMES = {
    "fashion_mnist": ("T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                "truck"),
}


# --- tool runners: arrays and callables in, files out (tested without checkpoints) ------------


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
  settings = [_pdm_settings(d) for d in workdirs]
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


def _pdm_settings(workdir: str) -> dict[str, Any] | None:
  """t, ignore_fraction and min_peak_fraction of a run's saved PDM (None when not recorded)."""
  path = os.path.join(workdir_lib.path(workdir, workdir_lib.ANALYSIS, "pdm"), "pdm.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    saved = json.load(f)
  return {k: saved.get(k) for k in ("t", "ignore_fraction", "min_peak_fraction")}


# --- checkpoint glue ----------------------------------------------------------------------------


def load_test_images(config, num_images: int) -> tuple[np.ndarray, np.ndarray]:
  """The first `num_images` test images of a run's dataset (`config.data`), float32 in [0, 1]."""
  if num_images <= 0:
    raise ValueError(f"--num_images must be positive, got {num_images}")
  images, labels = data.load_split(config.data, "test")
  return images[:num_images].astype(np.float32) / 255.0, labels[:num_images]


def pdm_inputs(trained, images: np.ndarray):
  """`(layer_fn, kernel, mean open ratio or None)` of a trained run."""
  layer_fn = jax.jit(lambda x: models.first_layer(trained.model, trained.variables, x))
  kernel = np.asarray(models.first_layer_kernel(trained.variables))
  ratios = trained.open_ratios(images)
  open_ratio = None if ratios is None else np.asarray(ratios).mean(axis=0)
  return layer_fn, kernel, open_ratio


def pdm_for_workdir(workdir: str, num_images: int, **kwargs) -> dict[str, Any]:
  run = trained.load_trained(workdir)
  images, _ = load_test_images(run.config, num_images)
  layer_fn, kernel, open_ratio = pdm_inputs(run, images)
  return run_pdm(workdir_lib.tool_dir(workdir, "pdm"), layer_fn, images.shape[1:], kernel,
                 open_ratio, **kwargs)


def saved_histogram(workdir: str, compute: Callable[[str], Any] | None = None) -> np.ndarray:
  """`DIR/analysis/pdm/pdm.npz`'s histogram, computed first with `compute(workdir)` if missing."""
  path = os.path.join(workdir_lib.path(workdir, workdir_lib.ANALYSIS, "pdm"), "pdm.npz")
  if not os.path.exists(path):
    if compute is None:
      raise FileNotFoundError(f"{path} not found: run `python -m freqrobust.analyze pdm "
                              f"--workdir={workdir}` first")
    compute(workdir)
  return records.load_arrays(path)["histogram"]


def define_flags(flag_values: flags.FlagValues | None = None) -> None:
  """Defines the CLI flags (on absl's global FLAGS unless `flag_values` is given)."""
  fv = flags.FLAGS if flag_values is None else flag_values
  string, integer, real, boolean, names = (flags.DEFINE_string, flags.DEFINE_integer,
                                           flags.DEFINE_float, flags.DEFINE_bool,
                                           flags.DEFINE_list)
  default_images = ", ".join(f"{k} {v}" for k, v in DEFAULT_NUM_IMAGES.items())
  string("workdir", None, "Trained run to analyse; outputs go to DIR/analysis/TOOL/.",
         flag_values=fv)
  names("workdirs", [], "spectra/compare: several runs, in the order to show them.",
        flag_values=fv)
  names("labels", [], "compare/spectra: one display label per --workdirs entry.", flag_values=fv)
  string("baseline", None, "spectra: the workdir (of --workdirs) accuracy changes are measured "
         "against; default the first.", flag_values=fv)
  integer("num_images", 0, f"Test images used (0 = tool default: {default_images}).",
          flag_values=fv)
  integer("batch_size", 0, "Images per device call (0 = the run's eval.batch_size, which its "
          "predict function is compiled for; 256 for pdm and spectra).", flag_values=fv)
  integer("seed", 0, "Seed of random signs (heatmap) and corruptions (spectra).", flag_values=fv)
  boolean("progress", True, "Show tqdm progress bars.", flag_values=fv)
  real("pdm_strength", analysis.PAPER_STRENGTH, "pdm: L2 norm t of the point perturbation "
       "(paper 4*sqrt(2)).", flag_values=fv)
  real("ignore_fraction", 0.01, "pdm: fraction of extreme values ignored when a response map is "
       "normalised to [0, 1].", flag_values=fv)
  real("min_peak_fraction", 0.0, "pdm: only channels whose largest response off DC is at least "
       "this fraction of the strongest channel's vote (0 = all, METHOD §5).", flag_values=fv)
  real("eps", 4.0, "heatmap: L2 norm v of the Fourier basis perturbation.", flag_values=fv)
  boolean("clip", True, "heatmap: clip perturbed images to [0, 1].", flag_values=fv)
  names("bandwidths", [], "bandpass: bandwidths B (default 1, 3, ..., max(H, W) + 1).",
        flag_values=fv)
  names("corruptions", [], "spectra: corruption names (default the 15 benchmark ones).",
        flag_values=fv)
  integer("severity", 3, "spectra: corruption severity 1..5.", flag_values=fv)
  real("radius", 0.0, "spectra: radius above which energy counts as high frequency "
       "(0 = min(H, W) / 4).", flag_values=fv)
  integer("num_bands", 8, "occlusion: number of equal-width radial bands.", flag_values=fv)


def main(argv, flag_values: flags.FlagValues | None = None):
  if len(argv) != 2 or argv[1] not in TOOLS:
    raise app.UsageError(f"usage: python -m freqrobust.analyze TOOL --workdir=DIR; TOOL is one "
                         f"of {', '.join(TOOLS)}")
  values = flags.FLAGS if flag_values is None else flag_values
  tool = argv[1]
  workdirs = list(values.workdirs)
  workdir = values.workdir or (workdirs[0] if workdirs else None)
  if workdir is None:
    raise app.UsageError("pass --workdir=DIR (or --workdirs=A,B,... for spectra and compare)")
  n = values.num_images or DEFAULT_NUM_IMAGES.get(tool, 0)
  common = dict(batch_size=values.batch_size or 256, progress=values.progress)
  key = jax.random.key(values.seed)
  pdm_options = dict(t=values.pdm_strength, ignore_fraction=values.ignore_fraction,
                     min_peak_fraction=values.min_peak_fraction, **common)
  if tool == "compare":
    if not workdirs:
      raise app.UsageError("compare needs --workdirs=A,B,... (shown in that order)")
    summary = run_compare(workdir_lib.tool_dir(workdir, "compare"), workdirs,
                          lambda d: saved_histogram(
                              d, lambda dd: pdm_for_workdir(dd, n or 1000, **pdm_options)),
                          values.labels or None)
  elif tool == "pdm":
    summary = pdm_for_workdir(workdir, n, **pdm_options)
  elif tool == "spectra":  # Needs a run's data only (the first of --workdirs), not its model.
    images, _ = load_test_images(workdir_lib.read_config(workdirs[0] if workdirs else workdir), n)
    summary = _spectra_main(workdir_lib.tool_dir(workdir, tool), key, images, workdirs, common,
                            values)
  else:
    run = trained.load_trained(workdir)
    images, labels = load_test_images(run.config, n)
    out_dir = workdir_lib.tool_dir(workdir, tool)
    common["batch_size"] = values.batch_size or run.config.eval.batch_size
    if tool == "heatmap":
      summary = run_heatmap(out_dir, run.predict, images, labels, values.eps, key, values.clip,
                            **common)
    elif tool == "bandpass":
      summary = run_bandpass(out_dir, run.predict, images, labels,
                             [int(b) for b in values.bandwidths], **common)
    elif tool == "occlusion":
      summary = run_occlusion(out_dir, run.predict, images, labels, values.num_bands,
                              CLASS_NAMES.get(run.config.data.dataset), **common)
    else:
      raise AssertionError(tool)
  print(f"{tool}: wrote {', '.join(summary['figures'])} and {tool}.npz / {tool}.json to "
        f"{workdir_lib.path(workdir, workdir_lib.ANALYSIS, tool)}")


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
    results = analysis.read_corruption_results(d)
    if results is None:
      print(f"spectra: {d} has no corruption results (corruption_eval/results.json or the "
            "\"corruptions\" entry of results.json); left out of the scatter")
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


if __name__ == "__main__":
  from freqrobust import cli
  define_flags()
  cli.run(main)
