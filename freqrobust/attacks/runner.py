"""Attacks run over the batches of a test set: one `Attack` (a frozen spec: kind, radius, loss,
steps, restarts) -> one per-example `Record` (correct under the attack, in the ball, the
perturbation's norm), the model given as `apply(variables, images)` with the variables a traced
argument.

The variables are traced, not closed over: an evaluation of new weights (training's evaluations
every N epochs) reuses the compiled attack, and no compiled program holds a copy of the weights
(a closure baked them in as constants, and the jit cache kept every copy alive). `apply` is static:
pass the same object across calls (`trained.from_state` with the loop's predictor does).

Kinds: "clean" (the images themselves), "pgd", "apgd" (loss "ce" or "dlr"), "fgsm", "noise"
(same-norm random noise: L-inf eps times random signs, L2 a random direction of norm eps),
"given" (images crafted elsewhere, e.g. on another model: a transfer attack), and the probe
"zero_gradient" (whose record marks the examples with an all-zero input gradient of the CE).
Every attack's images are re-scored here by one jitted scorer, so records of different attacks
compare the same function.

Batches: `batch_size` images (the last batch padded with copies of the first images and masked:
one compilation); an attack on the examples still robust (`only`) pads them to the next power of
two (at most `batch_size`), so the counts of successive evaluations share a few compilations;
batch b of an attack uses `fold_in(attack_key(key, attack), b)`, the attack's key a function of
its name without its restarts (one more restart repeats restart 0).
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import math
import time
import zlib
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from freqrobust.attacks import autopgd as apgd_lib, ball, fgsm_pgd as pgd_lib

Array = jax.Array
Apply = Callable[[Any, Array], Array]  # apply(variables, images in [0, 1]) -> logits

KINDS = ("clean", "pgd", "apgd", "apgd_t", "fab_t", "square", "fgsm", "noise", "given",
         "zero_gradient")
# Kinds whose record is "correct under an attack" (every one counts in the worst case).
ATTACK_KINDS = ("clean", "pgd", "apgd", "apgd_t", "fab_t", "square", "fgsm", "noise", "given")
# Surrogate gradients an attack may craft with (`Attack.surrogate`): the forward pass is the
# model's own, the gradient that of a BPDA surrogate (Athalye et al. 2018); every image is
# scored on the model itself. "frozen_gate": the APS attention gate's output treated as a
# constant of the input (`models.Backbone.frozen_gate`).
SURROGATES = ("frozen_gate",)
# Kinds run once per target class (the 2nd .. (targets + 1)-th highest clean logit), each on
# the examples of the batch still robust, as AutoAttack's APGD-T and FAB-T.
TARGETED = ("apgd_t", "fab_t")
_fab = importlib.import_module("freqrobust.attacks.fab")
_square = importlib.import_module("freqrobust.attacks.square")


@dataclasses.dataclass(frozen=True)
class Attack:
  """One attack at one radius; `name` keys its record (it changes with every setting)."""
  kind: str
  eps: float = 0.0
  loss: str = "ce"
  steps: int = 0
  restarts: int = 1
  source: str = ""  # "given": where the images come from (keys the record).
  targets: int = 0  # apgd_t, fab_t: target classes; square: queries (steps = 0).
  after: tuple = ()  # Run only on the examples every one of these attacks left correct.
  surrogate: str = ""  # Craft with this surrogate's gradient (SURROGATES); "" = the model's.

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f"Attack kind={self.kind!r}; valid: {', '.join(KINDS)}.")
    if self.surrogate and (self.surrogate not in SURROGATES or self.kind not in
                           ("pgd", "apgd", "apgd_t", "fab_t", "fgsm")):
      raise ValueError(f"Attack surrogate={self.surrogate!r} (kind {self.kind!r}): a gradient "
                       f"attack with one of {', '.join(SURROGATES)}.")
    object.__setattr__(self, "eps", float(self.eps))

  @property
  def stem(self) -> str:
    """The name without the restarts (the key's seed: restart 0 is shared)."""
    if self.kind in ("clean", "zero_gradient"):
      return self.kind
    if self.kind in ("pgd", "apgd"):
      return f"{self.kind}{self.steps}-{self.loss}@{self.eps:.6g}"
    if self.kind in TARGETED:
      return f"{self.kind}{self.steps}x{self.targets}@{self.eps:.6g}"
    if self.kind == "square":
      return f"square{self.targets}@{self.eps:.6g}"
    if self.kind == "given":
      return f"given:{self.source}@{self.eps:.6g}"
    return f"{self.kind}@{self.eps:.6g}"

  @property
  def name(self) -> str:
    name = self.stem + (f"/{self.surrogate}" if self.surrogate else "")
    if self.kind in ("pgd", "apgd") and self.restarts != 1:
      name += f"-r{self.restarts}"
    if self.after:
      name += f"~after:{zlib.crc32(','.join(self.after).encode()):08x}"
    return name

  @property
  def label(self) -> str:
    """For the console: PGD-20, APGD-CE-50, FGSM, ..."""
    return self._label() + (f" through the {self.surrogate.replace('_', ' ')}"
                            if self.surrogate else "")

  def _label(self) -> str:
    if self.kind in ("pgd", "apgd"):
      loss = "" if self.kind == "pgd" else f"-{self.loss.upper()}"
      extra = f" x{self.restarts} restarts" if self.restarts != 1 else ""
      return f"{self.kind.upper()}{loss}-{self.steps}{extra} at {self.eps:g}"
    if self.kind in TARGETED:
      return (f"{'APGD' if self.kind == 'apgd_t' else 'FAB'}-T-{self.steps} x{self.targets} "
              f"targets at {self.eps:g}")
    if self.kind == "square":
      return f"Square-{self.targets} at {self.eps:g}"
    if self.kind in ("clean", "zero_gradient"):
      return self.kind
    return f"{self.kind} at {self.eps:g}"


@dataclasses.dataclass
class Record:
  """An attack's per-example results over the test set."""
  values: np.ndarray  # (N,) bool: correct under the attack (zero_gradient: gradient all zero)
  in_ball: bool  # every returned image inside the ball and [0, 1]
  max_perturbation: float
  seconds: float
  images: Optional[np.ndarray] = None  # (N, ...) the attack's images, when asked for

  @property
  def accuracy(self) -> float:
    return float(np.mean(self.values))


def attack_key(key: Array, attack: Attack) -> Array:
  return jax.random.fold_in(key, zlib.crc32(attack.stem.encode()) & 0x7FFFFFFF)


@functools.partial(jax.jit, static_argnames=("apply",))
def _score(variables, images, labels, *, apply):
  return jnp.argmax(apply(variables, images), axis=-1) == labels


@functools.partial(jax.jit, static_argnames=("apply",))
def _zero_gradient(variables, images, labels, *, apply):
  _, _, grad = pgd_lib.loss_and_grad(lambda z: apply(variables, z), images, labels, "ce")
  return jnp.all(grad.reshape(grad.shape[0], -1) == 0.0, axis=-1)


@functools.partial(jax.jit, static_argnames=("apply", "kind", "norm", "loss", "steps",
                                             "restarts", "unroll"))
def _craft(variables, key, images, labels, eps, *, apply, kind, norm, loss, steps, restarts,
           unroll):
  """The adversarial images of one batch (the variables traced: one compilation per shape)."""
  def logits_fn(z):
    return apply(variables, z)
  if kind == "pgd":
    adv = pgd_lib.pgd_core(logits_fn, key, images, labels, eps, 2.5 * eps / max(steps, 1),
                           norm=norm, steps=steps, restarts=restarts, loss=loss, unroll=unroll)
  elif kind == "apgd":
    adv = apgd_lib.apgd_core(logits_fn, key, images, labels, eps, norm=norm, steps=steps,
                             loss=loss, restarts=restarts, unroll=unroll)
  elif kind == "fgsm":
    adv = pgd_lib.fgsm_core(logits_fn, images, labels, eps, norm=norm, loss=loss)
  elif kind == "square":  # `steps` carries the queries here (p_init 0.8, AutoAttack's).
    adv, _ = _square._square_jit.__wrapped__(logits_fn, key, images, labels, eps, norm=norm,
                                             queries=steps, p_init=0.8, rescale=False)
  else:  # noise
    adv = ball.random_noise(key, images, eps, norm)
  return adv, ball.in_ball(adv, images, eps, norm, atol=1e-5), ball.norms(adv - images, norm)


@functools.partial(jax.jit, static_argnames=("apply", "kind", "norm", "steps", "unroll"))
def _craft_targeted(variables, key, images, labels, eps, rank, *, apply, kind, norm, steps,
                    unroll):
  """One targeted run (towards the rank-th highest clean logit; rank traced: one compilation
  for every target) of APGD-T or FAB-T: (images, still correct), ball-checked."""
  def logits_fn(z):
    return apply(variables, z)
  if kind == "apgd_t":
    adv, correct = apgd_lib._apgd_t_jit.__wrapped__(logits_fn, key, images, labels, eps, rank,
                                                    norm=norm, steps=steps, unroll=unroll)
  else:
    adv, broken = _fab._fab_t_jit.__wrapped__(logits_fn, key, images, labels, eps, rank,
                                              norm=norm, steps=steps, random_start=False,
                                              unroll=unroll)
    correct = ~broken
  return adv, correct


@functools.partial(jax.jit, static_argnames=("norm",))
def _check_given(adv, images, eps, *, norm):
  return ball.in_ball(adv, images, eps, norm, atol=1e-5), ball.norms(adv - images, norm)


def compile_cache_size() -> int:
  """How many programs the attacks' jits hold (a test checks that new weights add none)."""
  return sum(f._cache_size() for f in (_score, _zero_gradient, _craft, _craft_targeted,
                                       _check_given))


def batches(n: int, batch_size: int):
  """(b, indices (B,), valid (B,)) per batch; the last padded with the first examples."""
  for b in range(math.ceil(n / batch_size)):
    idx = np.arange(b * batch_size, (b + 1) * batch_size)
    valid = idx < n
    yield b, np.where(valid, idx, idx % n), valid


def _targeted(attack: Attack, apply: Apply, variables: Any, key: Array, x, y, eps, norm: str):
  """APGD-T / FAB-T on one batch: each target rank in turn on the examples still correct; an
  example's image is the first that broke it, else the clean image. (images, in ball, norms)."""
  classes = jax.eval_shape(lambda z: apply(variables, z), x).shape[-1]
  robust = np.array(_score(variables, x, y, apply=apply))
  adv = x
  unroll = pgd_lib.unroll_steps(attack.steps)
  for rank in range(2, min(attack.targets, classes - 1) + 2):
    if not robust.any():
      break
    cand, correct = _craft_targeted(variables, jax.random.fold_in(key, rank), x, y, eps,
                                    jnp.int32(rank), apply=apply, kind=attack.kind, norm=norm,
                                    steps=attack.steps, unroll=unroll)
    newly = robust & ~np.asarray(correct)
    adv = pgd_lib._pick(jnp.asarray(newly), cand, adv)
    robust = robust & np.asarray(correct)
  ok, pert = _check_given(adv, x, eps, norm=norm)
  return adv, ok, pert


def _attack_batch(attack: Attack, apply: Apply, variables: Any, key: Array, x, y, eps,
                  norm: str, given_batch):
  """(images, in ball (B,), perturbation norms (B,)) of one batch; `apply` the function the
  attack differentiates (a surrogate's, or the model's)."""
  if attack.kind == "clean":
    return x, np.ones(x.shape[0], bool), np.zeros(x.shape[0])
  if attack.kind == "given":
    adv = jnp.asarray(given_batch, jnp.float32)
    return (adv,) + tuple(_check_given(adv, x, eps, norm=norm))
  if attack.kind in TARGETED:
    return _targeted(attack, apply, variables, key, x, y, eps, norm)
  steps = attack.targets if attack.kind == "square" else attack.steps
  unroll = pgd_lib.unroll_steps(steps) if attack.kind in ("pgd", "apgd") else False
  return _craft(variables, key, x, y, eps, apply=apply, kind=attack.kind, norm=norm,
                loss=attack.loss, steps=steps, restarts=attack.restarts, unroll=unroll)


def run_attack(attack: Attack, apply: Apply, variables: Any, key: Array, images: np.ndarray,
               labels: np.ndarray, *, norm: str, batch_size: int,
               given: Optional[np.ndarray] = None, only: Optional[np.ndarray] = None,
               keep_images: bool = False,
               progress: Optional[Callable[[int, int], None]] = None,
               craft_apply: Optional[Apply] = None) -> Record:
  """Runs `attack` over the test set (images (N, ...) float32 in [0, 1], labels (N,)).

  given: the images of a "given" attack (N, ...), checked to lie in its ball around `images`.
  only: (N,) bool, attack only these examples (AutoAttack's "points still robust"): the others
    are recorded as not broken by this attack (True) and keep their clean image.
  keep_images: return the attack's images in the record (for a later transfer check).
  progress: callback(done_batches, total_batches).
  craft_apply: the function the attack differentiates (same variables, same forward pass: a
    surrogate's, `Attack.surrogate`); None = `apply`. Images are scored on `apply`.
  """
  if attack.surrogate and craft_apply is None:
    raise ValueError(f"{attack.label}: give the surrogate's apply (craft_apply).")
  craft_apply = apply if craft_apply is None else craft_apply
  ball.check_norm(norm)
  n = images.shape[0]
  todo = np.arange(n) if only is None else np.flatnonzero(only)
  values = np.ones((n,), bool) if only is not None else np.zeros((n,), bool)
  kept = np.array(images, np.float32) if keep_images else None
  batch_size = max(1, min(int(batch_size), n))
  if only is not None:  # The count still robust varies per evaluation: a power-of-two bucket.
    batch_size = min(batch_size, 1 << max(len(todo) - 1, 0).bit_length())
  total = math.ceil(len(todo) / batch_size)
  key, eps = attack_key(key, attack), jnp.float32(attack.eps)
  in_ball, max_pert, started = True, 0.0, time.time()
  for b, pos, valid in (batches(len(todo), batch_size) if len(todo) else ()):
    idx = todo[pos]
    x, y = jnp.asarray(images[idx]), jnp.asarray(labels[idx])
    real = idx[valid]
    if attack.kind == "zero_gradient":
      values[real] = np.asarray(_zero_gradient(variables, x, y, apply=apply))[valid]
    else:
      adv, ok, pert = _attack_batch(attack, craft_apply, variables, jax.random.fold_in(key, b),
                                    x, y, eps, norm, None if given is None else given[idx])
      values[real] = np.asarray(_score(variables, adv, y, apply=apply))[valid]
      in_ball &= bool(np.all(np.asarray(ok)[valid]))
      max_pert = max(max_pert, float(np.max(np.asarray(pert)[valid])))
      if kept is not None:
        kept[real] = np.asarray(adv)[valid]
    if progress is not None:
      progress(b + 1, total)
  return Record(values, in_ball, max_pert, time.time() - started, kept)


@dataclasses.dataclass(frozen=True)
class Unbound:
  """A plain `logits_fn(images)` as an `apply(variables, images)` that ignores the variables;
  equal for equal functions, so the attacks' jits are reused across calls."""
  logits_fn: Callable[[Array], Array]

  def __call__(self, variables, images):
    del variables
    return self.logits_fn(images)
