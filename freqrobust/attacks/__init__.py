"""Adversarial attacks in pure JAX on a `logits_fn(images in [0, 1]) -> logits`: FGSM, PGD
(L-inf / L2, restarts, CE or margin loss), APGD-CE / APGD-DLR / APGD-T, FAB-T, Square, the
AutoAttack ensemble, and the robust-accuracy evaluation with its gradient-masking sanity checks
(docs/METHOD.md §11)."""
from freqrobust.attacks.autoattack import autoattack
from freqrobust.attacks.autopgd import apgd, apgd_targeted
from freqrobust.attacks.ball import in_ball, project, random_noise
from freqrobust.attacks.evaluation import adversarial_accuracy
from freqrobust.attacks.fab import fab
from freqrobust.attacks.losses import cross_entropy, dlr, dlr_targeted, margin
from freqrobust.attacks.fgsm_pgd import fgsm, pgd
from freqrobust.attacks.square import square

__all__ = ["apgd", "fgsm", "pgd", "adversarial_accuracy", "in_ball", "project", "random_noise",
           "cross_entropy", "dlr", "margin", "apgd_targeted", "autoattack", "dlr_targeted",
           "fab", "square"]
