"""CIFAR-style VGG-16 and VGG-16-BN (13 conv layers, global pool, one linear classifier)."""
import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from freqrobust.models.layers import Stem, check_attention, conv_init, normalise

# Widths of the 13 convolutions; "M" is a 2x2 max-pool (Simonyan & Zisserman, configuration D).
VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                512, 512, 512, "M")


class VGG(nn.Module):
  """VGG for small images; the first conv (+BN) is the APS stem."""
  num_classes: int
  use_bn: bool
  layout: Sequence[Any] = VGG16_LAYOUT
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
    h, v, pre = Stem(self.layout[0], self.use_bn, self.attention, self.attention_hidden, norm,
                     self.dtype, name="stem")(x)
    if first_layer_only:
      return pre
    for item in self.layout[1:]:
      if item == "M":
        # Pool only while there is something to pool, so inputs smaller than 32 px work too.
        if h.shape[1] > 1 and h.shape[2] > 1:
          h = nn.max_pool(h, (2, 2), (2, 2))
        continue
      h = nn.Conv(item, (3, 3), padding="SAME", use_bias=not self.use_bn, kernel_init=conv_init,
                  dtype=self.dtype)(h)
      if self.use_bn:
        h = norm()(h)
      h = nn.relu(h)
    h = jnp.mean(h, axis=(1, 2))
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(h)
    return logits.astype(jnp.float32), v
