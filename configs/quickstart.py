"""Quickstart: small ResNet on Fashion-MNIST with power suppression + NFD + APS, on a 2-core CPU.

Offline (Debian's dataset-fashion-mnist). At the end it writes the corruption report on
generated Fashion-MNIST-C (the 15 benchmark corruptions x 5 severities on the first 1000 test
images: workdir/corruption_eval/report.md) and one figure, workdir/summary.png: accuracy per
corruption beside the first-layer PDM histogram. Measured wall time and accuracy (3 seeds) are in
docs/BENCHMARKS.md ("Quickstart").

`cpu_budget(config)` is the CPU-scale protocol every method shares: the baselines' `cpu` runs
(configs/baselines.py) take it from here. The quickstart is their `paper_both_att` row with one
change, a second residual block at 7x7 (`small_stage_sizes = (0, 1, 2)`), which lifts its clean
accuracy above 91% (91.35% mean, 91.23% min over 3 seeds) in under 5 minutes on a 2-core AVX-512
machine; the protocol's table keeps (0, 1, 1), on which its thirteen rows were measured.
"""
import ml_collections

from configs import default


def cpu_budget(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Fashion-MNIST, the small ResNet, 6 epochs, and the evaluation every CPU run shares.

  6 epochs: the protocol asks that natural training reach 90% clean accuracy at this budget
  (issue 14). It reaches 90.38 +- 0.07% at 6 epochs (3 seeds), 89.94 +- 0.08% at 5 and 88.49% at 3
  (docs/RESULTS.md, "Current table: six epochs at corrupted-set recipe 4"). Tables measured at 5
  epochs before 2026-11-30 reproduce with --config.train.num_epochs=5."""
  config.data.dataset = "fashion_mnist"
  config.model.name = "small_resnet"
  # The stem (and its attention) at 28x28, then stride-2 stages at 14x14 and 7x7: no residual
  # block at full resolution. 1.5x the images/s of (1, 1, 1) (docs/BENCHMARKS.md).
  config.model.small_stage_sizes = (0, 1, 1)
  config.model.attention_hidden = 64
  config.train.batch_size = 128
  config.train.num_epochs = 6
  config.train.learning_rate = 0.1
  # The cosine starts after the warm-up and ends at 0.27% of the peak (experiment.SCHEDULES);
  # every CPU run in docs/RESULTS.md used it. "warmup_cosine" would end at 0.
  config.train.schedule = "cosine"
  config.train.warmup_epochs = 0.2
  config.train.nesterov = True
  config.train.label_smoothing = 0.1
  config.evals.clean.every_epochs = 0  # Clean evaluation at the end only.
  config.train.checkpoint_every_steps = 500
  config.evals.corruptions.at_end = True  # Fashion-MNIST-C report at the end (generated, cached).
  config.corruptions.num_examples = 1000  # Test images per corrupted set (15 x 5 sets).
  return config


def get_config():
  config = cpu_budget(default.get_config())
  config.model.attention = "extended"
  config.augment.pad = 4  # 28 -> 36 px for suppression and NFD, then a random 28 px crop.
  config.augment.suppress_prob = 1.0 / 3.0
  config.augment.nfd = True
  config.augment.nfd_sigma = 1.0
  config.aps.configuration = "learnable"
  config.aps.aux_weight = 50.0
  config.evals.summary.at_end = True  # workdir/summary.png at the end.
  # The quickstart's one departure from the protocol (module docstring): a second residual block
  # at 7x7, 64 channels. Wider stages or a flattened head did not reach 91% (docs/BENCHMARKS.md,
  # "Quickstart").
  config.model.small_stage_sizes = (0, 1, 2)
  return config
