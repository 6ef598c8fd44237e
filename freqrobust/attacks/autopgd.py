"""APGD-CE and APGD-DLR (Croce & Hein, "Reliable evaluation of adversarial robustness with an
ensemble of diverse parameter-free attacks", ICML 2020), L-inf and L2, pure JAX: one jit, a
`lax.fori_loop` over iterations (restarts are unrolled).

Checked line by line against the official code, github.com/fra31/auto-attack
autoattack/autopgd_base.py (newest stored commit a392200), `APGDAttack`:
- Checkpoints (:153-155, :405, :424): the first after n_iter_2 = max(int(0.22 n), 1) iterations,
  then every k iterations with k <- max(k - size_decr, n_iter_min), size_decr = max(int(0.03 n),
  1), n_iter_min = max(int(0.06 n), 1): the paper's p_0 = 0, p_1 = 0.22,
  p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06) in units of n.
- Initial point (:206-213, :230): L-inf x + eps t / max|t|, t ~ U(-1, 1)^d (the perturbation's
  largest coordinate is eps); L2 x + eps g / ||g||, g ~ N(0, I); then clamp to [0, 1].
- Initial step size eta = 2 eps for L-inf and L2 (:293-295), per example.
- Update with momentum (:326-344): a = 1 at the first iteration, then 0.75:
  z = P(x_k + eta sign(g)) (L2: eta g / ||g||), x_{k+1} = P(x_k + a (z - x_k) + (1 - a)
  (x_k - x_{k-1})), P the projection onto the ball and [0, 1] (`ball.project`).
- Bookkeeping (:381-401): robust flags acc <- acc & (argmax == y); x_best_adv <- every
  misclassified iterate; x_best, grad_best, loss_best <- where the loss strictly increased.
- At a checkpoint (:405-424): halve eta (and restart from x_best with grad_best) for the examples
  where condition 1, "the loss increased in at most rho k of the last k iterations" (rho = 0.75,
  `thr_decr`, :115; `check_oscillation`, :166-171), or condition 2, "eta was not reduced at the
  previous checkpoint and loss_best did not improve since" (:409-412), holds. The count of
  condition 1 compares loss_steps[i - c] > loss_steps[i - c - 1] for c < k; at the first
  checkpoint this reaches loss_steps[-1], the zero-initialised last row (Python's negative
  index), so the first iteration counts as an increase iff its loss is > 0; kept as in the code.
- DLR loss: `losses.dlr` (:191-197).
- Restarts (`perturb`, :500-516): each restart attacks the examples still robust and the first
  restart that fools an example gives its adversarial image. Here every restart runs on every
  example (one static shape) and the same selection is made per example (misclassified first,
  then the highest loss); restart r uses `jax.random.fold_in(key, r)`.
Deviation: for an example no restart fools, `perturb` returns the clean image; this returns its
highest-loss point (in the ball; equally robust). The clean image is a candidate as in PGD, so
an example misclassified when clean stays misclassified. AutoAttack's standard version runs
APGD-CE with n_iter = 100 and 5 restarts for `version='plus'` and 1 for 'standard'
(autoattack.py:33, :309); the defaults here: steps = 100, restarts = 1.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from freqrobust.attacks import ball, bands, fgsm_pgd as pgd_lib, losses

Array = jax.Array

RHO = 0.75
MOMENTUM = 0.75


def checkpoint_schedule(n_iter: int) -> tuple[int, int, int]:
  """(n_iter_2, n_iter_min, size_decr) of autopgd_base.py:153-155."""
  return max(int(0.22 * n_iter), 1), max(int(0.06 * n_iter), 1), max(int(0.03 * n_iter), 1)


def checkpoints(n_iter: int) -> list[int]:
  """The iterations (0-based) after which the step size may be halved."""
  first, minimum, decr = checkpoint_schedule(n_iter)
  out, k, counter = [], first, 0
  for i in range(n_iter):
    counter += 1
    if counter == k:
      out.append(i)
      k, counter = max(k - decr, minimum), 0
  return out


def _single_run(logits_fn, key, x, labels, eps, *, norm, steps, loss, unroll=False,
                space=bands.PIXEL, target=None):
  """`attack_single_run`: (x_best, robust flags, loss_best, x_best_adv); `target` (N,) the
  target classes of loss "dlr_targeted" (APGD-T, `apgd_targeted`)."""
  n = x.shape[0]
  shape = (-1,) + (1,) * (x.ndim - 1)
  if norm == "linf":
    t = jax.random.uniform(key, (x.size,), jnp.float32, -1.0, 1.0).reshape(x.shape)
  else:
    t = jax.random.normal(key, (x.size,), jnp.float32).reshape(x.shape)
  x_adv = space.initial(x + eps * ball.normalize(t, norm), x, eps, norm)
  loss_indiv, logits, grad = pgd_lib.loss_and_grad(logits_fn, x_adv, labels, loss, target)
  first, minimum, decr = checkpoint_schedule(steps)
  state = dict(
      x_adv=x_adv, x_old=x_adv, grad=grad, grad_best=grad, x_best=x_adv, x_best_adv=x_adv,
      acc=~losses.misclassified(logits, labels), loss_best=loss_indiv,
      step=jnp.full((n,), 2.0 * eps, jnp.float32), k=jnp.int32(first), counter=jnp.int32(0),
      loss_steps=jnp.zeros((steps, n), jnp.float32), last_check=loss_indiv,
      reduced=jnp.ones((n,), bool))

  def body(i, s):
    grad2 = s["x_adv"] - s["x_old"]
    x_old = s["x_adv"]
    a = jnp.where(i > 0, MOMENTUM, 1.0)
    step = jnp.reshape(s["step"], shape)
    z = space.project(s["x_adv"] + step * space.direction(s["grad"], norm), x, eps, norm)
    x_new = space.project(s["x_adv"] + (z - s["x_adv"]) * a + grad2 * (1.0 - a), x, eps, norm)
    value, logits, grad = pgd_lib.loss_and_grad(logits_fn, x_new, labels, loss, target)
    pred = ~losses.misclassified(logits, labels)
    acc = s["acc"] & pred
    x_best_adv = pgd_lib._pick(~pred, x_new, s["x_best_adv"])
    loss_steps = s["loss_steps"].at[i].set(value)
    improved = value > s["loss_best"]
    x_best = pgd_lib._pick(improved, x_new, s["x_best"])
    grad_best = pgd_lib._pick(improved, grad, s["grad_best"])
    loss_best = jnp.where(improved, value, s["loss_best"])
    counter = s["counter"] + 1
    # The checkpoint (computed every iteration, applied where counter == k).
    k = s["k"]
    increases = (loss_steps > jnp.roll(loss_steps, 1, axis=0)).astype(jnp.float32)
    rows = jnp.arange(steps)[:, None]
    window = (rows <= i) & (rows > i - k)
    count = jnp.sum(jnp.where(window, increases, 0.0), axis=0)
    oscillating = count <= k.astype(jnp.float32) * RHO
    no_improvement = ~s["reduced"] & (s["last_check"] >= loss_best)
    reduce = oscillating | no_improvement
    check = counter == k
    at = check & reduce
    return dict(
        x_adv=pgd_lib._pick(at, x_best, x_new), x_old=x_old,
        grad=pgd_lib._pick(at, grad_best, grad), grad_best=grad_best, x_best=x_best,
        x_best_adv=x_best_adv, acc=acc, loss_best=loss_best,
        step=jnp.where(at, s["step"] / 2.0, s["step"]),
        k=jnp.where(check, jnp.maximum(k - decr, minimum), k),
        counter=jnp.where(check, 0, counter), loss_steps=loss_steps,
        last_check=jnp.where(check, loss_best, s["last_check"]),
        reduced=jnp.where(check, reduce, s["reduced"]))

  s = pgd_lib.loop(steps, body, state, unroll)
  return s["x_best"], s["acc"], s["loss_best"], s["x_best_adv"]


def apgd_core(logits_fn, key, images, labels, eps, *, norm: str, steps: int = 100,
              loss: str = "ce", restarts: int = 1, unroll=None, band=None) -> Array:
  """APGD without jit or validation; see `apgd`. Restarts are a Python loop; the iterations a
  `fori_loop` (unrolled as `fgsm_pgd.unroll_steps` says: on the CPU for <= CPU_UNROLL_MAX_STEPS iterations)."""
  unroll = pgd_lib.unroll_steps(steps, unroll)
  space = bands.space(band)  # band=None: `ball`'s own operations.
  x = images.astype(jnp.float32)
  eps = jnp.asarray(eps, jnp.float32)
  clean_logits = logits_fn(x).astype(jnp.float32)
  best = (x, losses.misclassified(clean_logits, labels),
          losses.per_example(loss, clean_logits, labels))

  for r in range(restarts):
    x_best, acc, loss_best, x_best_adv = _single_run(
        logits_fn, jax.random.fold_in(key, r), x, labels, eps, norm=norm, steps=steps, loss=loss,
        unroll=unroll, space=space)
    fooled = ~acc
    cand = pgd_lib._pick(fooled, x_best_adv, x_best)
    b_x, b_f, b_l = best
    take = pgd_lib._better(fooled, loss_best, b_f, b_l)
    best = pgd_lib._pick(take, cand, b_x), b_f | fooled, jnp.where(take, loss_best, b_l)
  return space.output(best[0], x, eps, norm)


@functools.partial(jax.jit, static_argnums=(0,), static_argnames=("norm", "steps", "loss",
                                                                  "restarts", "unroll", "band"))
def _apgd_jit(logits_fn, key, images, labels, eps, *, norm, steps, loss, restarts, unroll,
              band=None):
  return apgd_core(logits_fn, key, images, labels, eps, norm=norm, steps=steps, loss=loss,
                   restarts=restarts, unroll=unroll, band=band)


def apgd(logits_fn, key: Array, images: Array, labels: Array, *, eps: float,
         norm: str = "linf", steps: int = 100, loss: str = "ce", restarts: int = 1,
         unroll=None, band=None, target_classes: int = 9) -> Array:
  """APGD adversarial images (float32, images' shape) inside the eps ball and [0, 1].

  `loss`: "ce" (APGD-CE), "dlr" (APGD-DLR, needs >= 3 classes) or "dlr_targeted" (APGD-T,
  `apgd_targeted`, with `target_classes` targets); `steps` = n_iter (100 in AutoAttack); eps
  traced (no recompilation per eps); logits_fn static. `band`: None or a frequency band, as in
  `fgsm_pgd.pgd` (docs/METHOD.md §12; not with "dlr_targeted").
  """
  if loss == "dlr_targeted":
    if band is not None:
      raise ValueError("APGD-T (loss='dlr_targeted') runs unrestricted: band must be None.")
    return apgd_targeted(logits_fn, key, images, labels, eps=eps, norm=norm, steps=steps,
                         restarts=restarts, target_classes=target_classes, unroll=unroll)
  band = bands.check_band(band, *jnp.shape(images)[-3:-1]) if band is not None else None
  pgd_lib._check(images, labels, eps, norm, loss)
  if loss not in ("ce", "dlr"):
    raise ValueError(f"APGD loss={loss!r}; valid: 'ce', 'dlr', 'dlr_targeted'.")
  if steps < 1 or restarts < 1:
    raise ValueError(f"steps >= 1 and restarts >= 1 expected, got {steps}, {restarts}.")
  return _apgd_jit(logits_fn, key, jnp.asarray(images, jnp.float32), jnp.asarray(labels),
                   jnp.float32(eps), norm=norm, steps=int(steps), loss=loss,
                   restarts=int(restarts), unroll=pgd_lib.unroll_steps(int(steps), unroll),
                   band=band)


# APGD-T: `APGDAttack_targeted` (autopgd_base.py:566-686).


@functools.partial(jax.jit, static_argnums=(0,), static_argnames=("norm", "steps", "unroll"))
def _apgd_t_jit(logits_fn, key, images, labels, eps, rank, *, norm, steps, unroll):
  """One run of APGD-T against the rank-th highest clean logit (traced: one compilation for
  every target): (x_best_adv, still-robust flags)."""
  clean = logits_fn(images).astype(jnp.float32)
  order = jnp.argsort(-clean, axis=-1)
  target = jnp.take_along_axis(order, jnp.full((images.shape[0], 1), rank - 1), axis=-1)[:, 0]
  _, acc, _, x_best_adv = _single_run(logits_fn, key, images, labels, eps, norm=norm,
                                      steps=steps, loss="dlr_targeted", unroll=unroll,
                                      target=target)
  return ball.project(x_best_adv, images, eps, norm), acc


def apgd_targeted(logits_fn, key: Array, images: Array, labels: Array, *, eps: float,
                  norm: str = "linf", steps: int = 100, restarts: int = 1,
                  target_classes: int = 9, unroll=None) -> Array:
  """APGD-T adversarial images: for rank = 2 .. target_classes + 1, `restarts` APGD runs of the
  targeted DLR loss (`losses.dlr_targeted`) towards the class of the rank-th highest clean logit,
  each on the examples still robust (`APGDAttack_targeted.perturb`, autopgd_base.py:655-686);
  an example's image is the first misclassified point found, else the clean image (as the
  official code). Run r of target rank uses fold_in(fold_in(key, rank), r). Stops early once
  no example is robust. Needs K >= 4 classes and target_classes <= K - 1."""
  pgd_lib._check(images, labels, eps, norm)
  x = jnp.asarray(images, jnp.float32)
  labels = jnp.asarray(labels)
  k = jax.eval_shape(logits_fn, x).shape[-1]
  if k < 4 or not 1 <= target_classes <= k - 1:
    raise ValueError(f"APGD-T needs >= 4 classes and 1 <= target_classes <= classes - 1, got "
                     f"{k} classes and target_classes={target_classes}.")
  if steps < 1 or restarts < 1:
    raise ValueError(f"steps >= 1 and restarts >= 1 expected, got {steps}, {restarts}.")
  unroll = pgd_lib.unroll_steps(int(steps), unroll)
  def run(run_key, rank, r):
    del r
    cand, acc = _apgd_t_jit(logits_fn, run_key, x, labels, jnp.float32(eps), jnp.int32(rank),
                            norm=norm, steps=int(steps), unroll=unroll)
    return cand, ~acc
  return pgd_lib.over_targets(run, key, x, pgd_lib.correct(logits_fn, x, labels), target_classes,
                              restarts)
