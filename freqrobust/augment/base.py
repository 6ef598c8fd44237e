"""The interface every training augmentation method implements.

A method is a frozen (hashable) dataclass, static under `jax.jit`. The train step calls, per batch:

    views, aux = method.views(key, images, labels, forward)     # (V, N, H, W, C), dict
    logits, open_ratios = model(views.reshape(V * N, ...))      # then reshaped to (V, N, ...)
    ce = mean over v in method.ce_views of CE(logits[v], aux.get("labels", labels)[v])
    ce_paired = sum over v in method.ce_paired_views of the same CE(logits[v], ...)
    loss = ce + ce_paired + sum(method.loss_terms(logits, open_ratios, labels, aux,
                                                  params).values())

so a method that needs several views (AugMix, PRIME: clean + augmented views with a consistency
loss), a partner image from the same batch (APR-P, HybridAugment), an inner gradient loop on the
model (AFA, through `forward`) or an auxiliary term on the attention (APS) needs no special case in
the train step. Adding a method = one module in this package + one entry in `registry.METHODS`
(+ its config in configs/baselines.py). `from_run_config(config)` builds a method from a run's
config (`config.method_args` by default; the paper's method reads `config.augment` and
`config.aps`) and raises `UserError` for bad fields.

Conventions:
- `images`: float32 NHWC in [0, 1], the clean batch (N, H, W, C); `labels`: int32 (N,).
- `views` returns float32 (V, N, H, W, C) with V = `num_views`; view 0 is by convention the
  "main" view (the clean image for consistency methods).
- `aux` is a dict of arrays with leading dimension N or (V, N); the key "labels", when present,
  is an int32 (V, N) array of per-view labels that replaces `labels` in the CE.
  Soft labels: "label_weights" (V, N, K) float32, when present, replace the one-hot targets.
- `forward(images (M, H, W, C), bn="running") -> logits (M, K)`: the model with the current
  parameters held fixed (no gradient flows to them); for methods with an inner loop (AFA,
  adversarial training). `bn="running"`: inference mode (BatchNorm's running statistics);
  `bn="batch"`: BatchNorm normalises with the statistics of `images` as in training, and the
  running statistics are not updated (the adversarial-training references craft this way).
- `loss_terms` returns named scalar terms already multiplied by their weights; they are added to
  the loss and logged under their names.
- `ce_paired_views`: views whose CE is added to the loss with weight 1 each (a sum, beside the
  mean over `ce_views`), logged as `ce_paired`: APR's and HybridAugment's CE(x) + CE(x_mix). The
  train step computes it with the same targets as `ce_views` (per-view or soft labels, and the
  run's label smoothing), so every CE of a run follows one protocol.
- `aux_bn_views`: the views the original method normalises with auxiliary BatchNorm layers of
  their own (AFA's dual BN). With `config.train.aux_bn` (default True) the model gets an
  auxiliary twin of every BatchNorm and the train step forwards these views through them in a
  second call, with their own batch statistics; evaluation uses the main ones only.
- Every random choice comes from `key`; the same key gives the same views.
- Changes of a method after runs of it exist are declared, so that `freqrobust.report` can flag
  runs trained before them (nothing silently stale): `legacy_fields` maps a field added later to
  the value that earlier runs (whose recorded method_args lack it) behaved as; `revisions` lists
  the behaviour changes no field shows (`Revision`: what changed, and on which run configs it
  makes a difference), in order (a run records `len(revisions)` as its "method_revision" and
  its resolved fields as "method_fields").
- Optional: `step_metrics` (scalars to log) and `init_params` (extra trainable parameters beside
  the model's, passed back to `loss_terms` as `params`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar, Mapping, Optional

import jax
import jax.numpy as jnp

from freqrobust.augment import ops

Array = jax.Array
Forward = Callable[..., Array]  # forward(images, bn="running") -> logits


@dataclasses.dataclass(frozen=True)
class Method:
  """Base class: the identity method (one view, the clean batch, plain CE)."""
  name: ClassVar[str] = "none"
  num_views: ClassVar[int] = 1
  ce_views: ClassVar[tuple[int, ...]] = (0,)
  ce_paired_views: ClassVar[tuple[int, ...]] = ()
  aux_bn_views: ClassVar[tuple[int, ...]] = ()
  legacy_fields: ClassVar[Mapping[str, Any]] = {}
  revisions: ClassVar[tuple["Revision", ...]] = ()
  # Whether the method trains the model's APS attention (config.model.attention): the paper's
  # does; a baseline refuses an attention module it would not train.
  uses_attention: ClassVar[bool] = False

  def views(self, key: Array, images: Array, labels: Array,
            forward: Optional[Forward] = None) -> tuple[Array, dict]:
    del key, labels, forward
    return images[None], {}

  def loss_terms(self, logits: Array, open_ratios: Optional[Array], labels: Array,
                 aux: Mapping[str, Array], params: Any) -> dict[str, Array]:
    """Extra loss terms. `logits` (V, N, K); `open_ratios` (V, N, C1) or None."""
    del logits, open_ratios, labels, aux, params
    return {}

  def step_metrics(self, open_ratios: Optional[Array], aux: Mapping[str, Array],
                   params: Any) -> dict[str, Array]:
    """Scalars logged per step besides the loss terms (e.g. APS's mean open ratio)."""
    del open_ratios, aux, params
    return {}

  def init_params(self) -> dict:
    """Trainable parameters the method adds beside the model's {"model": ...} (e.g. APS's
    theta_b under "aps"); they get no weight decay."""
    return {}

  @classmethod
  def from_config(cls, cfg: Mapping[str, Any]) -> "Method":
    """Builds the method from its config section (a ConfigDict or dict); unknown fields fail."""
    values = dict(cfg.to_dict() if hasattr(cfg, "to_dict") else (cfg or {}))
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
      raise ValueError(f"Unknown config fields {unknown} for augmentation method {cls.name!r}; "
                       f"known fields: {known}.")
    return cls(**values)

  @classmethod
  def from_run_config(cls, config: Any) -> "Method":
    """The method of a run's whole config: a baseline's fields are `config.method_args` (the
    dataclass's fields; configs/baselines.py fills them from its defaults). Bad fields raise
    `UserError` naming them."""
    from freqrobust.workdir import UserError
    try:
      return cls.from_config(config.get("method_args", {}))
    except (ValueError, TypeError) as err:
      raise UserError(f"config.method_args ({cls.name}): {err}") from None


@dataclasses.dataclass(frozen=True)
class Revision:
  """A change of a method's behaviour that no config field shows: `note` says what changed;
  `applies(config)` (the run's config.json as a dict) says whether it makes a difference to a
  run with that config (e.g. only with label smoothing on)."""
  note: str
  applies: Callable[[Mapping[str, Any]], bool] = lambda config: True


def stale_notes(cls: type[Method], choices: Mapping[str, Any],
                config: Optional[Mapping[str, Any]] = None, part: str = "method") -> list[str]:
  """How a run of `cls` trained differently from the current code at the same settings, one line
  each: `choices` is its results.json "method_choices", `config` its config.json (a dict).
  `part`: which method of the run `cls` is, by the prefix of what the run recorded of it:
  "method" (method_args, method_fields, method_revision) or "adversarial", the adversarial
  training composed with it (`config.adversarial`: adversarial_args, adversarial_fields,
  adversarial_revision); the revisions' `applies` read the run's config either way.

  A field of `legacy_fields` counts only when the run recorded neither its resolved fields
  ("<part>_fields", recorded since these checks exist) nor that field in "<part>_args"."""
  notes = []
  whose = "" if part == "method" else f" of its {cls.name} training"
  if dataclasses.is_dataclass(cls) and f"{part}_fields" not in choices:
    args = choices.get(f"{part}_args") or {}
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    for field, legacy in cls.legacy_fields.items():
      if field not in args and legacy != defaults[field]:
        notes.append(f"trained before `{field}`{whose} existed, i.e. as {field}={legacy!r} "
                     f"(the default is now {defaults[field]!r})")
  config = config or {}
  for change in cls.revisions[int(choices.get(f"{part}_revision", 0)):]:
    if change.applies(config):
      notes.append(f"trained before this change{whose}: {change.note}")
  return notes


def _label_smoothing_on(config: Mapping[str, Any]) -> bool:
  return float((config.get("train") or {}).get("label_smoothing") or 0.0) > 0.0


PAIRED_CE_REVISION = Revision(
    "the paired CE takes the run's label smoothing, as every CE of a run (before: hard labels; "
    "2026-11-29)", _label_smoothing_on)


def soft_cross_entropy(logits: Array, targets: Array) -> Array:
  """Mean cross-entropy against probability targets (..., K)."""
  return -jnp.mean(jnp.sum(targets * jax.nn.log_softmax(logits, axis=-1), axis=-1))


@dataclasses.dataclass(frozen=True)
class SingleAndPaired(Method):
  """The view structure APR and HybridAugment share: a per-image transform `_single` (applied
  before the crop, as their pipelines do) and a within-batch transform `_pair` (a partner from the
  same batch), combined as `structure`:

    "single":       one view, crop(single(x)), plain CE                     (APR-S, HA-S)
    "pair":         views (crop(x), pair(crop(x))), CE + CE                 (APR-P, HA-P)
    "single_pair":  views (crop(single(x)), pair(crop(single(x)))), CE + CE (APR-SP, HA-PS)

  CE + CE: CE(view 0) + CE(view 1), the sum APR's and HybridAugment's reference code train with
  (APR core/train.py:60): `ce_views = (0,)` and `ce_paired_views = (1,)` for the paired
  structures (set by their classes).

  Subclasses define `_single(key, images)`, `_pair(key, images) -> (mixed, aux)` and the fields
  `pad`, `flip`, `crop_fill`.
  """
  structure: ClassVar[str] = "single"

  def _single(self, key: Array, images: Array) -> Array:
    raise NotImplementedError

  def _pair(self, key: Array, images: Array) -> tuple[Array, dict]:
    raise NotImplementedError

  def _crop(self, key: Array, images: Array) -> Array:
    return ops.crop_flip_batch(key, images, self.pad, self.flip, self.crop_fill)

  def views(self, key, images, labels, forward=None):
    del labels, forward
    ops.check_batch(images, self)
    if self.structure == "single":
      k_single, k_crop = jax.random.split(key)
      return self._crop(k_crop, self._single(k_single, images))[None], {}
    if self.structure == "pair":
      k_crop, k_pair = jax.random.split(key)
      first = self._crop(k_crop, images)
    else:
      k_single, k_crop, k_pair = jax.random.split(key, 3)
      first = self._crop(k_crop, self._single(k_single, images))
    mixed, aux = self._pair(k_pair, first)
    return jnp.stack([first, mixed]), aux

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    if "structure" in cls.__dict__:  # A concrete variant: its paired CE follows its structure
      paired = cls.structure != "single"  # (unless the class body sets these itself).
      if "ce_paired_views" not in cls.__dict__:
        cls.ce_paired_views = (1,) if paired else ()
      if "revisions" not in cls.__dict__:
        cls.revisions = (PAIRED_CE_REVISION,) if paired else ()


@dataclasses.dataclass(frozen=True)
class CleanAndTwoAugmented(Method):
  """The view structure AugMix and PRIME share: views (crop(x), a(crop(x)), a'(crop(x))) with two
  independent draws of the method's augmentation, CE on the clean view, plus
  `jsd_weight` x the Jensen-Shannon consistency of the three predictions (AugMix's loss).

  Subclasses define `_augment_batch(keys (M,), images (M, H, W, C))` (one independent draw per
  key; or override `_augment_draws(key, images) -> (2, N, H, W, C)` for draws that share
  randomness across the batch, as PRIME's reference does) and the fields `jsd_weight`,
  `pad`, `flip`, `crop_fill`.
  """
  num_views: ClassVar[int] = 3
  ce_views: ClassVar[tuple[int, ...]] = (0,)

  def _augment_batch(self, keys: Array, images: Array) -> Array:
    raise NotImplementedError

  def views(self, key, images, labels, forward=None):
    del labels, forward
    ops.check_batch(images, self)
    k_crop, k_aug = jax.random.split(key)
    clean = ops.crop_flip_batch(k_crop, images, self.pad, self.flip, self.crop_fill)
    augmented = self._augment_draws(k_aug, clean).astype(images.dtype)
    return jnp.concatenate([clean[None], augmented]), {}

  def _augment_draws(self, key: Array, images: Array) -> Array:
    """The two augmented views (2, N, H, W, C): two independent draws per image, as one flat
    vmap over 2N examples."""
    keys = jax.random.split(key, 2 * images.shape[0])
    augmented = self._augment_batch(keys, jnp.concatenate([images, images]))
    return augmented.reshape((2,) + images.shape)

  def loss_terms(self, logits: Array, open_ratios: Optional[Array], labels: Array,
                 aux: Mapping[str, Array], params: Any) -> dict[str, Array]:
    del open_ratios, labels, aux, params
    return {"jsd": self.jsd_weight * ops.jsd_consistency(logits)}
