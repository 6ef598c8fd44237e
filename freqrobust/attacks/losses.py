"""Per-example attack losses on logits (N, K) and integer labels (N,); each is to be maximised.

- `cross_entropy`: -log softmax(z)_y.
- `margin`: max_{i != y} z_i - z_y, unclipped (Carlini-Wagner's margin; Madry et al.'s
  cifar10_challenge pgd_attack.py:34-36 "cw" loss is -relu(z_y - max_{i != y} z_i + 50), the same
  margin clipped at kappa = 50).
- `dlr`: the Difference of Logits Ratio of Croce & Hein (ICML 2020, AutoAttack), with z sorted in
  decreasing order z_pi1 >= z_pi2 >= z_pi3 >= ...:

      DLR(z, y) = -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12),

  as `APGDAttack.dlr_loss` in github.com/fra31/auto-attack autoattack/autopgd_base.py:191-197
  (commit a392200): x_sorted[:, -2] when the top logit is y, else x_sorted[:, -1]; needs K >= 3.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array

LOSSES = ("ce", "margin", "dlr")


def cross_entropy(logits: Array, labels: Array) -> Array:
  logits = logits.astype(jnp.float32)
  return -jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), labels[:, None], axis=-1)[:, 0]


def _true_and_best_other(logits: Array, labels: Array) -> tuple[Array, Array]:
  logits = logits.astype(jnp.float32)
  true = jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]
  mask = jax.nn.one_hot(labels, logits.shape[-1], dtype=bool)
  other = jnp.max(jnp.where(mask, -jnp.inf, logits), axis=-1)
  return true, other


def margin(logits: Array, labels: Array) -> Array:
  """max_{i != y} z_i - z_y: > 0 exactly when the example is misclassified (ties aside)."""
  true, other = _true_and_best_other(logits, labels)
  return other - true


def dlr(logits: Array, labels: Array) -> Array:
  """-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12)."""
  if logits.shape[-1] < 3:
    raise ValueError(f"The DLR loss needs at least 3 classes, got {logits.shape[-1]}.")
  true, other = _true_and_best_other(logits, labels)
  top3 = jax.lax.top_k(logits.astype(jnp.float32), 3)[0]
  return -(true - other) / (top3[:, 0] - top3[:, 2] + 1e-12)


def dlr_targeted(logits: Array, labels: Array, target: Array) -> Array:
  """-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12): APGD-T's targeted DLR
  (`APGDAttack_targeted.dlr_loss_targeted`, autopgd_base.py:595-600); needs K >= 4."""
  if logits.shape[-1] < 4:
    raise ValueError(f"The targeted DLR loss needs at least 4 classes, got {logits.shape[-1]}.")
  logits = logits.astype(jnp.float32)
  true = jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]
  aim = jnp.take_along_axis(logits, target[:, None], axis=-1)[:, 0]
  top4 = jax.lax.top_k(logits, 4)[0]
  return -(true - aim) / (top4[:, 0] - 0.5 * (top4[:, 2] + top4[:, 3]) + 1e-12)


def per_example(name: str, logits: Array, labels: Array, target: Array | None = None) -> Array:
  if name == "dlr_targeted":
    return dlr_targeted(logits, labels, target)
  if name == "ce":
    return cross_entropy(logits, labels)
  if name == "margin":
    return margin(logits, labels)
  if name == "dlr":
    return dlr(logits, labels)
  raise ValueError(f"Unknown attack loss {name!r}; valid: {', '.join(LOSSES)}.")


def misclassified(logits: Array, labels: Array) -> Array:
  """(N,) bool: argmax(z) != y."""
  return jnp.argmax(logits, axis=-1) != labels
