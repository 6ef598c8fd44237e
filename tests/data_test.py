"""The data package: Fashion-MNIST IDX validation, CIFAR-10 through TFDS (mocked), batching laws."""
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


def test_every_damage_names_the_file_and_the_fix(tmp_path):
  """Each way a gzipped IDX file can be damaged gives a DatasetError naming it, never a bare
  zlib.error / EOFError / BadGzipFile."""
  path = tmp_path / "t10k-images-idx3-ubyte.gz"
  write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros((10000,)))
  good = gzip.compress(bytes([0, 0, 8, 3]) + b"".join(int(d).to_bytes(4, "big")
                       for d in (10000, 28, 28)) + (np.arange(10000 * 28 * 28) % 97).astype(
                           np.uint8).tobytes())
  flipped = bytearray(good)
  flipped[60] ^= 0xFF  # corrupt deflate data: zlib.error inside gzip
  damages = {"truncated gzip": good[:len(good) // 2], "corrupt deflate": bytes(flipped),
             "not gzip": b"\x00" * 50, "empty": b"",
             "bad magic": gzip.compress(b"\x00\x00\x0d\x03" + bytes(100)),
             "short header": gzip.compress(b"\x00\x00\x08\x03\x00")}
  for damage, data in damages.items():
    path.write_bytes(data)
    with pytest.raises(data_lib.DatasetError, match="damaged") as error:
      fashion_mnist.load("test", str(tmp_path))
    assert str(path) in str(error.value), damage
    assert "apt-get install --reinstall dataset-fashion-mnist" in str(error.value), damage
  path.unlink()
  path.mkdir()
  with pytest.raises(data_lib.DatasetError, match="cannot be read"):
    fashion_mnist.load("test", str(tmp_path))


def test_cifar10_through_tfds_mock_data():
  tfds = pytest.importorskip("tensorflow_datasets")
  cfg = default.get_config().data
  cfg.dataset = "cifar10"
  from freqrobust.data import cifar10
  probes = []
  with pytest.MonkeyPatch.context() as patch:
    # The connectivity check (issue #27) guards TFDS's real download only: mock_data's
    # preparation is a no-op and needs no network.
    patch.setattr(cifar10, "_connect", lambda *args: probes.append(args))
    with tfds.testing.mock_data(num_examples=12):
      images, labels = data_lib.load_split(cfg, "test")
  assert probes == []
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


def test_batched_prediction_pads_the_last_batch_without_dropping():
  # Ported from train.eval_batches (removed in 779d0d6) to its successor sharding.BatchedPredict.
  from freqrobust import sharding
  images = np.arange(10)[:, None, None, None].astype(np.float32)
  predict = sharding.BatchedPredict(lambda v, x: x[:, 0, 0, 0] * 2, 4)
  out = predict({}, images)
  np.testing.assert_array_equal(out, np.arange(10) * 2)  # every image once, in order
  assert predict.batch_size % predict.sharder.num_devices == 0


def test_training_set_shuffles_labels_among_the_kept_examples_by_the_seed():
  """config.data.shuffle_labels: the first train_examples images, their labels permuted (class
  counts kept) by a permutation fixed by config.seed; the images and the test split untouched."""
  config = default.get_config()
  config.data.dataset = "synthetic"
  config.data.synthetic_size, config.data.synthetic_examples = 8, 300
  config.data.train_examples = 200
  images, labels = data_lib.training_set(config)
  all_images, all_labels = data_lib.load_split(config.data, "train")
  np.testing.assert_array_equal(images, all_images[:200])
  np.testing.assert_array_equal(labels, all_labels[:200])
  config.data.shuffle_labels = True
  s_images, s_labels = data_lib.training_set(config)
  np.testing.assert_array_equal(s_images, images)
  assert sorted(s_labels.tolist()) == sorted(labels.tolist())  # A permutation of the same labels.
  assert np.mean(s_labels == labels) < 0.3  # About 1/10 agree by chance.
  np.testing.assert_array_equal(data_lib.training_set(config)[1], s_labels)  # Fixed by the seed.
  config.seed = 1
  assert not np.array_equal(data_lib.training_set(config)[1], s_labels)
  # What training reads is the same set.
  t_images, t_labels, _, test_labels = train.load_data(config)
  np.testing.assert_array_equal(t_labels, data_lib.training_set(config)[1])
  np.testing.assert_array_equal(test_labels, data_lib.load_split(config.data, "test")[1])
