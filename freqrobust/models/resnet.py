"""CIFAR-style ResNets (3x3 stem, no max-pool) with the APS stem: ResNet-18 and a small CPU ResNet."""
import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from freqrobust.models.layers import Stem, check_attention, conv_init, normalise


class BasicBlock(nn.Module):
  features: int
  strides: int
  norm: Any
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    residual = x
    y = nn.Conv(self.features, (3, 3), (self.strides, self.strides), padding="SAME",
                use_bias=False, kernel_init=conv_init, dtype=self.dtype)(x)
    y = nn.relu(self.norm()(y))
    y = nn.Conv(self.features, (3, 3), padding="SAME", use_bias=False, kernel_init=conv_init,
                dtype=self.dtype)(y)
    # Default BN init (torchvision's zero_init_residual=False): zero-initialised residual scales
    # slowed the small ResNet's first epochs badly (48.9% vs 77.0% test accuracy after one
    # epoch on 20 000 Fashion-MNIST images).
    y = self.norm()(y)
    if residual.shape != y.shape:
      residual = nn.Conv(self.features, (1, 1), (self.strides, self.strides), use_bias=False,
                         kernel_init=conv_init, dtype=self.dtype, name="proj_conv")(residual)
      residual = self.norm(name="proj_bn")(residual)
    return nn.relu(residual + y)


class ResNet(nn.Module):
  """ResNet for small images. `first_layer_only=True` returns the stem's pre-gate activation."""
  stage_sizes: Sequence[int]
  widths: Sequence[int]
  num_classes: int
  attention: str = "none"
  attention_hidden: int = 512
  input_mean: Sequence[float] = (0.5,)
  input_std: Sequence[float] = (0.25,)
  bn_momentum: float = 0.9
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False, first_layer_only: bool = False):
    check_attention(self.attention)
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=self.bn_momentum,
                             epsilon=1e-5, dtype=self.dtype)
    x = normalise(x, self.input_mean, self.input_std).astype(self.dtype)
    h, v, pre = Stem(self.widths[0], True, self.attention, self.attention_hidden, norm, self.dtype,
                     name="stem")(x)
    if first_layer_only:
      return pre
    for i, (blocks, width) in enumerate(zip(self.stage_sizes, self.widths)):
      for j in range(blocks):
        strides = 2 if i > 0 and j == 0 else 1
        h = BasicBlock(width, strides, norm, self.dtype)(h)
    h = jnp.mean(h, axis=(1, 2))
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(h)
    return logits.astype(jnp.float32), v
