"""Adversarial Fourier bases (docs/METHOD.md §12): for each of the first `num_examples` test
images, the one real Fourier basis and sign at L2 norm eps that hurts it most, found by trying
every one (`attacks.fourier_bases.worst_fourier_basis`), at each norm of `eps`.

Per norm e it records `acc_eps<e>`, the accuracy when every image gets its own worst basis (with
its 95% interval), and `fixed_eps<e>`, the accuracy under the single basis and sign that is worst
over the whole set (Yin et al.'s Fourier heat map signed: its minimum). For the images some basis
misclassifies, it also records where their worst bases lie: `low_eps<e>`, `mid_eps<e>` and
`high_eps<e>` are the shares of those images whose worst basis falls in the low, mid and high
third of the FFT radius (the same thirds as `adversarial_bands`' FFT bands); NaN when no image
is misclassified.

`eps` is the L2 norm of the whole perturbation, over all channels. Yin et al. use 4 per channel on
CIFAR-10, which is 4 * sqrt(3) = 6.93 here. The default (1, 2, 4) gives a single basis a peak of
eps * sqrt(2 / (H W C)): 0.05, 0.10 and 0.20 on a 28x28 image, 0.026, 0.051 and 0.10 per
channel on 32x32x3.
The search makes 2F forward passes per image (F: one basis per mirror pair, 394 for 28x28 and
514 for 32x32). The figure shows, per norm, how often each (i, j) is the worst basis, with the
DC term at the centre and one colour scale for every panel.
"""
from __future__ import annotations

import math
from typing import Dict

import numpy as np

from freqrobust import frequency
from freqrobust import metrics as metrics_lib
from freqrobust import workdir as workdir_lib
from freqrobust.evaluators import adversarial_bands, base

THIRDS = ("low", "mid", "high")


def _eps_name(e: float) -> str:
  return f"{e:g}".replace(".", "p")


class AdversarialFourier(base.Evaluator):
  type = "adversarial_fourier"
  defaults = {"eps": (1.0, 2.0, 4.0), "num_examples": 500, "bases_per_step": 16,
              "images_per_call": 128}

  def metric_columns(self):
    cols = []
    for e in self.settings["eps"]:
      k = _eps_name(e)
      cols += [base.Column(f"acc_eps{k}", f"worst basis L2 {e:g} (%)",
                           f"accuracy when each image gets its worst Fourier basis, L2 {e:g}",
                           interval=True),
               base.Column(f"fixed_eps{k}", f"worst fixed basis L2 {e:g} (%)",
                           f"accuracy under the one basis and sign worst over the set, L2 {e:g}")]
    if not self.settings["eps"]:  # `check` refuses it.
      return tuple(cols)
    e = max(self.settings["eps"])  # Where the worst bases lie: the largest norm's (all in json).
    cols += [base.Column(f"{t}_eps{_eps_name(e)}", f"worst basis in {t} third, L2 {e:g} (%)",
                         f"of the images misclassified at L2 {e:g}, the share whose worst basis "
                         f"is in the {t} third of the FFT radius") for t in THIRDS]
    return tuple(cols)

  def check(self, config) -> None:
    s, field = self.settings, f"config.evals.{self.name}"
    eps = s["eps"]
    if (not isinstance(eps, (list, tuple)) or not eps
        or any(isinstance(e, bool) or not isinstance(e, (int, float)) or not e > 0
               or not math.isfinite(e) for e in eps)):
      raise workdir_lib.UserError(f"{field}.eps={eps!r} is invalid: positive L2 norms of the "
                                  "whole perturbation, e.g. 1,2,4.")
    if len({_eps_name(e) for e in eps}) != len(eps):
      raise workdir_lib.UserError(f"{field}.eps={eps!r} names a norm twice (as {{:g}} writes "
                                  "them): give each norm once.")
    for name, low in (("num_examples", 0), ("bases_per_step", 1), ("images_per_call", 1)):
      v = s[name]
      if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise workdir_lib.UserError(f"{field}.{name}={v!r} is invalid: an integer >= {low}"
                                    + (" (0 = every test example)." if low == 0 else "."))

  def run(self, context: base.Context) -> Dict[str, float]:
    from freqrobust.attacks import fourier_bases
    s = self.settings
    images, labels = context.first_examples(s["num_examples"])
    n, h, w = len(images), images.shape[1], images.shape[2]
    third = _thirds(h, w)
    out, maps = {"examples": int(n)}, []
    for e in s["eps"]:
      k = _eps_name(e)
      r = fourier_bases.worst_fourier_basis(
          context.model.apply, images, labels, eps=float(e), bases_per_step=s["bases_per_step"],
          images_per_call=min(s["images_per_call"], n), variables=context.model.variables)
      correct = np.asarray(r["correct"], bool)
      out[f"acc_eps{k}"] = 100.0 * float(np.mean(correct))
      lo, hi = metrics_lib.binomial_interval(int(correct.sum()), n)
      out[f"acc_eps{k}_lo"], out[f"acc_eps{k}_hi"] = 100.0 * lo, 100.0 * hi
      out[f"fixed_eps{k}"] = 100.0 * float(np.min(r["basis_accuracy"]))
      where = third[r["worst_i"][~correct], r["worst_j"][~correct]]
      for t, name in enumerate(THIRDS):
        out[f"{name}_eps{k}"] = (100.0 * float(np.mean(where == t)) if where.size
                                 else float("nan"))
      maps.append(np.asarray(r["heatmap"]))
      print(f"{self.name}: L2 {e:g}: {out[f'acc_eps{k}']:.1f}% correct under each image's "
            f"worst basis, {out[f'fixed_eps{k}']:.1f}% under the worst fixed one", flush=True)
    if context.write_files:
      folder = self.out_dir(context)
      workdir_lib.make_dir(folder)
      workdir_lib.write_json(workdir_lib.path(folder, "adversarial_fourier.json"), {
          "settings": self.key(context.config), "metrics": out,
          "heatmaps": {_eps_name(e): m.tolist() for e, m in zip(s["eps"], maps)}})
      plot_worst_bases(workdir_lib.path(folder, "adversarial_fourier.png"), maps, s["eps"], out,
                       f"{n} test images of {context.config.data.dataset}")
    return out


def _thirds(h: int, w: int) -> np.ndarray:
  """(h, w) in FFT layout: 0, 1, 2 for the low, mid and high third of the radius (the FFT
  bands of `adversarial_bands` with three slices)."""
  radius = np.asarray(frequency.radial_distance(h, w))
  out = np.zeros((h, w), np.int64)
  for t, (_, lo, hi) in enumerate(adversarial_bands.band_edges("fft", h, w, 3)):
    out[(radius >= lo) & (radius < hi)] = t
  return out


def plot_worst_bases(path: str, maps, eps, out, title: str) -> str:
  """One panel per norm: the share of images whose worst basis is each (i, j), DC centred, one
  colour scale (0 to the largest share of any panel)."""
  from freqrobust.analysis import plots
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  top = max(float(np.max(m)) for m in maps) or 1.0
  fig, axes = plt.subplots(1, len(maps), figsize=(2.7 * len(maps) + 0.6, 2.8), squeeze=False)
  for ax, m, e in zip(axes[0], maps, eps):
    plots.show_spectrum(ax, m, f"L2 {e:g}: {out[f'acc_eps{_eps_name(e)}']:.1f}% correct",
                        cmap="magma", colorbar=False, vmin=0.0, vmax=top)
  im = axes[0][0].images[0]
  bar = fig.colorbar(im, ax=list(axes[0]), fraction=0.03, pad=0.02)
  bar.set_label("share of images whose worst basis it is\n(both cells of a mirror pair)",
                fontsize=7)
  bar.ax.tick_params(labelsize=6)
  fig.suptitle(f"Worst Fourier basis per image, {title}", fontsize=9)
  return plots.save_figure(fig, path)
