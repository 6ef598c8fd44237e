"""TFDS's real preparation of CIFAR-10 and CIFAR-10-C, offline, read back through freqrobust.

tfds.testing.mock_data (data_test, corrupted_data_test) skips preparation altogether; here TFDS's
own download manager, extraction, `_split_generators` and `_generate_examples` run on tiny
archives in the original formats, which the test writes into TFDS's manual download folder
(<tfds_data_dir>/downloads/manual/). Two things are patched: the network (any download attempt
raises) and the registered checksums of the two archive URLs (set to the tiny archives'; with the
real archives TFDS's own checksums apply).
"""
import io
import os
import socket
import tarfile
import time

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from configs import default  # noqa: E402
from freqrobust import data as data_lib  # noqa: E402
from freqrobust.data import cifar10  # noqa: E402
from freqrobust.data import corrupted  # noqa: E402
from tensorflow_datasets.core.download import checksums  # noqa: E402
from tensorflow_datasets.core.download import downloader  # noqa: E402
from tensorflow_datasets.core.utils import gcs_utils  # noqa: E402

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR_C_URL = "https://zenodo.org/record/2535967/files/CIFAR-10-C.tar"
CLASSES = "airplane automobile bird cat deer dog frog horse ship truck".split()
PER_SEVERITY = 4  # TFDS's builder takes len(labels.npy) // 5 images per severity.
# freqrobust name -> CIFAR-10-C file; glass_blur and elastic_transform have other TFDS names.
CORRUPTION_FILES = {"gaussian_noise": "gaussian_noise.npy", "glass_blur": "glass_blur.npy",
                    "elastic_transform": "elastic_transform.npy"}


class NetworkUsed(ConnectionError):
  pass


class Attempts(list):
  """The URLs TFDS tried to download; `probes`: the (host, port) the connectivity check tried."""

  def __init__(self):
    super().__init__()
    self.probes = []


@pytest.fixture
def offline(monkeypatch):
  """No network: the connectivity check's connect fails as DNS does offline, any TFDS download
  raises, GCS stays off. Returns the attempted URLs (with the probes in `.probes`)."""
  attempts = Attempts()

  def download(self, url, destination_path, verify=True):
    attempts.append(url)
    raise NetworkUsed(f"Failed to resolve host of {url} (the test machine has no network)")

  def connect(host, port, timeout):
    attempts.probes.append((host, port))
    raise socket.gaierror(-2, "Name or service not known")
  monkeypatch.setattr(downloader._Downloader, "download", download)
  monkeypatch.setattr(gcs_utils, "_is_gcs_disabled", True)
  monkeypatch.setattr(cifar10, "_connect", connect)
  return attempts


def _add(tar, name, payload):
  info = tarfile.TarInfo(name)
  info.size = len(payload)
  tar.addfile(info, io.BytesIO(payload))


def write_cifar10_archive(path, rng, train_per_file=2, test=5):
  """cifar-10-binary.tar.gz: cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin (records of
  1 label byte + 3072 pixel bytes, channel-major) and batches.meta.txt. Returns the split arrays
  as NHWC uint8 images and int32 labels."""
  splits = {"train": ([], []), "test": ([], [])}
  files = [(f"data_batch_{i}.bin", "train", train_per_file) for i in range(1, 6)]
  with tarfile.open(path, "w:gz") as tar:
    for name, split, count in files + [("test_batch.bin", "test", test)]:
      labels = rng.integers(0, 10, count).astype(np.uint8)
      images = rng.integers(0, 256, (count, 3, 32, 32)).astype(np.uint8)
      _add(tar, f"cifar-10-batches-bin/{name}",
           b"".join(bytes([label]) + image.tobytes() for label, image in zip(labels, images)))
      splits[split][0].append(images.transpose(0, 2, 3, 1))
      splits[split][1].append(labels.astype(np.int32))
    _add(tar, "cifar-10-batches-bin/batches.meta.txt", ("\n".join(CLASSES) + "\n\n").encode())
  return {k: (np.concatenate(v[0]), np.concatenate(v[1])) for k, v in splits.items()}


def write_cifar10_c_archive(path, rng):
  """CIFAR-10-C.tar: CIFAR-10-C/<corruption>.npy (5 severities x PER_SEVERITY images, uint8
  NHWC) and CIFAR-10-C/labels.npy (the labels, repeated per severity)."""
  labels = rng.integers(0, 10, PER_SEVERITY).astype(np.uint8)
  sets = {}
  with tarfile.open(path, "w") as tar:
    for name, filename in CORRUPTION_FILES.items():
      images = rng.integers(0, 256, (5 * PER_SEVERITY, 32, 32, 3)).astype(np.uint8)
      buffer = io.BytesIO()
      np.save(buffer, images)
      _add(tar, f"CIFAR-10-C/{filename}", buffer.getvalue())
      sets[name] = images
    buffer = io.BytesIO()
    np.save(buffer, np.tile(labels, 5))
    _add(tar, "CIFAR-10-C/labels.npy", buffer.getvalue())
  return sets, labels.astype(np.int32)


def register_checksum(monkeypatch, dataset, url, path):
  """Makes TFDS expect `path` (size, sha256, file name) for `url`, as its checksums file does
  for the real archive."""
  monkeypatch.setattr(tfds.builder_cls(dataset), "url_infos",
                      {url: checksums.compute_url_info(path)})


def manual_dir(data_dir):
  path = os.path.join(data_dir, "downloads", "manual")
  os.makedirs(path, exist_ok=True)
  return path


def sorted_pairs(images, labels):
  """(image, label) pairs in a canonical order: TFDS writes examples in a hashed order."""
  order = sorted(range(len(labels)), key=lambda i: (int(labels[i]), images[i].tobytes()))
  return images[order], labels[order]


def assert_same_examples(got, expected):
  got_images, got_labels = got
  assert got_images.dtype == np.uint8 and got_labels.dtype == np.int32
  assert got_images.shape == expected[0].shape
  for a, b in zip(sorted_pairs(*got), sorted_pairs(*expected)):
    np.testing.assert_array_equal(a, b)


def _cifar10_config(data_dir):
  cfg = default.get_config()
  cfg.data.dataset = "cifar10"
  cfg.data.tfds_data_dir = str(data_dir)
  return cfg


def test_cifar10_prepared_by_tfds_round_trips_through_load_split(tmp_path, offline, monkeypatch):
  archive = os.path.join(manual_dir(tmp_path), "cifar-10-binary.tar.gz")
  expected = write_cifar10_archive(archive, np.random.default_rng(0))
  register_checksum(monkeypatch, "cifar10", CIFAR_URL, archive)
  cfg = _cifar10_config(tmp_path)
  assert_same_examples(data_lib.load_split(cfg.data, "test"), expected["test"])
  assert_same_examples(data_lib.load_split(cfg.data, "train"), expected["train"])
  assert offline == []  # prepared from the manual folder; no download was tried
  assert offline.probes == []  # nor a connectivity check: the archive was there
  assert tfds.builder("cifar10", data_dir=str(tmp_path)).is_prepared()
  # Prepared: read offline without the archive and without a connectivity check.
  os.remove(archive)
  assert_same_examples(data_lib.load_split(cfg.data, "test"), expected["test"])
  assert offline == [] and offline.probes == []
  # Label names come from batches.meta.txt, as in the real archive.
  assert tfds.builder("cifar10", data_dir=str(tmp_path)).info.features["label"].names == CLASSES
  # A damaged prepared file: the error names the folder and the fix, not a bare DataLossError.
  prepared = tmp_path / "cifar10" / "3.0.2"
  (shard,) = [p for p in os.listdir(prepared) if p.startswith("cifar10-test.tfrecord")]
  data = (prepared / shard).read_bytes()
  (prepared / shard).write_bytes(data[:len(data) // 2])
  with pytest.raises(data_lib.DatasetError, match=f"could not be read from the prepared TFDS "
                     f"folder {prepared}.*move it aside"):
    data_lib.load_split(cfg.data, "test")


def test_cifar10_c_prepared_by_tfds_round_trips_through_load_corrupted(tmp_path, offline,
                                                                       monkeypatch):
  archive = os.path.join(manual_dir(tmp_path), "CIFAR-10-C.tar")
  sets, labels = write_cifar10_c_archive(archive, np.random.default_rng(1))
  register_checksum(monkeypatch, "cifar10_corrupted", CIFAR_C_URL, archive)
  config = _cifar10_config(tmp_path)
  config.corruptions.cache_dir = str(tmp_path / "cache")
  for name, severity in [("gaussian_noise", 1), ("glass_blur", 3), ("elastic_transform", 5)]:
    block = slice((severity - 1) * PER_SEVERITY, severity * PER_SEVERITY)
    got = corrupted.load_corrupted(config, name, severity)
    assert_same_examples(got, (sets[name][block], labels))
    assert tfds.builder(f"cifar10_corrupted/{corrupted.tfds_config_name(name, severity)}",
                        data_dir=str(tmp_path)).is_prepared()
  config.corruptions.num_examples = 3  # the split slice, on prepared data
  images, got_labels = corrupted.load_corrupted(config, "gaussian_noise", 1)
  assert images.shape == (3, 32, 32, 3) and got_labels.shape == (3,)
  assert offline == [] and not os.path.exists(tmp_path / "cache")  # nothing generated


def test_offline_the_connectivity_check_fails_at_once_naming_the_fixes(tmp_path, offline):
  """Offline (DNS fails), the error comes before TFDS's download, whose retries take minutes
  (issue #27), and names the fixes: a prepared TFDS folder (--config.data.tfds_data_dir)."""
  cfg = _cifar10_config(tmp_path)
  start = time.monotonic()
  with pytest.raises(data_lib.DatasetError) as error:
    data_lib.load_split(cfg.data, "test")
  # TFDS's own retries take about 200 s; the bound is loose so a loaded machine passes too.
  assert time.monotonic() - start < 60.0
  message = str(error.value)
  for part in ["cifar10 is not prepared", "no network", "www.cs.toronto.edu:443", "gaierror",
               "A prepared TFDS folder needs no network", "--config.data.tfds_data_dir",
               "copy an already prepared TFDS folder", "cifar-10-binary.tar.gz",
               cifar10.SKIP_PROBE_ENV]:
    assert part in message, part
  assert offline.probes == [("www.cs.toronto.edu", 443)]
  assert offline == []  # TFDS's download was never started
  config = _cifar10_config(tmp_path)  # CIFAR-10-C: its own host
  with pytest.raises(data_lib.DatasetError, match="zenodo.org:443.*--config.corruptions.source"):
    corrupted.load_corrupted(config, "glass_blur", 2)


def test_a_hanging_connectivity_check_is_cut_at_its_timeout(tmp_path, offline, monkeypatch):
  """A connect (or DNS lookup) that hangs is given up after the timeout: the check runs in a
  daemon thread."""
  monkeypatch.setattr(cifar10, "_connect", lambda host, port, timeout: time.sleep(120))
  monkeypatch.setattr(cifar10, "PROBE_TIMEOUT_S", 0.3)
  start = time.monotonic()
  with pytest.raises(data_lib.DatasetError, match="no answer from www.cs.toronto.edu:443 "
                     "within 0.3 s"):
    data_lib.load_split(_cifar10_config(tmp_path).data, "test")
  # Cut long before the 120 s hang ends (a loose bound: loaded machines pass too).
  assert time.monotonic() - start < 60.0
  assert offline == []


def test_the_connectivity_check_can_be_skipped_and_uses_the_proxy(tmp_path, offline,
                                                                   monkeypatch):
  monkeypatch.setenv(cifar10.SKIP_PROBE_ENV, "1")
  with pytest.raises(data_lib.DatasetError, match="NetworkUsed"):  # TFDS's download ran
    data_lib.load_split(_cifar10_config(tmp_path).data, "test")
  assert offline == [CIFAR_URL] and offline.probes == []
  monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
  monkeypatch.delenv("no_proxy", raising=False)
  monkeypatch.delenv("NO_PROXY", raising=False)
  assert cifar10._probe_target(CIFAR_URL) == ("proxy.example", 3128)
  monkeypatch.delenv("https_proxy")
  monkeypatch.delenv("HTTPS_PROXY", raising=False)
  assert cifar10._probe_target(CIFAR_URL) == ("www.cs.toronto.edu", 443)


def test_offline_without_data_one_clear_error(tmp_path, offline, monkeypatch):
  # A host that answers the connectivity check, then a download that fails: TFDS's error,
  # summarised in the same message.
  monkeypatch.setattr(cifar10, "_connect", lambda host, port, timeout: None)
  cfg = _cifar10_config(tmp_path)
  with pytest.raises(data_lib.DatasetError) as error:
    data_lib.load_split(cfg.data, "test")
  message = str(error.value)
  for part in ["cifar10 is not prepared", f"TFDS data dir {tmp_path}", "NetworkUsed",
               "on a machine with a network", "--config.data.tfds_data_dir",
               f"{tmp_path}/downloads/manual/", "cifar-10-binary.tar.gz", CIFAR_URL,
               "config.data.dataset='fashion_mnist'"]:
    assert part in message, part
  assert error.value.__cause__ is None and error.value.__suppress_context__  # no deep traceback
  assert offline == [CIFAR_URL]

  config = _cifar10_config(tmp_path)
  with pytest.raises(data_lib.DatasetError) as error:
    corrupted.load_corrupted(config, "glass_blur", 2)
  message = str(error.value)
  for part in ["cifar10_corrupted/frosted_glass_blur_2 is not prepared", str(tmp_path),
               "CIFAR-10-C.tar", "--config.corruptions.source=generated"]:
    assert part in message, part


def test_without_download_the_error_says_so(tmp_path, offline):
  from freqrobust.data import cifar10
  with pytest.raises(data_lib.DatasetError, match="downloading is off"):
    cifar10.load("test", str(tmp_path), download=False)
  assert offline == []


def test_a_wrong_manual_archive_is_named_not_used(tmp_path, offline):
  # TFDS's real checksum applies to a file put in the manual folder: a truncated or other file
  # gives the clear error (naming the checksum failure), not wrong data.
  archive = os.path.join(manual_dir(tmp_path), "cifar-10-binary.tar.gz")
  write_cifar10_archive(archive, np.random.default_rng(2), train_per_file=1, test=1)
  with pytest.raises(data_lib.DatasetError, match="NonMatchingChecksumError"):
    data_lib.load_split(_cifar10_config(tmp_path).data, "test")
  assert not tfds.builder("cifar10", data_dir=str(tmp_path)).is_prepared()


def test_a_missing_package_is_named(tmp_path, offline, monkeypatch):
  # TFDS 4.9.10 imports importlib_resources only when it prepares a dataset.
  def prepare(self, *args, **kwargs):
    raise ModuleNotFoundError("No module named 'importlib_resources'", name="importlib_resources")
  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", prepare)
  with pytest.raises(data_lib.DatasetError, match="pip install importlib_resources"):
    data_lib.load_split(_cifar10_config(tmp_path).data, "test")


def test_cifar10_c_and_the_clean_test_set_are_prepared_in_the_same_order(tmp_path, offline,
                                                                          monkeypatch):
  """The clean accuracy beside the corrupted sets (and Relative mCE) pairs image i of
  cifar10_corrupted/* with image i of cifar10's test split, also after num_examples truncation.
  TFDS writes both in an order shuffled by a hash of each example's key: the two agree because
  both builders key an example by its index in the archive's test set and salt the hash with the
  split name ("test"). Here, on TFDS's real preparation code: a CIFAR-10-C archive whose
  severity 1 is the fake test set itself and severity 2 its negative, in the test set's order."""
  test_size = 16
  cifar = os.path.join(manual_dir(tmp_path), "cifar-10-binary.tar.gz")
  expected = write_cifar10_archive(cifar, np.random.default_rng(3), train_per_file=1,
                                   test=test_size)
  register_checksum(monkeypatch, "cifar10", CIFAR_URL, cifar)
  test_images, test_labels = expected["test"]
  severities = [test_images, 255 - test_images] + [np.zeros_like(test_images)] * 3
  archive = os.path.join(manual_dir(tmp_path), "CIFAR-10-C.tar")
  with tarfile.open(archive, "w") as tar:
    for name, array in [("gaussian_noise.npy", np.concatenate(severities)),
                        ("labels.npy", np.tile(test_labels.astype(np.uint8), 5))]:
      buffer = io.BytesIO()
      np.save(buffer, array)
      _add(tar, f"CIFAR-10-C/{name}", buffer.getvalue())
  register_checksum(monkeypatch, "cifar10_corrupted", CIFAR_C_URL, archive)
  config = _cifar10_config(tmp_path)
  config.corruptions.cache_dir = str(tmp_path / "cache")

  clean_images, clean_labels = corrupted.clean_test_set(config)
  assert len(clean_labels) == test_size
  # The prepared order is a shuffle of the archive's (else this test would prove nothing).
  order = [next(i for i in range(test_size) if np.array_equal(test_images[i], image))
           for image in clean_images]
  assert sorted(order) == list(range(test_size)) and order != list(range(test_size))
  np.testing.assert_array_equal(clean_labels, test_labels[order])
  first, labels = corrupted.load_corrupted(config, "gaussian_noise", 1)
  np.testing.assert_array_equal(first, clean_images)  # image for image
  np.testing.assert_array_equal(labels, clean_labels)
  second, labels = corrupted.load_corrupted(config, "gaussian_noise", 2)
  np.testing.assert_array_equal(second, 255 - clean_images)
  np.testing.assert_array_equal(labels, clean_labels)
  # num_examples: the split slice test[:N] of the corrupted sets and the truncated clean set.
  config.corruptions.num_examples = 5
  clean_head, head_labels = corrupted.clean_test_set(config)
  first, labels = corrupted.load_corrupted(config, "gaussian_noise", 1)
  np.testing.assert_array_equal(first, clean_head)
  np.testing.assert_array_equal(clean_head, clean_images[:5])
  np.testing.assert_array_equal(labels, head_labels)
  assert offline == [] and offline.probes == []
