"""Pre-activation ResNet-18 (He et al. 2016, "Identity mappings") for 32x32 inputs, in the
variants RobustBench's CIFAR-10 zoo publishes, written from the architectures' descriptions.

A 3x3 convolution to 64 channels (the APS stem: no bias, no BN, no activation after it), four
stages of two `wideresnet.PreActBlock`s (64, 128, 256, 512 channels; strides 1, 2, 2, 2), then
optionally BN and the activation (`final_bn`), global average pooling and a linear layer. The
variants differ in the shortcut of the blocks that change the shape (`shortcut`, see
`PreActBlock`), the final BN, the activation and the stride-2 padding:

- "input", no final BN, ReLU, padding="pytorch": RobustBench's `PreActBlock` (Wong et al. 2020,
  Andriushchenko & Flammarion 2020): the 1x1 shortcut reads the block's raw input.
- "activated", final BN, ReLU, padding="pytorch": `PreActBlockV2` with `bn_before_fc` (Rice et
  al. 2020 L2, Kireev et al. 2021): the 1x1 shortcut reads BN-ReLU of the input, as in He et al.
- "input_3x3", final BN, Swish, padding="same": DeepMind's `DMPreActResNet` (Rebuffi et al. 2021,
  Gowal et al. 2021, Rade & Moosavi-Dezfooli 2022): a 3x3 shortcut of the raw input.
"""
from typing import Sequence

import flax.linen as nn

from freqrobust.models.backbone import Backbone
from freqrobust.models.layers import activation_fn
from freqrobust.models.wideresnet import SHORTCUTS, PreActBlock, check_fields, preact_stem


class PreActResNet(Backbone):
  """PreActResNet-18 by default. Variables: `stem`, `stage{s}_block{i}` (bn0, conv0, bn1, conv1,
  shortcut), `final_bn` (with `final_bn`), `head`."""
  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  widths: Sequence[int] = (64, 128, 256, 512)
  shortcut: str = "activated"  # activated, input or input_3x3 (see wideresnet.PreActBlock)
  final_bn: bool = True  # BN and the activation before the pooling
  activation: str = "relu"  # relu or swish
  padding: str = "same"  # same or pytorch (layers.PADDINGS)

  def __post_init__(self):
    if self.shortcut not in SHORTCUTS:
      raise ValueError(f"config.model.preact_shortcut={self.shortcut!r}; valid: "
                       f"{', '.join(SHORTCUTS)}.")
    if not isinstance(self.final_bn, bool):
      raise ValueError(f"config.model.preact_final_bn={self.final_bn!r}; valid: True or False.")
    check_fields(self.activation, self.padding)
    super().__post_init__()

  @nn.compact
  def __call__(self, x, train: bool = False, first_layer_only: bool = False,
               bn_route: str = "main"):
    h, open_ratios, before_gate = preact_stem(self, x, train, self.widths[0], bn_route)
    if first_layer_only:
      return before_gate
    norm = self.norm(train, bn_route)
    for s, (blocks, features) in enumerate(zip(self.stage_sizes, self.widths)):
      for i in range(blocks):
        strides = 2 if s > 0 and i == 0 else 1
        h = PreActBlock(features, strides, norm, self.activation, self.padding, self.shortcut,
                        self.dtype, self.conv_op, name=f"stage{s}_block{i}")(h)
    if self.final_bn:
      h = activation_fn(self.activation)(norm(name="final_bn")(h))
    return self.head(h), open_ratios


__all__ = ["PreActResNet"]
