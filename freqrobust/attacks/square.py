"""The Square attack (Andriushchenko, Croce, Flammarion, Hein, ECCV 2020), L-inf and L2, a
score-based attack: forward passes only, no gradient. Pure JAX, one jit, a `lax.while_loop`
over queries that stops once every example is broken.

Checked against the official code, github.com/fra31/auto-attack autoattack/square.py (newest
stored commit a392200), `SquareAttack`, as AutoAttack runs it (autoattack.py:42-43: p_init 0.8,
5000 queries, 1 restart, `resc_schedule=False`):
- Loss: the margin z_y - max_{i != y} z_i, minimised (`margin_and_loss`, loss='margin'); an
  example is done once its margin is <= 0.
- p schedule (`p_selection`): p_init up to iteration 10, then halved at 10, 50, 200, 500, 1000,
  2000, 4000, 6000 and 8000 iterations (p_init / 512 after 8000); with `rescale_schedule` the
  iteration is first mapped to int(i / queries * 10000) (the class default, off in AutoAttack).
- Square side: L-inf max(round(sqrt(p h w)), 1); L2 max(round(sqrt(p h w)), 3), made odd; both
  at most min(h, w) (`round` is Python's, half to even). Position: floor(U (h - s)).
- L-inf init: vertical stripes, x + eps * (+-1) per image, channel and column, clipped to
  [0, 1]. Step: a square of +-2 eps (one sign per channel) added to the best point, then
  projected onto the ball and [0, 1].
- L2 init: tiles of side h // 5 from (h - 5 (h // 5)) // 2, each eta(s) (`eta`: two halves of
  opposite sign of concentric rectangles weighted 1 / (r + 1)^2, randomly transposed) times a
  sign per image and channel, normalised to norm eps and clipped. Step: the perturbation in a
  square window is replaced by eta(s) +- plus its old content normalised, rescaled to the room
  left sqrt(max(eps^2 - ||delta||^2, 0) / c + ||delta on both windows||^2); a second window is
  zeroed; the whole perturbation is rescaled to norm eps and clipped to [0, 1].
- Update: the new point replaces the best when the loss decreased or the example is broken.
Differences (random streams only): the official code draws one square position per iteration
for the whole batch (and, for L-inf, one sign per channel for the whole batch; for L2, one
transposition of eta per iteration / tile); here each example draws its own, as in the
original paper's code. Every example runs in lockstep (one static shape), but only examples not
yet broken are updated and counted as queried, as the official code attacks only those.
The result: per example, the best point where it is misclassified (re-scored with argmax, as
`perturb`), else the clean image.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from freqrobust.attacks import ball, fgsm_pgd as pgd_lib, losses

Array = jax.Array

_P_BOUNDS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def p_selection(p_init: float, it: int, queries: int, rescale: bool = False) -> float:
  """The fraction of pixels the square covers at iteration `it` (0-based)."""
  if rescale:
    it = int(it / queries * 10000)
  halvings = sum(it > b for b in _P_BOUNDS)
  return p_init / 2 ** halvings


def side(p: float, h: int, w: int, norm: str) -> int:
  """The square's side for fraction p on an h x w image."""
  s = int(round(math.sqrt(p * h * w)))
  if norm == "linf":
    s = max(s, 1)
  else:
    s = max(s, 3)
    s += s % 2 == 0
  return min(s, min(h, w))


def _rectangles(x: int, y: int) -> np.ndarray:
  """`eta_rectangles` (L2): concentric rectangles around (x // 2, y // 2), ring r weighted
  1 / (r + 1)^2, normalised to unit L2 norm."""
  d = np.zeros((x, y))
  cx, cy = x // 2, y // 2
  for r in range(max(x // 2 + 1, y // 2 + 1)):
    d[max(cx - r, 0):min(cx + r + 1, x), max(cy - r, 0):min(cy + r + 1, y)] += 1.0 / (r + 1) ** 2
  total = np.sqrt(np.sum(d * d))
  return d / total if total > 0 else d


def eta(s: int) -> np.ndarray:
  """`eta(s)` (L2), untransposed: the top s // 2 rows positive, the rest negative, unit norm."""
  d = np.zeros((s, s))
  d[:s // 2] = _rectangles(s // 2, s)
  d[s // 2:] = -_rectangles(s - s // 2, s)
  return d / np.sqrt(np.sum(d * d))


def _schedule(queries, h, w, norm, p_init, rescale):
  """Static tables: the side per iteration, its index among the distinct sides, and the L2
  patterns eta(s) (both orientations) in the top-left corner of an h x w canvas."""
  sides = [side(p_selection(p_init, i, queries, rescale), h, w, norm) for i in range(queries)]
  distinct = sorted(set(sides))
  which = np.array([distinct.index(s) for s in sides], np.int32)
  canvas = np.zeros((len(distinct), 2, h, w), np.float32)
  if norm == "l2":
    for j, s in enumerate(distinct):
      canvas[j, 0, :s, :s] = eta(s)
      canvas[j, 1, :s, :s] = eta(s).T
  return np.array(sides, np.int32), which, canvas


def _signs(key, shape):
  return jnp.where(jax.random.bernoulli(key, 0.5, shape), 1.0, -1.0).astype(jnp.float32)


def _window(key, n, h, w, s):
  """Per-example top-left corners (floor(U (h - s)), floor(U (w - s))) and the (N, H, W, 1)
  mask of the s x s square there."""
  u = jax.random.uniform(key, (2, n))
  vh = jnp.floor(u[0] * (h - s)).astype(jnp.int32)
  vw = jnp.floor(u[1] * (w - s)).astype(jnp.int32)
  rows, cols = jnp.arange(h)[None, :], jnp.arange(w)[None, :]
  in_r = (rows >= vh[:, None]) & (rows < vh[:, None] + s)
  in_c = (cols >= vw[:, None]) & (cols < vw[:, None] + s)
  return vh, vw, (in_r[:, :, None] & in_c[:, None, :])[..., None]


def _place(pattern, vh, vw):
  """(N, H, W) patterns moved from the top-left corner to (vh, vw) per example."""
  h, w = pattern.shape[1:]
  def one(p, a, b):
    return p[(jnp.arange(h) - a) % h][:, (jnp.arange(w) - b) % w]
  return jax.vmap(one)(pattern, vh, vw)


def _l2_init(key, x, eps):
  """The L2 starting point: the tiling of eta(h // 5) with random signs."""
  n, h, w, c = x.shape
  s = h // 5
  start = (h - 5 * s) // 2
  delta = jnp.zeros_like(x)
  k_sign, k_t = jax.random.split(key)
  e = jnp.asarray(eta(s), jnp.float32)
  tile = 0
  for i in range(h // s):
    for j in range(w // s):
      vh, vw = start + i * s, start + j * s
      if vh + s > h or vw + s > w:
        continue
      flip = jax.random.bernoulli(jax.random.fold_in(k_t, tile), 0.5, (n, 1, 1, 1))
      pat = jnp.where(flip, e.T[None, :, :, None], e[None, :, :, None])
      sign = _signs(jax.random.fold_in(k_sign, tile), (n, 1, 1, c))
      delta = delta.at[:, vh:vh + s, vw:vw + s, :].add(pat * sign)
      tile += 1
  return jnp.clip(x + ball.normalize(delta, "l2") * eps, 0.0, 1.0)


def _l2_step(key, x, x_best, eps, s, pattern):
  """The L2 proposal (square.py:339-379) with per-example windows."""
  n, h, w, c = x.shape
  k1, k2, k3, k4 = jax.random.split(key, 4)
  vh, vw, m1 = _window(k1, n, h, w, s)
  _, _, m2 = _window(k2, n, h, w, s)
  flip = jax.random.bernoulli(k3, 0.5, (n,))
  pat = _place(jnp.where(flip[:, None, None], pattern[1][None], pattern[0][None]), vh, vw)
  delta = x_best - x
  def wnorm(v):
    return jnp.sqrt(jnp.sum(v * v, axis=(1, 2), keepdims=True))
  norm_1 = wnorm(delta * m1)
  norm_image = jnp.sqrt(jnp.sum(delta * delta, axis=(1, 2, 3), keepdims=True))
  norm_windows = wnorm(delta * (m1 | m2))
  new = pat[..., None] * _signs(k4, (n, 1, 1, c)) + delta * m1 / (1e-12 + norm_1)
  room = jnp.maximum(eps * eps - norm_image ** 2, 0.0) / c + norm_windows ** 2
  new = new / (1e-12 + wnorm(new)) * jnp.sqrt(room)
  delta = jnp.where(m1, new, jnp.where(m2, 0.0, delta))
  return jnp.clip(x + ball.normalize(delta, "l2") * eps, 0.0, 1.0)


def _linf_step(key, x, x_best, eps, s):
  """The L-inf proposal (square.py:254-266) with per-example windows and signs."""
  n, h, w, c = x.shape
  k1, k2 = jax.random.split(key)
  _, _, m = _window(k1, n, h, w, s)
  x_new = x_best + m * (2.0 * eps) * _signs(k2, (n, 1, 1, c))
  return ball.project(x_new, x, eps, "linf")


def _margin(logits_fn, z, labels):
  logits = logits_fn(z).astype(jnp.float32)
  return -losses.margin(logits, labels)


@functools.partial(jax.jit, static_argnums=(0,), static_argnames=(
    "norm", "queries", "p_init", "rescale"))
def _square_jit(logits_fn, key, images, labels, eps, *, norm, queries, p_init, rescale):
  x = images.astype(jnp.float32)
  n, h, w, c = x.shape
  sides, which, canvas = _schedule(queries, h, w, norm, p_init, rescale)
  sides, which, canvas = jnp.asarray(sides), jnp.asarray(which), jnp.asarray(canvas)
  k_init, k_loop = jax.random.split(key)
  attack = _margin(logits_fn, x, labels) > 0.0  # `perturb` attacks the correct ones only.
  if norm == "linf":
    x_best = jnp.clip(x + eps * _signs(k_init, (n, 1, w, c)), 0.0, 1.0)
  else:
    x_best = _l2_init(k_init, x, eps)
  margin = _margin(logits_fn, x_best, labels)

  def cond(state):
    i, _, margin_min, _ = state
    return (i < queries) & jnp.any(attack & (margin_min > 0.0))

  def body(state):
    i, x_best, margin_min, count = state
    active = attack & (margin_min > 0.0)
    key_i = jax.random.fold_in(k_loop, i)
    if norm == "linf":
      x_new = _linf_step(key_i, x, x_best, eps, sides[i])
    else:
      x_new = _l2_step(key_i, x, x_best, eps, sides[i], canvas[which[i]])
    m = _margin(logits_fn, x_new, labels)
    # With the margin loss, loss_min is margin_min: take the new point where the margin fell
    # or the example is broken.
    take = active & ((m < margin_min) | (m <= 0.0))
    return (i + 1, pgd_lib._pick(take, x_new, x_best), jnp.where(take, m, margin_min),
            count + active.astype(jnp.int32))

  state = (jnp.int32(0), x_best, margin, jnp.ones((n,), jnp.int32))
  _, x_best, _, count = jax.lax.while_loop(cond, body, state)
  fooled = attack & losses.misclassified(logits_fn(x_best).astype(jnp.float32), labels)
  return pgd_lib._pick(fooled, x_best, x), jnp.where(attack, count, 0)


def square(logits_fn, key: Array, images: Array, labels: Array, *, eps: float,
           norm: str = "linf", queries: int = 5000, p_init: float = 0.8,
           rescale_schedule: bool = False, return_queries: bool = False):
  """Square-attack images (float32, images' shape, NHWC) inside the eps ball and [0, 1]:
  per example the misclassified point found, else the clean image.

  `queries`: iterations (one forward pass each per example still correct; 5000 in AutoAttack);
  `p_init`: the square's initial fraction of the image; `rescale_schedule`: stretch the p
  schedule to `queries` (the official class default; AutoAttack runs without). eps traced;
  logits_fn static. With `return_queries`, also the (N,) queries each example used (the
  starting point counts one; 0 for examples misclassified when clean).
  """
  pgd_lib._check(images, labels, eps, norm)
  if images.ndim != 4:
    raise ValueError(f"Square needs NHWC images, got shape {images.shape}.")
  if queries < 1 or not 0.0 < p_init <= 1.0:
    raise ValueError(f"queries >= 1 and 0 < p_init <= 1 expected, got {queries}, {p_init}.")
  if norm == "l2" and images.shape[1] < 5:
    raise ValueError(f"Square L2 tiles its start in squares of side height // 5; images of "
                     f"height >= 5 needed, got {images.shape[1]}.")
  adv, count = _square_jit(logits_fn, key, jnp.asarray(images, jnp.float32),
                           jnp.asarray(labels), jnp.float32(eps), norm=norm,
                           queries=int(queries), p_init=float(p_init),
                           rescale=bool(rescale_schedule))
  return (adv, count) if return_queries else adv
