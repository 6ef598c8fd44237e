"""CIFAR-style VGG-16 and VGG-16-BN (13 conv layers, global pool, one linear classifier)."""
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from freqrobust.models.backbone import Backbone
from freqrobust.models.layers import conv_init

# Widths of the 13 convolutions; "M" is a 2x2 max-pool (Simonyan & Zisserman, configuration D).
VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                512, 512, 512, "M")


class VGG(Backbone):
  """VGG for small images; the first conv (+BN) is the APS stem."""
  use_bn: bool = False
  layout: Sequence[Any] = VGG16_LAYOUT

  @nn.compact
  def __call__(self, x, train: bool = False, first_layer_only: bool = False,
               bn_route: str = "main"):
    h, open_ratios, before_gate = self.stem(x, train, self.layout[0], self.use_bn, bn_route)
    if first_layer_only:
      return before_gate
    norm = self.norm(train, bn_route)
    for item in self.layout[1:]:
      if item == "M":
        # Pool only while there is something to pool, so inputs smaller than 32 px work too.
        if h.shape[1] > 1 and h.shape[2] > 1:
          h = nn.max_pool(h, (2, 2), (2, 2))
        continue
      h = nn.Conv(item, (3, 3), padding="SAME", use_bias=not self.use_bn, kernel_init=conv_init,
                  dtype=self.dtype, conv_general_dilated=self.conv_op)(h)
      if self.use_bn:
        h = norm()(h)
      h = nn.relu(h)
    return self.head(h), open_ratios
