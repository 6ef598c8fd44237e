"""FAB-T, the targeted Fast Adaptive Boundary attack (Croce & Hein, ICML 2020, "Minimally
distorted adversarial examples with a fast adaptive boundary attack"), L-inf and L2, as
AutoAttack's standard version runs it: 100 iterations, 9 target classes, 1 restart.

Checked against the official code, github.com/fra31/auto-attack autoattack/fab_base.py,
fab_pt.py and fab_projections.py (newest stored commit a392200):
- Targets (fab_base.py:113-116, :303-310): for rank = 2 .. target_classes + 1 the class of the
  rank-th highest clean logit; each target's run attacks the examples still robust.
- The linearised boundary (fab_pt.py:100-114): f = z_t - z_y and its input gradient g at the
  current point x1; the hyperplane {z: <g, z> = <g, x1> - f}.
- Step (fab_base.py:190-226): d1, d2 the minimal L-inf (L2) steps from x1 and from the clean x
  onto the hyperplane inside the box [0, 1] (`projection_linf`, `projection_l2`; here
  `_proj_linf`, `_proj_l2`, the same sort and bisection); a_i = max(||d_i||, 1e-8),
  alpha = min(max(a1 / (a1 + a2), 0), alpha_max = 0.1); x1 <- clip((x1 + eta d1) (1 - alpha)
  + (x + eta d2) alpha, 0, 1), overshoot eta = 1.05.
- Where x1 is misclassified (argmax != y): keep it if closer to x than the best so far, then
  x1 <- x + beta (x1 - x), beta = 0.9 (fab_base.py:228-249).
- An example counts as broken when the closest point found is misclassified AND within eps
  (`perturb`, fab_base.py:312-319): else its image is the clean one. Restart r > 0 starts from
  x + (eps / 2) t / ||t|| (L-inf t ~ U(-1, 1)^d, L2 t ~ N(0, I)), clipped, as `use_rand_start`.
Examples run in lockstep (one static shape); those misclassified when clean or already broken
by an earlier target keep their result, as the official code attacks only the others.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from freqrobust.attacks import ball, fgsm_pgd as pgd_lib, losses

Array = jax.Array

ALPHA_MAX = 0.1
ETA = 1.05
BETA = 0.9


def _take(v, idx):
  return jnp.take_along_axis(v, idx, axis=1)


def _bisect(n_feat, lb, ub, is_lower):
  """The official fixed-count bisection: ceil(log2 D) halvings of [lb, ub]."""
  for _ in range(math.ceil(math.log2(n_feat))):
    mid = jnp.floor((lb + ub) / 2)
    c = is_lower(mid.astype(jnp.int32))
    lb, ub = jnp.where(c, mid, lb), jnp.where(c, ub, mid)
  return lb.astype(jnp.int32)


def _proj_linf(t, w, b):
  """The smallest L-inf d with <w, t + d> = b and t + d in [0, 1] (`projection_linf`)."""
  n_feat = t.shape[1]
  sign = jnp.where(jnp.sum(w * t, 1) - b >= 0, 1.0, -1.0)
  w, b = w * sign[:, None], b * sign
  a = (w < 0).astype(t.dtype)
  d = (a - t) * (w != 0)
  p = a - t * (2 * a - 1)
  indp = jnp.argsort(p, axis=1)
  b = b - jnp.sum(w * t, 1)
  b0 = jnp.sum(w * d, 1)
  indp2 = indp[:, ::-1]
  ws = _take(w, indp2)
  s = jnp.cumsum(jnp.abs(ws), axis=1)
  sb = jnp.cumsum(-ws * _take(d, indp2), axis=1) + b0[:, None]
  b2 = sb[:, -1] - s[:, -1] * _take(p, indp[:, :1])[:, 0]
  c_l = b - b2 > 0
  c2 = (b - b0 > 0) & ~c_l

  def lower(k):
    cur = _take(indp, n_feat - 1 - k[:, None])
    return b - (_take(sb, k[:, None]) - _take(s, k[:, None]) * _take(p, cur))[:, 0] > 0

  zeros = jnp.zeros_like(b)
  lb = _bisect(n_feat, zeros, zeros + n_feat - 1, lower)
  lmbd_l = jnp.maximum((b - sb[:, -1]) / -s[:, -1], 0.0)[:, None]
  lmbd_2 = jnp.maximum((b - _take(sb, lb[:, None])[:, 0]) / -_take(s, lb[:, None])[:, 0],
                       0.0)[:, None]
  d = jnp.where(c_l[:, None], (2 * a - 1) * lmbd_l, d)
  d2 = jnp.minimum(lmbd_2, d) * a + jnp.maximum(-lmbd_2, d) * (1 - a)
  d = jnp.where(c2[:, None], d2, d)
  return d * (w != 0)


def _proj_l2(t, w, b):
  """The smallest L2 d with <w, t + d> = b and t + d in [0, 1] (`projection_l2`)."""
  n_feat = t.shape[1]
  big = 1e12
  c = jnp.sum(w * t, 1) - b
  sign = jnp.where(c >= 0, 1.0, -1.0)
  w, c = w * sign[:, None], c * sign
  live = jnp.abs(w) > 1e-8
  safe_w = jnp.where(live, w, 1.0)
  r = jnp.clip(jnp.maximum(t / safe_w, (t - 1) / safe_w), -big, big)
  r = jnp.where(live & (r != -big), r, big)
  indr = jnp.argsort(r, axis=1)
  rs = _take(r, indr)
  rs2 = jnp.pad(rs[:, 1:], ((0, 0), (0, 1)))
  rs, rs2 = jnp.where(rs == big, 0.0, rs), jnp.where(rs2 == big, 0.0, rs2)
  w3s = _take(w * w, indr)
  w5 = jnp.sum(w3s, 1, keepdims=True)
  ws = w5 - jnp.cumsum(w3s, axis=1)
  d = -(r * w) * live
  s = jnp.concatenate([-w5 * rs[:, :1], jnp.cumsum((rs - rs2) * ws, axis=1) - w5 * rs[:, :1]], 1)
  c4 = s[:, 0] + c < 0
  c3 = jnp.sum(d * w, 1) + c > 0
  c2 = ~(c4 | c3)
  zeros = jnp.zeros_like(c)
  lb = _bisect(n_feat, zeros, zeros + n_feat - 1,
               lambda k: _take(s, k[:, None])[:, 0] + c > 0)[:, None]
  d = jnp.where(c4[:, None], -(c[:, None] / w5) * w, d)
  ws_lb = _take(ws, lb)
  alpha = (_take(s, lb) + c[:, None]) / jnp.where(ws_lb == 0, 1.0, ws_lb) + _take(rs, lb)
  alpha = jnp.where(ws_lb == 0, 0.0, alpha)
  c5 = (alpha > r).astype(t.dtype)
  d = jnp.where(c2[:, None], d * c5 - alpha * w * (1 - c5), d)
  return d * live


def _diff_and_grad(logits_fn, x1, labels, target):
  """f = z_t - z_y (N,) and its input gradient (`get_diff_logits_grads_batch_targeted`)."""
  def total(z):
    logits = logits_fn(z).astype(jnp.float32)
    rows = jnp.arange(z.shape[0])
    diff = logits[rows, target] - logits[rows, labels]
    return jnp.sum(diff), diff
  (_, diff), grad = jax.value_and_grad(total, has_aux=True)(x1)
  return diff, grad


def _single_run(logits_fn, key, x, labels, target, eps, *, norm, steps, random_start, unroll):
  """`attack_single_run` (targeted): (closest misclassified point, its distance; 1e10 if
  none)."""
  n = x.shape[0]
  flat = x.reshape(n, -1)
  proj = _proj_linf if norm == "linf" else _proj_l2
  x1 = x
  if random_start:
    if norm == "linf":
      t = jax.random.uniform(key, (x.size,), jnp.float32, -1.0, 1.0).reshape(x.shape)
    else:
      t = jax.random.normal(key, (x.size,), jnp.float32).reshape(x.shape)
    x1 = jnp.clip(x + 0.5 * eps * ball.normalize(t, norm), 0.0, 1.0)

  def body(i, s):
    x1, adv, res = s
    diff, grad = _diff_and_grad(logits_fn, x1, labels, target)
    w = grad.reshape(n, -1)
    b = -diff + jnp.sum(w * x1.reshape(n, -1), 1)
    d3 = proj(jnp.concatenate([x1.reshape(n, -1), flat]), jnp.concatenate([w, w]),
              jnp.concatenate([b, b]))
    d1, d2 = d3[:n].reshape(x.shape), d3[n:].reshape(x.shape)
    a0 = jnp.maximum(ball.norms(d3, norm), 1e-8)
    a1, a2 = a0[:n], a0[n:]
    alpha = jnp.minimum(jnp.maximum(a1 / (a1 + a2), 0.0), ALPHA_MAX)
    alpha = jnp.reshape(alpha, (-1,) + (1,) * (x.ndim - 1))
    x1 = jnp.clip((x1 + ETA * d1) * (1 - alpha) + (x + d2 * ETA) * alpha, 0.0, 1.0)
    is_adv = losses.misclassified(logits_fn(x1).astype(jnp.float32), labels)
    dist = ball.norms(x1 - x, norm)
    closer = is_adv & (dist < res)
    adv = pgd_lib._pick(closer, x1, adv)
    res = jnp.where(closer, dist, res)
    x1 = pgd_lib._pick(is_adv, x + (x1 - x) * BETA, x1)
    return x1, adv, res

  _, adv, res = pgd_lib.loop(steps, body, (x1, x, jnp.full((n,), 1e10, jnp.float32)), unroll)
  return adv, res


@functools.partial(jax.jit, static_argnums=(0,), static_argnames=(
    "norm", "steps", "random_start", "unroll"))
def _fab_t_jit(logits_fn, key, images, labels, eps, rank, *, norm, steps, random_start, unroll):
  """One FAB-T run towards the rank-th highest clean logit (traced: one compilation for every
  target): (adversarial images, broken within eps)."""
  clean = logits_fn(images).astype(jnp.float32)
  order = jnp.argsort(-clean, axis=-1)
  target = jnp.take_along_axis(order, jnp.full((images.shape[0], 1), rank - 1), axis=-1)[:, 0]
  adv, res = _single_run(logits_fn, key, images, labels, target, eps, norm=norm, steps=steps,
                         random_start=random_start, unroll=unroll)
  broken = (res < 1e10) & losses.misclassified(logits_fn(adv).astype(jnp.float32), labels)
  broken = broken & (ball.norms(adv - images, norm) <= eps)
  return adv, broken


def fab(logits_fn, key: Array, images: Array, labels: Array, *, eps: float,
        norm: str = "linf", steps: int = 100, target_classes: int = 9, restarts: int = 1,
        unroll=None) -> Array:
  """FAB-T adversarial images (float32, images' shape): per example the closest misclassified
  point found by the first target (rank 2, 3, ...) that breaks it within eps, else the clean
  image. `steps` = n_iter (100 in AutoAttack); restart r of target rank uses
  fold_in(fold_in(key, rank), r) (restart 0 starts at the clean image). eps traced; logits_fn
  static. Needs target_classes <= classes - 1."""
  pgd_lib._check(images, labels, eps, norm)
  x = jnp.asarray(images, jnp.float32)
  labels = jnp.asarray(labels)
  k = jax.eval_shape(logits_fn, x).shape[-1]
  if not 1 <= target_classes <= k - 1:
    raise ValueError(f"FAB-T needs 1 <= target_classes <= classes - 1, got {k} classes and "
                     f"target_classes={target_classes}.")
  if steps < 1 or restarts < 1:
    raise ValueError(f"steps >= 1 and restarts >= 1 expected, got {steps}, {restarts}.")
  unroll = pgd_lib.unroll_steps(int(steps), unroll)
  def run(run_key, rank, r):
    return _fab_t_jit(logits_fn, run_key, x, labels, jnp.float32(eps), jnp.int32(rank),
                      norm=norm, steps=int(steps), random_start=r > 0, unroll=unroll)
  return pgd_lib.over_targets(run, key, x, pgd_lib.correct(logits_fn, x, labels), target_classes,
                              restarts)
