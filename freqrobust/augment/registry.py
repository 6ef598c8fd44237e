"""The baseline augmentation methods by config name (name -> `base.Method` subclass).

Each entry's module docstring gives the method's equations and the official code its defaults come
from; docs/METHOD.md §10 lists every hyperparameter with its source.
"""
from __future__ import annotations

from freqrobust.augment import (adversarial, afa, apr, augmix, base, fourier_basis, gaussian,
                                hybrid, prime)

_CLASSES: tuple[type[base.Method], ...] = (
    gaussian.GaussianNoise,
    augmix.AugMix,
    apr.APRS,
    apr.APRP,
    apr.APRSP,
    prime.PRIME,
    afa.AFA,
    hybrid.HybridAugmentS,
    hybrid.HybridAugmentP,
    hybrid.HybridAugmentPS,
    fourier_basis.FourierBasisNoise,
    adversarial.PGDAT,
    adversarial.FGSMRS,
)

METHODS: dict[str, type[base.Method]] = {cls.name: cls for cls in _CLASSES}
assert len(METHODS) == len(_CLASSES), "two baselines share a name"
