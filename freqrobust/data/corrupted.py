"""Corrupted test sets (docs/METHOD.md §6): CIFAR-10-C through TFDS, or generated for any dataset.

Sources (`config.corruptions.source`):
- 'tfds': `cifar10_corrupted/<name>_<severity>` (test split, 10 000 images); TFDS calls
  glass_blur `frosted_glass_blur` and elastic_transform `elastic`.
- 'generated': the project's corruptions (`freqrobust.corruptions`) applied to the test split of
  `config.data` (e.g. Fashion-MNIST -> Fashion-MNIST-C), written once to a cache directory and
  reused. The cache key (`generation_key`) holds a SHA-256 of the clean images and labels the set
  was made from and every parameter of the recipe, so another test set under the same dataset
  name never reuses old sets. Writes are atomic (temporary file + rename), so an interrupted
  generation leaves only finished sets behind; a cache file that cannot be read or does not
  match its key (truncated, not a zip, arrays missing or of the wrong shape, dtype or labels) is
  reported with a warning, renamed to `<file>.damaged` and generated again.
- 'auto': tfds for cifar10, generated otherwise.

Config fields read (all optional, with defaults): corruptions.source, .cache_dir, .names,
.include_extra, .num_examples, .seed, .frost_dir; data (passed to `load_split`).
"""
import dataclasses
import hashlib
import json
import os
import warnings
from typing import Any, Callable, Optional

import jax
import numpy as np

from freqrobust import corruptions
from freqrobust import workdir
from freqrobust.corruptions import host as corruption_host
from freqrobust.data import cifar10

TFDS_NAMES = {"glass_blur": "frosted_glass_blur", "elastic_transform": "elastic"}
DEFAULT_CACHE_DIR = os.path.join("~", ".cache", "freqrobust", "corrupted")
# Images per `corrupt` call while generating; per-image keys depend on it, so it is part of the
# cache key.
GENERATION_CHUNK = 500
SOURCES = ("auto", "tfds", "generated")


def _get(section: Any, field: str, default: Any) -> Any:
  if section is None:
    return default
  value = section.get(field, default) if hasattr(section, "get") else getattr(
      section, field, default)
  return default if value is None else value


@dataclasses.dataclass(frozen=True)
class CorruptionSettings:
  """The corruption fields of a config, defaults filled in and validated."""
  dataset: str
  source: str  # resolved: 'tfds' or 'generated'
  cache_dir: str
  names: tuple[str, ...]
  num_examples: int
  seed: int
  frost_dir: str
  tfds_data_dir: str

  @classmethod
  def from_config(cls, config: Any) -> "CorruptionSettings":
    section = _get(config, "corruptions", None)
    data = _get(config, "data", None)
    dataset = str(_get(data, "dataset", ""))
    source = str(_get(section, "source", "auto"))
    if source not in SOURCES:
      raise ValueError(f"config.corruptions.source={source!r}; valid: {', '.join(SOURCES)}.")
    if source == "auto":
      source = "tfds" if dataset == "cifar10" else "generated"
    if source == "tfds" and dataset != "cifar10":
      raise ValueError(f"config.corruptions.source='tfds' holds only CIFAR-10-C, but "
                       f"config.data.dataset={dataset!r}; use source='generated' (or 'auto').")
    names = tuple(_get(section, "names", ()) or corruptions.CORRUPTIONS)
    if bool(_get(section, "include_extra", False)):
      names += tuple(n for n in corruptions.EXTRA_CORRUPTIONS if n not in names)
    unknown = [n for n in names if n not in corruptions.ALL_CORRUPTIONS]
    if unknown:
      raise ValueError(f"config.corruptions.names has unknown {unknown}; valid: "
                       f"{', '.join(corruptions.ALL_CORRUPTIONS)}.")
    num_examples = int(_get(section, "num_examples", 0))
    if num_examples < 0:
      raise ValueError(f"config.corruptions.num_examples={num_examples}; use 0 (all) or more.")
    cache_dir = str(_get(section, "cache_dir", "")) or DEFAULT_CACHE_DIR
    return cls(dataset=dataset, source=source, cache_dir=os.path.expanduser(cache_dir),
               names=names, num_examples=num_examples, seed=int(_get(section, "seed", 0)),
               frost_dir=str(_get(section, "frost_dir", "")),
               tfds_data_dir=str(_get(data, "tfds_data_dir", "")))

  @property
  def frost_source(self) -> str:
    return corruptions.frost_source(self.frost_dir) if self.source == "generated" else (
        "photographs (published CIFAR-10-C)")

  def set_fields(self, num_examples: Optional[int]) -> dict:
    """What the corrupted sets are made from, as an evaluation records it (the keys of
    `workdir.CORRUPTED_SET_FIELDS` but the clean images' digest); `num_examples` is the number
    of test images per set (None: not known yet)."""
    return {"dataset": self.dataset, "source": self.source, "num_examples": num_examples,
            "seed": self.seed, "recipe_version": corruptions.RECIPE_VERSION,
            "frost": self.frost_source}


def tfds_config_name(name: str, severity: int) -> str:
  """TFDS builder config of CIFAR-10-C for a corruption and severity."""
  if name not in corruptions.ALL_CORRUPTIONS:
    raise ValueError(f"Unknown corruption {name!r}; valid: "
                     f"{', '.join(corruptions.ALL_CORRUPTIONS)}.")
  return f"{TFDS_NAMES.get(name, name)}_{severity}"


def load_tfds(name: str, severity: int, num_examples: int = 0,
              data_dir: str = "") -> tuple[np.ndarray, np.ndarray]:
  """CIFAR-10-C test images (uint8 N, 32, 32, 3) and labels (int32) through TFDS."""
  split = f"test[:{num_examples}]" if num_examples else "test"
  dataset = f"cifar10_corrupted/{tfds_config_name(name, severity)}"
  images, labels = cifar10.load_tfds_numpy(
      dataset, split, data_dir,
      hint="Or, without the published CIFAR-10-C, generate the sets here with "
      "--config.corruptions.source=generated (the project's re-implementation of the recipe).")
  if num_examples:  # the split slice already did it, except under tfds.testing.mock_data
    images, labels = images[:num_examples], labels[:num_examples]
  return images, labels


def clean_test_set(config: Any, load_split: Optional[Callable] = None
                   ) -> tuple[np.ndarray, np.ndarray]:
  """The clean test split of config.data, truncated to config.corruptions.num_examples."""
  if load_split is None:
    from freqrobust.data import load_split  # the data package's entry point
  settings = CorruptionSettings.from_config(config)
  images, labels = load_split(config.data, "test")
  if settings.num_examples:
    images, labels = images[:settings.num_examples], labels[:settings.num_examples]
  return np.asarray(images, np.uint8), np.asarray(labels, np.int32)


def content_digest(images: np.ndarray, labels: np.ndarray) -> str:
  """SHA-256 of a clean set's content: dtype, shape and bytes of its images and its labels.

  About 40 ms for 10 000 CIFAR-10 images on one CPU core.
  """
  digest = hashlib.sha256()
  for array in (images, labels):
    array = np.ascontiguousarray(array)
    digest.update(f"{array.dtype.str}{array.shape};".encode())
    digest.update(memoryview(array).cast("B"))
  return digest.hexdigest()


def frost_photos_digest(frost_dir: str) -> Optional[str]:
  """SHA-256 of the frost photographs (names and bytes) in `frost_dir`; None when it is ''."""
  if not frost_dir or not os.path.isdir(frost_dir):
    return None  # '' = procedural; a missing folder fails in generation with its own message
  digest = hashlib.sha256()
  for name in sorted(os.listdir(frost_dir)):
    if name.lower().endswith(corruption_host.FROST_EXTENSIONS):
      with open(os.path.join(frost_dir, name), "rb") as f:
        digest.update(f"{name};".encode())
        digest.update(hashlib.sha256(f.read()).digest())
  return digest.hexdigest()


def generation_key(settings: CorruptionSettings, name: str, severity: int,
                   clean_digest: str) -> dict[str, Any]:
  """Everything that determines a generated set's pixels.

  `clean_digest` is `content_digest` of the clean (truncated) test set the set is made from, so
  the key follows the data, not the dataset's name or folder.
  """
  frost = name == "frost"
  return {"dataset": settings.dataset, "clean_sha256": clean_digest,
          "corruption": name, "severity": severity, "seed": settings.seed,
          "num_examples": settings.num_examples, "recipe_version": corruptions.RECIPE_VERSION,
          "chunk": GENERATION_CHUNK,
          "prng": f"{jax.config.jax_default_prng_impl}"
                  f"/partitionable={bool(jax.config.jax_threefry_partitionable)}",
          "frost": corruptions.frost_source(settings.frost_dir) if frost else None,
          "frost_photos_sha256": (frost_photos_digest(corruptions.resolve_frost(
              settings.frost_dir)[0]) if frost else None)}


def cache_path(settings: CorruptionSettings, name: str, severity: int, clean_digest: str) -> str:
  """Cache file of a generated set: readable parameters in the name, plus a hash of the key."""
  key = generation_key(settings, name, severity, clean_digest)
  digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
  frost = ""
  if name == "frost":
    frost = "-procfrost" if settings.frost_source == "procedural" else "-photofrost"
  filename = (f"{name}_{severity}-seed{settings.seed}-n{settings.num_examples or 'all'}"
              f"-v{corruptions.RECIPE_VERSION}{frost}-clean{clean_digest[:8]}-{digest}.npz")
  return os.path.join(settings.cache_dir, settings.dataset or "unnamed", filename)


def set_key(seed: int, name: str, severity: int) -> jax.Array:
  """The PRNG key of one (corruption, severity) set."""
  key = jax.random.fold_in(jax.random.key(seed), corruptions.ALL_CORRUPTIONS.index(name))
  return jax.random.fold_in(key, severity)


def generate(key: jax.Array, images: np.ndarray, name: str, severity: int,
             frost_dir: str = "", chunk: int = GENERATION_CHUNK) -> np.ndarray:
  """Corrupts uint8 `images` in chunks; chunk i uses fold_in(key, i)."""
  out = np.empty_like(images)
  for i, start in enumerate(range(0, len(images), chunk)):
    out[start:start + chunk] = corruptions.corrupt(
        jax.random.fold_in(key, i), images[start:start + chunk], name, severity,
        frost_dir=frost_dir)
  return out


def _atomic_save(path: str, **arrays: Any) -> None:
  workdir.atomic_write(path, lambda f: np.savez(f, **arrays), mode="wb")


def move_aside(path: str, reason: str) -> str:
  """Renames a damaged cache file to `<path>.damaged` (never overwriting one) with a warning."""
  target, n = f"{path}.damaged", 1
  while os.path.exists(target):
    n += 1
    target = f"{path}.damaged{n}"
  os.replace(path, target)
  warnings.warn(f"Damaged corruption cache file {path} ({reason}); moved it to {target} and "
                "generating the set again.", RuntimeWarning, stacklevel=3)
  return target


def read_cached(path: str, meta: str, clean_images: np.ndarray,
                clean_labels: np.ndarray) -> Optional[tuple[np.ndarray, np.ndarray]]:
  """The cached set at `path` if it is whole and matches; else None (a damaged file moved aside).

  Whole and matching: a readable .npz holding images (uint8, the clean images' shape), labels
  (equal to the clean labels) and meta (the set's generation key, as JSON).
  """
  if not os.path.exists(path):
    return None
  try:
    with np.load(path, allow_pickle=False) as cached:
      missing = {"images", "labels", "meta"} - set(cached.files)
      if missing:
        raise ValueError(f"arrays {sorted(missing)} missing")
      images, labels, stored_meta = cached["images"], cached["labels"], str(cached["meta"])
  except Exception as e:  # truncated or not a zip (BadZipFile), bad array header, CRC, ...
    move_aside(path, f"{type(e).__name__}: {e}")
    return None
  problem = None
  if images.dtype != np.uint8 or images.shape != clean_images.shape:
    problem = (f"images {images.dtype} {images.shape}, expected uint8 "
               f"{clean_images.shape}")
  elif labels.dtype != np.int32 or not np.array_equal(labels, clean_labels):
    problem = "labels differ from the clean test set's"
  elif stored_meta != meta:
    problem = "its generation key differs from the one its name stands for"
  if problem:
    move_aside(path, problem)
    return None
  return images, labels


def load_generated(config: Any, name: str, severity: int,
                   clean: Optional[tuple[np.ndarray, np.ndarray]] = None,
                   load_split: Optional[Callable] = None) -> tuple[np.ndarray, np.ndarray]:
  """A generated corrupted test set from the cache, generating and caching it if absent.

  `clean` (the clean test set, already truncated) saves reloading it for every set; without it
  the clean set is loaded, as the cache key holds a hash of its content.
  """
  settings = CorruptionSettings.from_config(config)
  images, labels = clean if clean is not None else clean_test_set(config, load_split)
  images, labels = np.asarray(images, np.uint8), np.asarray(labels, np.int32)
  clean_digest = content_digest(images, labels)
  path = cache_path(settings, name, severity, clean_digest)
  meta = json.dumps(generation_key(settings, name, severity, clean_digest), sort_keys=True)
  cached = read_cached(path, meta, images, labels)
  if cached is not None:
    return cached
  corrupted = generate(set_key(settings.seed, name, severity), images, name, severity,
                       settings.frost_dir)
  _atomic_save(path, images=corrupted, labels=labels, meta=np.asarray(meta))
  return corrupted, labels


def load_corrupted(config: Any, name: str, severity: int,
                   clean: Optional[tuple[np.ndarray, np.ndarray]] = None,
                   load_split: Optional[Callable] = None) -> tuple[np.ndarray, np.ndarray]:
  """(uint8 images NHWC, int32 labels) of one corrupted test set, from the configured source."""
  settings = CorruptionSettings.from_config(config)
  if severity not in corruptions.SEVERITIES:
    raise ValueError(f"Unknown severity {severity!r}; valid: {corruptions.SEVERITIES}.")
  if settings.source == "tfds":
    return load_tfds(name, severity, settings.num_examples, settings.tfds_data_dir)
  return load_generated(config, name, severity, clean, load_split)
