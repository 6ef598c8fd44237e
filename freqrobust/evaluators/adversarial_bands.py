"""In which frequency band is the model adversarially vulnerable: accuracy under band-limited
APGD (`attacks.apgd(..., band=...)`, docs/METHOD.md §12) at the main radius, per band of the
orthonormal DCT's diagonals u + v and of the DFT's radius, beside the unrestricted APGD at the
same settings, on the first `num_examples` test images.

The bands split each axis into `num_bands` equal slices: DCT diagonals [0, H + W - 1), FFT
radius [0, r_max] (the last slice open above). With 3 slices they are named low, mid, high.
Per example an attack counts as breaking it when APGD with any loss of `apgd_losses` does (the
worst case, as the adversarial evaluation reports). A band whose accuracy is more than a point
below the unrestricted attack's flags that attack as failing (`masking_flags`, the bands named
in adversarial_bands.json): every band's ball lies inside the full ball. `clip_out_of_band` is
the mean share of each band-limited perturbation's energy that the [0, 1] clip put outside its
band (per kind, in %).
"""
from __future__ import annotations

import functools
import math
from typing import Dict

import jax
import jax.numpy as jnp
import numpy as np

from freqrobust import frequency
from freqrobust import workdir as workdir_lib
from freqrobust.evaluators import adversarial, base

KINDS = ("dct", "fft")


def band_edges(kind: str, h: int, w: int, num_bands: int) -> list[tuple]:
  """The `num_bands` bands of one kind for an h x w image, low to high."""
  top = float(h + w - 1) if kind == "dct" else float(frequency.radial_distance(h, w).max())
  edges = [top * k / num_bands for k in range(num_bands + 1)]
  if kind == "dct":
    edges = [float(math.ceil(e)) for e in edges]
  edges[-1] = float(h + w - 1) if kind == "dct" else math.inf
  return [(kind, edges[k], edges[k + 1]) for k in range(num_bands)]


def band_names(num_bands: int) -> list[str]:
  return ["low", "mid", "high"] if num_bands == 3 else [f"band{k}" for k in range(num_bands)]


class AdversarialBands(base.Evaluator):
  type = "adversarial_bands"
  defaults = {"norm": "linf", "main_eps": 0.0, "kinds": KINDS, "num_bands": 3,
              "num_examples": 1000, "apgd_steps": 50, "apgd_losses": ("ce", "dlr"), "seed": 0,
              "batch_size": 250}

  def metric_columns(self):
    cols = [base.Column("full", f"APGD {self.settings['norm']} full band (%)",
                        "accuracy under unrestricted APGD at the main radius")]
    for kind in self.settings["kinds"]:
      for name in band_names(self.settings["num_bands"]):
        cols.append(base.Column(f"{kind}_{name}", f"{kind.upper()} {name} band (%)",
                                f"accuracy under APGD restricted to the {name} {kind} band"))
    cols.append(base.Column("masking_flags", "bands beating the full attack",
                            "bands whose attack beat the unrestricted one (0 = none)",
                            higher_is_better=False))
    return tuple(cols)

  def _main(self, config) -> float:
    if self.settings["main_eps"]:
      return float(self.settings["main_eps"])
    return adversarial.default_radii(config.data.dataset, self.settings["norm"])[0]

  def key(self, config):
    return dict(self.settings, main_eps=self._main(config))

  def check(self, config) -> None:
    s, where = self.settings, f"config.evals.{self.name}"
    if s["norm"] not in ("linf", "l2"):
      raise workdir_lib.UserError(f"{where}.norm={s['norm']!r} is invalid: 'linf' or 'l2'.")
    if isinstance(s["kinds"], str) or not s["kinds"] or any(k not in KINDS for k in s["kinds"]):
      raise workdir_lib.UserError(f"{where}.kinds={s['kinds']!r} is invalid: a non-empty list "
                                  "of 'dct' and 'fft'.")
    if (isinstance(s["apgd_losses"], str) or not s["apgd_losses"]
        or any(l not in adversarial.APGD_LOSSES for l in s["apgd_losses"])):
      raise workdir_lib.UserError(f"{where}.apgd_losses={s['apgd_losses']!r} is invalid: a "
                                  f"non-empty list from {list(adversarial.APGD_LOSSES)}.")
    for field, low in (("num_bands", 1), ("num_examples", 0), ("apgd_steps", 1),
                       ("batch_size", 1)):
      v = s[field]
      if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise workdir_lib.UserError(f"{where}.{field}={v!r} is invalid: an integer >= {low}.")
    main_eps = s["main_eps"]
    if isinstance(main_eps, bool) or not isinstance(main_eps, (int, float)) \
        or not main_eps >= 0:
      raise workdir_lib.UserError(f"{where}.main_eps={s['main_eps']!r} is invalid: a radius "
                                  ">= 0 (0 = the dataset's main radius).")

  def _correct(self, apply, variables, key, images, labels, eps, band):
    """(N,) bool: correct under APGD with every loss (worst case), batched; and (N,) the share
    of the first loss's perturbation energy outside the band (None without a band)."""
    from freqrobust.attacks import bands, fgsm_pgd
    s, out, leak = self.settings, [], []
    h, w = images.shape[1:3]
    band = bands.check_band(band, h, w)
    unroll = fgsm_pgd.unroll_steps(s["apgd_steps"])
    for start in range(0, len(images), s["batch_size"]):
      x, y = images[start:start + s["batch_size"]], labels[start:start + s["batch_size"]]
      ok = np.ones(len(x), bool)
      for i, loss in enumerate(s["apgd_losses"]):
        adv, correct = _apgd(variables, jax.random.fold_in(key, i), jnp.asarray(x),
                             jnp.asarray(y), jnp.float32(eps), apply=apply, norm=s["norm"],
                             steps=s["apgd_steps"], loss=loss, band=band, unroll=unroll)
        ok &= np.asarray(correct)
        if band is not None and i == 0:
          leak.append(np.asarray(_fraction(adv, x, band)))
      out.append(ok)
    return np.concatenate(out), (np.concatenate(leak) if leak else None)

  def run(self, context: base.Context) -> Dict[str, float]:
    s = self.settings
    images, labels = context.first_examples(s["num_examples"])
    n = len(images)
    eps, model = self._main(context.config), context.model
    key = jax.random.key(s["seed"])
    h, w = images.shape[1:3]
    say = _Progress(self.name, 1 + len(s["kinds"]) * s["num_bands"], n)
    full, _ = self._correct(model.apply, model.variables, key, images, labels, eps, None)
    out = {"full": 100.0 * float(np.mean(full)), "examples": int(n)}
    say("full band", out["full"])
    for kind in s["kinds"]:
      leaks = []
      for name, band in zip(band_names(s["num_bands"]), band_edges(kind, h, w, s["num_bands"])):
        correct, leak = self._correct(model.apply, model.variables, key, images, labels, eps,
                                      band)
        out[f"{kind}_{name}"] = 100.0 * float(np.mean(correct))
        say(f"{kind.upper()} {name}", out[f"{kind}_{name}"])
        leaks.append(leak)
      out[f"{kind}_clip_out_of_band"] = 100.0 * float(np.mean(np.concatenate(leaks)))
    from freqrobust.attacks import bands
    per_band = {k: v for k, v in out.items()
                if k.split("_")[0] in KINDS and not k.endswith("out_of_band")}
    flagged = bands.masking_check(per_band, out["full"], tolerance=1.0)
    out["masking_flags"] = len(flagged)
    if flagged:
      print(f"WARNING: {self.name}: band-limited APGD beat the unrestricted APGD in "
            f"{', '.join(flagged)}: the full attack is failing (masking or too few steps).",
            flush=True)
    if context.write_files:
      folder = self.out_dir(context)
      workdir_lib.make_dir(folder)
      workdir_lib.write_json(workdir_lib.path(folder, "adversarial_bands.json"), {
          "settings": self.key(context.config), "metrics": out, "masking_flagged": flagged,
          "bands": {k: [[b[1], b[2] if math.isfinite(b[2]) else "inf"]
                        for b in band_edges(k, h, w, s["num_bands"])] for k in s["kinds"]}})
      plot_bands(workdir_lib.path(folder, "adversarial_bands.png"), out, s["kinds"],
                 band_names(s["num_bands"]), context.metrics,
                 f"{s['norm']} eps {eps:g}, {n} test images")
    return out


class _Progress:
  """One console line per band: its accuracy, the time so far and the ETA of the rest."""

  def __init__(self, name: str, total: int, n: int):
    import time
    self.name, self.total, self.n, self.done, self.clock = name, total, n, 0, time.perf_counter
    self.start = self.clock()

  def __call__(self, label: str, accuracy: float) -> None:
    from freqrobust import progress
    self.done += 1
    spent = self.clock() - self.start
    eta = spent / self.done * (self.total - self.done)
    progress.say(f"{self.name}: {label}: {accuracy:.4g}% correct on {self.n} images ({self.done}/"
                 f"{self.total}, {progress.duration(spent)} so far, ETA "
                 f"{progress.duration(eta)})")


def plot_bands(path: str, out: Dict[str, float], kinds, names, others, title: str) -> str:
  """Accuracy per band (bars, one group per kind) beside the unrestricted APGD and, when this
  call's other evaluations gave them, the adversarial worst case and the UA mean (lines); the
  y axis is always 0-100, so the figures of different runs compare."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(4.6, 3.0))
  width = 0.8 / len(kinds)
  for k, kind in enumerate(kinds):
    ax.bar(np.arange(len(names)) + (k - (len(kinds) - 1) / 2) * width,
           [out[f"{kind}_{name}"] for name in names], width, label=f"{kind.upper()} band")
  ax.axhline(out["full"], color="black", ls="--", label="full band")
  styles = {"/worst_main": ("red", "adversarial worst case"), "/ua_mean": ("green", "UA mean")}
  for suffix, (color, label) in styles.items():
    for key, value in sorted(others.items()):
      if key.endswith(suffix):
        ax.axhline(value, color=color, ls=":", label=f"{label} ({key.split('/')[0]})")
  ax.set_xticks(np.arange(len(names)), names)
  ax.set_ylim(0, 100)
  ax.set_ylabel("accuracy (%)")
  ax.set_title(f"band-limited APGD, {title}", fontsize=8)
  ax.legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(path, dpi=110, bbox_inches="tight")
  plt.close(fig)
  return path


@functools.partial(jax.jit, static_argnames=("apply", "norm", "steps", "loss", "band", "unroll"))
def _apgd(variables, key, images, labels, eps, *, apply, norm, steps, loss, band, unroll):
  """Band-limited APGD on one batch and whether each example stays correct; the variables are
  traced (as `attacks.runner`): a new state of the same run reuses the compilation and no
  program holds a copy of the weights."""
  from freqrobust.attacks import autopgd
  adv = autopgd.apgd_core(lambda z: apply(variables, z), key, images, labels, eps, norm=norm,
                          steps=steps, loss=loss, unroll=unroll, band=band)
  return adv, jnp.argmax(apply(variables, adv), axis=-1) == labels


def _fraction(adv, images, band):
  from freqrobust.attacks import bands
  return bands.out_of_band_energy(adv, images, band)["fraction"]
