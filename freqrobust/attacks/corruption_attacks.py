"""Adversarial corruptions (Kaufmann et al. 2023, "Testing Robustness Against Unforeseen
Adversaries", ImageNet-UA / CIFAR-10-UA; after Kang et al. 2019): a corruption whose latent
variables are chosen by PGD within a budget instead of drawn at random (docs/METHOD.md §12).

Each attack (`ATTACKS`) is a corruption of `corruption_ops` with its latent budget norm, its
CIFAR-10 budgets (low, medium, high: the reference's models/cifar10/cifar10_config.py) and its
CIFAR-10 PGD settings (steps, step size: the reference's models.sh `get_attack_params`). The PGD
follows the reference: start from the random draw projected onto the budget, then `steps`
signed-gradient steps of the cross-entropy on the latents (sign steps for every attack, as the
reference takes them), each followed by the projection onto the budget (L-inf: clip; L2: scale
per example over all of its latents). Unlike the reference, per example the latents of the first
misclassified iterate, else of the highest loss, over every iterate including the random draw,
are returned (as `attacks.pgd` does), so the attack is never weaker than its random draw.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from freqrobust.attacks import corruption_ops as ops
from freqrobust.attacks import fgsm_pgd, losses

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class CorruptionAttack:
  name: str
  norm: str  # the budget's norm on the latents: "linf" or "l2"
  budgets: tuple[float, float, float]  # CIFAR-10 low, medium, high
  steps: int
  step_size: float
  init: Callable
  apply: Callable


ATTACKS = {a.name: a for a in (
    CorruptionAttack("jpeg", "linf", (1 / 255, 3 / 255, 6 / 255), 50, 0.0024,
                     ops.jpeg_init, ops.jpeg_apply),
    CorruptionAttack("gabor", "linf", (0.02, 0.03, 0.04), 80, 0.0025,
                     ops.gabor_init, ops.gabor_apply),
    CorruptionAttack("elastic", "l2", (0.1, 0.25, 0.5), 30, 0.006,
                     ops.elastic_init, ops.elastic_apply),
    CorruptionAttack("fog", "linf", (0.3, 0.4, 0.5), 40, 0.05, ops.fog_init, ops.fog_apply),
    CorruptionAttack("snow", "l2", (3.0, 4.0, 5.0), 20, 0.2, ops.snow_init, ops.snow_apply),
)}
BUDGETS = ("low", "medium", "high")


def budget_of(name: str, budget) -> float:
  """The latent budget: "low" / "medium" / "high" (CIFAR-10's), or a number >= 0."""
  if name not in ATTACKS:
    raise ValueError(f"Unknown adversarial corruption {name!r}; valid: {', '.join(ATTACKS)}.")
  if isinstance(budget, str):
    if budget not in BUDGETS:
      raise ValueError(f"budget={budget!r}; valid: {', '.join(BUDGETS)} or a number >= 0.")
    return float(ATTACKS[name].budgets[BUDGETS.index(budget)])
  if not float(budget) >= 0:
    raise ValueError(f"budget must be >= 0, got {budget!r}.")
  return float(budget)


def project(latents, eps, norm: str):
  """Onto the budget: L-inf clip; L2 scale each example's latents (all leaves) to <= eps."""
  if norm == "linf":
    return jax.tree.map(lambda v: jnp.clip(v, -eps, eps), latents)
  scale = _l2_scale(latents, eps)
  return jax.tree.map(lambda v: v * scale.reshape((-1,) + (1,) * (v.ndim - 1)), latents)


def _l2_scale(latents, eps):
  leaves = jax.tree.leaves(latents)
  sq = sum(jnp.sum(v.reshape(v.shape[0], -1) ** 2, axis=-1) for v in leaves)
  n = jnp.sqrt(sq)
  return jnp.where(n > eps, eps / jnp.maximum(n, 1e-30), 1.0)


def latent_norms(latents, norm: str) -> Array:
  """(N,) per-example norm of the latents over all leaves."""
  flat = jnp.concatenate([v.reshape(v.shape[0], -1) for v in jax.tree.leaves(latents)], -1)
  if norm == "linf":
    return jnp.max(jnp.abs(flat), axis=-1)
  return jnp.sqrt(jnp.sum(flat * flat, axis=-1))


def _pick(mask, new, old):
  return jax.tree.map(lambda a, b: fgsm_pgd._pick(mask, a, b), new, old)


@functools.partial(jax.jit, static_argnums=(0,), static_argnames=("name", "steps", "unroll"))
def _attack(logits_fn, key, images, labels, eps, step_size, *, name, steps, unroll):
  spec = ATTACKS[name]
  latents, aux = spec.init(key, images, eps)
  latents = project(latents, eps, spec.norm)

  def loss_and_grad(lat):
    def total(z):
      logits = logits_fn(spec.apply(images, z, aux)).astype(jnp.float32)
      per = losses.cross_entropy(logits, labels)
      return jnp.sum(per), (per, logits)
    (_, (per, logits)), grad = jax.value_and_grad(total, has_aux=True)(lat)
    return per, losses.misclassified(logits, labels), grad

  def keep(best, lat, fooled, value):
    b_lat, b_f, b_l = best
    take = fgsm_pgd._better(fooled, value, b_f, b_l)
    return _pick(take, lat, b_lat), b_f | fooled, jnp.where(take, value, b_l)

  def step(i, carry):
    lat, best = carry
    value, fooled, grad = loss_and_grad(lat)
    best = keep(best, lat, fooled, value)
    lat = jax.tree.map(lambda v, g: v + step_size * jnp.sign(g), lat, grad)
    return project(lat, eps, spec.norm), best

  n = images.shape[0]
  best = (latents, jnp.zeros((n,), bool), jnp.full((n,), -jnp.inf, jnp.float32))
  latents, best = fgsm_pgd.loop(steps, step, (latents, best), unroll)
  value, fooled, _ = loss_and_grad(latents)
  best = keep(best, latents, fooled, value)
  return spec.apply(images, best[0], aux), best[0]


def adversarial_corruption(logits_fn, key, images, labels, name: str, budget="medium", *,
                           steps: int | None = None, step_size: float | None = None,
                           unroll=None):
  """(corrupted images (N, H, W, C) in [0, 1], the chosen latents) of the attack `name`.

  `budget`: "low" / "medium" / "high" (CIFAR-10's) or a number; `steps` / `step_size`: the
  reference's CIFAR-10 settings by default; steps=0 gives the corruption at its random draw
  (projected onto the budget). `key` draws the start and the attack's fixed random parts.
  """
  eps = budget_of(name, budget)
  spec = ATTACKS[name]
  steps = spec.steps if steps is None else int(steps)
  step_size = spec.step_size if step_size is None else float(step_size)
  images = jnp.asarray(images, jnp.float32)
  labels = jnp.asarray(labels)
  if images.ndim != 4 or images.shape[-1] not in (1, 3) or labels.shape != images.shape[:1]:
    raise ValueError(f"images (N, H, W, C) with C 1 or 3 and labels (N,) expected, got "
                     f"{images.shape} and {labels.shape}.")
  if steps < 0 or not step_size >= 0:
    raise ValueError(f"steps >= 0 and step_size >= 0 expected, got {steps}, {step_size}.")
  return _attack(logits_fn, key, images, labels, jnp.float32(eps), jnp.float32(step_size),
                 name=name, steps=steps, unroll=fgsm_pgd.unroll_steps(steps, unroll))


def ua_summary(logits_fn, key, images, labels, names: Sequence[str] = tuple(ATTACKS),
               budget="medium", **kwargs) -> dict[str, float]:
  """Accuracy under each adversarial corruption at `budget` and their mean (`mean`), the UA
  summary of Kaufmann et al. (their headline is the mean over the attacks at medium budget)."""
  labels = jnp.asarray(labels)
  out = {}
  for i, name in enumerate(names):
    adv, _ = adversarial_corruption(logits_fn, jax.random.fold_in(key, i), images, labels, name,
                                    budget, **kwargs)
    out[name] = float(jnp.mean(jnp.argmax(logits_fn(adv), -1) == labels))
  out["mean"] = float(np.mean([out[n] for n in names]))
  return out
