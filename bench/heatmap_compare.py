"""Fourier heat maps of two runs side by side, and their error below / above a radius.

  python bench/heatmap_compare.py --a=runs/natural --b=runs/gaussian --out=docs/figures/analysis

Reads DIR/analysis/heatmap/heatmap.npz of each run (`python -m freqrobust.analyze heatmap`),
draws error(a), error(b) and error(b) - error(a) (DC centred) and prints the mean error of each
run at radii <= R and > R (R = min(H, W) / 4, as the spectra tool). Yin et al. (2019) report that
Gaussian-noise training lowers the error at high frequencies and raises it at low ones.
"""
import json
import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from freqrobust import frequency  # noqa: E402
from freqrobust.analysis import plots, records  # noqa: E402

flags.DEFINE_string("a", None, "Workdir of the first run (e.g. natural).")
flags.DEFINE_string("b", None, "Workdir of the second run (e.g. Gaussian noise).")
flags.DEFINE_string("labels", "natural,gaussian", "Labels of --a and --b.")
flags.DEFINE_string("out", None, "Output folder.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  la, lb = FLAGS.labels.split(",")
  maps = [records.load_arrays(os.path.join(d, "analysis", "heatmap", "heatmap.npz"))["error"]
          for d in (FLAGS.a, FLAGS.b)]
  h, w = maps[0].shape
  r = frequency.radial_distance(h, w)
  radius = min(h, w) / 4
  summary = {}
  for label, m in zip((la, lb), maps):
    summary[label] = {"low_error": float(m[r <= radius].mean()),
                      "high_error": float(m[r > radius].mean()), "mean_error": float(m.mean())}
  os.makedirs(FLAGS.out, exist_ok=True)
  path = plots.plot_spectra_row(
      os.path.join(FLAGS.out, f"heatmap_{la}_vs_{lb}.png"),
      [100 * maps[0], 100 * maps[1], 100 * (maps[1] - maps[0])],
      [f"{la}: error (%)", f"{lb}: error (%)", f"{lb} - {la} (points)"],
      f"Fourier heat maps (DC centred); radius {radius:g} splits low / high", cmap="viridis")
  summary["radius"] = radius
  print(json.dumps(summary, indent=1))
  print(f"wrote {path}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["a", "b", "out"])
  app.run(main)
