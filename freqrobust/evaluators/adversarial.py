"""Adversarial robustness of the reported function: accuracy under PGD over a list of radii and
under APGD at the main radius with each loss of `apgd_losses` (CE and DLR by default, Croce &
Hein's pair: DLR is invariant to the logits' scale and shift, so a model whose CE gradients are
flattened, by label smoothing for one, does not escape it), on the first `num_examples` test
images (`freqrobust.attacks`), with the gradient-masking sanity checks recorded beside the numbers
(`attacks.evaluation`: monotone in eps, ~0 under an unbounded attack, PGD <= FGSM <= clean,
restarts change < 1 point, same-norm noise no stronger than the attack, no zero gradients, every
image in the ball). A run failing a check is flagged: its `failed_checks` metric is non-zero and
the check is named in DIR/evals/<name>/adversarial.json and on the console.

Robust accuracy in the literature's convention is that of the strongest attack per example
(AutoAttack's ensemble): `worst_main` counts the examples that every attack at the main radius
left correct (PGD, APGD-CE, APGD-DLR); `apgd_main` the same over the APGD losses; the single
attacks are kept beside (`pgd_main`, `apgd_ce_main`, `apgd_dlr_main`). When the worst case is
more than a point below PGD, the console says PGD alone would overstate robustness.

The unbounded check ("large_eps") runs PGD at `large_eps` (0 = the whole image cube: L-inf 1,
L2 the cube's diameter sqrt(H*W*C)), where every model must fall to <= 5%.

The attacked function is exactly the reported one: the evaluation weights (EMA when the run keeps
one), BatchNorm in inference mode, the test-time flip when the run uses it (its gradient flows
through both views). Default radii per dataset: Fashion-MNIST L-inf 0.1 (curve 0.02-0.2, the
provable-robustness literature's threat model), CIFAR-10 L-inf 8/255 (curve 1-16/255, Madry et
al.); L2: Fashion-MNIST 0.3 (curve 0.1-2.0), CIFAR-10 0.5 (curve 0.125-2.0).
"""
from __future__ import annotations

import functools
import os
from typing import Dict

import jax
import numpy as np

from freqrobust import workdir as workdir_lib
from freqrobust.evaluators import base

# dataset -> norm -> (main eps, curve)
DEFAULT_EPS = {
    "fashion_mnist": {"linf": (0.1, (0.02, 0.05, 0.1, 0.15, 0.2)),
                      "l2": (0.3, (0.1, 0.3, 0.5, 1.0, 2.0))},
    "cifar10": {"linf": (8 / 255, (1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255)),
                "l2": (0.5, (0.125, 0.25, 0.5, 1.0, 2.0))},
}
APGD_LOSSES = ("ce", "dlr")


def unbounded_eps(norm: str, image_shape) -> float:
  """The radius that reaches every image of [0, 1]^d from any other: L-inf 1, L2 sqrt(d)."""
  return 1.0 if norm == "linf" else float(np.sqrt(np.prod(image_shape)))


def _eps_key(eps: float) -> str:
  return f"{eps:.4g}"


class Adversarial(base.Evaluator):
  type = "adversarial"
  defaults = {"norm": "linf", "eps": (), "main_eps": 0.0, "num_examples": 1000,
              "pgd_steps": 20, "apgd_steps": 50, "restarts": 1, "attacks": ("pgd", "apgd"),
              "apgd_losses": APGD_LOSSES, "large_eps": 0.0, "seed": 0, "batch_size": 250}

  def _radii(self, config):
    """(main eps, sorted curve) of the settings, or the dataset's defaults."""
    dataset = config.data.dataset
    norm = self.settings["norm"]
    main, curve = DEFAULT_EPS.get(dataset, DEFAULT_EPS["cifar10"])[norm]
    if self.settings["eps"]:
      curve = tuple(float(e) for e in self.settings["eps"])
    if self.settings["main_eps"]:
      main = float(self.settings["main_eps"])
    return main, tuple(sorted(set(curve) | {main}))

  def metric_columns(self):
    norm = self.settings["norm"]
    cols = [base.Column("clean", "clean (%)", "accuracy on the attacked images, unattacked")]
    if "pgd" in self.settings["attacks"]:
      cols.append(base.Column("pgd_main", f"PGD-{self.settings['pgd_steps']} {norm} (%)",
                              "accuracy under PGD at the main radius"))
    if "apgd" in self.settings["attacks"]:
      losses = "+".join(l.upper() for l in self.settings["apgd_losses"])
      cols.append(base.Column("apgd_main", f"APGD-{losses} {norm} (%)",
                              f"accuracy under APGD ({losses}, worst case per example) at the "
                              "main radius"))
    if len(self._runs()) > 1:
      cols.append(base.Column("worst_main", f"worst case {norm} (%)",
                              "examples every attack at the main radius left correct (the "
                              "literature's robust accuracy)"))
    cols.append(base.Column("failed_checks", "masking checks failed",
                            "gradient-masking sanity checks failed (0 = all hold)",
                            higher_is_better=False))
    return tuple(cols)

  def _runs(self):
    """The attacks run, as (attack, loss): PGD with CE, APGD with each of `apgd_losses`."""
    return [(attack, loss) for attack in self.settings["attacks"]
            for loss in (("ce",) if attack == "pgd" else tuple(self.settings["apgd_losses"]))]

  def key(self, config):
    main, curve = self._radii(config)
    return dict(self.settings, eps=curve, main_eps=main)

  def check(self, config) -> None:
    s = self.settings
    where = f"config.evals.{self.name}"
    if s["norm"] not in ("linf", "l2"):
      raise workdir_lib.UserError(f"{where}.norm={s['norm']!r} is invalid: 'linf' or 'l2'.")
    bad = [a for a in s["attacks"] if a not in ("pgd", "apgd")]
    if bad or not s["attacks"]:
      raise workdir_lib.UserError(f"{where}.attacks={s['attacks']!r} is invalid: a non-empty "
                                  "list of 'pgd' and 'apgd'.")
    for field in ("num_examples", "pgd_steps", "apgd_steps", "restarts", "batch_size"):
      v = s[field]
      if isinstance(v, bool) or not isinstance(v, int) or v < (0 if field == "num_examples"
                                                               else 1):
        raise workdir_lib.UserError(f"{where}.{field}={v!r} is invalid: a positive integer"
                                    + (" (0 = every test example)." if field == "num_examples"
                                       else "."))
    losses = s["apgd_losses"]
    if (isinstance(losses, str) or not losses
        or any(l not in APGD_LOSSES for l in losses) or len(set(losses)) != len(losses)):
      raise workdir_lib.UserError(f"{where}.apgd_losses={losses!r} is invalid: a non-empty list "
                                  f"of distinct losses from {list(APGD_LOSSES)}.")
    if isinstance(s["large_eps"], bool) or not isinstance(s["large_eps"], (int, float)) \
        or not s["large_eps"] >= 0:
      raise workdir_lib.UserError(f"{where}.large_eps={s['large_eps']!r} is invalid: a radius "
                                  "> 0, or 0 for the unbounded one (L-inf 1, L2 sqrt(H*W*C)).")
    main_eps = s["main_eps"]
    if isinstance(main_eps, bool) or not isinstance(main_eps, (int, float)) or not main_eps >= 0:
      raise workdir_lib.UserError(f"{where}.main_eps={main_eps!r} is invalid: a radius >= 0 "
                                  "(0 = the dataset's threat model).")
    main, curve = self._radii(config)
    if any(not (e >= 0) for e in curve):
      raise workdir_lib.UserError(f"{where}.eps={s['eps']!r} is invalid: radii >= 0.")

  def run(self, context: base.Context) -> Dict[str, float]:
    from freqrobust import attacks
    s = self.settings
    images, labels = context.test_set()
    n = min(s["num_examples"] or len(images), len(images))
    images = np.asarray(images[:n], np.float32) / 255.0
    labels = np.asarray(labels[:n])
    main, curve = self._radii(context.config)
    model = context.model
    # One callable for every call: the attacks' jits are keyed on it.
    logits_fn = functools.partial(model.apply, model.variables)
    key = jax.random.key(s["seed"])
    large = float(s["large_eps"]) or unbounded_eps(s["norm"], images.shape[1:])
    # The first run carries the sanity checks (its own FGSM, extra restart, noise, zero
    # gradients, the unbounded radius), the first of each attack its own.
    runs = self._runs()
    results, out = {}, {}
    for i, (attack, loss) in enumerate(runs):
      steps = s["pgd_steps"] if attack == "pgd" else s["apgd_steps"]
      eps_list = curve if attack == "pgd" else (main,)
      first_of_attack = all(a != attack for a, _ in runs[:i])
      name = attack if first_of_attack else f"{attack}_{loss}"
      label = attack.upper() + ("" if attack == "pgd" else f"-{loss.upper()}")
      bar = _Progress(f"{self.name}: {label}-{steps}", context.progress)
      r = attacks.adversarial_accuracy(
          logits_fn, jax.random.fold_in(key, i), images, labels, norm=s["norm"],
          eps_list=eps_list, attack=attack, steps=steps, restarts=s["restarts"], loss=loss,
          batch_size=s["batch_size"], main_eps=main, large_eps=large if i == 0 else None,
          sanity_checks=first_of_attack, progress=bar)
      bar.close()
      results[name] = r
      if attack == "pgd":
        out["pgd_main"] = 100.0 * r["accuracy"][main]
        for e in curve:
          out[f"pgd_eps{_eps_key(e)}"] = 100.0 * r["accuracy"][e]
      else:
        out[f"apgd_{loss}_main"] = 100.0 * r["accuracy"][main]
      if first_of_attack:
        out[f"{attack}_fgsm"] = 100.0 * r["fgsm_accuracy"]
        out[f"{attack}_noise"] = 100.0 * r["noise_accuracy"]
    correct = {n: r["correct_main"] for n, r in results.items()}
    apgd_runs = [n for n in results if n.startswith("apgd")]
    if apgd_runs:
      out["apgd_main"] = 100.0 * float(np.mean(np.all([correct[n] for n in apgd_runs], 0)))
    out["worst_main"] = 100.0 * float(np.mean(np.all(list(correct.values()), 0)))
    first = results[runs[0][0]]
    out["clean"] = 100.0 * first["clean_accuracy"]
    out["zero_gradient_examples"] = int(first["zero_gradient_examples"])
    out["large_eps_accuracy"] = 100.0 * first["large_eps_accuracy"]
    failed = sorted({f"{a}:{c}" for a, r in results.items() for c in r["failed_checks"]})
    out["failed_checks"] = len(failed)
    out["examples"] = int(n)
    if failed:
      print(f"WARNING: {self.name}: gradient-masking checks failed ({', '.join(failed)}); do "
            "not read these adversarial numbers as robustness before finding out why "
            f"({self.out_dir(context)}/adversarial.json).", flush=True)
    if "pgd_main" in out and out["pgd_main"] - out["worst_main"] > 1.0:
      print(f"NOTE: {self.name}: PGD-{s['pgd_steps']} leaves {out['pgd_main']:.1f}% correct at "
            f"eps {main:g}, the worst case over every attack {out['worst_main']:.1f}%: PGD alone "
            "overstates this model's robustness; read the worst case.", flush=True)
    if context.write_files:
      self._write(context, results, out, failed, main, curve, large)
    return out

  def _write(self, context, results, out, failed, main, curve, large):
    folder = self.out_dir(context)
    workdir_lib.make_dir(folder)
    workdir_lib.write_json(workdir_lib.path(folder, "adversarial.json"), {
        "settings": self.key(context.config), "large_eps": large, "failed_checks": failed,
        "results": {a: _jsonable(r) for a, r in results.items()}, "metrics": out})
    from freqrobust.analysis import plots
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4.8, 3.3))
    if "pgd" in results:
      ax.plot(curve, [out[f"pgd_eps{_eps_key(e)}"] for e in curve], "o-",
              label=f"PGD-{self.settings['pgd_steps']}")
    for loss, marker in (("ce", "s"), ("dlr", "D")):
      if f"apgd_{loss}_main" in out:
        ax.plot([main], [out[f"apgd_{loss}_main"]], marker, label=f"APGD-{loss.upper()}")
    if "worst_main" in out:
      ax.plot([main], [out["worst_main"]], "k*", label="worst case")
    ax.plot([main], [out[f"{self.settings['attacks'][0]}_fgsm"]], "^", label="FGSM")
    ax.plot([main], [out[f"{self.settings['attacks'][0]}_noise"]], "x", label="random noise")
    ax.axhline(out["clean"], color="gray", ls="--", lw=1, label="clean")
    ax.set_xlabel(f"eps ({self.settings['norm']}, pixels in [0, 1])")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7)
    ax.set_title(f"{out['examples']} test images" + (f"; FAILED: {', '.join(failed)}"
                                                      if failed else "; sanity checks hold"),
                 fontsize=8)
    fig.tight_layout()
    plots.save_figure(fig, workdir_lib.path(folder, "adversarial.png"))


def _jsonable(result: dict) -> dict:
  return workdir_lib.to_jsonable({k: ({_eps_key(e): a for e, a in v.items()}
                                      if isinstance(v, dict) and k != "checks" else v)
                                  for k, v in result.items() if k != "correct_main"})


class _Progress:
  """A tqdm bar over the attack's batches (console only)."""

  def __init__(self, desc: str, enabled: bool):
    self.bar, self.desc, self.enabled = None, desc, enabled

  def __call__(self, done: int, total: int) -> None:
    if not self.enabled:
      return
    if self.bar is None:
      import sys
      import tqdm
      from freqrobust import progress as progress_lib
      self.bar = tqdm.tqdm(total=total, desc=self.desc, unit="batch",
                           file=progress_lib.ConsoleStream(sys.stderr))
    self.bar.update(done - self.bar.n)

  def close(self) -> None:
    if self.bar is not None:
      self.bar.close()
