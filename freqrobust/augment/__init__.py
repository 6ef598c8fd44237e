"""Training augmentation methods, one module per method (see `base.Method` for the interface).

`base`: the `Method` interface. `paper`: the paper's own augmentation (pad, power suppression,
NFD, crop, flip, clip).
"""
from freqrobust.augment.paper import AugmentParams, augment_batch, augment_example

__all__ = ["AugmentParams", "augment_batch", "augment_example"]
