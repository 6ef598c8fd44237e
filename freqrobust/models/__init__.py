"""Backbones with the APS stem. `build_model(cfg.model, num_classes)` is the only constructor.

To add a backbone: a module in this package subclassing `backbone.Backbone`, and one entry in
`MODELS` (name -> the module's class and fixed fields, given the model config).
"""
from typing import Any, Callable, Dict, Tuple

import jax.numpy as jnp

from freqrobust.models.backbone import BN_ROUTES, Backbone, DualBatchNorm
from freqrobust.models.layers import ATTENTIONS, ChannelAttention, SemanticLayer, Stem
from freqrobust.models.resnet import ResNet
from freqrobust.models.vgg import VGG

# name -> (class, fields from the model config).
MODELS: Dict[str, Tuple[type, Callable[[Any], Dict[str, Any]]]] = {
    "small_resnet": (ResNet, lambda cfg: dict(stage_sizes=tuple(cfg.small_stage_sizes),
                                              widths=tuple(cfg.small_widths))),
    "resnet18": (ResNet, lambda cfg: dict(stage_sizes=(2, 2, 2, 2), widths=(64, 128, 256, 512))),
    "vgg16": (VGG, lambda cfg: dict(use_bn=False)),
    "vgg16_bn": (VGG, lambda cfg: dict(use_bn=True)),
}
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def build_model(model_cfg: Any, num_classes: int, aux_bn: bool = False) -> Backbone:
  """The Flax module named by `model_cfg.name` (see configs/default.py for the fields); `aux_bn`
  gives every BatchNorm an auxiliary twin (`backbone.DualBatchNorm`)."""
  if model_cfg.name not in MODELS:
    raise ValueError(f"config.model.name={model_cfg.name!r}; valid: {', '.join(MODELS)}.")
  if model_cfg.dtype not in DTYPES:
    raise ValueError(f"config.model.dtype={model_cfg.dtype!r}; valid: {', '.join(DTYPES)}.")
  cls, fields = MODELS[model_cfg.name]
  return cls(num_classes=num_classes, attention=model_cfg.attention,
             attention_hidden=model_cfg.attention_hidden,
             input_mean=tuple(model_cfg.input_mean), input_std=tuple(model_cfg.input_std),
             dtype=DTYPES[model_cfg.dtype], aux_bn=aux_bn, **fields(model_cfg))


def first_layer(model, variables, images):
  """Activation of the first semantic layer (conv [+BN], ReLU, no attention gate): (N, H, W, C1)."""
  return model.apply(variables, images, train=False, first_layer_only=True)


def first_layer_kernel(variables):
  """The first convolution's kernel (kh, kw, c_in, c_out)."""
  return variables["params"]["stem"]["semantic"]["conv"]["kernel"]


__all__ = ["MODELS", "BN_ROUTES", "Backbone", "DualBatchNorm", "build_model", "first_layer",
           "first_layer_kernel", "ResNet", "VGG", "ChannelAttention", "SemanticLayer", "Stem",
           "ATTENTIONS"]
