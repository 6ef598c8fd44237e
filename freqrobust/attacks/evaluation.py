"""Robust accuracy over radii with the gradient-masking sanity checks, in three parts:

  - the protocol: which attacks run, at which radii (`Protocol`, `plan`);
  - the attacks, run over batches into per-example records (`attacks.runner`, `evaluate`: an
    attack already in the given records is not run again);
  - the figures and the checks, read from those records (`attacks.records`, `attacks.checks`).

A new attack is a kind in `runner` and an entry in `plan`; a new check a function in `checks`.
`adversarial_accuracy` is the single-attack evaluation of earlier versions, on the same parts.
Accuracies are fractions in [0, 1].
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import jax
import numpy as np

from freqrobust.attacks import ball, checks as checks_lib
from freqrobust.attacks.records import WHITE_BOX, Records
from freqrobust.attacks.runner import Apply, Attack, Unbound, batches, run_attack

Array = jax.Array
VERSIONS = ("standard", "fast")


@dataclasses.dataclass(frozen=True)
class Protocol:
  """What an evaluation runs.

  version "standard": at `main` AutoAttack's standard ensemble (APGD-CE and APGD-T with
  `autoattack_steps` iterations, `target_classes` targets, FAB-T, Square with `square_queries`
  queries), each on the examples every earlier one left correct (`Attack.after`); at the other
  radii of the curve APGD-CE (`apgd_steps`) then APGD-T on its survivors, and with
  `square_beyond` Square on theirs at the radii above `main` (robustness claimed beyond the
  training radius is where a gradient-free attack must confirm it); the unbounded radius
  APGD-CE. With `surrogate` (`runner.SURROGATES`; standard only), at `main` and above it,
  APGD-CE and APGD-T crafted through that surrogate's gradient (BPDA), chained after every
  other attack there. version "fast": PGD over the curve (and at `large`), APGD with each of
  `apgd_losses` at `main`. With `sanity_checks` also, at `main`: FGSM, same-norm noise, one more
  restart of the first PGD and the first APGD, and the zero-gradient probe."""
  norm: str
  main: float
  curve: Sequence[float]
  large: Optional[float] = None
  attacks: Sequence[str] = ("pgd", "apgd")
  apgd_losses: Sequence[str] = ("ce", "dlr")
  pgd_steps: int = 20
  apgd_steps: int = 50
  restarts: int = 1
  pgd_loss: str = "ce"
  sanity_checks: bool = True
  version: str = "fast"
  autoattack_steps: int = 100
  target_classes: int = 9
  square_queries: int = 5000
  square_beyond: bool = True
  surrogate: str = ""


def chain(attacks: Sequence[Attack]) -> List[Attack]:
  """Each attack run only on the examples every earlier one left correct (AutoAttack's order)."""
  out: List[Attack] = []
  for a in attacks:
    out.append(dataclasses.replace(a, after=tuple(b.name for b in out)))
  return out


def _standard(p: Protocol) -> List[Attack]:
  steps, targets = p.autoattack_steps, p.target_classes

  def surrogate(e, n):  # BPDA through the surrogate, after every other attack at e >= main.
    if not p.surrogate or e < p.main:
      return []
    return [Attack("apgd", e, "ce", n, surrogate=p.surrogate),
            Attack("apgd_t", e, "dlr_targeted", n, targets=targets, surrogate=p.surrogate)]

  out = [Attack("clean")]
  for e in p.curve:
    if e != p.main:
      square = [Attack("square", e, "margin", 0, targets=p.square_queries)] \
          if p.square_beyond and e > p.main else []
      out += chain([Attack("apgd", e, "ce", p.apgd_steps),
                    Attack("apgd_t", e, "dlr_targeted", p.apgd_steps, targets=targets)]
                   + square + surrogate(e, p.apgd_steps))
  out += chain([Attack("apgd", p.main, "ce", steps),
                Attack("apgd_t", p.main, "dlr_targeted", steps, targets=targets),
                Attack("fab_t", p.main, "", steps, targets=targets),
                Attack("square", p.main, "margin", 0, targets=p.square_queries)]
               + surrogate(p.main, steps))
  if p.sanity_checks:
    out += [Attack("zero_gradient"), Attack("fgsm", p.main), Attack("noise", p.main),
            Attack("apgd", p.main, "ce", steps, 2)]
    if p.large is not None:
      out.append(Attack("apgd", p.large, "ce", p.apgd_steps))
  return out


def plan(p: Protocol) -> List[Attack]:
  """The attacks of a protocol, in the order they run."""
  if p.version == "standard":
    return list({a.name: a for a in _standard(p)}.values())
  if p.surrogate:
    raise ValueError(f"surrogate={p.surrogate!r} runs under version 'standard' only.")
  out = [Attack("clean")]
  pgd = [Attack("pgd", e, p.pgd_loss, p.pgd_steps, p.restarts) for e in p.curve]
  apgd = [Attack("apgd", p.main, loss, p.apgd_steps, p.restarts) for loss in p.apgd_losses]
  out += (pgd if "pgd" in p.attacks else []) + (apgd if "apgd" in p.attacks else [])
  if p.sanity_checks:
    out += [Attack("zero_gradient"), Attack("fgsm", p.main), Attack("noise", p.main)]
    firsts = [a for a in (pgd if "pgd" in p.attacks else []) if a.eps == p.main][:1] + \
        (apgd[:1] if "apgd" in p.attacks else [])
    out += [dataclasses.replace(a, restarts=a.restarts + 1) for a in firsts]
    if p.large is not None:
      kind, steps = ("pgd", p.pgd_steps) if "pgd" in p.attacks else ("apgd", p.apgd_steps)
      out.append(Attack(kind, p.large, "ce", steps, p.restarts))
  unique = {a.name: a for a in out}  # A radius listed twice runs once.
  return list(unique.values())


def say_cost(attack: Attack, seconds: float, n: int, accuracy: float,
             say: Callable[[str], None] = print, prefix: str = "") -> None:
  """The console line of one attack: its accuracy (of a chained attack, `Attack.after`, the
  accuracy after it and the attacks before it) and its cost per 1000 images."""
  what = ("zero-gradient examples" if attack.kind == "zero_gradient"
          else "correct after it and the attacks before it" if attack.after else "correct")
  value = accuracy * n if attack.kind == "zero_gradient" else 100.0 * accuracy
  unit = "" if attack.kind == "zero_gradient" else "%"
  say(f"{prefix}{attack.label}: {value:.4g}{unit} {what} on {n} images in {seconds:.1f} s "
      f"({1000.0 * seconds / max(n, 1):.1f} s per 1000 images)")


def evaluate(apply: Apply, variables: Any, key: Array, images, labels, attacks: List[Attack],
             *, norm: str, batch_size: int, records: Optional[Records] = None,
             given: Optional[Dict[str, np.ndarray]] = None, keep_images: Sequence[str] = (),
             progress: Optional[Callable[[Attack], Callable[[int, int], None]]] = None,
             on_record: Optional[Callable[[Attack, Any], None]] = None,
             say: Optional[Callable[[str], None]] = None,
             surrogates: Optional[Dict[str, Apply]] = None) -> Records:
  """Runs every attack not yet in `records` (a new `Records` if None) and returns them.

  given: {attack name: images} for "given" attacks. keep_images: the names whose images are
  handed to `on_record(attack, record)` (called after each attack, e.g. to save it).
  progress(attack) -> callback(done, total) (and optionally `.close()`).
  surrogates: {surrogate name: apply} for the attacks crafted through one (`Attack.surrogate`:
  the same variables, the same forward pass, another gradient).
  """
  missing = {a.surrogate for a in attacks if a.surrogate} - set(surrogates or {})
  if missing:
    raise ValueError(f"attacks need the surrogate(s) {sorted(missing)}: pass surrogates=.")
  images = np.asarray(images, np.float32)
  labels = np.asarray(labels, np.int32)
  records = Records(len(images)) if records is None else records
  for attack in attacks:
    if attack.name in records:
      continue
    bar = progress(attack) if progress is not None else None
    only = records.all_correct(attack.after) if attack.after else None
    record = run_attack(attack, apply, variables, key, images, labels, norm=norm,
                        batch_size=batch_size, given=(given or {}).get(attack.name), only=only,
                        keep_images=attack.name in keep_images, progress=bar,
                        craft_apply=(surrogates or {}).get(attack.surrogate))
    if hasattr(bar, "close"):
      bar.close()
    records.add(attack, record)
    if say is not None:
      say_cost(attack, record.seconds, len(images), records.chain_accuracy(attack.name), say)
    if on_record is not None:
      on_record(attack, record)
  return records


def adversarial_accuracy(logits_fn: Callable[[Array], Array], key: Array, images, labels, *,
                         norm: str, eps_list: Sequence[float], attack: str = "pgd",
                         steps: int = 10, restarts: int = 1, batch_size: int = 128,
                         loss: str = "ce", main_eps: Optional[float] = None,
                         large_eps: Optional[float] = None, large_eps_max: float = 0.05,
                         tolerance: float = 0.01, restart_tolerance: float = 0.01,
                         sanity_checks: bool = True,
                         progress: Optional[Callable[[int, int], None]] = None) -> dict:
  """One attack ("pgd" or "apgd" with `loss`) over `eps_list` (and `large_eps`), with the
  sanity checks at `main_eps` (default: the first radius) unless `sanity_checks=False`.

  Returns clean_accuracy, accuracy {eps: acc}, fgsm_accuracy, extra_restart_accuracy,
  noise_accuracy, largest_eps(_accuracy), large_eps(_accuracy), zero_gradient_examples,
  max_perturbation {eps: norm}, checks, failed_checks, skipped_checks, correct_main ((N,) bool:
  correct under the attack at the main radius), n and the settings; None where not run.
  """
  ball.check_norm(norm)
  if attack not in WHITE_BOX:
    raise ValueError(f"attack={attack!r}; valid: 'pgd', 'apgd'.")
  eps_list = [float(e) for e in eps_list]
  if not eps_list or any(not e >= 0 for e in eps_list):
    raise ValueError(f"eps_list must be non-empty radii >= 0, got {eps_list}.")
  if large_eps is not None and not large_eps > 0:
    raise ValueError(f"large_eps must be a radius > 0 or None, got {large_eps}.")
  main = eps_list[0] if main_eps is None else float(main_eps)
  large = float(large_eps) if large_eps and sanity_checks else None
  radii = sorted(set(eps_list) | {main} | ({large} if large else set()))
  base = [Attack(attack, e, loss, steps, restarts) for e in radii]
  extra = [Attack("zero_gradient"), Attack("fgsm", main), Attack("noise", main),
           Attack(attack, main, loss, steps, restarts + 1)] if sanity_checks else []
  todo = [Attack("clean")] + base + extra
  n = len(images)
  per = len(list(batches(n, max(1, min(int(batch_size), n)))))
  done = [0]

  def bar(_):
    start = done[0]
    def tick(d, _t):
      done[0] = start + d
      if progress is not None:
        progress(done[0], per * len(todo))
    return tick

  r = evaluate(Unbound(logits_fn), None, key, images, labels, todo, norm=norm,
               batch_size=batch_size, progress=bar)
  main_name = Attack(attack, main, loss, steps, restarts).name
  view = r.keep(["clean"] + [a.name for a in base] + [a.name for a in extra[:1]])
  for a in extra[1:]:  # Each check sees its own attack beside the one evaluated.
    view.values[a.name], view.meta[a.name] = r.values[a.name], r.meta[a.name]
  out = checks_lib.run_checks(view, checks_lib.Radii(main, eps_list, large),
                              checks_lib.Thresholds(tolerance, restart_tolerance, large_eps_max))
  acc = {e: r.accuracy(a.name) for e, a in zip(radii, base)}
  opt = (lambda name: r.accuracy(name) if name in r else None)
  return dict(
      out, n=n, norm=norm, attack=attack, loss=loss, steps=steps, restarts=restarts,
      main_eps=main, clean_accuracy=r.accuracy("clean"), accuracy={e: acc[e] for e in eps_list},
      fgsm_accuracy=opt(Attack("fgsm", main).name), noise_accuracy=opt(Attack("noise", main).name),
      extra_restart_accuracy=opt(extra[3].name) if extra else None,
      largest_eps=max(eps_list), largest_eps_accuracy=acc[max(eps_list)],
      large_eps=large, large_eps_accuracy=acc[large] if large else None,
      zero_gradient_examples=int(r.values["zero_gradient"].sum()) if extra else None,
      max_perturbation={e: r.meta[a.name]["max_perturbation"] for e, a in zip(radii, base)},
      correct_main=r.values[main_name].copy())
