"""Building blocks shared by the backbones: the first semantic layer and the APS channel attention.
"""
from typing import Any, Callable, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

ModuleDef = Any

# He-normal (fan-out) initialisation, as torchvision and the CIFAR reference implementations use.
conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


class SemanticLayer(nn.Module):
  """The paper's first "semantic" layer: one convolution and an optional batch norm (section 3.2).
  """
  features: int
  use_bn: bool
  norm: Optional[ModuleDef] = None
  dtype: Any = jnp.float32
  use_bias: Optional[bool] = None  # None: a bias exactly when there is no BN (pre-activation
  # networks have neither).
  conv_op: Optional[Callable] = None  # Backbone.conv_op

  @nn.compact
  def __call__(self, x):
    use_bias = not self.use_bn if self.use_bias is None else self.use_bias
    x = nn.Conv(self.features, (3, 3), padding="SAME", use_bias=use_bias,
                kernel_init=conv_init, dtype=self.dtype, conv_general_dilated=self.conv_op,
                name="conv")(x)
    if self.use_bn:
      x = self.norm(name="bn")(x)
    return x


class ChannelAttention(nn.Module):
  """APS channel-wise attention (docs/METHOD.md §3, eq. 10): v in (0, 1)^C gates the feature map.

  basic:    global average pool -> Dense(hidden) -> ReLU -> Dense(C) -> sigmoid.
  extended: a 3x3 conv + BN + ReLU in front of the pooling (section 3.3, used with NFD).
  The gate multiplies the original feature map; `v` is returned for the auxiliary loss.
  `frozen_gate`: the same forward pass with no gradient through `v` (the gate a constant of the
  input): the attacks' BPDA surrogate (Athalye et al. 2018), `Backbone.frozen_gate`.
  """
  hidden: int = 512
  extended: bool = False
  norm: Optional[ModuleDef] = None
  dtype: Any = jnp.float32
  conv_op: Optional[Callable] = None  # Backbone.conv_op
  frozen_gate: bool = False

  @nn.compact
  def __call__(self, x) -> Tuple[jnp.ndarray, jnp.ndarray]:
    channels = x.shape[-1]
    y = x
    if self.extended:
      y = nn.Conv(channels, (3, 3), padding="SAME", use_bias=False, kernel_init=conv_init,
                  dtype=self.dtype, conv_general_dilated=self.conv_op, name="conv")(y)
      y = self.norm(name="bn")(y)
      # The paper names only conv + BN; without a nonlinearity global pooling commutes with
      # them and the module is an affine map of the pooled input (METHOD §3 has the measurement).
      y = nn.relu(y)
    y = jnp.mean(y, axis=(1, 2))
    y = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name="fc1")(y))
    y = nn.Dense(channels, dtype=self.dtype, name="fc2")(y)
    v = nn.sigmoid(y.astype(jnp.float32))
    if self.frozen_gate:
      v = jax.lax.stop_gradient(v)
    return x * v[:, None, None, :].astype(x.dtype), v


class Stem(nn.Module):
  """First semantic layer + optional attention + ReLU: the part every backbone shares.

  Returns (activation, open_ratios or None, relu(pre-gate features)); point detection maps read
  the last. Pre-activation networks (WideResNet, PreActResNet: their blocks start with BN and the
  activation) use `activate=False`: the first value is then the (gated) convolution itself, and
  `use_bias=False` (their first convolution has no bias and no BN).
  """
  features: int
  use_bn: bool
  attention: str
  attention_hidden: int
  norm: Optional[ModuleDef] = None
  dtype: Any = jnp.float32
  use_bias: Optional[bool] = None
  activate: bool = True
  conv_op: Optional[Callable] = None  # Backbone.conv_op
  frozen_gate: bool = False  # ChannelAttention.frozen_gate

  @nn.compact
  def __call__(self, x):
    h = SemanticLayer(self.features, self.use_bn, self.norm, self.dtype, self.use_bias,
                      conv_op=self.conv_op, name="semantic")(x)
    open_ratios = None
    before_gate = h
    if self.attention != "none":
      h, open_ratios = ChannelAttention(self.attention_hidden, self.attention == "extended",
                                        self.norm, self.dtype, conv_op=self.conv_op,
                                        frozen_gate=self.frozen_gate, name="attention")(h)
    return (nn.relu(h) if self.activate else h), open_ratios, nn.relu(before_gate)


def normalise(x, mean, std):
  """Per-channel standardisation inside the model, so every caller feeds images in [0, 1]."""
  c = x.shape[-1]
  mean = jnp.asarray(mean, jnp.float32)
  std = jnp.asarray(std, jnp.float32)
  if mean.size not in (1, c) or std.size not in (1, c):
    raise ValueError(f"input_mean/input_std have {mean.size}/{std.size} values but the images have "
                     f"{c} channels; give one value or one per channel (config.model.input_mean).")
  return (x - mean) / std


ATTENTIONS = ("none", "basic", "extended")

# Activations of the imported backbones (config.model.activation): DeepMind's WideResNets and
# PreActResNets use Swish (x * sigmoid(x)), the TRADES-style ones ReLU.
ACTIVATIONS = {"relu": nn.relu, "swish": nn.swish}

# Padding of the 3x3 convolutions (config.model.padding). They differ only at stride 2 (even
# input sides): "same" is Flax's/TensorFlow's SAME, (0, 1) on each spatial axis, which DeepMind's
# models reproduce by hand with F.pad(x, (0, 1, 0, 1)); "pytorch" is PyTorch's padding=1, (1, 1).
PADDINGS = ("same", "pytorch")


def conv3x3_padding(padding: str):
  """The nn.Conv padding of a 3x3 convolution under `padding` (see PADDINGS)."""
  if padding == "same":
    return "SAME"
  if padding == "pytorch":
    return ((1, 1), (1, 1))
  raise ValueError(f"config.model.padding={padding!r}; valid: {', '.join(PADDINGS)}.")


def activation_fn(name: str):
  if name not in ACTIVATIONS:
    raise ValueError(f"config.model.activation={name!r}; valid: {', '.join(ACTIVATIONS)}.")
  return ACTIVATIONS[name]


def check_attention(attention: str) -> None:
  if attention not in ATTENTIONS:
    raise ValueError(f"config.model.attention={attention!r}; valid: {', '.join(ATTENTIONS)}.")

