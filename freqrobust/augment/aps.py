"""The paper's method as an augmentation `Method`: power suppression + NFD views (paper.py) and
the Attended Power Suppression auxiliary term (eq. 6-10, docs/METHOD.md §3).

`PaperMethod(augment=AugmentParams, aps=APSParams)` gives one view per image (`augment_batch`)
and, when the model has an attention module, the term

    L_aux = lambda * (mean_c v_c - beta(M, keep))^2      (eq. 10)

for the power-suppressed images only; `aps.aux_average` says whether the sum over them is divided
by the batch size ("batch": the batch mean of per-sample losses CE_i + [suppressed_i] L_aux_i)
or by the number of suppressed images ("labelled").
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping, Optional

import jax
import jax.numpy as jnp

from freqrobust import checks, frequency
from freqrobust.augment import base
from freqrobust.augment.paper import AugmentParams, augment_batch
from freqrobust.workdir import UserError

AUX_AVERAGES = ("batch", "labelled")


@dataclasses.dataclass(frozen=True)
class APSParams:
  """Static parameters of the auxiliary term (hashable; built from `config.aps`).

  Attributes:
    enabled: the model has an attention module (else no term).
    configuration: "LMH=abc" or "learnable" (eq. 6-9).
    aux_weight: lambda of eq. 10 (paper: 100).
    aux_average: "batch" or "labelled" (see the module docstring).
    theta_init: initial theta_b (3 values) of the learnable configuration (eq. 9).
  """
  enabled: bool = False
  configuration: str = "LMH=000"
  aux_weight: float = 100.0
  aux_average: str = "batch"
  theta_init: tuple[float, float, float] = (0.0, 0.0, 0.0)

  def __post_init__(self):
    frequency.parse_aps_configuration(self.configuration)
    if self.aux_average not in AUX_AVERAGES:
      raise ValueError(f"config.aps.aux_average={self.aux_average!r}; valid: "
                       f"{', '.join(AUX_AVERAGES)}.")
    if not float(self.aux_weight) >= 0:
      raise ValueError(f"config.aps.aux_weight={self.aux_weight!r} must be >= 0.")
    theta = tuple(float(t) for t in self.theta_init)
    if len(theta) != 3:
      raise ValueError(f"config.aps.theta_init={self.theta_init!r} must have 3 values, one per "
                       "mask (L, M, H).")
    object.__setattr__(self, "theta_init", theta)
    object.__setattr__(self, "aux_weight", float(self.aux_weight))
    object.__setattr__(self, "enabled", bool(self.enabled))

  @property
  def learnable(self) -> bool:
    """theta_b is a trained parameter (the learnable configuration with an attention module)."""
    return self.enabled and frequency.parse_aps_configuration(self.configuration).learnable

  @classmethod
  def from_config(cls, aps_cfg: Mapping[str, Any], attention: str) -> "APSParams":
    return cls(enabled=attention != "none", configuration=str(aps_cfg["configuration"]),
               aux_weight=float(aps_cfg["aux_weight"]), aux_average=str(aps_cfg["aux_average"]),
               theta_init=tuple(aps_cfg["theta_init"]))


def check_config(aps_cfg: Mapping[str, Any], attention: str) -> None:
  """Checks `config.aps` against the model's attention (`config.model.attention`); raises
  `UserError` naming the field and what is valid."""
  try:
    parsed = frequency.parse_aps_configuration(aps_cfg["configuration"])
  except ValueError as err:
    raise UserError(f"config.aps.configuration: {err}") from None
  weight = aps_cfg["aux_weight"]
  checks.require(checks.number(weight) and weight >= 0, "aps.aux_weight", weight, "a number >= 0")
  checks.require(aps_cfg["aux_average"] in AUX_AVERAGES, "aps.aux_average",
                 aps_cfg["aux_average"], " or ".join(AUX_AVERAGES))
  theta = aps_cfg["theta_init"]
  theta = tuple(theta) if isinstance(theta, (tuple, list)) else ()
  checks.require(len(theta) == 3 and all(checks.number(x) for x in theta), "aps.theta_init",
                 aps_cfg["theta_init"], "3 finite numbers, one per mask (L, M, H)")
  if parsed.learnable and attention == "none":
    raise UserError("config.aps.configuration='learnable' needs an attention module to learn "
                    "through, but config.model.attention='none'; set config.model.attention to "
                    "basic or extended (or use the configuration LMH=abc without attention).")


def aux_loss(open_ratios: jax.Array, aux: Mapping[str, jax.Array], theta_b: Optional[jax.Array],
             aps: APSParams) -> tuple[jax.Array, jax.Array]:
  """(lambda-weighted L_aux of eq. 10 over the suppressed images, their mean label beta).

  `open_ratios` (N, C1); `aux` from `augment_batch`; `theta_b` (3,) in the learnable
  configuration, else None.
  """
  label = jax.vmap(lambda m, k: frequency.aps_label(m, k, aps.configuration, theta_b))
  beta = label(aux["mask"], aux["keep"])
  weight = aux["suppressed"].astype(jnp.float32)
  per_image = (jnp.mean(open_ratios.astype(jnp.float32), axis=-1) - beta) ** 2 * weight
  labelled = jnp.maximum(weight.sum(), 1.0)
  denominator = weight.shape[0] if aps.aux_average == "batch" else labelled
  return aps.aux_weight * per_image.sum() / denominator, jnp.sum(beta * weight) / labelled


@dataclasses.dataclass(frozen=True)
class PaperMethod(base.Method):
  """Power suppression, NFD, crop and flip (one view), plus APS's auxiliary term."""
  name: ClassVar[str] = "paper"
  uses_attention: ClassVar[bool] = True
  augment: AugmentParams = AugmentParams()
  aps: APSParams = APSParams()

  @classmethod
  def from_run_config(cls, config) -> "PaperMethod":
    """The paper's method of a run: its fields live in `config.augment` and `config.aps` (with
    `config.model.attention`), where the paper's configs have always set them."""
    check_config(config.aps, config.model.attention)
    try:
      return cls(augment=AugmentParams.from_config(config.augment),
                 aps=APSParams.from_config(config.aps, config.model.attention))
    except (ValueError, TypeError) as err:
      raise UserError(str(err)) from None

  def views(self, key, images, labels, forward=None):
    del labels, forward
    out, aux = augment_batch(key, images, self.augment)
    return out[None], aux

  def loss_terms(self, logits, open_ratios, labels, aux, params):
    del logits, labels
    if not self.aps.enabled or open_ratios is None:
      return {}
    theta = params["aps"]["theta_b"] if self.aps.learnable else None
    loss, _ = aux_loss(open_ratios[0], aux, theta, self.aps)
    return {"aux_loss": loss}

  def step_metrics(self, open_ratios, aux, params):
    out = {"suppressed": jnp.mean(aux["suppressed"].astype(jnp.float32))}
    if self.aps.enabled and open_ratios is not None:
      theta = params["aps"]["theta_b"] if self.aps.learnable else None
      _, beta = aux_loss(open_ratios[0], aux, theta, self.aps)
      out.update(open_ratio=jnp.mean(open_ratios), aux_label=beta)
    if self.aps.learnable:
      b = frequency.basic_open_ratios(params["aps"]["theta_b"])
      out.update(b_L=b[0], b_M=b[1], b_H=b[2])
    return out

  def init_params(self) -> dict:
    """theta_b (eq. 9) in the learnable configuration: trained by the same loss, no decay."""
    if not self.aps.learnable:
      return {}
    return {"aps": {"theta_b": jnp.asarray(self.aps.theta_init, jnp.float32)}}
