"""Backbones with the APS stem. `build_model(cfg.model, num_classes)` is the only constructor.

To add a backbone: a module in this package subclassing `backbone.Backbone`, and one entry in
`MODELS` (name -> the module's class and fixed fields, given the model config).
"""
from typing import Any, Callable, Dict, Optional, Tuple

import jax.numpy as jnp

from freqrobust import checks
from freqrobust.models.backbone import BN_ROUTES, Backbone, DualBatchNorm
from freqrobust.models.layers import (ACTIVATIONS, ATTENTIONS, PADDINGS, ChannelAttention,
                                      SemanticLayer, Stem)
from freqrobust.models.preact_resnet import PreActResNet
from freqrobust.models.resnet import ResNet
from freqrobust.models.vgg import VGG
from freqrobust.models.wideresnet import WideResNet

# Model fields added with the imported backbones (docs/MODELS.md), with the value a config.json
# written before them (an older run's workdir) stands for.
MODEL_FIELD_DEFAULTS = {"padding": "same", "activation": "relu", "wrn_depth": 28,
                        "wrn_width": 10, "preact_shortcut": "activated", "preact_final_bn": True,
                        "batch_norm": True}


def _field(cfg: Any, name: str) -> Any:
  return cfg.get(name, MODEL_FIELD_DEFAULTS[name])


# The backbones that `config.model.batch_norm=False` builds without BatchNorm (ResNet's
# `batch_norm` field); the others refuse the setting.
BATCH_NORM_OPTIONAL = ("small_resnet", "resnet18")


def _with_bn(cfg: Any) -> Dict[str, Any]:
  """The refusal of `batch_norm=False` by a backbone not in BATCH_NORM_OPTIONAL."""
  if not _field(cfg, "batch_norm"):
    raise ValueError(f"config.model.batch_norm=False: config.model.name={cfg.name!r} cannot drop "
                     f"its BatchNorms ({' and '.join(BATCH_NORM_OPTIONAL)} can; vgg16 is VGG "
                     "without BN).")
  return {}


def _relu_only(cfg: Any) -> Dict[str, Any]:
  """The backbones without an activation choice refuse another one rather than ignore it."""
  if _field(cfg, "activation") != "relu":
    raise ValueError(f"config.model.activation={_field(cfg, 'activation')!r}: "
                     f"config.model.name={cfg.name!r} has ReLU only (swish: wrn, preact_resnet18).")
  return {}


# name -> (class, fields from the model config).
MODELS: Dict[str, Tuple[type, Callable[[Any], Dict[str, Any]]]] = {
    "small_resnet": (ResNet, lambda cfg: dict(stage_sizes=tuple(cfg.small_stage_sizes),
                                              widths=tuple(cfg.small_widths),
                                              padding=_field(cfg, "padding"),
                                              batch_norm=bool(_field(cfg, "batch_norm")),
                                              **_relu_only(cfg))),
    "resnet18": (ResNet, lambda cfg: dict(stage_sizes=(2, 2, 2, 2), widths=(64, 128, 256, 512),
                                          padding=_field(cfg, "padding"),
                                          batch_norm=bool(_field(cfg, "batch_norm")),
                                          **_relu_only(cfg))),
    "vgg16": (VGG, lambda cfg: dict(use_bn=False, **_relu_only(cfg), **_with_bn(cfg))),
    "vgg16_bn": (VGG, lambda cfg: dict(use_bn=True, **_relu_only(cfg), **_with_bn(cfg))),
    # The imported CIFAR-10 families (docs/MODELS.md; freqrobust/convert.py).
    "wrn": (WideResNet, lambda cfg: dict(depth=_field(cfg, "wrn_depth"),
                                         width=_field(cfg, "wrn_width"),
                                         activation=_field(cfg, "activation"),
                                         padding=_field(cfg, "padding"),
                                         **_with_bn(cfg))),
    "preact_resnet18": (PreActResNet, lambda cfg: dict(shortcut=_field(cfg, "preact_shortcut"),
                                                       final_bn=_field(cfg, "preact_final_bn"),
                                                       activation=_field(cfg, "activation"),
                                                       padding=_field(cfg, "padding"),
                                                       **_with_bn(cfg))),
}
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def _require(ok: bool, field: str, value: Any, valid: str) -> None:
  checks.require(ok, f"model.{field}", value, valid)


def _small_resnet_checks(cfg: Any) -> None:
  """The small ResNet's stage fields: one block count per width, positive widths, counts >= 1
  (the first may be 0: the stem then feeds the first stride-2 stage)."""
  widths, sizes = tuple(cfg.small_widths), tuple(cfg.small_stage_sizes)
  _require(len(sizes) == len(widths) and len(widths) >= 1, "small_stage_sizes", sizes,
           f"one block count per stage width (model.small_widths has {len(widths)})")
  _require(all(isinstance(w, int) and w >= 1 for w in widths), "small_widths", widths,
           "positive integers")
  _require(all(isinstance(s, int) for s in sizes) and sizes[0] >= 0
           and all(s >= 1 for s in sizes[1:]), "small_stage_sizes", sizes,
           "integers >= 1 (the first may be 0: the stem then feeds the first stride-2 stage)")


# name -> the checks of the backbone's own fields (those `MODELS`' field functions do not make).
_CHECKS: Dict[str, Callable[[Any], None]] = {"small_resnet": _small_resnet_checks}


def check_config(cfg: Any) -> None:
  """Checks the fields of `config.model` a user may set; raises `UserError` naming the field and
  what is valid (the backbone's own field checks run in `build_model`)."""
  _require(cfg.dtype in DTYPES, "dtype", cfg.dtype,
           "float32 or bfloat16 (the compute dtype; weights stay float32)")
  batch_norm = cfg.get("batch_norm", True)
  _require(isinstance(batch_norm, bool), "batch_norm", batch_norm, "True or False")
  _require(batch_norm or cfg.name in BATCH_NORM_OPTIONAL, "batch_norm", False,
           f"True for model.name={cfg.name!r} (only {' and '.join(BATCH_NORM_OPTIONAL)} can be "
           "built without BatchNorm; vgg16 is VGG without BN)")
  _require(isinstance(cfg.attention_hidden, int) and cfg.attention_hidden >= 1,
           "attention_hidden", cfg.attention_hidden, "an integer >= 1 (paper: 512)")
  if cfg.name in _CHECKS:
    _CHECKS[cfg.name](cfg)


def build_model(model_cfg: Any, num_classes: int, aux_bn: bool = False,
                conv_op: Optional[Callable] = None) -> Backbone:
  """The Flax module named by `model_cfg.name` (see configs/default.py for the fields); `aux_bn`
  gives every BatchNorm an auxiliary twin (`backbone.DualBatchNorm`); `conv_op`: what its
  convolutions call in place of `lax.conv_general_dilated` (`Backbone.conv_op`)."""
  if model_cfg.name not in MODELS:
    raise ValueError(f"config.model.name={model_cfg.name!r}; valid: {', '.join(MODELS)}.")
  if model_cfg.dtype not in DTYPES:
    raise ValueError(f"config.model.dtype={model_cfg.dtype!r}; valid: {', '.join(DTYPES)}.")
  cls, fields = MODELS[model_cfg.name]
  return cls(num_classes=num_classes, attention=model_cfg.attention,
             attention_hidden=model_cfg.attention_hidden,
             input_mean=tuple(model_cfg.input_mean), input_std=tuple(model_cfg.input_std),
             dtype=DTYPES[model_cfg.dtype], aux_bn=aux_bn, conv_op=conv_op,
             **fields(model_cfg))


def first_layer(model, variables, images):
  """Activation of the first semantic layer (conv [+BN], ReLU, no attention gate): (N, H, W, C1)."""
  return model.apply(variables, images, train=False, first_layer_only=True)


def first_layer_kernel(variables):
  """The first convolution's kernel (kh, kw, c_in, c_out)."""
  return variables["params"]["stem"]["semantic"]["conv"]["kernel"]


__all__ = ["MODELS", "BATCH_NORM_OPTIONAL", "BN_ROUTES", "Backbone", "DualBatchNorm",
           "build_model", "check_config", "first_layer",
           "first_layer_kernel", "ResNet", "VGG", "WideResNet", "PreActResNet",
           "ChannelAttention", "SemanticLayer", "Stem", "ATTENTIONS", "ACTIVATIONS", "PADDINGS",
           "MODEL_FIELD_DEFAULTS"]
