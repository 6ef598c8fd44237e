"""The interface every training augmentation method implements.

A method is a frozen (hashable) dataclass, static under `jax.jit`. The train step calls, per batch:

    views, aux = method.views(key, images, labels, forward)     # (V, N, H, W, C), dict
    logits, open_ratios = model(views.reshape(V * N, ...))      # then reshaped to (V, N, ...)
    ce = mean over v in method.ce_views of CE(logits[v], aux.get("labels", labels)[v])
    loss = ce + sum(method.loss_terms(logits, open_ratios, labels, aux, params).values())

so a method that needs several views (AugMix, PRIME: clean + augmented views with a consistency
loss), a partner image from the same batch (APR-P, HybridAugment), an inner gradient loop on the
model (AFA, through `forward`) or an auxiliary term on the attention (APS) needs no special case in
the train step. Adding a method = one module in this package + one entry in `METHODS` +
one config entry.

Conventions:
- `images`: float32 NHWC in [0, 1], the clean batch (N, H, W, C); `labels`: int32 (N,).
- `views` returns float32 (V, N, H, W, C) with V = `num_views`; view 0 is by convention the
  "main" view (the clean image for consistency methods).
- `aux` is a dict of arrays with leading dimension N or (V, N); the key "labels", when present,
  is an int32 (V, N) array of per-view labels that replaces `labels` in the CE.
  Soft labels: "label_weights" (V, N, K) float32, when present, replace the one-hot targets.
- `forward(images (M, H, W, C)) -> logits (M, K)`: the model in inference mode with the current
  parameters held fixed (no gradient flows to them); for methods with an inner loop (AFA).
- `loss_terms` returns named scalar terms already multiplied by their weights; they are added to
  the loss and logged under their names.
- `aux_bn_views`: the views the original method normalises with auxiliary BatchNorm layers of
  their own (AFA's DuBIN); a train step without auxiliary BN treats them as ordinary views.
- Every random choice comes from `key`; the same key gives the same views.
- Optional: `step_metrics` (scalars to log) and `init_params` (extra trainable parameters beside
  the model's, passed back to `loss_terms` as `params`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar, Mapping, Optional

import jax
import jax.numpy as jnp

Array = jax.Array
Forward = Callable[[Array], Array]


@dataclasses.dataclass(frozen=True)
class Method:
  """Base class: the identity method (one view, the clean batch, plain CE)."""
  name: ClassVar[str] = "none"
  num_views: ClassVar[int] = 1
  ce_views: ClassVar[tuple[int, ...]] = (0,)
  aux_bn_views: ClassVar[tuple[int, ...]] = ()

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


def soft_cross_entropy(logits: Array, targets: Array) -> Array:
  """Mean cross-entropy against probability targets (..., K)."""
  return -jnp.mean(jnp.sum(targets * jax.nn.log_softmax(logits, axis=-1), axis=-1))
