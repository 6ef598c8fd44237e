"""The data room: Fashion-MNIST IDX validation, CIFAR-10 through TFDS (mocked), batching laws."""
import gzip
import os

import numpy as np
import pytest

from configs import default
from freqrobust import data as data_lib
from freqrobust import train
from freqrobust.data import fashion_mnist

HAS_FMNIST = os.path.exists(os.path.join(fashion_mnist.DEFAULT_DIR, "t10k-labels-idx1-ubyte.gz"))


def write_idx(path, array):
  header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
  with gzip.open(path, "wb") as f:
    f.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.skipif(not HAS_FMNIST, reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_test_split_is_valid():
  images, labels = fashion_mnist.load("test")
  assert images.shape == (10000, 28, 28, 1) and images.dtype == np.uint8
  assert labels.dtype == np.int32 and set(np.unique(labels)) == set(range(10))
  assert np.bincount(labels).tolist() == [1000] * 10  # The test split is balanced.


def test_missing_dataset_names_the_package(tmp_path):
  cfg = default.get_config().data
  cfg.data_dir = str(tmp_path)
  with pytest.raises(data_lib.DatasetError, match="apt-get install dataset-fashion-mnist"):
    data_lib.load_split(cfg, "test")


def test_damaged_files_are_rejected(tmp_path):
  write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((10000, 28, 28)))
  write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.full((10000,), 12))
  with pytest.raises(data_lib.DatasetError, match="labels must lie in 0..9"):
    fashion_mnist.load("test", str(tmp_path))
  write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((99, 28, 28)))
  with pytest.raises(data_lib.DatasetError, match="expected shape"):
    fashion_mnist.load("test", str(tmp_path))
  raw = gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz").read()
  with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as f:
    f.write(raw[:-10])  # Truncated payload.
  with pytest.raises(data_lib.DatasetError, match="damaged"):
    fashion_mnist.load("test", str(tmp_path))
  (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
  with pytest.raises(data_lib.DatasetError, match="damaged"):
    fashion_mnist.load("test", str(tmp_path))


def test_cifar10_through_tfds_mock_data():
  tfds = pytest.importorskip("tensorflow_datasets")
  cfg = default.get_config().data
  cfg.dataset = "cifar10"
  with tfds.testing.mock_data(num_examples=12):
    images, labels = data_lib.load_split(cfg, "test")
  assert images.shape == (12, 32, 32, 3) and images.dtype == np.uint8
  assert labels.shape == (12,) and labels.dtype == np.int32 and labels.max() < 10


def test_unknown_dataset_lists_valid_ones():
  cfg = default.get_config().data
  cfg.dataset = "mnist"
  with pytest.raises(ValueError, match="fashion_mnist, cifar10, synthetic"):
    data_lib.load_split(cfg, "train")


def test_epoch_order_is_a_function_of_step_and_covers_each_epoch():
  order = train.EpochOrder(50, 8, seed=3)
  epoch0 = np.concatenate([order.indices(s) for s in range(6)])
  assert len(set(epoch0.tolist())) == 48  # No repeats inside an epoch (remainder dropped).
  again = train.EpochOrder(50, 8, seed=3)
  np.testing.assert_array_equal(again.indices(7), order.indices(7))  # Restorable from the step.
  assert not np.array_equal(order.indices(0), order.indices(6))  # Reshuffled per epoch.


def test_eval_batches_pad_and_mask_without_dropping():
  images = np.arange(10)[:, None, None, None].astype(np.uint8)
  labels = np.arange(10).astype(np.int32)
  batches = list(train.eval_batches(images, labels, 4, slice(0, 4)))
  assert [len(b["image"]) for b in batches] == [4, 4, 4]
  seen = np.concatenate([b["label"][b["mask"] == 1] for b in batches])
  np.testing.assert_array_equal(seen, labels)
