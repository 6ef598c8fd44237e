"""What a run records of how it trained: `method_choices`, the choices the paper leaves open as
the run made them (results.json "method_choices"; docs/METHOD.md §8 explains each), read back by
`freqrobust.report` to flag runs the current code would train differently."""
from __future__ import annotations

import dataclasses
from typing import Any

from freqrobust.augment import adversarial, base, registry


def method_choices(config: Any, method: base.Method, aux_bn: bool) -> dict:
  """The choices of a run with `config`, whose built method is `method`; `aux_bn`: the model has
  auxiliary BatchNorms for the method's views. Under adversarial training
  (`config.adversarial`) the attacked views are recorded beside the attack's settings, with the
  attack's revision count and resolved fields (what `base.stale_notes(..., part="adversarial")`
  reads)."""
  composed = isinstance(method, adversarial.AdversarialComposition)
  inner = method.method if composed else method
  return {"method": config.get("method", "paper"),
          "method_args": dict(config.get("method_args", {})),
          **({"adversarial": config.adversarial,
              "adversarial_args": dict(config.get("adversarial_args", {})),
              "adversarial_views": list(method.attacked_views),
              "adversarial_revision": len(method.attack.revisions),
              "adversarial_fields": resolved_fields(method.attack)} if composed else {}),
          "aux_bn_views": list(method.aux_bn_views) if aux_bn else [],
          "aux_average": config.aps.aux_average if config.model.attention != "none" else None,
          "nfd_noise": "hermitian" if config.augment.nfd else None,
          "keep_range": list(config.augment.keep_range),
          "method_revision": len(method.revisions),
          **({"method_fields": resolved_fields(inner)}
             if type(inner) in registry.BASELINES.values() else {})}


def resolved_fields(method: base.Method) -> dict:
  """A baseline's fields as it trained (defaults included), JSON-ready: what `base.stale_notes`
  reads instead of guessing from the config's method_args."""
  out = {}
  for f in dataclasses.fields(method):
    value = getattr(method, f.name)
    out[f.name] = list(value) if isinstance(value, tuple) else value
  return out
