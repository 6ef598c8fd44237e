"""Every training augmentation method by config name (`config.method`; name -> `base.Method`
subclass): the paper's method (`aps.PaperMethod`, its fields in `config.augment` and `config.aps`)
and the baselines (`BASELINES`, their fields in `config.method_args`). Each builds itself from a
run's config (`cls.from_run_config(config)`), so `experiment.build_method` names none of them.

Each entry's module docstring gives the method's equations and the official code its defaults come
from; docs/METHOD.md §10 lists every hyperparameter with its source.
"""
from __future__ import annotations

from freqrobust.augment import (adversarial, afa, apr, aps, augmix, base, fourier_basis,
                                gaussian, hybrid, prime)

_BASELINES: tuple[type[base.Method], ...] = (
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

# The baselines (configs/baselines.py: one config each, fields from the dataclass's defaults).
BASELINES: dict[str, type[base.Method]] = {cls.name: cls for cls in _BASELINES}
assert len(BASELINES) == len(_BASELINES), "two baselines share a name"
# Every method, the paper's first (config.method's default).
METHODS: dict[str, type[base.Method]] = {aps.PaperMethod.name: aps.PaperMethod, **BASELINES}
assert len(METHODS) == len(BASELINES) + 1, "a baseline is named like the paper's method"

# The adversarial-training methods that compose with any other method (config.adversarial:
# `adversarial.AdversarialComposition`).
ADVERSARIAL_TRAINING: dict[str, type[base.Method]] = {
    cls.name: cls for cls in (adversarial.PGDAT, adversarial.FGSMRS)}
