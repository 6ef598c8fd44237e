"""Adversarial robustness of the reported function: accuracy under PGD over a list of radii and
under APGD at the main radius with each loss of `apgd_losses` (CE and DLR by default, Croce &
Hein's pair: DLR is invariant to the logits' scale and shift, so a model whose CE gradients are
flattened, by label smoothing for one, does not escape it), on the first `num_examples` test
images (`freqrobust.attacks`), with the gradient-masking sanity checks recorded beside the numbers
(`attacks.checks`: monotone in eps, ~0 under an unbounded attack, PGD <= FGSM <= clean,
restarts change < 1 point, same-norm noise no stronger than the attack, no zero gradients, every
image in the ball, and with `transfer_from` a transfer attack no stronger than the white-box
ones). A run failing a check is flagged: its `failed_checks` metric is non-zero and the check is
named in DIR/evals/<name>/adversarial.json and on the console.

Every attack's per-example results are recorded (DIR/evals/<name>/records.npz, with
records.json; `adversarial_store`) and every figure is read from them: an attack added to the
settings later runs alone, those already recorded for the same model, step, test images and
settings are reused. Robust accuracy in the literature's convention is that of the strongest
attack per example: `worst_main` counts the examples that EVERY attack run at the main radius
left correct (PGD, APGD-CE, APGD-DLR, their extra restarts, FGSM, the noise draw, the transfer
images); `apgd_main` the same over the APGD records; the single attacks are kept beside
(`pgd_main`, `apgd_ce_main`, `apgd_dlr_main`, `fgsm_main`, `noise_main`, `transfer_main`,
`pgd_eps<e>` along the curve; under version "standard" `apgd_eps<e>`, APGD-CE + APGD-T, and
beyond the main radius `robust_eps<e>`, every attack there, Square included (`square_beyond`)).
Each accuracy `X` has its 95% Wilson interval over the test images beside it (`X_lo`, `X_hi`,
percent: `metrics.binomial_interval`). When the worst case is more than a point below PGD, the
console says PGD alone would overstate robustness. Each attack prints
its accuracy, its time and its cost per 1000 images; its progress bar shows the ETA.

The transfer check (`transfer_from=<workdir>`): that run's worst-case PGD/APGD images at the
main radius (its adversarial_images.npz, made on its own model; same test images, norm and
radius) are scored on this model; "transfer_weaker" fails when they beat the white-box attacks.

The surrogate check (`surrogate="frozen_gate"`, standard version, models with the APS attention
gate): at the main radius and above it, APGD-CE and APGD-T crafted through the model with the
gate's output treated as a constant of the input (BPDA, Athalye et al. 2018: the forward pass is
the model's own, only the gradient changes), run after every other attack there and scored on
the model itself; they count in the worst case, and "surrogate_weaker" fails when they lower the
accuracy by more than 0.2 points: the gate's gradient misleads the model's own attacks.

The unbounded check ("large_eps") runs PGD at `large_eps` (0 = the whole image cube: L-inf 1,
L2 the cube's diameter sqrt(H*W*C)), where every model must fall to <= 5%.

The attacked function is exactly the reported one: the evaluation weights (EMA when the run keeps
one), BatchNorm in inference mode, the test-time flip when the run uses it (its gradient flows
through both views); the weights are a traced argument of the attacks (`attacks.runner`), so
training's evaluations of successive states compile each attack once. Default radii per
dataset: Fashion-MNIST L-inf 0.1 (curve 0.02-0.2, the provable-robustness literature's threat
model), CIFAR-10 L-inf 8/255 (curve 1-16/255, Madry et al.); L2: Fashion-MNIST 0.3 (curve
0.1-2.0), CIFAR-10 0.5 (curve 0.125-2.0).
"""
from __future__ import annotations

import json
from typing import Dict, Optional, Tuple

from absl import logging as absl_logging

import jax
import numpy as np

from freqrobust import metrics as metrics_lib
from freqrobust import progress as progress_lib
from freqrobust import workdir as workdir_lib
from freqrobust.attacks.records import WHITE_BOX
from freqrobust.evaluators import adversarial_store as store, base

# dataset -> norm -> (main eps, curve)
DEFAULT_EPS = {
    "fashion_mnist": {"linf": (0.1, (0.02, 0.05, 0.1, 0.15, 0.2)),
                      "l2": (0.3, (0.1, 0.3, 0.5, 1.0, 2.0))},
    "cifar10": {"linf": (8 / 255, (1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255)),
                "l2": (0.5, (0.125, 0.25, 0.5, 1.0, 2.0))},
}
# Synthetic data (tests, smoke runs) takes CIFAR-10's radii, by declaration: every dataset of
# `data.DATASETS` has its row, so none falls back to another's threat model unnoticed.
DEFAULT_EPS["synthetic"] = DEFAULT_EPS["cifar10"]


def default_radii(dataset: str, norm: str):
  """(main eps, curve) of the dataset's threat model; a dataset without one is named."""
  if dataset not in DEFAULT_EPS:
    raise workdir_lib.UserError(
        f"config.data.dataset={dataset!r} has no default attack radius (known: "
        f"{', '.join(DEFAULT_EPS)}): set the evaluation's main_eps and eps, or add its row to "
        "freqrobust/evaluators/adversarial.py: DEFAULT_EPS.")
  return DEFAULT_EPS[dataset][norm]


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
              "apgd_losses": APGD_LOSSES, "large_eps": 0.0, "seed": 0, "batch_size": 250,
              "version": "standard", "transfer_from": "", "autoattack_steps": 100,
              "target_classes": 9, "square_queries": 5000, "square_beyond": True,
              "surrogate": ""}

  def _radii(self, config):
    """(main eps, sorted curve) of the settings, or the dataset's defaults."""
    dataset = config.data.dataset
    norm = self.settings["norm"]
    main = float(self.settings["main_eps"]) if self.settings["main_eps"] else None
    curve = tuple(float(e) for e in self.settings["eps"]) if self.settings["eps"] else None
    if main is None or curve is None:  # The dataset's threat model fills what is not given.
      default_main, default_curve = default_radii(dataset, norm)
      main, curve = (default_main if main is None else main,
                     default_curve if curve is None else curve)
    return main, tuple(sorted(set(curve) | {main}))

  def metric_columns(self):
    norm = self.settings["norm"]
    # Every accuracy here is recorded with its 95% interval (`summarize`); the ones under attack
    # at the main radius are robust accuracies.
    robust = dict(interval=True, role=base.ROBUST_ACCURACY)
    cols = [base.Column("clean", "clean (%)", "accuracy on the attacked images, unattacked",
                        interval=True)]
    if self.settings["version"] == "standard":
      cols.append(base.Column("autoattack_main", f"AutoAttack {norm} (%)",
                              "accuracy under AutoAttack's standard ensemble (APGD-CE, APGD-T, "
                              "FAB-T, Square) at the main radius: RobustBench's robust accuracy",
                              **robust))
    else:
      if "pgd" in self.settings["attacks"]:
        cols.append(base.Column("pgd_main", f"PGD-{self.settings['pgd_steps']} {norm} (%)",
                                "accuracy under PGD at the main radius", **robust))
      if "apgd" in self.settings["attacks"]:
        losses = "+".join(l.upper() for l in self.settings["apgd_losses"])
        cols.append(base.Column("apgd_main", f"APGD-{losses} {norm} (%)",
                                f"accuracy under APGD ({losses}, worst case per example) at "
                                "the main radius", **robust))
    if self.settings["version"] == "standard" or len(self._runs()) > 1:
      cols.append(base.Column("worst_main", f"worst case {norm} (%)",
                              "examples every attack at the main radius left correct (the "
                              "literature's robust accuracy)", **robust))
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
    out = dict(self.settings, eps=curve, main_eps=main)
    if not out["surrogate"]:  # Not run: the records made before the setting existed still match.
      del out["surrogate"]
    return out

  def check(self, config) -> None:
    s = self.settings
    where = f"config.evals.{self.name}"
    if s["norm"] not in ("linf", "l2"):
      raise workdir_lib.UserError(f"{where}.norm={s['norm']!r} is invalid: 'linf' or 'l2'.")
    bad = [a for a in s["attacks"] if a not in ("pgd", "apgd")]
    if bad or not s["attacks"]:
      raise workdir_lib.UserError(f"{where}.attacks={s['attacks']!r} is invalid: a non-empty "
                                  "list of 'pgd' and 'apgd'.")
    for field in ("num_examples", "pgd_steps", "apgd_steps", "restarts", "batch_size",
                  "autoattack_steps", "target_classes", "square_queries"):
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
    if not isinstance(s["square_beyond"], bool):
      raise workdir_lib.UserError(f"{where}.square_beyond={s['square_beyond']!r} is invalid: "
                                  "True or False.")
    self._check_surrogate(config, where)
    main_eps = s["main_eps"]
    if isinstance(main_eps, bool) or not isinstance(main_eps, (int, float)) or not main_eps >= 0:
      raise workdir_lib.UserError(f"{where}.main_eps={main_eps!r} is invalid: a radius >= 0 "
                                  "(0 = the dataset's threat model).")
    from freqrobust.attacks import evaluation
    if s["version"] not in evaluation.VERSIONS:
      raise workdir_lib.UserError(f"{where}.version={s['version']!r} is invalid: one of "
                                  f"{list(evaluation.VERSIONS)}.")
    source = s["transfer_from"]
    if not isinstance(source, str):
      raise workdir_lib.UserError(f"{where}.transfer_from={source!r} is invalid: a run's "
                                  "workdir, or '' for no transfer check.")
    if source and not workdir_lib.exists(workdir_lib.path(source, "evals", self.name,
                                                          store.IMAGES)):
      raise workdir_lib.UserError(
          f"{where}.transfer_from={source!r}: no {store.IMAGES} in its evals/{self.name}/; "
          f"evaluate that run first (python -m freqrobust.evaluate --workdir={source} "
          f"--evals={self.name}).")
    eps = s["eps"]
    if not isinstance(eps, (tuple, list)) or any(
        isinstance(e, bool) or not isinstance(e, (int, float)) for e in eps):
      raise workdir_lib.UserError(f"{where}.eps={eps!r} is invalid: a list of radii >= 0 (the "
                                  "curve; () = the dataset's).")
    main, curve = self._radii(config)
    if any(not (e >= 0) for e in curve):
      raise workdir_lib.UserError(f"{where}.eps={s['eps']!r} is invalid: radii >= 0.")
    ignored = self.fast_only_settings()
    if ignored:
      absl_logging.warning(
          f"{where}: {', '.join(ignored)} set, but only version 'fast' runs them; version "
          f"'standard' runs AutoAttack's ensemble (set {where}.version=fast for PGD and APGD).")

  def _check_surrogate(self, config, where: str) -> None:
    from freqrobust.attacks import runner
    surrogate = self.settings["surrogate"]
    if surrogate == "":
      return
    if surrogate not in runner.SURROGATES:
      raise workdir_lib.UserError(f"{where}.surrogate={surrogate!r} is invalid: '' (none) or "
                                  f"one of {list(runner.SURROGATES)}.")
    if self.settings["version"] != "standard":
      raise workdir_lib.UserError(f"{where}.surrogate={surrogate!r} runs under version "
                                  f"'standard' only (here {self.settings['version']!r}).")
    if config.model.get("attention", "none") == "none":
      raise workdir_lib.UserError(
          f"{where}.surrogate={surrogate!r}: the model has no attention gate "
          "(config.model.attention='none'), so there is nothing to freeze; set it to ''.")

  def surrogates(self, model) -> dict:
    """{surrogate: apply} for `evaluation.evaluate` (`trained.TrainedModel.surrogate_apply`)."""
    name = self.settings["surrogate"]
    return {name: model.surrogate_apply(name)} if name else {}

  FAST_ONLY = ("attacks", "apgd_losses", "pgd_steps", "restarts")

  def fast_only_settings(self) -> list:
    """The settings given away from their defaults that the version does not run (under
    "standard": those of version "fast")."""
    if self.settings["version"] != "standard":
      return []
    norm = lambda v: tuple(v) if isinstance(v, (list, tuple)) else v  # noqa: E731
    return [f"{f}={self.settings[f]!r}" for f in self.FAST_ONLY
            if norm(self.settings[f]) != norm(self.defaults[f])]

  def protocol(self, config, image_shape) -> "attacks.evaluation.Protocol":
    from freqrobust.attacks import evaluation
    s = self.settings
    main, curve = self._radii(config)
    large = float(s["large_eps"]) or unbounded_eps(s["norm"], image_shape)
    return evaluation.Protocol(
        norm=s["norm"], main=main, curve=curve, large=large, attacks=tuple(s["attacks"]),
        apgd_losses=tuple(s["apgd_losses"]), pgd_steps=s["pgd_steps"],
        apgd_steps=s["apgd_steps"], restarts=s["restarts"], version=s["version"],
        autoattack_steps=s["autoattack_steps"], target_classes=s["target_classes"],
        square_queries=s["square_queries"], square_beyond=s["square_beyond"],
        surrogate=s["surrogate"])

  def run(self, context: base.Context) -> Dict[str, float]:
    from freqrobust.attacks import evaluation
    s = self.settings
    images, labels = context.first_examples(s["num_examples"])
    n = len(images)
    protocol = self.protocol(context.config, images.shape[1:])
    todo = evaluation.plan(protocol)
    given = self._transfer(context, protocol, images, labels, todo)
    model, folder = context.model, self.out_dir(context)
    clean_digest = store.digest(images, labels)
    key = self._records_key(context, clean_digest)
    records = (store.load_records(folder, key, n) if context.write_files
               else evaluation.Records(n))
    reused = [a.label for a in todo if a.name in records]
    if reused:
      print(f"{self.name}: {len(reused)} attack(s) already recorded for this model, not rerun: "
            f"{', '.join(reused)}.", flush=True)
    keep = [a.name for a in todo if a.kind in WHITE_BOX_KINDS and a.eps == protocol.main]

    def on_record(attack, record):
      if not context.write_files:
        return
      store.save_records(folder, key, records)
      if record.images is not None:
        store.add_images(folder, model.fingerprint, attack.name, record.images,
                         ~record.values, labels, protocol.main, s["norm"], clean_digest)

    records = evaluation.evaluate(
        model.apply, model.variables, jax.random.key(s["seed"]), images, labels, todo,
        norm=s["norm"], batch_size=s["batch_size"], records=records, given=given,
        keep_images=keep if context.write_files else (), on_record=on_record,
        progress=lambda a: progress_lib.BatchBar(f"{self.name}: {a.label}", context.progress),
        say=lambda line: print(f"{self.name}: {line}", flush=True),
        surrogates=self.surrogates(model))
    records = records.keep([a.name for a in todo])
    out, checked = summarize(records, protocol, todo)
    self._say(out, checked["failed_checks"], protocol.main, context)
    if context.write_files:
      self._write(context, records, out, checked, protocol)
    return out

  def _records_key(self, context, clean_digest: str) -> dict:
    """What the stored per-example records must have been made under to be reused."""
    s = self.settings
    return {"model": context.model.fingerprint, "step": context.step, "images": clean_digest,
            "norm": s["norm"], "seed": s["seed"], "batch_size": s["batch_size"]}

  def reread(self, context: base.Context) -> Optional[Dict[str, float]]:
    """The summary and checks recomputed from the stored records (adversarial.json and its
    figure rewritten where they moved); None when an attack of the plan has no record here."""
    from freqrobust.attacks import evaluation
    folder = self.out_dir(context)
    meta = workdir_lib.path(folder, store.RECORDS_META)
    if not context.write_files or not workdir_lib.exists(meta):
      return None
    stored_key = workdir_lib.read_json(meta).get("key", {})
    if (stored_key.get("model"), stored_key.get("step")) != (context.model.fingerprint,
                                                             context.step):
      return None  # Records of another model: nothing to re-read (and no test set to load).
    images, labels = context.first_examples(self.settings["num_examples"])
    protocol = self.protocol(context.config, images.shape[1:])
    todo = evaluation.plan(protocol)
    try:
      self._transfer(context, protocol, images, labels, todo)
    except workdir_lib.UserError:  # The transfer's source is gone: its record cannot be named.
      return None
    records = store.load_records(folder, self._records_key(context, store.digest(images, labels)),
                                 len(images))
    if any(a.name not in records for a in todo):
      return None
    records = records.keep([a.name for a in todo])
    out, checked = summarize(records, protocol, todo)
    target = workdir_lib.path(folder, "adversarial.json")
    stored = workdir_lib.read_json(target) if workdir_lib.exists(target) else {}
    dump = lambda v: json.dumps(workdir_lib.to_jsonable(v), sort_keys=True)  # noqa: E731
    if (dump(out) != dump(stored.get("metrics"))
        or any(dump(checked[k]) != dump(stored.get(k))
               for k in ("failed_checks", "checks", "skipped_checks"))):
      self._write(context, records, out, checked, protocol)
    return out

  def _transfer(self, context, protocol, images, labels, todo) -> Dict[str, np.ndarray]:
    """The transfer attack's images (appended to `todo`), from `transfer_from`'s own run."""
    source = self.settings["transfer_from"]
    if not source:
      return {}
    field = f"config.evals.{self.name}.transfer_from"
    target = workdir_lib.path(source, "evals", self.name, store.IMAGES)
    if not workdir_lib.exists(target):
      raise workdir_lib.UserError(
          f"{field}={source!r}: no {target}; evaluate that run first (python -m "
          f"freqrobust.evaluate --workdir={source} --evals={self.name}).")
    src = store.load_images(target)
    if (src["images"].shape != images.shape or str(src["clean"]) != store.digest(images, labels)
        or str(src["norm"]) != protocol.norm or float(src["eps"]) != protocol.main):
      raise workdir_lib.UserError(
          f"{field}={source!r}: its adversarial images were made on other test images or at "
          f"another radius ({src['images'].shape[0]} images, {src['norm']} eps "
          f"{float(src['eps']):g}; here {len(images)}, {protocol.norm} eps {protocol.main:g}); "
          "give both runs the same data, num_examples, norm and main_eps.")
    from freqrobust.attacks import runner
    # The images' digest keys the record too: the source re-evaluated (an attack added, its
    # images folded in) gives another transfer attack, scored again.
    attack = runner.Attack("given", protocol.main,
                           source=f"{src['model']}:{store.digest(src['images'])}")
    todo.append(attack)
    return {attack.name: src["images"]}

  def _say(self, out, failed, main, context) -> None:
    s = self.settings
    if failed:
      print(f"WARNING: {self.name}: gradient-masking checks failed ({', '.join(failed)}); do "
            "not read these adversarial numbers as robustness before finding out why "
            f"({self.out_dir(context)}/adversarial.json).", flush=True)
    if "pgd_main" in out and out["pgd_main"] - out["worst_main"] > 1.0:
      print(f"NOTE: {self.name}: PGD-{s['pgd_steps']} leaves {out['pgd_main']:.1f}% correct at "
            f"eps {main:g}, the worst case over every attack {out['worst_main']:.1f}%: PGD alone "
            "overstates this model's robustness; read the worst case.", flush=True)

  def _write(self, context, records, out, checked, protocol):
    folder = self.out_dir(context)
    workdir_lib.make_dir(folder)
    workdir_lib.write_json(workdir_lib.path(folder, "adversarial.json"), {
        "settings": self.key(context.config), "large_eps": protocol.large,
        "failed_checks": checked["failed_checks"], "checks": checked["checks"],
        "skipped_checks": checked["skipped_checks"], "attacks": {
            name: dict(m, accuracy=records.chain_accuracy(name))
            for name, m in records.meta.items()},
        "metrics": out})
    _plot(workdir_lib.path(folder, "adversarial.png"), out, checked["failed_checks"], protocol,
          self.settings["pgd_steps"])


WHITE_BOX_KINDS = WHITE_BOX  # The gradient-based attacks (their images feed transfer checks).


def summarize(records, protocol, todo) -> Tuple[Dict[str, float], dict]:
  """The evaluation's metrics (percent, each accuracy with its 95% interval `_lo`/`_hi`) and
  checks, read from the per-example records of the attacks `todo`."""
  from freqrobust.attacks import checks as checks_lib
  main, r = protocol.main, records
  first = {}
  for a in todo:  # The first record of each (kind, loss) at each radius: its own column.
    first.setdefault((a.kind, a.loss, a.eps), a.name)
  acc = lambda name: 100.0 * r.accuracy(name)
  out = {"clean": acc("clean")}
  for e in protocol.curve:
    if ("pgd", protocol.pgd_loss, e) in first:
      out[f"pgd_eps{_eps_key(e)}"] = acc(first["pgd", protocol.pgd_loss, e])
  if ("pgd", protocol.pgd_loss, main) in first:
    out["pgd_main"] = acc(first["pgd", protocol.pgd_loss, main])
  for loss in protocol.apgd_losses:
    if ("apgd", loss, main) in first:
      out[f"apgd_{loss}_main"] = acc(first["apgd", loss, main])
  if r.names(kinds=("apgd",), eps=main):
    out["apgd_main"] = 100.0 * r.worst_accuracy(main, ("apgd",))
  for kind in ("fgsm", "noise", "given"):
    if (kind, "ce", main) in first:
      out[("transfer" if kind == "given" else kind) + "_main"] = acc(first[kind, "ce", main])
  if protocol.version == "standard":
    out.update(_standard_metrics(r, protocol, first))
  out["worst_main"] = 100.0 * r.worst_accuracy(main)  # Every attack run at the main radius.
  n = r.n
  for k in [k for k in out if k == "clean" or k.endswith("_main")
            or k.startswith(("pgd_eps", "apgd_eps", "robust_eps"))]:
    out[f"{k}_lo"], out[f"{k}_hi"] = metrics_lib.accuracy_interval(out[k], n)
  if "zero_gradient" in r:
    out["zero_gradient_examples"] = int(r.values["zero_gradient"].sum())
  if protocol.large is not None and r.worst_accuracy(protocol.large, WHITE_BOX_KINDS) is not None:
    out["large_eps_accuracy"] = 100.0 * r.worst_accuracy(protocol.large, WHITE_BOX_KINDS)
  checked = checks_lib.run_checks(r, checks_lib.Radii(main, protocol.curve, protocol.large))
  out["failed_checks"] = len(checked["failed_checks"])
  out["examples"] = int(n)
  return out, checked


def _standard_metrics(r, protocol, first) -> Dict[str, float]:
  """AutoAttack's robust accuracy at the main radius (the chain that ends with Square), its
  first attack alone (APGD-CE, on every example) and the white-box worst case along the curve
  (APGD-CE + APGD-T)."""
  out = {}
  if ("apgd", "ce", protocol.main) in first:
    out["apgd_ce_main"] = 100.0 * r.accuracy(first["apgd", "ce", protocol.main])
  squares = [k for k in r.names(kinds=("square",), eps=protocol.main) if r.meta[k]["after"]]
  if squares:
    chain = list(r.meta[squares[0]]["after"]) + [squares[0]]
    out["autoattack_main"] = 100.0 * float(np.mean(r.all_correct(chain)))
  for e in protocol.curve:
    acc = r.worst_accuracy(e, WHITE_BOX_KINDS, surrogate=False)
    if acc is not None:
      out[f"apgd_eps{_eps_key(e)}"] = 100.0 * acc
    if e != protocol.main and (r.names(kinds=("square",), eps=e)
                               or r.names(eps=e, surrogate=True)):
      out[f"robust_eps{_eps_key(e)}"] = 100.0 * r.worst_accuracy(e)
  return out


def _plot(target, out, failed, protocol, pgd_steps) -> None:
  from freqrobust.analysis import plots
  import matplotlib.pyplot as plt
  main = protocol.main
  fig, ax = plt.subplots(figsize=(4.8, 3.3))
  for prefix, label in (("pgd_eps", f"PGD-{pgd_steps}"), ("apgd_eps", "APGD-CE + APGD-T"),
                        ("robust_eps", "APGD-CE + APGD-T + Square"
                         + (" + BPDA" if protocol.surrogate else ""))):
    curve = [e for e in protocol.curve if f"{prefix}{_eps_key(e)}" in out]
    if curve:
      ax.plot(curve, [out[f"{prefix}{_eps_key(e)}"] for e in curve], "o-", label=label)
  for metric, marker, label in (("autoattack_main", "P", "AutoAttack"),
                                ("apgd_ce_main", "s", "APGD-CE"), ("apgd_dlr_main", "D",
                                "APGD-DLR"), ("fgsm_main", "^", "FGSM"), ("noise_main", "x",
                                "random noise"), ("transfer_main", "v", "transfer"),
                                ("worst_main", "k*", "worst case")):
    if metric in out:
      ax.plot([main], [out[metric]], marker, label=label)
  ax.axhline(out["clean"], color="gray", ls="--", lw=1, label="clean")
  ax.set_xlabel(f"eps ({protocol.norm}, pixels in [0, 1])")
  ax.set_ylabel("accuracy (%)")
  ax.set_ylim(0, 100)
  ax.legend(fontsize=7)
  ax.set_title(f"{out['examples']} test images" + (f"; FAILED: {', '.join(failed)}"
                                                    if failed else "; sanity checks hold"),
               fontsize=8)
  fig.tight_layout()
  plots.save_figure(fig, target)
