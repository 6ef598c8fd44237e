"""Fashion-MNIST from local gzipped IDX files (Debian's dataset-fashion-mnist), validated on load."""
import gzip
import os
from typing import Tuple

import numpy as np

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}
_HINT = ("Install it with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or point "
         "config.data.data_dir at a folder holding the four gzipped IDX files "
         f"({', '.join(f for v in FILES.values() for f in v[:2])}).")


class DatasetError(RuntimeError):
  """A dataset is missing or damaged; the message says how to fix it."""


def read_idx(path: str) -> np.ndarray:
  """Reads one gzipped IDX file (unsigned-byte data) into an array of its declared shape."""
  try:
    with gzip.open(path, "rb") as f:
      raw = f.read()
  except FileNotFoundError as e:
    raise DatasetError(f"Fashion-MNIST file not found: {path}. {_HINT}") from e
  except (OSError, EOFError) as e:
    raise DatasetError(f"Fashion-MNIST file {path} is damaged ({e}). {_HINT}") from e
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
    raise DatasetError(f"{path} is not an unsigned-byte IDX file (bad magic number). {_HINT}")
  ndim = raw[3]
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise DatasetError(f"{path} is truncated (incomplete header). {_HINT}")
  shape = tuple(int.from_bytes(raw[4 + 4 * k: 8 + 4 * k], "big") for k in range(ndim))
  expected = int(np.prod(shape))
  if len(raw) - header != expected:
    raise DatasetError(f"{path} holds {len(raw) - header} bytes of data but its header declares "
                       f"shape {shape} ({expected} bytes): the file is damaged. {_HINT}")
  return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load(split: str, data_dir: str = "") -> Tuple[np.ndarray, np.ndarray]:
  """Returns (images uint8 (N, 28, 28, 1), labels int32 (N,)) for split 'train' or 'test'."""
  if split not in FILES:
    raise ValueError(f"Fashion-MNIST split {split!r}; valid: {', '.join(FILES)}.")
  data_dir = data_dir or DEFAULT_DIR
  image_file, label_file, count = FILES[split]
  images = read_idx(os.path.join(data_dir, image_file))
  labels = read_idx(os.path.join(data_dir, label_file))
  if images.shape != (count, 28, 28):
    raise DatasetError(f"{image_file}: expected shape ({count}, 28, 28), found {images.shape}. {_HINT}")
  if labels.shape != (count,):
    raise DatasetError(f"{label_file}: expected {count} labels, found shape {labels.shape}. {_HINT}")
  if labels.max() > 9:
    raise DatasetError(f"{label_file}: labels must lie in 0..9, found {int(labels.max())}. {_HINT}")
  return images[..., None], labels.astype(np.int32)
