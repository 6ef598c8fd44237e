"""Backbones with the APS stem. `build_model(cfg.model, num_classes)` is the only constructor."""
from typing import Any

import jax.numpy as jnp

from freqrobust.models.layers import ATTENTIONS, ChannelAttention, SemanticLayer, Stem
from freqrobust.models.resnet import ResNet
from freqrobust.models.vgg import VGG

MODELS = ("small_resnet", "resnet18", "vgg16", "vgg16_bn")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def build_model(model_cfg: Any, num_classes: int):
  """Returns the Flax module named by `model_cfg.name` (see configs/default.py for the fields)."""
  name = model_cfg.name
  if name not in MODELS:
    raise ValueError(f"config.model.name={name!r}; valid: {', '.join(MODELS)}.")
  if model_cfg.attention not in ATTENTIONS:
    raise ValueError(f"config.model.attention={model_cfg.attention!r}; valid: {', '.join(ATTENTIONS)}.")
  if model_cfg.dtype not in DTYPES:
    raise ValueError(f"config.model.dtype={model_cfg.dtype!r}; valid: {', '.join(DTYPES)}.")
  common = dict(num_classes=num_classes, attention=model_cfg.attention,
                attention_hidden=model_cfg.attention_hidden,
                input_mean=tuple(model_cfg.input_mean), input_std=tuple(model_cfg.input_std),
                dtype=DTYPES[model_cfg.dtype])
  if name == "resnet18":
    return ResNet(stage_sizes=(2, 2, 2, 2), widths=(64, 128, 256, 512), **common)
  if name == "small_resnet":
    return ResNet(stage_sizes=tuple(model_cfg.small_stage_sizes),
                  widths=tuple(model_cfg.small_widths), **common)
  return VGG(use_bn=(name == "vgg16_bn"), **common)


def first_layer(model, variables, images):
  """Activation of the first semantic layer (conv [+BN], ReLU, no attention gate): (N, H, W, C1)."""
  return model.apply(variables, images, train=False, first_layer_only=True)


def first_layer_kernel(variables):
  """The first convolution's kernel (kh, kw, c_in, c_out)."""
  return variables["params"]["stem"]["semantic"]["conv"]["kernel"]


__all__ = ["MODELS", "build_model", "first_layer", "first_layer_kernel", "ResNet", "VGG",
           "ChannelAttention", "SemanticLayer", "Stem"]
