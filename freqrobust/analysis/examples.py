"""Hand-made first layers with known frequency responses, and the docs' example figures.

`python -m freqrobust.analysis.examples --out=docs/figures/analysis [--workdirs=A,B]` computes
the PDM histograms of a 3x3 box blur (a low-pass) and a 3x3 Laplacian (a high-pass) first layer
and sets them beside the saved PDM histograms of the given trained runs (compare figure).
"""
from collections.abc import Callable, Sequence
import os
import shutil
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

BOX_BLUR = np.ones((3, 3)) / 9.0
LAPLACIAN = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def handmade_first_layer(kernel2d: np.ndarray, cin: int, cout: int, bias: float = 0.0
                         ) -> tuple[Callable[[jax.Array], jax.Array], np.ndarray]:
  """`relu(conv(x - 0.5, K) + bias)` with output channel k reading input channel k % cin.

  Centring the input plays the part of a trained model's input normalisation: the flat grey
  image maps to zero, so the ReLU half-wave-rectifies each cosine and the PDM response is
  proportional to the kernel's gain at that frequency. Returns `(layer_fn, kernel (3, 3, cin,
  cout))`.
  """
  kernel = np.zeros(kernel2d.shape + (cin, cout), np.float32)
  for k in range(cout):
    kernel[:, :, k % cin, k] = kernel2d
  kernel_j = jnp.asarray(kernel)

  @jax.jit
  def layer_fn(x: jax.Array) -> jax.Array:
    y = jax.lax.conv_general_dilated(x - 0.5, kernel_j, (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jax.nn.relu(y + bias)

  return layer_fn, kernel


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
