"""The threat models: the L-inf and L2 balls of radius eps around images in [0, 1] (NHWC, batch
first), their projections, random starts and per-example norms.

`project(x_adv, x, eps, norm)`: L-inf: clip(clip(x_adv, x - eps, x + eps), 0, 1); L2: the
perturbation rescaled to norm min(||d||, eps), then clip to [0, 1] (clipping moves every pixel
towards x, so the result stays in the ball). This is the projection of Madry et al.'s
pgd_attack.py:58-59 (L-inf) and AutoAttack's autopgd_base.py:338-344 (L2: x + normalize(d)
min(eps, ||d||), then clamp), and the exact projection every attack applies last.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array

NORMS = ("linf", "l2")


def check_norm(norm: str) -> None:
  if norm not in NORMS:
    raise ValueError(f"norm={norm!r}; valid: {', '.join(NORMS)}.")


def _per_example(v: Array, x: Array) -> Array:
  """(N,) -> (N, 1, ..., 1) to broadcast against x."""
  return jnp.reshape(v, (-1,) + (1,) * (x.ndim - 1))


def norms(delta: Array, norm: str) -> Array:
  """(N,) per-example L-inf or L2 norm of a perturbation."""
  flat = delta.reshape(delta.shape[0], -1)
  if norm == "linf":
    return jnp.max(jnp.abs(flat), axis=-1)
  return jnp.sqrt(jnp.sum(flat * flat, axis=-1))


def normalize(v: Array, norm: str) -> Array:
  """v / (||v|| + 1e-12) per example (AutoAttack's `normalize`, autopgd_base.py:176-189)."""
  return v / _per_example(norms(v, norm) + 1e-12, v)


def step_direction(grad: Array, norm: str) -> Array:
  """The steepest-ascent direction of unit norm: sign(g) (L-inf), g / ||g|| (L2); 0 for g = 0."""
  if norm == "linf":
    return jnp.sign(grad)
  return normalize(grad, "l2")


def project(x_adv: Array, x: Array, eps: Array | float, norm: str) -> Array:
  """Onto the eps ball around x intersected with [0, 1]; eps a scalar or (N,)."""
  eps = jnp.asarray(eps, jnp.float32)
  e = _per_example(jnp.broadcast_to(eps, x.shape[:1]), x)
  if norm == "linf":
    return jnp.clip(jnp.clip(x_adv, x - e, x + e), 0.0, 1.0)
  delta = x_adv - x
  n = _per_example(norms(delta, "l2"), x)
  scale = jnp.where(n > e, e / jnp.maximum(n, 1e-30), 1.0)
  return jnp.clip(x + delta * scale, 0.0, 1.0)


def random_start(key: Array, x: Array, eps: Array | float, norm: str) -> Array:
  """A random point of the ball, projected: L-inf: x + U(-eps, eps)^d (Madry et al.,
  pgd_attack.py:46-48); L2: x + eps u^(1/d) g / ||g||, g ~ N(0, I), u ~ U(0, 1) (uniform in the
  ball)."""
  eps = jnp.asarray(eps, jnp.float32)
  size = x.size  # Flat draws: a multi-axis threefry draw takes seconds to compile.
  if norm == "linf":
    delta = jax.random.uniform(key, (size,), jnp.float32, -1.0, 1.0).reshape(x.shape) * eps
  else:
    k_dir, k_rad = jax.random.split(key)
    g = jax.random.normal(k_dir, (size,), jnp.float32).reshape(x.shape)
    d = size // x.shape[0]
    u = jax.random.uniform(k_rad, (x.shape[0],), jnp.float32)
    delta = normalize(g, "l2") * _per_example(eps * u ** (1.0 / d), x)
  return project(x + delta, x, eps, norm)


def random_noise(key: Array, x: Array, eps: Array | float, norm: str) -> Array:
  """Noise on the sphere of radius eps: L-inf uniform random signs eps * (+-1)^d; L2 a uniformly
  random direction of norm eps; clipped to [0, 1]. The sanity baseline of an attack."""
  eps = jnp.asarray(eps, jnp.float32)
  size = x.size
  if norm == "linf":
    signs = jnp.where(jax.random.bernoulli(key, 0.5, (size,)), 1.0, -1.0).reshape(x.shape)
    return project(x + eps * signs, x, eps, norm)
  g = jax.random.normal(key, (size,), jnp.float32).reshape(x.shape)
  return project(x + eps * normalize(g, "l2"), x, eps, norm)


def in_ball(x_adv: Array, x: Array, eps: float, norm: str, atol: float = 1e-6) -> Array:
  """(N,) bool: ||x_adv - x|| <= eps + atol (relative for L2) and x_adv in [0, 1]."""
  n = norms(x_adv - x, norm)
  tol = atol if norm == "linf" else atol * (1.0 + eps) * 10
  flat = x_adv.reshape(x.shape[0], -1)
  return (n <= eps + tol) & jnp.all((flat >= 0.0) & (flat <= 1.0), axis=-1)
