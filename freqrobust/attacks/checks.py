"""The gradient-masking sanity checks, read from an evaluation's per-example records
(`attacks.records`): Athalye, Carlini & Wagner (ICML 2018, section 3.1) and Carlini et al. ("On
evaluating adversarial robustness", 2019, section 5 and the appendix checklist).

  "monotone":          the white-box worst case is non-increasing in eps along the curve and
                       never above clean (within `tolerance`);
  "large_eps":         at the unbounded radius (L-inf 1, L2 the cube's diameter) accuracy is
                       <= `large_eps_max`: an unbounded attack must reach ~0%;
  "pgd_le_fgsm_le_clean": at the main eps, white-box worst <= FGSM <= clean;
  "restarts_stable":   one more restart changes an attack's accuracy by < `restart_tolerance`;
  "noise_weaker":      same-norm random noise is no stronger than the white-box attacks;
  "no_zero_gradients": no example has an all-zero input gradient of the CE at the clean image;
  "transfer_weaker":   images crafted on another model (a transfer attack) break no more than
                       the white-box attacks on this one: when they do, this model's gradients
                       mislead its own attacks (partial masking);
  "square_weaker":     AutoAttack's own check (checks.py `check_square_sr`): Square, run after
                       the white-box attacks on the examples they left correct, lowers the
                       accuracy by no more than 0.2 points, at every radius where it ran;
  "surrogate_weaker":  attacks crafted through a surrogate gradient (BPDA: the attention gate
                       frozen), run after every other attack at a radius on the examples they
                       left correct, lower the accuracy by no more than 0.2 points (Square's
                       tolerance): when they do, the model's own gradient is masked by the
                       component the surrogate replaces;
  "in_ball":           every recorded image lies in its ball and [0, 1].

Each check is True (holds), False (fails) or None (not run: its records are missing; a check
that did not run is never counted as held). A new check is one function here and one entry in
`CHECKS`. Accuracies are fractions; `tolerance` 0.01 is one point.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from freqrobust.attacks.records import WHITE_BOX, Records, same_eps


@dataclasses.dataclass(frozen=True)
class Radii:
  """The radii an evaluation's checks read: main, the curve, the unbounded one (or None)."""
  main: float
  curve: Sequence[float]
  large: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class Thresholds:
  tolerance: float = 0.01
  restart_tolerance: float = 0.01
  large_eps_max: float = 0.05


def _clean(r: Records) -> float:
  return r.accuracy("clean") if "clean" in r else 1.0


def monotone(r: Records, radii: Radii, t: Thresholds) -> Optional[bool]:
  accs = [r.worst_accuracy(e, WHITE_BOX) for e in sorted(radii.curve)]
  accs = [a for a in accs if a is not None]
  if not accs:
    return None
  return (all(b <= a + t.tolerance for a, b in zip(accs, accs[1:]))
          and accs[0] <= _clean(r) + t.tolerance)


def large_eps(r: Records, radii: Radii, t: Thresholds) -> Optional[bool]:
  if radii.large is None:
    return None
  acc = r.worst_accuracy(radii.large, WHITE_BOX)
  return None if acc is None else acc <= t.large_eps_max


def pgd_le_fgsm_le_clean(r: Records, radii: Radii, t: Thresholds) -> Optional[bool]:
  fgsm = r.names(kinds=("fgsm",), eps=radii.main)
  white = r.worst_accuracy(radii.main, WHITE_BOX)
  if not fgsm or white is None:
    return None
  f = r.accuracy(fgsm[0])
  return white <= f + t.tolerance and f <= _clean(r) + t.tolerance


def restarts_stable(r: Records, radii: Radii, t: Thresholds) -> Optional[bool]:
  """Every pair of records of one attack (same kind, loss, steps, radius) one restart apart."""
  del radii
  pairs = [(a, b) for a in r.names(kinds=WHITE_BOX) for b in r.names(kinds=WHITE_BOX)
           if all(r.meta[a][k] == r.meta[b][k] for k in ("kind", "loss", "steps"))
           and not r.meta[a].get("after") and not r.meta[b].get("after")
           and same_eps(r.meta[a]["eps"], r.meta[b]["eps"])
           and r.meta[b]["restarts"] == r.meta[a]["restarts"] + 1]
  if not pairs:
    return None
  return all(abs(r.accuracy(a) - r.accuracy(b)) < t.restart_tolerance for a, b in pairs)


def _weaker_than_white_box(kind: str, r: Records, radii: Radii, t: Thresholds
                           ) -> Optional[bool]:
  """Every record of `kind` at the main radius leaves at least the white-box worst case's
  accuracy (to `tolerance`): a weaker attack beating the gradient attacks means they failed."""
  records = r.names(kinds=(kind,), eps=radii.main)
  white = r.worst_accuracy(radii.main, WHITE_BOX)
  if not records or white is None:
    return None
  return all(r.accuracy(n) >= white - t.tolerance for n in records)


def noise_weaker(r: Records, radii: Radii, t: Thresholds) -> Optional[bool]:
  return _weaker_than_white_box("noise", r, radii, t)


def no_zero_gradients(r: Records, radii: Radii, t: Thresholds) -> Optional[bool]:
  del radii, t
  return None if "zero_gradient" not in r else not bool(r.values["zero_gradient"].any())


def transfer_weaker(r: Records, radii: Radii, t: Thresholds) -> Optional[bool]:
  return _weaker_than_white_box("given", r, radii, t)


SQUARE_TOLERANCE = 0.002  # AutoAttack's 0.2 points.


def _gains_more(before, after) -> bool:
  """Whether the examples correct in `before` and broken in `after` are more than
  SQUARE_TOLERANCE of all (AutoAttack's `check_square_sr`: square < acc - 0.002), counted in
  examples: exactly 0.2 points (1 of 500) is not more, whatever the float rounding of the
  accuracies' difference."""
  broken = int(np.sum(before & ~after))
  return broken > SQUARE_TOLERANCE * len(before) + 1e-9


def square_weaker(r: Records, radii: Radii, t: Thresholds) -> Optional[bool]:
  del t
  del radii  # Every radius where Square ran after the white-box attacks.
  squares = [s for s in r.names(kinds=("square",)) if r.meta[s].get("after")]
  if not squares:
    return None
  return all(not _gains_more(r.all_correct(r.meta[s]["after"]), r.values[s])
             for s in squares)


def surrogate_weaker(r: Records, radii: Radii, t: Thresholds) -> Optional[bool]:
  """The surrogate attacks of each radius, together, after the others there."""
  del t, radii
  out = []
  for eps in sorted({r.meta[n]["eps"] for n in r.names(surrogate=True)}):
    names = [n for n in r.names(eps=eps, surrogate=True) if r.meta[n].get("after")]
    if names:  # Chained last: the first one's `after` is every other attack at this radius.
      out.append(not _gains_more(r.all_correct(r.meta[names[0]]["after"]),
                                 r.all_correct(names)))
  return all(out) if out else None


def in_ball(r: Records, radii: Radii, t: Thresholds) -> Optional[bool]:
  del radii, t
  metas = [m for m in r.meta.values() if m["kind"] != "zero_gradient"]
  return all(m["in_ball"] for m in metas) if metas else None


CHECKS: Dict[str, Callable[[Records, Radii, Thresholds], Optional[bool]]] = {
    "monotone": monotone, "large_eps": large_eps, "pgd_le_fgsm_le_clean": pgd_le_fgsm_le_clean,
    "restarts_stable": restarts_stable, "noise_weaker": noise_weaker,
    "no_zero_gradients": no_zero_gradients, "transfer_weaker": transfer_weaker,
    "square_weaker": square_weaker, "surrogate_weaker": surrogate_weaker, "in_ball": in_ball}


def run_checks(r: Records, radii: Radii, t: Thresholds = Thresholds()) -> Dict[str, object]:
  """{"checks": {name: True/False/None}, "failed_checks": [...], "skipped_checks": [...]}."""
  checks = {name: fn(r, radii, t) for name, fn in CHECKS.items()}
  return {"checks": checks,
          "failed_checks": [name for name, ok in checks.items() if ok is False],
          "skipped_checks": [name for name, ok in checks.items() if ok is None]}
