"""Robust accuracy over a list of radii, with the gradient-masking sanity checks of Athalye,
Carlini & Wagner (ICML 2018, section 3.1) and Carlini et al. ("On evaluating adversarial
robustness", 2019, section 5 / appendix checklist):

  (a) "monotone":        accuracy is non-increasing in eps (within `tolerance`);
  (b) "large_eps":       the attack also runs at `large_eps` (an extra radius, outside the curve;
                         the evaluator's default is unbounded: L-inf 1, L2 the diameter of the
                         image cube), where accuracy must be <= `large_eps_max` (an unbounded
                         attack must reach ~0%: Carlini et al.'s checklist); not run without it;
  (c) "pgd_le_fgsm_le_clean": at the main eps, attack <= FGSM <= clean (within `tolerance`);
  (d) "restarts_stable": one more restart changes the main-eps accuracy by < `restart_tolerance`;
  (e) "noise_weaker":    random noise of the same norm (L-inf: eps times uniform random signs;
                         L2: a uniformly random direction of norm eps) is no stronger than the
                         attack (noise accuracy >= attack accuracy - `tolerance`);
  (f) "no_zero_gradients": no example has an all-zero input gradient of the CE at the clean image
                         (the count is reported as "zero_gradient_examples");
  plus "in_ball": every returned adversarial image lies in the ball and [0, 1] (checked here,
  outside the attack), and each accuracy is re-scored here by `logits_fn` on the returned images.

Each check is True (holds), False (fails: in "failed_checks") or None (not run: in
"skipped_checks"; a check that did not run is never counted as held). With
`sanity_checks=False` only (a) and "in_ball" run: the mode for a second attack on the same
images, whose per-example results are combined with the first's (`correct_main`).

Accuracies are fractions in [0, 1]; `tolerance` 0.01 is one point.
"""
from __future__ import annotations

import functools
import math
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from freqrobust.attacks import autopgd as apgd_lib, ball, fgsm_pgd as pgd_lib

Array = jax.Array


@functools.partial(jax.jit, static_argnums=(0,))
def _correct(logits_fn, images, labels):
  return jnp.argmax(logits_fn(images), axis=-1) == labels


@functools.partial(jax.jit, static_argnums=(0,))
def _zero_gradients(logits_fn, images, labels):
  _, _, grad = pgd_lib.loss_and_grad(logits_fn, images, labels, "ce")
  return jnp.all(grad.reshape(grad.shape[0], -1) == 0.0, axis=-1)


@functools.partial(jax.jit, static_argnames=("norm",))
def _noise(key, images, eps, *, norm):
  return ball.random_noise(key, images, eps, norm)


@functools.partial(jax.jit, static_argnames=("norm",))
def _in_ball(adv, images, eps, *, norm):
  return ball.in_ball(adv, images, eps, norm, atol=1e-5)


def adversarial_accuracy(logits_fn: Callable[[Array], Array], key: Array, images, labels, *,
                         norm: str, eps_list: Sequence[float], attack: str = "pgd",
                         steps: int = 10, restarts: int = 1, batch_size: int = 128,
                         loss: str = "ce", main_eps: Optional[float] = None,
                         large_eps: Optional[float] = None, large_eps_max: float = 0.05,
                         tolerance: float = 0.01, restart_tolerance: float = 0.01,
                         sanity_checks: bool = True,
                         progress: Optional[Callable[[int, int], None]] = None) -> dict:
  """Clean and adversarial accuracy per eps and the sanity checks (module docstring).

  Args:
    logits_fn: images (M, ...) in [0, 1] -> logits; the same object across calls reuses the jits.
    images, labels: the test set (N, ...) float in [0, 1], (N,) int; batched by `batch_size`
      (the last batch padded with copies of the first images and masked: one compilation).
    eps_list: the radii; `main_eps` (default: the first of eps_list) gets checks (c)-(e).
    attack: "pgd" (`steps`, `restarts`, `loss`) or "apgd" (`steps`, `restarts`, loss "ce" or
      "dlr").
    large_eps: the radius of check (b), attacked in addition to eps_list (None: (b) not run).
    sanity_checks: False runs only the attack over eps_list (no FGSM, extra restart, noise or
      zero-gradient passes, no large_eps): those checks are None.
    progress: optional callback(done_batches, total_batches).

  Returns a dict: clean_accuracy, accuracy {eps: acc}, fgsm_accuracy, extra_restart_accuracy,
  noise_accuracy (main eps; None without sanity_checks), largest_eps, largest_eps_accuracy (of
  the curve), large_eps, large_eps_accuracy (check (b); None when not run),
  zero_gradient_examples, max_perturbation {eps: largest norm}, checks {name: bool or None},
  failed_checks [names], skipped_checks [names], correct_main (N,) bool numpy array (each
  example still correctly classified under the attack at the main eps), n, and the settings.
  """
  ball.check_norm(norm)
  if attack not in ("pgd", "apgd"):
    raise ValueError(f"attack={attack!r}; valid: 'pgd', 'apgd'.")
  eps_list = [float(e) for e in eps_list]
  if not eps_list or any(not e >= 0 for e in eps_list):
    raise ValueError(f"eps_list must be non-empty radii >= 0, got {eps_list}.")
  main = eps_list[0] if main_eps is None else float(main_eps)
  images = np.asarray(images, np.float32)
  labels = np.asarray(labels, np.int32)
  n = images.shape[0]
  batch_size = max(1, min(int(batch_size), n))
  num_batches = math.ceil(n / batch_size)
  if large_eps is not None and not large_eps > 0:
    raise ValueError(f"large_eps must be a radius > 0 or None, got {large_eps}.")
  if not sanity_checks:
    large_eps = None
  eps_runs = sorted(set(eps_list) | {main} | ({float(large_eps)} if large_eps else set()))
  total = num_batches * (1 + len(eps_runs) + (3 if sanity_checks else 0))
  done = [0]

  def tick():
    done[0] += 1
    if progress is not None:
      progress(done[0], total)

  def run_attack(k, x, y, eps, n_restarts):
    if attack == "pgd":
      return pgd_lib.pgd(logits_fn, k, x, y, eps=eps, norm=norm, steps=steps,
                         restarts=n_restarts, loss=loss)
    return apgd_lib.apgd(logits_fn, k, x, y, eps=eps, norm=norm, steps=steps, loss=loss,
                         restarts=n_restarts)

  def batches():
    for b in range(num_batches):
      idx = np.arange(b * batch_size, (b + 1) * batch_size)
      valid = idx < n
      idx = np.where(valid, idx, idx % n)
      yield b, jnp.asarray(images[idx]), jnp.asarray(labels[idx]), valid

  counts = {"clean": 0, "fgsm": 0, "extra": 0, "noise": 0, "zero_grad": 0}
  per_eps = {e: 0 for e in eps_runs}
  max_pert = {e: 0.0 for e in eps_runs}
  correct_main = np.zeros((n,), bool)
  in_ball_ok = True
  for b, x, y, valid in batches():
    kb = jax.random.fold_in(key, b)
    counts["clean"] += int(np.sum(np.asarray(_correct(logits_fn, x, y)) & valid))
    if sanity_checks:
      counts["zero_grad"] += int(np.sum(np.asarray(_zero_gradients(logits_fn, x, y)) & valid))
    tick()
    for e in eps_runs:
      adv = run_attack(kb, x, y, e, restarts)
      correct = np.asarray(_correct(logits_fn, adv, y)) & valid
      per_eps[e] += int(np.sum(correct))
      if e == main:
        correct_main[b * batch_size:(b + 1) * batch_size] = correct[:min(batch_size,
                                                                          n - b * batch_size)]
      ok = np.asarray(_in_ball(adv, x, jnp.float32(e), norm=norm))
      in_ball_ok &= bool(np.all(ok[valid]))
      pert = np.asarray(ball.norms(adv - x, norm))[valid]
      max_pert[e] = max(max_pert[e], float(pert.max()) if pert.size else 0.0)
      tick()
    if not sanity_checks:
      continue
    adv = pgd_lib.fgsm(logits_fn, x, y, eps=main, norm=norm)
    counts["fgsm"] += int(np.sum(np.asarray(_correct(logits_fn, adv, y)) & valid))
    in_ball_ok &= bool(np.all(np.asarray(_in_ball(adv, x, jnp.float32(main), norm=norm))[valid]))
    tick()
    adv = run_attack(kb, x, y, main, restarts + 1)  # Same first key: restart 0 is the same.
    counts["extra"] += int(np.sum(np.asarray(_correct(logits_fn, adv, y)) & valid))
    tick()
    noisy = _noise(jax.random.fold_in(kb, 10**6), x, jnp.float32(main), norm=norm)
    counts["noise"] += int(np.sum(np.asarray(_correct(logits_fn, noisy, y)) & valid))
    tick()

  acc = {e: per_eps[e] / n for e in eps_runs}
  clean = counts["clean"] / n
  ordered = [acc[e] for e in sorted(eps_list)]
  largest = max(eps_list)
  checks = {"monotone": all(b <= a + tolerance for a, b in zip(ordered, ordered[1:]))
                        and ordered[0] <= clean + tolerance,
            "large_eps": None, "pgd_le_fgsm_le_clean": None, "restarts_stable": None,
            "noise_weaker": None, "no_zero_gradients": None, "in_ball": in_ball_ok}
  fgsm_acc = extra_acc = noise_acc = None
  if sanity_checks:
    fgsm_acc, extra_acc, noise_acc = (counts["fgsm"] / n, counts["extra"] / n,
                                      counts["noise"] / n)
    checks.update({
        "pgd_le_fgsm_le_clean": (acc[main] <= fgsm_acc + tolerance
                                 and fgsm_acc <= clean + tolerance),
        "restarts_stable": abs(extra_acc - acc[main]) < restart_tolerance,
        "noise_weaker": noise_acc >= acc[main] - tolerance,
        "no_zero_gradients": counts["zero_grad"] == 0,
    })
    if large_eps:
      checks["large_eps"] = acc[float(large_eps)] <= large_eps_max
  return {
      "n": n, "norm": norm, "attack": attack, "loss": loss, "steps": steps,
      "restarts": restarts, "main_eps": main,
      "clean_accuracy": clean,
      "accuracy": {e: acc[e] for e in eps_list},
      "fgsm_accuracy": fgsm_acc,
      "extra_restart_accuracy": extra_acc,
      "noise_accuracy": noise_acc,
      "largest_eps": largest,
      "largest_eps_accuracy": acc[largest],
      "large_eps": float(large_eps) if large_eps else None,
      "large_eps_accuracy": acc[float(large_eps)] if large_eps else None,
      "zero_gradient_examples": counts["zero_grad"] if sanity_checks else None,
      "max_perturbation": max_pert,
      "checks": checks,
      "failed_checks": [name for name, ok in checks.items() if ok is False],
      "skipped_checks": [name for name, ok in checks.items() if ok is None],
      "correct_main": correct_main,
  }
