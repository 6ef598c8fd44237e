"""AutoAttack (Croce & Hein, ICML 2020): an ensemble of parameter-free attacks, each run only on
the points every earlier attack left robust, as the official `run_standard_evaluation`
(github.com/fra31/auto-attack autoattack/autoattack.py, newest stored commit a392200).

Versions (`set_version`, autoattack.py:302-337):
- "standard" (RobustBench's robust accuracy): APGD-CE (100 iterations, 1 restart), APGD-T
  (100 iterations, 9 target classes, 1 restart), FAB-T (100 iterations, 9 target classes,
  1 restart) and Square (5000 queries, p_init 0.8), in that order.
- "fast": APGD-CE + APGD-DLR (100 iterations, 1 restart each): the pair of the official
  "rand" version without its expectation over transformations.

Batches: the still-robust points are gathered in batches of `batch_size` (the last padded by
repeating a point, its results dropped), so each attack compiles once. Batch b of attack a
draws from fold_in(fold_in(key, a), b). The official code draws from `seed` per attack and
batch; its random streams differ from JAX's, so per-example verdicts agree up to the
randomness of the starts and of Square (docs/METHOD.md, "AutoAttack").

AutoAttack's own check (`checks.check_square_sr`, checks.py:73-86): Square lowering the robust
accuracy by more than 0.2 points below the lowest accuracy before it flags a possibly
unreliable (gradient-masked) evaluation: "square_flag".
"""
from __future__ import annotations

import functools
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from freqrobust.attacks import autopgd, fgsm_pgd as pgd_lib
from freqrobust.attacks.fab import fab as fab_attack
from freqrobust.attacks.square import square as square_attack

Array = jax.Array

VERSIONS = {
    "standard": ("apgd-ce", "apgd-t", "fab-t", "square"),
    "fast": ("apgd-ce", "apgd-dlr"),
}
SQUARE_ALPHA = 0.002  # check_square_sr's alpha: 0.2 points.


@functools.partial(jax.jit, static_argnums=(0,))
def _correct(logits_fn, images, labels):
  return jnp.argmax(logits_fn(images), axis=-1) == labels


def _runner(name: str, logits_fn, *, eps, norm, steps, queries, target_classes):
  """(key, images, labels) -> adversarial images for one attack of the ensemble."""
  if name in ("apgd-ce", "apgd-dlr"):
    loss = name.split("-")[1]
    return lambda k, x, y: autopgd.apgd(logits_fn, k, x, y, eps=eps, norm=norm, steps=steps,
                                        loss=loss)
  if name == "apgd-t":
    return lambda k, x, y: autopgd.apgd_targeted(logits_fn, k, x, y, eps=eps, norm=norm,
                                                 steps=steps, target_classes=target_classes)
  if name == "fab-t":
    return lambda k, x, y: fab_attack(logits_fn, k, x, y, eps=eps, norm=norm, steps=steps,
                                       target_classes=target_classes)
  if name == "square":
    return lambda k, x, y: square_attack(logits_fn, k, x, y, eps=eps, norm=norm, queries=queries)
  raise ValueError(f"Unknown AutoAttack attack {name!r}.")


def _batches(indices: np.ndarray, size: int):
  """Chunks of `size` indices, the last padded by repeating its last index; (padded, real)."""
  for start in range(0, len(indices), size):
    real = indices[start:start + size]
    yield np.concatenate([real, np.repeat(real[-1:], size - len(real))]), len(real)


def autoattack(logits_fn: Callable[[Array], Array], key: Array, images, labels, *, eps: float,
               norm: str = "linf", version: str = "standard", batch_size: int = 250,
               steps: int = 100, queries: int = 5000, target_classes: int = 9,
               attacks: Optional[tuple[str, ...]] = None,
               progress: Optional[Callable[[str, int, int], None]] = None) -> dict:
  """The AutoAttack ensemble on (N, H, W, C) images in [0, 1] with labels (N,).

  Returns a dict:
    "robust": (N,) bool, correct on the clean image and under every attack;
    "clean": (N,) bool, correct on the clean image;
    "per_attack": {name: (N,) bool}, False where that attack broke the example (it ran only on
      the examples correct so far; True elsewhere), so robust = clean & all(per_attack);
    "accuracy": {"clean": ..., name: ...}, the robust accuracy after each attack (cumulative, as
      the official log), fractions;
    "square_flag": True when Square lowered the accuracy by > 0.2 points (None without Square);
    "adversarial": (N, ...) float32, the first adversarial image found, else the clean image;
    "attacks": the attacks run, in order.
  `steps`, `queries`, `target_classes` override the version's 100, 5000 and 9 (tests);
  `target_classes` is capped at classes - 1. `attacks` replaces the version's list. `progress`
  is called (attack, batch, batches) before each batch.
  """
  if version not in VERSIONS:
    raise ValueError(f"AutoAttack version={version!r}; valid: {', '.join(VERSIONS)}.")
  names = tuple(attacks) if attacks is not None else VERSIONS[version]
  images = np.asarray(images, np.float32)
  labels = np.asarray(labels)
  pgd_lib._check(images, labels, eps, norm)
  if batch_size < 1:
    raise ValueError(f"batch_size >= 1 expected, got {batch_size}.")
  n = images.shape[0]
  classes = jax.eval_shape(logits_fn, jax.ShapeDtypeStruct(images[:1].shape, jnp.float32))
  targets = min(int(target_classes), classes.shape[-1] - 1)
  size = min(int(batch_size), n)
  clean = np.zeros(n, bool)
  for idx, real in _batches(np.arange(n), size):
    clean[idx[:real]] = np.asarray(_correct(logits_fn, images[idx], labels[idx]))[:real]
  robust = clean.copy()
  adversarial = images.copy()
  per_attack, accuracy = {}, {"clean": float(clean.mean()) if n else 0.0}
  for a, name in enumerate(names):
    run = _runner(name, logits_fn, eps=eps, norm=norm, steps=steps, queries=queries,
                  target_classes=targets)
    unbroken = np.ones(n, bool)
    todo = np.flatnonzero(robust)
    batches = -(-len(todo) // size)
    for b, (idx, real) in enumerate(_batches(todo, size)):
      if progress is not None:
        progress(name, b, batches)
      x_adv = run(jax.random.fold_in(jax.random.fold_in(key, a), b), images[idx], labels[idx])
      ok = np.asarray(_correct(logits_fn, x_adv, labels[idx]))[:real]
      broken = idx[:real][~ok]
      unbroken[broken] = False
      adversarial[broken] = np.asarray(x_adv)[:real][~ok]
    per_attack[name] = unbroken
    robust &= unbroken
    accuracy[name] = float(robust.mean()) if n else 0.0
  square_flag = None
  if "square" in accuracy and len(accuracy) > 2:
    before = min(v for k, v in accuracy.items() if k != "square")
    square_flag = bool(accuracy["square"] < before - SQUARE_ALPHA)
  return dict(robust=robust, clean=clean, per_attack=per_attack, accuracy=accuracy,
              square_flag=square_flag, adversarial=adversarial, attacks=names)
