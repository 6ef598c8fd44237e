"""A small synthetic classification set for tests and benchmarks: class templates plus noise."""
from typing import Tuple

import numpy as np


def load(split: str, size: int = 32, channels: int = 3, num_examples: int = 512,
         num_classes: int = 10, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
  """Learnable but not trivial: each class is a fixed smooth template; examples add noise."""
  templates = np.random.default_rng(seed).uniform(0, 1, (num_classes, 4, 4, channels))
  templates = templates.repeat(size // 4 + 1, 1).repeat(size // 4 + 1, 2)[:, :size, :size]
  rng = np.random.default_rng([seed, 0 if split == "train" else 1])
  labels = rng.integers(0, num_classes, num_examples).astype(np.int32)
  images = templates[labels] + rng.normal(0, 0.15, (num_examples, size, size, channels))
  return (np.clip(images, 0, 1) * 255).round().astype(np.uint8), labels
