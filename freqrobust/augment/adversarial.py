"""Adversarial training as augmentation methods: PGD-AT (Madry, Makelov, Schmidt, Tsipras, Vladu,
ICLR 2018) and FGSM-RS ("fast is better than free", Wong, Rice, Kolter, ICLR 2020), both crafting
through `forward` (the model with its parameters held fixed) with the attacks of
freqrobust/attacks (docs/METHOD.md §11).

Per batch: crop + flip (RandomCrop(padding=pad) + horizontal flip, as every baseline here and both
references: Madry's cifar10_input.py:94-103, Wong's CIFAR10/utils.py:24-25), then the attack on
the cropped batch, and the train step's CE on the adversarial batch only (one view; Madry's
train.py:103-137 trains on x_batch_adv alone, as does Wong's train_fgsm.py:120-125):

  pgd_at:  x' = PGD_steps(x), random start x + U(-eps, eps) clipped to [0, 1], `steps` steps of
           `step_size` (sign of the CE gradient; L2: normalised gradient), projection onto the
           ball and [0, 1] after each, the last iterate (cifar10_challenge pgd_attack.py:43-61).
  fgsm_rs: delta ~ U(-eps, eps), clamped to the image range (CIFAR10/train_fgsm.py:105-110), one
           step delta <- clamp(delta + alpha sign(g), -eps, eps), clamped to the image range
           (:116-118), alpha = 1.25 eps (train_fgsm.py:30-31, 68-69: eps 8/255, alpha 10/255;
           MNIST/train_mnist.py:28-29: eps 0.3, alpha 0.375).

Defaults are the protocol's Fashion-MNIST scale: L-inf eps = 0.1, PGD-AT with 10 steps of
eps / 4 = 0.025 (Madry's CIFAR-10 ratio: step 2/255 at eps 8/255, config.json:26-29; PGD-7 with
2/255 in Wong's train_pgd.py:29-32), FGSM-RS alpha = 1.25 eps = 0.125 (Wong's ratio). The step
and alpha derive from eps (`step_ratio`, `alpha_ratio`) unless given as numbers, so overriding
eps alone keeps the references' ratios (eps 8/255 gives 2/255 and 10/255); Madry's MNIST (eps
0.3, 40 steps of 0.01) is step_ratio 1/30. FGSM-RS with alpha > 2 eps is refused: the step then
always leaves the ball and is clipped back, and Wong et al. (section 5.2) find alpha beyond
~1.25-1.5 eps runs into catastrophic overfitting.

Runs recorded before the step and alpha derived from eps (`revisions`): their method_args set
step_size / alpha as numbers (the baselines' configs record every field), which still mean
those numbers; a run whose args set eps but not the step trained with 0.025 / 0.125 and is
marked stale by the report.

BatchNorm while crafting (`bn`): "batch" (default) normalises the attacked batch with its own
statistics, as both references craft with the model in training mode (Madry's model.py:100-110,
`is_training=(mode == 'train')`; Wong's `model.train()`), but here the running statistics are NOT
updated by the attack's forward passes (the references' are: TF's updates_collections=None and
PyTorch's train-mode forward both update them at every attack step); only the train step's own
forward on the adversarial batch updates them. "running" crafts in inference mode.

Composition with any other method (`AdversarialComposition`, `config.adversarial` = pgd_at or
fgsm_rs beside `config.method`): the method's CE views are attacked, then trained with the
method's loss terms; for the paper's method its view (power suppression, NFD, crop, flip;
`aps.PaperMethod`) is attacked and APS's auxiliary L2 term keeps the labels of the un-attacked
augmentation. See its docstring.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping, Optional

import jax
import jax.numpy as jnp

from freqrobust.attacks import ball, fgsm_pgd
from freqrobust.augment import aps, base, ops

Array = jax.Array

BN_MODES = ("batch", "running")


def _args_of(config: Mapping[str, Any], method: str) -> Optional[Mapping[str, Any]]:
  """The recorded fields of `method` in a run's config.json: method_args when it is the run's
  method, adversarial_args when it is the run's adversarial training; None when neither."""
  if config.get("method") == method:
    return config.get("method_args") or {}
  if config.get("adversarial") == method:
    return config.get("adversarial_args") or {}
  return None


def _derived_revision(field: str, old: float, ratio: str) -> base.Revision:
  """The step that became a ratio of eps: it matters for runs that set eps but not the step."""
  def applies(config):
    args = _args_of(config, "pgd_at" if field == "step_size" else "fgsm_rs")
    return args is not None and field not in args and float(args.get("eps", 0.1)) != 0.1
  return base.Revision(f"{field} derives from eps ({ratio} * eps) unless set (before: {old} "
                       "whatever eps; 2026-12-07)", applies)


def _set_choice(obj: Any, name: str, valid: tuple[str, ...]) -> None:
  value = getattr(obj, name)
  if value not in valid:
    raise ValueError(f"{type(obj).__name__}.{name} must be one of {', '.join(valid)}, got "
                     f"{value!r}.")


@dataclasses.dataclass(frozen=True)
class _Adversarial(base.Method):
  """Crop + flip, then `_craft` through `forward` (one view, plain CE on the adversarial view)."""
  num_views: ClassVar[int] = 1

  def _craft(self, key: Array, images: Array, labels: Array, logits_fn) -> Array:
    raise NotImplementedError

  @property
  def _norm(self) -> str:
    return "linf"

  def craft(self, key: Array, images: Array, labels: Array,
            forward: Optional[base.Forward]) -> Array:
    """The adversarial images of `images` (no crop), without gradient."""
    if forward is None:
      raise ValueError(f"{type(self).__name__} needs `forward` (the model with fixed parameters) "
                       "to craft adversarial examples.")
    logits_fn = lambda x: forward(x, bn=self.bn)
    return jax.lax.stop_gradient(self._craft(key, images.astype(jnp.float32), labels, logits_fn))

  def views(self, key, images, labels, forward=None):
    ops.check_batch(images, self)
    k_crop, k_attack = jax.random.split(key)
    clean = ops.crop_flip_batch(k_crop, images, self.pad, self.flip, self.crop_fill)
    adv = self.craft(k_attack, clean, labels, forward)
    return adv.astype(images.dtype)[None], {"perturbation": ball.norms(adv - clean, self._norm)}

  def step_metrics(self, open_ratios, aux, params):
    del open_ratios, params
    return {"adv_perturbation": jnp.mean(aux["perturbation"])}


@dataclasses.dataclass(frozen=True)
class PGDAT(_Adversarial):
  """PGD adversarial training (Madry et al. 2018): CE on PGD examples of the batch.

  Attributes:
    eps: the ball's radius in [0, 1] pixel units (0.1 L-inf: the Fashion-MNIST protocol;
      CIFAR-10 8/255).
    step_size: the PGD step; 0 (default) = step_ratio * eps (the step used: `step`).
    step_ratio: the step over eps when step_size is 0 (0.25: Madry's eps / 4).
    steps: PGD iterations (10; Madry's CIFAR-10 10, MNIST 40).
    random_start: start from x + U(-eps, eps) (L2: uniform in the ball), clipped to [0, 1].
    norm: "linf" or "l2" (L2: normalised-gradient steps, L2 projection).
    bn: BatchNorm while crafting, "batch" (the references') or "running" (module docstring).
    pad, flip, crop_fill: RandomCrop(padding=4) + flip before the attack.
  """
  name: ClassVar[str] = "pgd_at"
  revisions: ClassVar[tuple] = (_derived_revision("step_size", 0.025, "step_ratio"),)

  eps: float = 0.1
  step_size: float = 0.0
  step_ratio: float = 0.25
  steps: int = 10
  random_start: bool = True
  norm: str = "linf"
  bn: str = "batch"
  pad: int = 4
  flip: bool = True
  crop_fill: float = 0.0

  def __post_init__(self):
    ops.set_float(self, "eps", 0.0)
    ops.set_float(self, "step_size", 0.0)
    ops.set_float(self, "step_ratio", 0.0, lo_open=True)
    ops.set_int(self, "steps", 1)
    ops.set_bool(self, "random_start")
    _set_choice(self, "norm", ball.NORMS)
    _set_choice(self, "bn", BN_MODES)
    ops.set_crop_fields(self)

  @property
  def _norm(self) -> str:
    return self.norm

  @property
  def step(self) -> float:
    """The PGD step: step_size, or step_ratio * eps when step_size is 0."""
    return self.step_size or self.step_ratio * self.eps

  def _craft(self, key, images, labels, logits_fn):
    return fgsm_pgd.pgd_core(logits_fn, key, images, labels, self.eps, self.step,
                             norm=self.norm, steps=self.steps, restarts=1, loss="ce",
                             random_start=self.random_start, select="last")


@dataclasses.dataclass(frozen=True)
class FGSMRS(_Adversarial):
  """FGSM with a random start (Wong, Rice, Kolter 2020): CE on one-step L-inf examples.

  Attributes:
    eps: the L-inf radius in [0, 1] pixel units (0.1; CIFAR-10 8/255, MNIST 0.3).
    alpha: the step from the random start; 0 (default) = alpha_ratio * eps (used: `step`);
      at most 2 eps.
    alpha_ratio: alpha over eps when alpha is 0 (1.25: Wong et al.'s 10/255 at 8/255, 0.375 at
      MNIST's 0.3); at most 2.
    bn: BatchNorm while crafting, "batch" (the reference's) or "running".
    pad, flip, crop_fill: RandomCrop(padding=4) + flip before the attack.
  """
  name: ClassVar[str] = "fgsm_rs"
  revisions: ClassVar[tuple] = (_derived_revision("alpha", 0.125, "alpha_ratio"),)

  eps: float = 0.1
  alpha: float = 0.0
  alpha_ratio: float = 1.25
  bn: str = "batch"
  pad: int = 4
  flip: bool = True
  crop_fill: float = 0.0

  def __post_init__(self):
    ops.set_float(self, "eps", 0.0)
    ops.set_float(self, "alpha", 0.0)
    ops.set_float(self, "alpha_ratio", 0.0, lo_open=True)
    _set_choice(self, "bn", BN_MODES)
    ops.set_crop_fields(self)
    if self.alpha > 2.0 * self.eps or self.alpha_ratio > 2.0:
      field, value = (("alpha", self.alpha) if self.alpha else ("alpha_ratio", self.alpha_ratio))
      raise ValueError(f"FGSMRS.{field}={value!r} exceeds 2 eps (eps={self.eps!r}): the step "
                       "then always leaves the ball (catastrophic-overfitting regime, Wong et "
                       "al. 2020 section 5.2); set alpha <= 2 eps, or alpha=0 for "
                       "alpha_ratio * eps (1.25 eps by default).")

  @property
  def step(self) -> float:
    """The step from the random start: alpha, or alpha_ratio * eps when alpha is 0."""
    return self.alpha or self.alpha_ratio * self.eps

  def _craft(self, key, images, labels, logits_fn):
    return fgsm_pgd.pgd_core(logits_fn, key, images, labels, self.eps, self.step, norm="linf",
                             steps=1, restarts=1, loss="ce", random_start=True, select="last")


@dataclasses.dataclass(frozen=True)
class AdversarialComposition(base.Method):
  """Any method under adversarial training (`config.adversarial`): the method's views are made
  as usual, then each view it trains with CE (`ce_views` and `ce_paired_views`, except the views
  it routes to auxiliary BatchNorms) is replaced by its adversarial version, crafted by `attack`
  (a `PGDAT` or `FGSMRS`, whose own crop/flip fields are not used: the method's views are
  already cropped and flipped) against that view's labels. The method's loss terms, metrics and
  parameters stay: the paper's method trains APS's auxiliary term on the attacked view's
  attention with the labels of the augmentation that made the view; AugMix and PRIME add their
  JSD between the attacked clean view and the augmented ones; APR-P and HybridAugment attack both
  CE views. Adversarial training itself (`PGDAT`, `FGSMRS`) and views with soft labels do not
  compose (ValueError)."""
  method: base.Method = aps.PaperMethod()
  attack: _Adversarial = PGDAT()

  def __post_init__(self):
    if not isinstance(self.method, base.Method) or isinstance(
        self.method, (_Adversarial, AdversarialComposition)):
      raise ValueError(f"{getattr(self.method, 'name', self.method)!r} is adversarial training "
                       "already (or not a method): adversarial training composes with a "
                       "non-adversarial method.")
    if not isinstance(self.attack, _Adversarial):
      raise ValueError("AdversarialComposition.attack must be PGDAT or FGSMRS, got "
                       f"{self.attack!r}.")
    if not self.attacked_views:
      raise ValueError(f"the method {self.method.name!r} trains no view with CE through the main "
                       "BatchNorms, so there is no view to attack.")

  # The view structure, loss and history are the method's own.
  name = property(lambda self: f"{self.method.name}+{self.attack.name}")
  num_views = property(lambda self: self.method.num_views)
  ce_views = property(lambda self: self.method.ce_views)
  ce_paired_views = property(lambda self: self.method.ce_paired_views)
  aux_bn_views = property(lambda self: self.method.aux_bn_views)
  uses_attention = property(lambda self: self.method.uses_attention)
  revisions = property(lambda self: self.method.revisions)

  @property
  def attacked_views(self) -> tuple[int, ...]:
    """The views replaced by their adversarial version (recorded in results.json)."""
    trained = set(self.method.ce_views) | set(self.method.ce_paired_views)
    return tuple(sorted(trained - set(self.method.aux_bn_views)))

  def views(self, key, images, labels, forward=None):
    k_method, k_attack = jax.random.split(key)
    views, aux = self.method.views(k_method, images, labels, forward)
    if "label_weights" in aux:
      raise ValueError(f"the method {self.method.name!r} trains on soft labels, which an attack "
                       "on the CE cannot target; it does not compose with adversarial training.")
    norms = []
    for i, v in enumerate(self.attacked_views):
      target = aux["labels"][v] if "labels" in aux else labels
      k = k_attack if i == 0 else jax.random.fold_in(k_attack, v)
      adv = self.attack.craft(k, views[v], target, forward)
      norms.append(ball.norms(adv - views[v], self.attack._norm))
      views = views.at[v].set(adv.astype(views.dtype))
    return views, dict(aux, adv_perturbation=jnp.stack(norms))

  def loss_terms(self, logits, open_ratios, labels, aux: Mapping[str, Array], params):
    return self.method.loss_terms(logits, open_ratios, labels, aux, params)

  def step_metrics(self, open_ratios, aux, params):
    return dict(self.method.step_metrics(open_ratios, aux, params),
                adv_perturbation=jnp.mean(aux["adv_perturbation"]))

  def init_params(self) -> dict:
    return self.method.init_params()
