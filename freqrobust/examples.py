"""Command line: the docs' example figures of hand-made first layers.

  python -m freqrobust.examples --out=docs/figures/analysis [--workdirs=A,B]

computes the PDM histograms of a 3x3 box blur (a low-pass) and a 3x3 Laplacian (a high-pass)
first layer (`freqrobust.analysis.examples`) and sets them beside the saved PDM histograms of the
given trained runs (compare figure).
"""
from collections.abc import Sequence
import os
import shutil
import tempfile

from freqrobust.analysis.examples import BOX_BLUR, LAPLACIAN, handmade_first_layer


def make_handmade_examples(out: str, size: int, channels: int, workdirs: Sequence[str] = (),
                           labels: Sequence[str] = ()) -> list[str]:
  """Writes handmade_{box,laplacian}_*.png and compare.png into `out`; returns their paths."""
  from freqrobust import analysis, tools  # pylint: disable=g-import-not-at-top
  os.makedirs(out, exist_ok=True)
  written = []
  handmade = {}
  with tempfile.TemporaryDirectory() as tmp:
    for name, kernel2d in (("box", BOX_BLUR), ("laplacian", LAPLACIAN)):
      layer_fn, kernel = handmade_first_layer(kernel2d, channels, 4 * channels)
      run_dir = os.path.join(tmp, name, "analysis", "pdm")
      os.makedirs(run_dir)
      tools.pdm.run_pdm(run_dir, layer_fn, (size, size, channels), kernel)
      for figure in ("histogram.png", "kernel_spectrum.png"):
        target = os.path.join(out, f"handmade_{name}_{figure}")
        shutil.copy(os.path.join(run_dir, figure), target)
        written.append(target)
      handmade[name] = os.path.join(tmp, name)
    dirs = [handmade["box"], handmade["laplacian"], *workdirs]
    names = ["3x3 box blur", "3x3 Laplacian", *(labels or analysis.run_labels(workdirs))]
    summary = tools.compare.run_compare(tmp, dirs, tools.compare.saved_histogram, names)
    target = os.path.join(out, "compare.png")
    shutil.copy(os.path.join(tmp, summary["figures"][0]), target)
    written.append(target)
  return written


def define_flags(flag_values=None) -> None:
  from absl import flags
  fv = flags.FLAGS if flag_values is None else flag_values
  flags.DEFINE_string("out", "docs/figures/analysis", "Folder for the PNGs.", flag_values=fv)
  flags.DEFINE_list("workdirs", [], "Trained runs whose saved PDM histograms join the "
                    "comparison.", flag_values=fv)
  flags.DEFINE_list("labels", [], "Labels of --workdirs.", flag_values=fv)
  flags.DEFINE_integer("size", 28, "Image side of the hand-made PDMs.", flag_values=fv)
  flags.DEFINE_integer("channels", 1, "Input channels.", flag_values=fv)


def main(argv, flag_values=None) -> None:
  from absl import app, flags
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  values = flags.FLAGS if flag_values is None else flag_values
  for path in make_handmade_examples(values.out, values.size, values.channels,
                                     list(values.workdirs), list(values.labels)):
    print(path)


if __name__ == "__main__":
  from freqrobust import cli
  define_flags()
  cli.run(main)
