"""Where does a model's gradient masking come from? A diagnosis on the examples that the
white-box chain (APGD-CE, then APGD-T) left correct at a radius of a finished `adversarial`
evaluation, set against Square's verdicts on the same examples (the evaluation's records):

  - the APS gate's open ratios on the clean images (saturated gates pass no gradient);
  - untargeted APGD-CE and APGD-DLR with the model's own gradient (a fresh random start);
  - the same attacks through the frozen gate (BPDA: the gate's output a constant of the input,
    `models.Backbone.frozen_gate`; the evaluation's `surrogate="frozen_gate"` runs them after
    Square, this script beside it, to see how much of Square's gain a gradient attack recovers
    once the gate is taken out of the gradient), once and with restarts;
  - with --transfer_from, the same attacks crafted on another run's model (a transfer attack at
    this radius, which the evaluation's transfer check does only at the main radius);
  - the input gradient's L1 norm and the clean logit margin of the examples Square broke and of
    those it did not;
  - with --square_path, Square run again on the survivors (its images are not stored) and the
    logit margin (true class minus the best other) along the segment from each image to the
    image Square found, beside the margin along the FGSM direction (the sign of the CE gradient
    at the image) at the same L-inf distance: where the margin stays flat and falls late on
    Square's segment, and the gradient's direction lowers it less, the gradient at the image
    does not see what lies at the radius.

Usage (after `python -m freqrobust.evaluate --workdir=RUN --evals=adversarial` with this radius
on its curve and Square beyond the main radius):
  python bench/gate_masking.py --workdir=RUN --eps=0.2 --num_examples=500 \
      [--transfer_from=OTHER_RUN] [--steps=100] [--restarts=5]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from freqrobust import trained, workdir as workdir_lib  # noqa: E402
from freqrobust.attacks import fgsm_pgd as pgd_lib, losses, runner  # noqa: E402
from freqrobust.evaluators import adversarial_store as store, base  # noqa: E402


def chain_at(records, eps: float):
  """(APGD-CE, APGD-T, Square) record names of the evaluation's chain at `eps`."""
  def first(kind):
    names = records.names(kinds=(kind,), eps=eps, surrogate=False)
    if not names:
      raise SystemExit(f"No {kind} record at eps {eps:g}: evaluate the run with this radius on "
                       "the curve (--config.evals.adversarial.eps=...) under version 'standard'.")
    return names[0]
  return first("apgd"), first("apgd_t"), first("square")


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--eps", type=float, required=True)
  p.add_argument("--num_examples", type=int, default=1000)
  p.add_argument("--transfer_from", default="")
  p.add_argument("--steps", type=int, default=100)
  p.add_argument("--restarts", type=int, default=5)
  p.add_argument("--batch_size", type=int, default=250)
  p.add_argument("--square_path", action="store_true")
  args = p.parse_args(argv)

  run = trained.load_trained(args.workdir)
  if run.config.model.attention == "none":
    raise SystemExit(f"{args.workdir}: config.model.attention='none', no gate to diagnose.")
  folder = workdir_lib.path(args.workdir, "evals", "adversarial")
  images, labels = base.Context(run, args.workdir).first_examples(args.num_examples)
  stored = workdir_lib.read_json(workdir_lib.path(folder, store.RECORDS_META))["key"]
  if stored["images"] != store.digest(images, labels) or stored["model"] != run.fingerprint:
    raise SystemExit(f"{folder}: its records are of other test images or another model; give "
                     "--num_examples as the evaluation's num_examples, and re-evaluate.")
  records = store.load_records(folder, stored, len(images))
  ce, t, square = chain_at(records, args.eps)
  survivors = records.all_correct([ce, t])
  square_broke = survivors & ~records.values[square]
  n = int(survivors.sum())
  print(f"{args.workdir} at eps {args.eps:g}, {len(images)} images: APGD-CE + APGD-T leave "
        f"{n} correct; Square breaks {int(square_broke.sum())} of them.", flush=True)

  v = np.asarray(run.open_ratios(images))
  print(f"gate open ratios on the clean images: mean {v.mean():.3f}; < 0.02: "
        f"{(v < 0.02).mean():.1%}; > 0.98: {(v > 0.98).mean():.1%}; in (0.1, 0.9): "
        f"{((v > 0.1) & (v < 0.9)).mean():.1%}", flush=True)

  frozen = run.surrogate_apply("frozen_gate")
  crafts = [("own gradient", None), ("frozen gate", frozen)]
  if args.transfer_from:
    other = trained.load_trained(args.transfer_from)
    crafts.append((f"transfer from {os.path.basename(os.path.normpath(args.transfer_from))}",
                   runner.Unbound(lambda z: other.apply(other.variables, z))))
  key = jax.random.key(17)
  for label, craft in crafts:
    broken = np.zeros(len(images), bool)
    runs = [("ce", 1), ("dlr", 1)] + ([("ce", args.restarts)] if craft is frozen else [])
    for loss, restarts in runs:
      started = time.time()
      attack = runner.Attack("apgd", args.eps, loss, args.steps, restarts)
      record = runner.run_attack(attack, run.apply, run.variables, key, images, labels,
                                 norm="linf", batch_size=args.batch_size, only=survivors,
                                 craft_apply=craft)
      new = survivors & ~record.values
      broken |= new
      print(f"  {label:32s} APGD-{loss.upper()}-{args.steps} x{restarts}: breaks {new.sum():3d} "
            f"of {n} (of Square's {int(square_broke.sum())}: {int((new & square_broke).sum())}; "
            f"others: {int((new & ~square_broke).sum())})  [{time.time() - started:.0f} s]",
            flush=True)
    print(f"  {label:32s} together: {int(broken.sum())} (of Square's: "
          f"{int((broken & square_broke).sum())})", flush=True)

  x, y = jnp.asarray(images[survivors]), jnp.asarray(labels[survivors])
  margin, grad = margin_and_grad(run, x, y)
  grad = np.abs(np.asarray(grad)).reshape(n, -1).sum(1)
  margin = np.asarray(margin)
  sq = square_broke[survivors]
  for label, m in (("Square broke", sq), ("Square did not", ~sq)):
    if m.any():
      print(f"{label:15s} ({int(m.sum())}): median L1 input gradient of the CE "
            f"{np.median(grad[m]):.3g}, median clean logit margin {np.median(margin[m]):.3g}")
  if args.square_path:
    square_path(run, images, labels, survivors, args)


def margin_and_grad(run, x, y):
  """(logit margin: true class minus the best other (N,), gradient of the summed CE w.r.t. x)."""
  _, logits, grad = pgd_lib.loss_and_grad(lambda z: run.apply(run.variables, z), x, y, "ce")
  return -losses.margin(logits, y), grad


def square_path(run, images, labels, survivors, args) -> None:
  """The margin along Square's segment and along the FGSM direction (see the module doc)."""
  attack = runner.Attack("square", args.eps, "margin", 0, targets=5000)
  started = time.time()
  record = runner.run_attack(attack, run.apply, run.variables, jax.random.key(23), images,
                             labels, norm="linf", batch_size=args.batch_size, only=survivors,
                             keep_images=True)
  broke = survivors & ~record.values
  print(f"Square again: breaks {int(broke.sum())} of {int(survivors.sum())} "
        f"[{time.time() - started:.0f} s]", flush=True)
  if not broke.any():
    return
  x, y = jnp.asarray(images[broke]), jnp.asarray(labels[broke])
  delta = jnp.asarray(record.images[broke]) - x

  margin = lambda z: -losses.margin(run.apply(run.variables, z), y)  # noqa: E731
  step = args.eps * jnp.sign(margin_and_grad(run, x, y)[1])
  ts = np.linspace(0.0, 1.0, 6)
  along = [np.median(np.asarray(margin(jnp.clip(x + t * delta, 0, 1)))) for t in ts]
  fgsm = [np.median(np.asarray(margin(jnp.clip(x + t * step, 0, 1)))) for t in ts]
  print("median margin at t x the radius: " + ", ".join(f"{t:.1f}" for t in ts))
  print("  along Square's segment: " + ", ".join(f"{m:+.2f}" for m in along))
  print("  along the FGSM direction: " + ", ".join(f"{m:+.2f}" for m in fgsm))


if __name__ == "__main__":
  main()
