"""Wide residual networks (Zagoruyko & Komodakis, 2016) as the adversarial-robustness literature
publishes them for CIFAR-10, written from the architecture's description.

WRN-d-k: a 3x3 convolution to 16 channels, three groups of n = (d - 4) / 6 pre-activation blocks
with 16k, 32k and 64k channels (strides 1, 2, 2), then BN, the activation, global average pooling
and a linear layer. A block is BN -> activation -> 3x3 conv (stride s) -> BN -> activation ->
3x3 conv, added to the identity, or, when the channel count changes, to a 1x1 convolution (stride
s) of the block's *activated* input. Two published families differ only in details that change
the logits by a few percent, not in structure, so both are this one class:

- TRADES-style (Zhang et al. 2019 and most RobustBench entries): ReLU, PyTorch's padding=1 on
  every 3x3 convolution (`padding="pytorch"`), inputs in [0, 1] without normalisation.
- DeepMind's (Gowal et al. 2020, Rebuffi et al. 2021): Swish, the stride-2 convolutions padded
  (0, 1) as TensorFlow's SAME (`padding="same"`), CIFAR-10 mean/std subtracted inside the model.

The first convolution is the APS stem (`stem/semantic/conv`, no bias, no BN, no activation after
it: the first block's BN and activation follow), so `models.first_layer_kernel` reads it.
"""
from typing import Any, Callable, Optional

import flax.linen as nn
import jax.numpy as jnp

from freqrobust.models.backbone import Backbone
from freqrobust.models.layers import (PADDINGS, Stem, activation_fn, conv3x3_padding, conv_init,
                                      normalise)

SHORTCUTS = ("activated", "input", "input_3x3")


def preact_stem(model: Backbone, x, train: bool, features: int, bn_route: str = "main"):
  """`Backbone.stem` for pre-activation networks: normalised input -> 3x3 conv (no bias, no BN)
  -> attention gate; no activation (the first block starts with BN and the activation). Call it
  from the model's compact `__call__`: the stem is then the module's "stem"."""
  x = normalise(x, model.input_mean, model.input_std).astype(model.dtype)
  return Stem(features, False, model.attention, model.attention_hidden,
              model.norm(train, bn_route), model.dtype, use_bias=False, activate=False,
              conv_op=model.conv_op, frozen_gate=model.frozen_gate, name="stem")(x)


class PreActBlock(nn.Module):
  """BN -> act -> conv3x3(stride) -> BN -> act -> conv3x3, plus the shortcut.

  The shortcut is the identity when the shape is kept, else a convolution named "shortcut" of:
  "activated": the block's activated input, 1x1 (WideResNets; PreActResNet's `PreActBlockV2` and
  the original pre-activation ResNet); "input": the block's raw input, 1x1 (RobustBench's
  `PreActBlock` as Wong et al. 2020 use it); "input_3x3": the raw input, 3x3 with the block's
  padding (DeepMind's PreActResNet-18).
  """
  features: int
  strides: int
  norm: Any
  activation: str = "relu"
  padding: str = "same"
  shortcut: str = "activated"
  dtype: Any = jnp.float32
  conv_op: Optional[Callable] = None  # Backbone.conv_op

  @nn.compact
  def __call__(self, x):
    act = activation_fn(self.activation)
    pad = conv3x3_padding(self.padding)
    strides = (self.strides, self.strides)
    a = act(self.norm(name="bn0")(x))
    if self.strides != 1 or x.shape[-1] != self.features:
      if self.shortcut == "activated":
        s = nn.Conv(self.features, (1, 1), strides, padding="VALID", use_bias=False,
                    kernel_init=conv_init, dtype=self.dtype, conv_general_dilated=self.conv_op,
                    name="shortcut")(a)
      elif self.shortcut == "input":
        s = nn.Conv(self.features, (1, 1), strides, padding="VALID", use_bias=False,
                    kernel_init=conv_init, dtype=self.dtype, conv_general_dilated=self.conv_op,
                    name="shortcut")(x)
      elif self.shortcut == "input_3x3":
        s = nn.Conv(self.features, (3, 3), strides, padding=pad, use_bias=False,
                    kernel_init=conv_init, dtype=self.dtype, conv_general_dilated=self.conv_op,
                    name="shortcut")(x)
      else:
        raise ValueError(f"shortcut={self.shortcut!r}; valid: {', '.join(SHORTCUTS)}.")
    else:
      s = x
    y = nn.Conv(self.features, (3, 3), strides, padding=pad, use_bias=False,
                kernel_init=conv_init, dtype=self.dtype, conv_general_dilated=self.conv_op,
                name="conv0")(a)
    y = act(self.norm(name="bn1")(y))
    y = nn.Conv(self.features, (3, 3), padding=pad, use_bias=False, kernel_init=conv_init,
                dtype=self.dtype, conv_general_dilated=self.conv_op, name="conv1")(y)
    return s + y


def check_fields(activation: str, padding: str) -> None:
  activation_fn(activation)
  conv3x3_padding(padding)


class WideResNet(Backbone):
  """WRN-depth-width for 32x32 inputs (see the module docstring). Variables: `stem`,
  `group{g}_block{i}` (bn0, conv0, bn1, conv1, shortcut), `final_bn`, `head`."""
  depth: int = 28
  width: int = 10
  activation: str = "relu"  # relu or swish
  padding: str = "same"  # same or pytorch (layers.PADDINGS)

  def __post_init__(self):
    if not (isinstance(self.depth, int) and self.depth >= 10 and (self.depth - 4) % 6 == 0):
      raise ValueError(f"config.model.wrn_depth={self.depth!r}: a WideResNet's depth is 6n + 4 "
                       "with n >= 1 (10, 16, 22, 28, 34, 70, ...).")
    if not (isinstance(self.width, int) and self.width >= 1):
      raise ValueError(f"config.model.wrn_width={self.width!r}: an integer >= 1.")
    check_fields(self.activation, self.padding)
    super().__post_init__()

  @property
  def blocks_per_group(self) -> int:
    return (self.depth - 4) // 6

  @nn.compact
  def __call__(self, x, train: bool = False, first_layer_only: bool = False,
               bn_route: str = "main"):
    h, open_ratios, before_gate = preact_stem(self, x, train, 16, bn_route)
    if first_layer_only:
      return before_gate
    norm = self.norm(train, bn_route)
    for g, (features, stride) in enumerate(zip((16 * self.width, 32 * self.width,
                                                 64 * self.width), (1, 2, 2))):
      for i in range(self.blocks_per_group):
        h = PreActBlock(features, stride if i == 0 else 1, norm, self.activation, self.padding,
                        "activated", self.dtype, self.conv_op, name=f"group{g}_block{i}")(h)
    h = activation_fn(self.activation)(norm(name="final_bn")(h))
    return self.head(h), open_ratios


__all__ = ["WideResNet", "PreActBlock", "preact_stem", "SHORTCUTS", "PADDINGS"]
