"""Accuracy under the adversarial corruptions (Kaufmann et al. 2023, CIFAR-10-UA;
`attacks.corruption_attacks`, docs/METHOD.md §12) at each budget, on the first `num_examples`
test images, and the UA summary: the mean accuracy over the attacks at the medium budget
(`ua_mean`). Budgets and PGD settings are the reference's CIFAR-10 ones (used as they are on
other datasets); each attack runs from its own key (seed, attack, budget).
"""
from __future__ import annotations

import functools
from typing import Dict

import jax
import jax.numpy as jnp
import numpy as np

from freqrobust import workdir as workdir_lib
from freqrobust.evaluators import base

DEFAULT_ATTACKS = ("jpeg", "gabor", "elastic", "fog", "snow")
BUDGETS = ("low", "medium", "high")


class AdversarialCorruptions(base.Evaluator):
  type = "adversarial_corruptions"
  defaults = {"attacks": DEFAULT_ATTACKS, "budgets": BUDGETS, "num_examples": 1000,
              "steps": 0, "seed": 0, "batch_size": 250}

  def metric_columns(self):
    cols = []
    if "medium" in self.settings["budgets"]:
      cols.append(base.Column("ua_mean", "UA mean, medium (%)",
                              "mean accuracy over the adversarial corruptions at the medium "
                              "budget (Kaufmann et al.'s UA)"))
    for name in self.settings["attacks"]:
      for budget in self.settings["budgets"]:
        cols.append(base.Column(f"{name}_{budget}", f"adv. {name} {budget} (%)",
                                f"accuracy under adversarial {name} at the {budget} budget"))
    return tuple(cols)

  def check(self, config) -> None:
    from freqrobust.attacks import corruption_attacks
    s, where = self.settings, f"config.evals.{self.name}"
    known = tuple(corruption_attacks.ATTACKS)
    if isinstance(s["attacks"], str) or not s["attacks"] or any(a not in known
                                                                for a in s["attacks"]):
      raise workdir_lib.UserError(f"{where}.attacks={s['attacks']!r} is invalid: a non-empty "
                                  f"list from {list(known)}.")
    if isinstance(s["budgets"], str) or not s["budgets"] or any(b not in BUDGETS
                                                                for b in s["budgets"]):
      raise workdir_lib.UserError(f"{where}.budgets={s['budgets']!r} is invalid: a non-empty "
                                  f"list from {list(BUDGETS)}.")
    for field, low in (("num_examples", 0), ("steps", 0), ("batch_size", 1)):
      v = s[field]
      if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise workdir_lib.UserError(f"{where}.{field}={v!r} is invalid: an integer >= {low}"
                                    + (" (0 = the reference's steps)." if field == "steps"
                                       else "."))

  def run(self, context: base.Context) -> Dict[str, float]:
    from freqrobust.attacks import corruption_attacks, fgsm_pgd
    s = self.settings
    images, labels = context.first_examples(s["num_examples"])
    n = len(images)
    model = context.model
    key = jax.random.key(s["seed"])
    out = {"examples": int(n)}
    for i, name in enumerate(s["attacks"]):
      spec = corruption_attacks.ATTACKS[name]
      steps = s["steps"] or spec.steps
      for j, budget in enumerate(s["budgets"]):
        k = jax.random.fold_in(jax.random.fold_in(key, i), j)
        correct = []
        for start in range(0, n, s["batch_size"]):
          x, y = images[start:start + s["batch_size"]], labels[start:start + s["batch_size"]]
          correct.append(np.asarray(_correct(
              model.variables, jax.random.fold_in(k, start), jnp.asarray(x), jnp.asarray(y),
              jnp.float32(corruption_attacks.budget_of(name, budget)),
              jnp.float32(spec.step_size), apply=model.apply, name=name, steps=steps,
              unroll=fgsm_pgd.unroll_steps(steps))))
        out[f"{name}_{budget}"] = 100.0 * float(np.mean(np.concatenate(correct)))
    if "medium" in s["budgets"]:
      out["ua_mean"] = float(np.mean([out[f"{a}_medium"] for a in s["attacks"]]))
    if context.write_files:
      folder = self.out_dir(context)
      workdir_lib.make_dir(folder)
      workdir_lib.write_json(workdir_lib.path(folder, "adversarial_corruptions.json"),
                             {"settings": dict(s), "metrics": out})
    return out


@functools.partial(jax.jit, static_argnames=("apply", "name", "steps", "unroll"))
def _correct(variables, key, images, labels, eps, step_size, *, apply, name, steps, unroll):
  """(N,) bool: correct under the adversarial corruption `name` (`corruption_attacks`); the
  variables are traced (as `attacks.runner`): a new state of the same run reuses the compilation
  and no program holds a copy of the weights."""
  from freqrobust.attacks import corruption_attacks
  def logits_fn(z):
    return apply(variables, z)
  adv, _ = corruption_attacks._attack.__wrapped__(logits_fn, key, images, labels, eps, step_size,
                                                  name=name, steps=steps, unroll=unroll)
  return jnp.argmax(logits_fn(adv), axis=-1) == labels
