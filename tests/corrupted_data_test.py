"""Corrupted test sets: settings, the generated-set cache, and CIFAR-10-C through mocked TFDS."""
import os
import warnings

import jax
import ml_collections
import numpy as np
import pytest

from freqrobust import corruptions
from freqrobust.data import corrupted


def _config(tmp_path, dataset="fashion_mnist", **fields):
  config = ml_collections.ConfigDict()
  config.data = ml_collections.ConfigDict({"dataset": dataset, "data_dir": "",
                                           "tfds_data_dir": ""})
  config.corruptions = ml_collections.ConfigDict(dict(cache_dir=str(tmp_path), num_examples=6))
  config.corruptions.update(fields)
  return config


def test_settings_defaults_and_validation(tmp_path):
  settings = corrupted.CorruptionSettings.from_config(ml_collections.ConfigDict(
      {"data": {"dataset": "fashion_mnist"}}))
  assert settings.source == "generated" and settings.names == corruptions.CORRUPTIONS
  assert settings.cache_dir == os.path.expanduser("~/.cache/freqrobust/corrupted")
  assert settings.num_examples == 0 and settings.seed == 0 and settings.frost_dir == ""
  cifar = corrupted.CorruptionSettings.from_config(_config(tmp_path, "cifar10",
                                                           include_extra=True))
  assert cifar.source == "tfds"
  assert cifar.names == corruptions.CORRUPTIONS + corruptions.EXTRA_CORRUPTIONS
  with pytest.raises(ValueError, match="valid: auto, tfds, generated"):
    corrupted.CorruptionSettings.from_config(_config(tmp_path, source="web"))
  with pytest.raises(ValueError, match="use source='generated'"):
    corrupted.CorruptionSettings.from_config(_config(tmp_path, source="tfds"))
  with pytest.raises(ValueError, match="unknown \\['rain'\\]"):
    corrupted.CorruptionSettings.from_config(_config(tmp_path, names=("rain",)))


def _fake_split(data_cfg, split):
  rng = np.random.default_rng(0)
  return rng.integers(0, 256, (6, 10, 12, 3), np.uint8), np.arange(6, dtype=np.int32)


def test_generated_set_is_written_once_and_reused(tmp_path, monkeypatch):
  config = _config(tmp_path, dataset="toy", seed=3)
  images, labels = corrupted.load_corrupted(config, "contrast", 4, load_split=_fake_split)
  assert images.dtype == np.uint8 and images.shape == (6, 10, 12, 3)
  np.testing.assert_array_equal(labels, np.arange(6))
  # The cached set is the corruption of the clean set under the set's key.
  clean, _ = _fake_split(None, "test")
  expected = corruptions.corrupt(jax.random.fold_in(corrupted.set_key(3, "contrast", 4), 0),
                                 clean, "contrast", 4)
  np.testing.assert_array_equal(images, expected)
  files = os.listdir(tmp_path / "toy")
  assert len(files) == 1 and files[0].endswith(".npz") and "contrast_4-seed3-n6" in files[0]

  def no_generation(*args, **kwargs):
    raise AssertionError("regenerated a cached set")
  monkeypatch.setattr(corrupted, "generate", no_generation)
  again, _ = corrupted.load_corrupted(config, "contrast", 4, load_split=_fake_split)
  np.testing.assert_array_equal(again, images)


def test_cache_key_covers_the_generation_parameters(tmp_path):
  # Procedural frost unless a variant says otherwise ('' may find installed photographs).
  config = lambda **fields: _config(tmp_path, **dict(dict(frost_dir=corruptions.PROCEDURAL_FROST),
                                                     **fields))
  base = config()
  path = lambda cfg, name="frost", sev=1, clean="c" * 64: corrupted.cache_path(
      corrupted.CorruptionSettings.from_config(cfg), name, sev, clean)
  variants = [path(base), path(base, sev=2), path(base, name="fog"),
              path(config(seed=1)), path(config(num_examples=7)),
              path(config(frost_dir="/somewhere")),
              path(config(dataset="cifar10", source="generated")),
              path(base, clean="d" * 64)]
  assert len(set(variants)) == len(variants)
  assert "procfrost" in variants[0] and "photofrost" in variants[5]
  assert "-cleancccccccc-" in variants[0] and "-cleandddddddd-" in variants[-1]
  assert path(base) == path(config())
  # The folder of the data is not part of the key; its content is.
  moved = config()
  moved.data.data_dir = "/elsewhere"
  assert path(moved) == path(base)


def test_clean_digest_follows_content_not_identity():
  images = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
  labels = np.array([1, 2], np.int32)
  digest = corrupted.content_digest(images, labels)
  assert digest == corrupted.content_digest(images.copy(), labels.copy())
  assert digest == corrupted.content_digest(images[:, ::-1][:, ::-1], labels)  # non-contiguous
  changed = images.copy()
  changed[1, 2, 3, 0] += 1
  assert corrupted.content_digest(changed, labels) != digest
  assert corrupted.content_digest(images, labels[::-1].copy()) != digest
  assert corrupted.content_digest(images.reshape(1, 2, 4, 4, 3), labels) != digest  # shape


def test_frost_photos_are_part_of_the_key(tmp_path):
  photos = tmp_path / "frost"
  photos.mkdir()
  (photos / "frost1.png").write_bytes(b"one")
  (photos / "notes.txt").write_bytes(b"ignored")
  config = _config(tmp_path / "cache", frost_dir=str(photos))
  path = lambda name="frost": corrupted.cache_path(
      corrupted.CorruptionSettings.from_config(config), name, 1, "c" * 64)
  before, fog = path(), path("fog")
  (photos / "notes.txt").write_bytes(b"still ignored")
  assert path() == before
  (photos / "frost1.png").write_bytes(b"other photo")
  assert path() != before and path("fog") == fog  # only frost sets depend on the photos


def _other_split(data_cfg, split):
  rng = np.random.default_rng(1)
  return rng.integers(0, 256, (6, 10, 12, 3), np.uint8), np.arange(6, dtype=np.int32)[::-1].copy()


def test_another_test_set_of_the_same_dataset_name_gets_its_own_sets(tmp_path):
  config = _config(tmp_path, dataset="toy", seed=3)
  first, _ = corrupted.load_corrupted(config, "contrast", 4, load_split=_fake_split)
  second, second_labels = corrupted.load_corrupted(config, "contrast", 4,
                                                   load_split=_other_split)
  assert len(os.listdir(tmp_path / "toy")) == 2
  clean, labels = _other_split(None, "test")
  np.testing.assert_array_equal(second_labels, labels)
  expected = corruptions.corrupt(jax.random.fold_in(corrupted.set_key(3, "contrast", 4), 0),
                                 clean, "contrast", 4)
  np.testing.assert_array_equal(second, expected)
  assert not np.array_equal(first, second)
  # Each is reused for its own clean set; passing `clean` (as evaluation does) finds the same file.
  again, _ = corrupted.load_corrupted(config, "contrast", 4, clean=_fake_split(None, "test"))
  np.testing.assert_array_equal(again, first)
  assert len(os.listdir(tmp_path / "toy")) == 2


def _truncate(path):
  data = open(path, "rb").read()
  open(path, "wb").write(data[:len(data) // 2])


def _rewrite(path, **changes):
  with np.load(path) as cached:
    arrays = {k: cached[k] for k in cached.files}
  arrays.update(changes)
  arrays = {k: v for k, v in arrays.items() if v is not None}
  with open(path, "wb") as f:
    np.savez(f, **arrays)


DAMAGES = {
    "truncated": _truncate,
    "not a zip": lambda path: open(path, "wb").write(b"PK\x03\x04 but not really a zip"),
    "empty": lambda path: open(path, "wb").close(),
    "images missing": lambda path: _rewrite(path, images=None),
    "wrong dtype": lambda path: _rewrite(path, images=np.zeros((6, 10, 12, 3), np.float32)),
    "wrong count": lambda path: _rewrite(path, images=np.zeros((5, 10, 12, 3), np.uint8)),
    "wrong labels": lambda path: _rewrite(path, labels=np.zeros(6, np.int32)),
    "other key": lambda path: _rewrite(path, meta=np.asarray("{}")),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_cache_file_is_moved_aside_and_regenerated(tmp_path, damage):
  config = _config(tmp_path, dataset="toy", seed=3)
  fresh, _ = corrupted.load_corrupted(config, "contrast", 4, load_split=_fake_split)
  (name,) = os.listdir(tmp_path / "toy")
  path = str(tmp_path / "toy" / name)
  DAMAGES[damage](path)
  damaged_bytes = open(path, "rb").read()
  with pytest.warns(RuntimeWarning, match=f"Damaged corruption cache file .*{name}"):
    images, labels = corrupted.load_corrupted(config, "contrast", 4, load_split=_fake_split)
  np.testing.assert_array_equal(images, fresh)
  np.testing.assert_array_equal(labels, np.arange(6))
  assert sorted(os.listdir(tmp_path / "toy")) == [name, name + ".damaged"]
  assert open(path + ".damaged", "rb").read() == damaged_bytes  # kept, not deleted
  # The regenerated file is whole: read back without a warning or a new generation.
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    again, _ = corrupted.load_corrupted(config, "contrast", 4, load_split=_fake_split)
  np.testing.assert_array_equal(again, fresh)


def test_damaged_files_are_never_overwritten(tmp_path):
  config = _config(tmp_path, dataset="toy")
  corrupted.load_corrupted(config, "contrast", 1, load_split=_fake_split)
  (name,) = os.listdir(tmp_path / "toy")
  for _ in range(2):
    _truncate(tmp_path / "toy" / name)
    with pytest.warns(RuntimeWarning):
      corrupted.load_corrupted(config, "contrast", 1, load_split=_fake_split)
  assert sorted(os.listdir(tmp_path / "toy")) == [name, name + ".damaged", name + ".damaged2"]


def test_interrupted_generation_leaves_no_file(tmp_path, monkeypatch):
  config = _config(tmp_path, dataset="toy")

  def broken_savez(f, **arrays):
    f.write(b"half a file")
    raise KeyboardInterrupt
  monkeypatch.setattr(np, "savez", broken_savez)
  with pytest.raises(KeyboardInterrupt):
    corrupted.load_corrupted(config, "contrast", 1, load_split=_fake_split)
  assert not os.listdir(tmp_path / "toy")


def test_fashion_mnist_c_from_the_data_package(tmp_path):
  config = _config(tmp_path, num_examples=4)
  images, labels = corrupted.load_corrupted(config, "contrast", 5)
  clean, clean_labels = corrupted.clean_test_set(config)
  assert images.shape == clean.shape == (4, 28, 28, 1)
  np.testing.assert_array_equal(labels, clean_labels)
  assert np.abs(images.astype(float) - clean).mean() > 10  # contrast 0.15 does damage


def test_every_corruption_and_severity_is_a_tfds_config():
  tfds = pytest.importorskip("tensorflow_datasets")
  builder_cls = tfds.builder_cls("cifar10_corrupted")
  available = {c.name for c in builder_cls.BUILDER_CONFIGS}
  wanted = {corrupted.tfds_config_name(n, s) for n in corruptions.ALL_CORRUPTIONS
            for s in corruptions.SEVERITIES}
  assert wanted <= available
  assert corrupted.tfds_config_name("glass_blur", 2) == "frosted_glass_blur_2"
  assert corrupted.tfds_config_name("elastic_transform", 5) == "elastic_5"


def test_cifar10_c_through_mocked_tfds(tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  config = _config(tmp_path, dataset="cifar10", num_examples=5)
  with tfds.testing.mock_data(num_examples=8):
    images, labels = corrupted.load_corrupted(config, "glass_blur", 3)
  assert images.shape == (5, 32, 32, 3) and images.dtype == np.uint8
  assert labels.shape == (5,) and labels.dtype == np.int32
  assert not os.listdir(tmp_path)  # nothing generated or cached


def test_evaluation_on_mocked_cifar10_c(tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  from freqrobust.evaluators import corruptions as evaluate
  config = _config(tmp_path / "cache", dataset="cifar10", num_examples=6,
                   names=("snow", "elastic_transform"))
  config.eval = ml_collections.ConfigDict({"batch_size": 4})
  predict = lambda images: np.stack([images.mean((1, 2, 3)), 0.5 + 0 * images.sum((1, 2, 3))], -1)
  with tfds.testing.mock_data(num_examples=6):
    results = evaluate.run_corruption_eval(predict, config, str(tmp_path / "run"),
                                           progress=False)
  assert results["source"] == "tfds" and results["num_examples"] == 6
  assert set(results["accuracy"]) == {"snow", "elastic_transform"}
  assert results["frost"].startswith("photographs")
