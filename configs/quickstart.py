"""Quickstart: small ResNet on Fashion-MNIST with power suppression + NFD + APS, on a 2-core CPU.

Offline (Debian's dataset-fashion-mnist), about 10 minutes on 2 CPU cores, >= 90% clean accuracy.
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
  return config
