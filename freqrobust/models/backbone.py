"""What every backbone shares: input normalisation, the APS stem, BatchNorm settings, the output."""
import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from freqrobust.models.layers import Stem, check_attention, normalise


class Backbone(nn.Module):
  """Base of ResNet and VGG. `__call__(x, train, first_layer_only)` returns `(logits,
  open_ratios)` (open_ratios (N, C1) or None without attention), or with `first_layer_only`
  the stem's pre-gate activation (conv [+ BN], ReLU) for point detection maps."""
  num_classes: int = 10
  attention: str = "none"  # none, basic, extended (checked once, at construction)
  attention_hidden: int = 512
  input_mean: Sequence[float] = (0.5,)
  input_std: Sequence[float] = (0.25,)
  bn_momentum: float = 0.9
  dtype: Any = jnp.float32

  def __post_init__(self):
    check_attention(self.attention)
    super().__post_init__()

  def norm(self, train: bool):
    return functools.partial(nn.BatchNorm, use_running_average=not train,
                             momentum=self.bn_momentum, epsilon=1e-5, dtype=self.dtype)

  def stem(self, x, train: bool, features: int, use_bn: bool):
    """Normalised input -> first semantic layer -> attention gate -> ReLU:
    (features, open_ratios or None, pre-gate features after ReLU)."""
    x = normalise(x, self.input_mean, self.input_std).astype(self.dtype)
    return Stem(features, use_bn, self.attention, self.attention_hidden, self.norm(train),
                self.dtype, name="stem")(x)

  def head(self, h):
    h = jnp.mean(h, axis=(1, 2))
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(h).astype(jnp.float32)
