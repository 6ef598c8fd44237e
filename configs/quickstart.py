"""Quickstart: small ResNet on Fashion-MNIST with power suppression + NFD + APS, on a 2-core CPU.

Offline (Debian's dataset-fashion-mnist). Training alone measured 6 min 48 s and 90.31% clean
accuracy on a quiet 2-core machine (docs/BENCHMARKS.md, before the corruption report was added).
At the end it also writes the corruption report on generated Fashion-MNIST-C (the 15 benchmark
corruptions x 5 severities on the first 1000 test images: workdir/corruption_eval/report.md) and
one figure, workdir/summary.png: accuracy per corruption beside the first-layer PDM histogram.
The fast-training options of configs/default.py (label smoothing, weight EMA, flip test-time
augmentation) stay off here: none has been measured to help this run yet.
"""
from configs import default


def get_config():
  config = default.get_config()
  config.data.dataset = "fashion_mnist"
  config.model.name = "small_resnet"
  config.model.attention = "extended"
  config.model.attention_hidden = 64
  config.augment.pad = 4  # 28 -> 36 px for suppression and NFD, then a random 28 px crop.
  config.augment.suppress_prob = 1.0 / 3.0
  config.augment.nfd = True
  config.augment.nfd_sigma = 1.0
  config.aps.configuration = "learnable"
  config.aps.aux_weight = 50.0
  config.train.batch_size = 128
  config.train.num_epochs = 6
  config.train.learning_rate = 0.1
  config.train.schedule = "cosine"
  config.train.warmup_epochs = 0.2
  config.train.eval_every_epochs = 3
  config.train.checkpoint_every_steps = 500
  config.train.summary_figure = True  # workdir/summary.png at the end.
  config.corruptions.evaluate = True  # Fashion-MNIST-C report at the end (generated, cached).
  config.corruptions.num_examples = 1000  # Test images per corrupted set (15 x 5 sets).
  return config
