"""CIFAR-style ResNets (3x3 stem, no max-pool) with the APS stem: ResNet-18 and a small CPU ResNet.
"""
import functools
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from freqrobust.models.backbone import Backbone
from freqrobust.models.layers import conv3x3_padding, conv_init


class BasicBlock(nn.Module):
  features: int
  strides: int
  norm: Any
  dtype: Any = jnp.float32
  # The stride-2 convolution's padding: "same" (Flax's SAME, (0, 1)) or "pytorch" (padding=1,
  # (1, 1): the published PyTorch ResNet-18s; layers.PADDINGS).
  padding: str = "same"
  conv_op: Optional[Callable] = None  # Backbone.conv_op

  @nn.compact
  def __call__(self, x):
    residual = x
    y = nn.Conv(self.features, (3, 3), (self.strides, self.strides),
                padding=conv3x3_padding(self.padding), use_bias=False, kernel_init=conv_init,
                dtype=self.dtype, conv_general_dilated=self.conv_op)(x)
    y = nn.relu(self.norm()(y))
    y = nn.Conv(self.features, (3, 3), padding="SAME", use_bias=False, kernel_init=conv_init,
                dtype=self.dtype, conv_general_dilated=self.conv_op)(y)
    # Default BN init (torchvision's zero_init_residual=False): zero-initialised residual
    # scales made the small ResNet learn much more slowly (METHOD §8).
    y = self.norm()(y)
    if residual.shape != y.shape:
      residual = nn.Conv(self.features, (1, 1), (self.strides, self.strides), use_bias=False,
                         kernel_init=conv_init, dtype=self.dtype,
                         conv_general_dilated=self.conv_op, name="proj_conv")(residual)
      residual = self.norm(name="proj_bn")(residual)
    return nn.relu(residual + y)


class ChannelBias(nn.Module):
  """What stands for a BatchNorm in a ResNet built without them (`batch_norm=False`): a learned
  per-channel shift (BN's beta), no normalisation, no statistics."""
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],), jnp.float32)
    return x + bias.astype(self.dtype)


class ResNet(Backbone):
  """ResNet for small images (3x3 stem, no max-pool); ResNet-18 by default."""
  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  widths: Sequence[int] = (64, 128, 256, 512)
  padding: str = "same"  # same or pytorch: the stride-2 convolutions' padding (BasicBlock)
  # False: no BatchNorm anywhere (HFC's "without BN" models): each BN becomes a `ChannelBias`,
  # the stem convolution gets a bias; the model has no batch_stats.
  batch_norm: bool = True

  def norm(self, train: bool, bn_route: str = "main"):
    if self.batch_norm:
      return super().norm(train, bn_route)
    if self.aux_bn:
      raise ValueError("aux_bn (a method's auxiliary BatchNorms) needs a model with BatchNorm; "
                       "this one has config.model.batch_norm=False.")
    return functools.partial(ChannelBias, dtype=self.dtype)

  def __post_init__(self):
    conv3x3_padding(self.padding)  # Fails early on an unknown value.
    super().__post_init__()

  @nn.compact
  def __call__(self, x, train: bool = False, first_layer_only: bool = False,
               bn_route: str = "main"):
    h, open_ratios, before_gate = self.stem(x, train, self.widths[0], self.batch_norm, bn_route)
    if first_layer_only:
      return before_gate
    norm = self.norm(train, bn_route)
    for i, (blocks, width) in enumerate(zip(self.stage_sizes, self.widths)):
      for j in range(blocks):
        strides = 2 if i > 0 and j == 0 else 1
        h = BasicBlock(width, strides, norm, self.dtype, self.padding, self.conv_op)(h)
    return self.head(h), open_ratios
