"""Table 3 baseline: ResNet-18 on CIFAR-10, natural training (crop + flip only), 90 epochs."""
from configs import default


def get_config():
  config = default.get_config()
  config.data.dataset = "cifar10"
  config.model.name = "resnet18"
  config.train.learning_rate = 0.1  # Paper section 4.2: ResNet-18 starts at 0.1.
  config.evals.corruptions.at_end = True
  return config
