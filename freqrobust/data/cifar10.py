"""CIFAR-10 (and CIFAR-10-C) through TensorFlow Datasets (needs a prepared TFDS data dir or a network)."""
from typing import Tuple

import numpy as np


def load_tfds_numpy(dataset: str, split: str, data_dir: str = "", download: bool = True,
                    hint: str = "") -> Tuple[np.ndarray, np.ndarray]:
  """(uint8 images, int32 labels) of a supervised TFDS split, read in batches of 1000.

  Batches rather than batch_size=-1 (one tensor): TF 2.21 aborts on the latter under
  tfds.testing.mock_data, and the result is the same. `hint` says how to make the data available.
  """
  import tensorflow_datasets as tfds  # Imported lazily: TFDS pulls in TensorFlow.
  try:
    data = tfds.load(dataset, split=split, batch_size=1000, as_supervised=True,
                     data_dir=data_dir or None, download=download, shuffle_files=False)
  except Exception as e:  # TFDS raises many kinds; all mean "not available here".
    raise RuntimeError(f"{dataset} could not be loaded through TFDS ({type(e).__name__}: {e}). "
                       f"{hint}") from e
  batches = list(tfds.as_numpy(data))
  images = np.concatenate([b[0] for b in batches]).astype(np.uint8)
  labels = np.concatenate([b[1] for b in batches]).astype(np.int32)
  return images, labels


def load(split: str, tfds_data_dir: str = "", download: bool = True) -> Tuple[np.ndarray, np.ndarray]:
  """Returns (images uint8 (N, 32, 32, 3), labels int32 (N,)) for split 'train' or 'test'."""
  if split not in ("train", "test"):
    raise ValueError(f"CIFAR-10 split {split!r}; valid: train, test.")
  return load_tfds_numpy(
      "cifar10", split, tfds_data_dir, download,
      hint="On a machine with a network run `python -c \"import tensorflow_datasets as tfds; "
      "tfds.builder('cifar10').download_and_prepare()\"` (or set config.data.tfds_data_dir to a "
      "prepared TFDS folder); offline, use config.data.dataset='fashion_mnist'.")
