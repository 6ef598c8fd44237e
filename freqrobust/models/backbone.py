"""What every backbone shares: input normalisation, the APS stem, BatchNorm settings, the output."""
import functools
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from freqrobust.models.layers import Stem, check_attention, normalise


BN_ROUTES = ("main", "aux")


class DualBatchNorm(nn.Module):
  """Two BatchNorms ("main" and "aux": own statistics, own scale and bias); `route` picks one.

  Both are created at initialisation whatever the route, so a model's variables never depend on
  which route its init call took. AFA's official models (DuBN) route the augmented view to "aux".
  """
  bn: Any  # functools.partial of nn.BatchNorm with the backbone's settings.
  route: str = "main"

  @nn.compact
  def __call__(self, x):
    bns = {route: self.bn(name=route) for route in BN_ROUTES}
    if self.is_initializing():  # Both twins see x, so both get their variables.
      return {route: bn(x) for route, bn in bns.items()}[self.route]
    return bns[self.route](x)


class Backbone(nn.Module):
  """Base of ResNet and VGG. `__call__(x, train, first_layer_only, bn_route)` returns `(logits,
  open_ratios)` (open_ratios (N, C1) or None without attention), or with `first_layer_only`
  the stem's pre-gate activation (conv [+ BN], ReLU) for point detection maps."""
  num_classes: int = 10
  attention: str = "none"  # none, basic, extended (checked once, at construction)
  attention_hidden: int = 512
  input_mean: Sequence[float] = (0.5,)
  input_std: Sequence[float] = (0.25,)
  bn_momentum: float = 0.9
  dtype: Any = jnp.float32
  # Auxiliary BatchNorm layers (AFA's dual BN): every BN gets a second set of statistics and affine
  # parameters, used when the model is called with `bn_route="aux"` (training on the views a
  # method declares in `aux_bn_views`); evaluation always uses the main ones.
  aux_bn: bool = False
  # What every convolution calls in place of `lax.conv_general_dilated` (Flax's
  # `nn.Conv.conv_general_dilated`): None = lax's; freqrobust.native.conv.select gives oneDNN's.
  conv_op: Optional[Callable] = None
  # The attention gate with its gradient stopped (the forward pass unchanged): the BPDA surrogate
  # that attacks differentiate to test whether the gate masks the gradient (`adversarial`'s
  # `surrogate="frozen_gate"`). Never set for training.
  frozen_gate: bool = False

  def __post_init__(self):
    check_attention(self.attention)
    super().__post_init__()

  def norm(self, train: bool, bn_route: str = "main"):
    if bn_route not in BN_ROUTES:
      raise ValueError(f"bn_route={bn_route!r}; valid: {', '.join(BN_ROUTES)}.")
    if bn_route == "aux" and not self.aux_bn:
      raise ValueError("bn_route='aux' needs a model built with aux_bn=True.")
    bn = functools.partial(nn.BatchNorm, use_running_average=not train,
                           momentum=self.bn_momentum, epsilon=1e-5, dtype=self.dtype)
    if not self.aux_bn:
      return bn
    return functools.partial(DualBatchNorm, bn=bn, route=bn_route)

  def stem(self, x, train: bool, features: int, use_bn: bool, bn_route: str = "main"):
    """Normalised input -> first semantic layer -> attention gate -> ReLU:
    (features, open_ratios or None, pre-gate features after ReLU)."""
    x = normalise(x, self.input_mean, self.input_std).astype(self.dtype)
    return Stem(features, use_bn, self.attention, self.attention_hidden,
                self.norm(train, bn_route), self.dtype, conv_op=self.conv_op,
                frozen_gate=self.frozen_gate, name="stem")(x)

  def head(self, h):
    h = jnp.mean(h, axis=(1, 2))
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(h).astype(jnp.float32)
