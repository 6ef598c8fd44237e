"""FGSM and PGD (L-inf and L2), pure JAX, one jit per attack (the steps a `lax.fori_loop`, traced
unrolled on the CPU for <= 16 steps; restarts unrolled), on any `logits_fn(images in [0, 1]) ->
logits`.

PGD (Madry, Makelov, Schmidt, Tsipras, Vladu, ICLR 2018; github.com/MadryLab/cifar10_challenge,
pgd_attack.py:43-61 at its newest stored commit): random start x + U(-eps, eps) clipped to [0, 1]
(:46-48), `steps` signed-gradient ascent steps x <- clip(clip(x + a sign(g), x0 - eps, x0 + eps),
0, 1) (:52-59) of the cross-entropy ("xent", config.json:30) or the margin ("cw", :28-36, here
unclipped). CIFAR-10 protocol (config.json:26-29): eps 8, step 2, 10 steps on 0-255, random start;
in [0, 1] units eps = 8/255, a = 2/255 = 2.5 eps / steps, this module's default step size.
The L2 variant steps along g / ||g|| and projects onto the L2 ball (`ball.project`).

Restarts: restart r starts from `jax.random.fold_in(key, r)` (so restart 0 is the same for any
number of restarts) and an example counts as broken when ANY restart breaks it: per example the
returned image is the first misclassified point found, else the point of highest loss, over every
iterate of every restart and the clean image itself (`select="best"`, the evaluation default;
AutoAttack's APGD also keeps the best iterate). Keeping the clean image as a candidate makes the
attack never weaker than no attack, and eps = 0 returns the images exactly. `select="last"`
returns the last iterate of one restart, as the references' training loops do (used by
adversarial training, freqrobust/augment/adversarial.py).

FGSM (Goodfellow, Shlens, Szegedy 2015): x + eps sign(grad CE) (L-inf) or x + eps g / ||g||
(L2), then the projection; no random start.
"""
from __future__ import annotations

import functools
from typing import Callable, Optional

import jax
import jax.numpy as jnp

from freqrobust.attacks import ball, bands, losses

Array = jax.Array
LogitsFn = Callable[[Array], Array]


# XLA's CPU backend runs a `while` loop of convolutions several times slower than the same steps
# unrolled (a small ResNet's PGD-10 at batch 128: 5.7 vs 0.9 CPU s per call,
# bench/bench_attacks.py; the adversarial evaluation's PGD-20 at batch 250: 22.2 vs 4.4 s per
# call, APGD-50: 55.4 vs 12.7 s, for 9 s and 36 s more compilation, Intel Xeon, 2026-12-05);
# so on the CPU loops of at most this many steps are unrolled (compile time grows with them).
CPU_UNROLL_MAX_STEPS = 64


def unroll_steps(steps: int, unroll=None) -> bool:
  """Whether to unroll a loop of `steps` iterations: `unroll` if given, else on the CPU only,
  for at most CPU_UNROLL_MAX_STEPS steps."""
  if unroll is not None:
    return bool(unroll)
  return jax.default_backend() == "cpu" and steps <= CPU_UNROLL_MAX_STEPS


def loop(n: int, body, init, unroll: bool):
  """`lax.fori_loop(0, n, body, init)`, or the same steps traced one after the other (unroll;
  a Python loop: XLA's CPU backend also ran a one-trip unrolled `fori_loop` slower)."""
  if not unroll:
    return jax.lax.fori_loop(0, n, body, init)
  for i in range(n):
    init = body(i, init)
  return init


def loss_and_grad(logits_fn: LogitsFn, x: Array, labels: Array, loss: str, target=None):
  """(per-example loss (N,), logits (N, K)), gradient of the summed loss w.r.t. x; `target`
  (N,) the target classes of a targeted loss."""
  def total(z):
    logits = logits_fn(z).astype(jnp.float32)
    per = losses.per_example(loss, logits, labels, target)
    return jnp.sum(per), (per, logits)
  (_, (per, logits)), grad = jax.value_and_grad(total, has_aux=True)(x)
  return per, logits, grad


def _better(fooled_new, loss_new, fooled_best, loss_best):
  """(N,) bool: the new candidate replaces the best (misclassified first, then higher loss)."""
  return (fooled_new & ~fooled_best) | ((fooled_new == fooled_best) & (loss_new > loss_best))


def _pick(mask, new, old):
  return jnp.where(jnp.reshape(mask, (-1,) + (1,) * (new.ndim - 1)), new, old)


@functools.partial(jax.jit, static_argnums=(0,))
def correct(logits_fn, images, labels):
  """(N,) bool: the model classifies each image correctly."""
  return ~losses.misclassified(logits_fn(images).astype(jnp.float32), labels)


def over_targets(run, key: Array, x: Array, robust: Array, target_classes: int,
                 restarts: int) -> Array:
  """AutoAttack's targeted loop (APGD-T, FAB-T): for target rank 2 .. target_classes + 1 and
  restart r, `run(fold_in(fold_in(key, rank), r), rank, r) -> (candidates, broken)`; each example
  keeps the candidate of the first run that broke it (else its clean image); stops once no example
  is robust."""
  adv = x
  for rank in range(2, int(target_classes) + 2):
    for r in range(int(restarts)):
      if not bool(jnp.any(robust)):
        return adv
      cand, broken = run(jax.random.fold_in(jax.random.fold_in(key, rank), r), rank, r)
      adv = _pick(robust & broken, cand, adv)
      robust = robust & ~broken
  return adv


def pgd_core(logits_fn: LogitsFn, key: Array, images: Array, labels: Array, eps, step_size, *,
             norm: str, steps: int, restarts: int = 1, loss: str = "ce",
             random_start: bool = True, select: str = "best", unroll=None,
             band=None) -> Array:
  """PGD without jit and without validation (for callers already inside a jit, e.g. the train
  step); see `pgd`. Restarts are a Python loop (unrolled); the steps a `fori_loop`, unrolled as
  `unroll_steps` says."""
  unroll = unroll_steps(steps, unroll)
  space = bands.space(band)  # band=None: `ball`'s own operations.
  x = images.astype(jnp.float32)
  eps = jnp.asarray(eps, jnp.float32)
  step_size = jnp.asarray(step_size, jnp.float32)

  def start(r):
    if random_start:
      return space.random_start(jax.random.fold_in(key, r), x, eps, norm)
    return x

  def ascend(x_adv):
    _, _, grad = loss_and_grad(logits_fn, x_adv, labels, loss)
    return space.project(x_adv + step_size * space.direction(grad, norm), x, eps, norm)

  if select == "last":
    if restarts != 1:
      raise ValueError("select='last' runs one restart.")
    x_adv = loop(steps, lambda i, z: ascend(z), start(0), unroll)
    return space.output(x_adv, x, eps, norm)
  if select != "best":
    raise ValueError(f"select={select!r}; valid: 'best', 'last'.")

  def score(z):
    logits = logits_fn(z).astype(jnp.float32)
    return losses.misclassified(logits, labels), losses.per_example(loss, logits, labels)

  def keep(best, z, fooled, value):
    b_x, b_f, b_l = best
    take = _better(fooled, value, b_f, b_l)
    return _pick(take, z, b_x), b_f | fooled, jnp.where(take, value, b_l)

  def step(i, carry):
    z, best = carry
    value, logits, grad = loss_and_grad(logits_fn, z, labels, loss)
    best = keep(best, z, losses.misclassified(logits, labels), value)
    z = space.project(z + step_size * space.direction(grad, norm), x, eps, norm)
    return z, best

  best = (x,) + score(x)  # The clean image is a candidate.
  for r in range(restarts):
    z, best = loop(steps, step, (start(r), best), unroll)
    best = keep(best, z, *score(z))  # The last iterate.
  return space.output(best[0], x, eps, norm)


@functools.partial(jax.jit, static_argnums=(0,), static_argnames=(
    "norm", "steps", "restarts", "loss", "random_start", "select", "unroll", "band"))
def _pgd_jit(logits_fn, key, images, labels, eps, step_size, *, norm, steps, restarts, loss,
             random_start, select, unroll, band=None):
  return pgd_core(logits_fn, key, images, labels, eps, step_size, norm=norm, steps=steps,
                  restarts=restarts, loss=loss, random_start=random_start, select=select,
                  unroll=unroll, band=band)


def _check(images, labels, eps, norm, loss=None):
  ball.check_norm(norm)
  if loss is not None and loss not in losses.LOSSES:
    raise ValueError(f"loss={loss!r}; valid: {', '.join(losses.LOSSES)}.")
  if images.ndim < 2 or labels.shape != images.shape[:1]:
    raise ValueError(f"images (N, ...) and labels (N,) expected, got {images.shape} and "
                     f"{labels.shape}.")
  if not float(eps) >= 0:
    raise ValueError(f"eps must be >= 0, got {eps!r}.")


def pgd(logits_fn: LogitsFn, key: Array, images: Array, labels: Array, *, eps: float,
        norm: str = "linf", steps: int = 10, step_size: Optional[float] = None,
        restarts: int = 1, loss: str = "ce", random_start: bool = True,
        select: str = "best", unroll: Optional[bool] = None, band=None) -> Array:
  """PGD adversarial images (float32, images' shape), inside the eps ball and [0, 1].

  Args:
    logits_fn: images (N, ...) in [0, 1] -> logits (N, K); static (hashable) under jit: pass the
      same function object to reuse the compilation.
    key: the random start's key (restart r uses fold_in(key, r)).
    eps: the radius in pixel units ([0, 1] images); traced, so a new eps does not recompile.
    step_size: default 2.5 eps / steps (Madry's CIFAR-10 2/255 for eps 8/255 and 10 steps).
    restarts: random restarts; per example the worst found is kept.
    loss: "ce" or "margin" (or "dlr").
    select: "best" (default) or "last" (see the module docstring).
    unroll: unroll the steps' loop (None: on the CPU for <= CPU_UNROLL_MAX_STEPS steps).
    band: None, ("dct", lo, hi) or ("fft", r_lo, r_hi): the perturbation's frequency band
      (`bands`; docs/METHOD.md §12); every iterate is clip(x + delta, 0, 1), delta in the band.
  """
  _check(images, labels, eps, norm, loss)
  band = bands.check_band(band, *jnp.shape(images)[-3:-1]) if band is not None else None
  if steps < 0 or restarts < 1:
    raise ValueError(f"steps >= 0 and restarts >= 1 expected, got {steps}, {restarts}.")
  if step_size is None:
    step_size = 2.5 * float(eps) / max(steps, 1)
  return _pgd_jit(logits_fn, key, jnp.asarray(images, jnp.float32), jnp.asarray(labels),
                  jnp.float32(eps), jnp.float32(step_size), norm=norm, steps=int(steps),
                  restarts=int(restarts), loss=loss, random_start=bool(random_start),
                  select=select, unroll=unroll_steps(int(steps), unroll), band=band)


def fgsm_core(logits_fn: LogitsFn, images: Array, labels: Array, eps, *, norm: str,
              loss: str = "ce") -> Array:
  x = images.astype(jnp.float32)
  _, _, grad = loss_and_grad(logits_fn, x, labels, loss)
  return ball.project(x + jnp.asarray(eps, jnp.float32) * ball.step_direction(grad, norm), x,
                      eps, norm)


@functools.partial(jax.jit, static_argnums=(0,), static_argnames=("norm", "loss"))
def _fgsm_jit(logits_fn, images, labels, eps, *, norm, loss):
  return fgsm_core(logits_fn, images, labels, eps, norm=norm, loss=loss)


def fgsm(logits_fn: LogitsFn, images: Array, labels: Array, *, eps: float, norm: str = "linf",
         loss: str = "ce") -> Array:
  """One full step: x + eps sign(g) (L-inf) or x + eps g / ||g|| (L2), projected."""
  _check(images, labels, eps, norm, loss)
  return _fgsm_jit(logits_fn, jnp.asarray(images, jnp.float32), jnp.asarray(labels),
                   jnp.float32(eps), norm=norm, loss=loss)
