"""Datasets as in-memory uint8 NHWC arrays. `load_split(cfg.data, split)` is the entry point."""
from typing import Any, Dict, Tuple

import numpy as np

from freqrobust.data import cifar10, fashion_mnist, synthetic
from freqrobust.data.errors import DatasetError

# Per-dataset facts the rest of the system needs; mean/std are the usual per-channel statistics.
DATASETS: Dict[str, Dict[str, Any]] = {
    "fashion_mnist": dict(num_classes=10, shape=(28, 28, 1), mean=(0.2860,), std=(0.3530,)),
    "cifar10": dict(num_classes=10, shape=(32, 32, 3), mean=(0.4914, 0.4822, 0.4465),
                    std=(0.2470, 0.2435, 0.2616)),
    "synthetic": dict(num_classes=10, shape=None, mean=(0.5,), std=(0.3,)),
}


def dataset_info(data_cfg: Any) -> Dict[str, Any]:
  name = data_cfg.dataset
  if name not in DATASETS:
    raise ValueError(f"config.data.dataset={name!r}; valid: {', '.join(DATASETS)}.")
  info = dict(DATASETS[name])
  if name == "synthetic":
    info["shape"] = (data_cfg.synthetic_size, data_cfg.synthetic_size, data_cfg.synthetic_channels)
  return info


def load_split(data_cfg: Any, split: str) -> Tuple[np.ndarray, np.ndarray]:
  """Returns (images uint8 (N, H, W, C), labels int32 (N,)) of `split` ('train' or 'test')."""
  name = data_cfg.dataset
  dataset_info(data_cfg)  # Validates the name.
  if name == "fashion_mnist":
    return fashion_mnist.load(split, data_cfg.get("data_dir", ""))
  if name == "cifar10":
    return cifar10.load(split, data_cfg.get("tfds_data_dir", ""))
  return synthetic.load(split, data_cfg.synthetic_size, data_cfg.synthetic_channels,
                        data_cfg.synthetic_examples if split == "train" else
                        max(64, data_cfg.synthetic_examples // 4),
                        seed=data_cfg.get("synthetic_seed", 0))


def training_set(config: Any) -> Tuple[np.ndarray, np.ndarray]:
  """The training set a run trains on: the train split, its first `config.data.train_examples`
  (0 = all), and with `config.data.shuffle_labels` the labels randomly permuted among those
  examples (HFC's and Zhang et al.'s random-label experiment: class counts kept, the image-label
  link gone), by a permutation fixed by `config.seed`. Training, and every tool that measures
  accuracy on the training images, read it here, so they agree on the labels."""
  images, labels = load_split(config.data, "train")
  n = config.data.get("train_examples", 0)
  if n:
    images, labels = images[:n], labels[:n]
  if config.data.get("shuffle_labels", False):
    rng = np.random.default_rng([int(config.seed), 0x1AB])
    labels = np.asarray(labels)[rng.permutation(len(labels))]
  return images, labels


__all__ = ["DATASETS", "DatasetError", "dataset_info", "load_split", "training_set"]
