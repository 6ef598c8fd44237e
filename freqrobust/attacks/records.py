"""Per-example records of an adversarial evaluation, combined on read.

`Records` maps an attack's name (`runner.Attack.name`: it changes with every setting) to its
per-example results, (N,) bool, and its meta (kind, radius, loss, steps, restarts, whether every
image was in the ball, the largest perturbation, seconds). Every figure of the evaluation is
computed from them when read: an accuracy, the worst case at a radius (an example counts as
robust only if EVERY attack recorded at that radius, and the clean image, left it correct), the
checks (`attacks.checks`). Stored as arrays (`to_arrays`) and JSON (`meta`), so an attack added
later runs alone and combines with those already recorded.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional

import numpy as np

from freqrobust.attacks.runner import ATTACK_KINDS, Attack, Record

WHITE_BOX = ("pgd", "apgd", "apgd_t", "fab_t")  # The gradient-based attacks.


def same_eps(a: float, b: float) -> bool:
  return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(b)))


class Records:
  """name -> per-example values and meta; `n` examples each."""

  def __init__(self, n: int):
    self.n = int(n)
    self.values: Dict[str, np.ndarray] = {}
    self.meta: Dict[str, Dict[str, Any]] = {}

  def add(self, attack: Attack, record: Record, **extra) -> None:
    if record.values.shape != (self.n,):
      raise ValueError(f"record {attack.name!r} has shape {record.values.shape}, want "
                       f"({self.n},).")
    self.values[attack.name] = np.asarray(record.values, bool)
    self.meta[attack.name] = dict(
        kind=attack.kind, eps=attack.eps, loss=attack.loss, steps=attack.steps,
        restarts=attack.restarts, source=attack.source, targets=attack.targets,
        after=list(attack.after), surrogate=attack.surrogate, in_ball=bool(record.in_ball),
        max_perturbation=float(record.max_perturbation), seconds=float(record.seconds),
        **extra)

  def __contains__(self, name: str) -> bool:
    return name in self.values

  def names(self, *, kinds: Iterable[str] = ATTACK_KINDS, eps: Optional[float] = None,
            loss: Optional[str] = None, surrogate: Optional[bool] = None) -> List[str]:
    """The recorded attacks of these kinds (at this radius, with this loss; crafted through a
    surrogate gradient or not, when `surrogate` is given), in record order."""
    kinds = tuple(kinds)
    return [k for k, m in self.meta.items() if m["kind"] in kinds
            and (eps is None or same_eps(m["eps"], eps)) and (loss is None or m["loss"] == loss)
            and (surrogate is None or bool(m.get("surrogate")) == surrogate)]

  def accuracy(self, name: str) -> float:
    return float(np.mean(self.values[name]))

  def chain_accuracy(self, name: str) -> float:
    """The accuracy after `name`: of an attack run only on the examples its `after` attacks left
    correct (whose record counts every other example as unbroken), the share correct under it
    and all of them (AutoAttack's "robust accuracy after" it); else its own accuracy."""
    after = self.meta[name].get("after") or []
    if not after:
      return self.accuracy(name)
    return float(np.mean(self.all_correct(list(after) + [name])))

  def all_correct(self, names: Iterable[str]) -> np.ndarray:
    """(N,) bool: correct under every one of `names` (and clean, when recorded)."""
    names = list(names) + (["clean"] if "clean" in self.values else [])
    out = np.ones((self.n,), bool)
    for name in names:
      out &= self.values[name]
    return out

  def worst(self, eps: float, kinds: Iterable[str] = ATTACK_KINDS,
            surrogate: Optional[bool] = None) -> Optional[np.ndarray]:
    """(N,) bool: the examples EVERY recorded attack of these kinds at `eps` (`surrogate`: as
    in `names`) left correct (and the clean image); None when none is recorded there."""
    names = self.names(kinds=[k for k in kinds if k != "clean"], eps=eps, surrogate=surrogate)
    return self.all_correct(names) if names else None

  def worst_accuracy(self, eps: float, kinds: Iterable[str] = ATTACK_KINDS,
                     surrogate: Optional[bool] = None) -> Optional[float]:
    worst = self.worst(eps, kinds, surrogate)
    return None if worst is None else float(np.mean(worst))

  def to_arrays(self) -> Dict[str, np.ndarray]:
    return dict(self.values)

  @classmethod
  def from_arrays(cls, n: int, arrays: Mapping[str, np.ndarray],
                  meta: Mapping[str, Mapping[str, Any]]) -> "Records":
    out = cls(n)
    for name, m in meta.items():
      if name in arrays and np.shape(arrays[name]) == (n,):
        out.values[name] = np.asarray(arrays[name], bool)
        out.meta[name] = dict(m)
    return out

  def keep(self, names: Iterable[str]) -> "Records":
    """A copy with only `names` (those recorded), in that order."""
    out = Records(self.n)
    for name in names:
      if name in self.values:
        out.values[name], out.meta[name] = self.values[name], self.meta[name]
    return out
