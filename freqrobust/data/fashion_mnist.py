"""Fashion-MNIST from local gzipped IDX files (Debian's dataset-fashion-mnist), validated on load.
"""
import gzip
import os
import zlib
from typing import Tuple

import numpy as np

from freqrobust.data.errors import DatasetError

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}
_HINT = ("Install it with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or point "
         "config.data.data_dir at a folder holding the four gzipped IDX files "
         f"({', '.join(f for v in FILES.values() for f in v[:2])}).")

_DAMAGED_HINT = ("Replace it: `sudo apt-get install --reinstall dataset-fashion-mnist`, or copy "
                 "the file again into config.data.data_dir.")


def read_idx(path: str) -> np.ndarray:
  """Reads one gzipped IDX file (unsigned-byte data) into an array of its declared shape."""
  try:
    with gzip.open(path, "rb") as f:
      raw = f.read()
  except FileNotFoundError as e:
    raise DatasetError(f"Fashion-MNIST file not found: {path}. {_HINT}") from e
  except (IsADirectoryError, PermissionError) as e:
    raise DatasetError(f"Fashion-MNIST file {path} cannot be read ({e}); it must be a readable "
                       f"gzipped IDX file. {_HINT}") from e
  # BadGzipFile (an OSError), EOFError (truncated) and zlib.error (corrupt deflate data).
  except (OSError, EOFError, zlib.error) as e:
    raise DatasetError(f"Fashion-MNIST file {path} is damaged ({type(e).__name__}: {e}). "
                       f"{_DAMAGED_HINT}") from e
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
    raise DatasetError(f"Fashion-MNIST file {path} is damaged: not an unsigned-byte IDX file "
                       f"(bad magic number). {_DAMAGED_HINT}")
  ndim = raw[3]
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise DatasetError(f"Fashion-MNIST file {path} is damaged: truncated (incomplete header). "
                       f"{_DAMAGED_HINT}")
  shape = tuple(int.from_bytes(raw[4 + 4 * k: 8 + 4 * k], "big") for k in range(ndim))
  expected = int(np.prod(shape))
  if len(raw) - header != expected:
    raise DatasetError(f"Fashion-MNIST file {path} is damaged: it holds {len(raw) - header} bytes "
                       f"of data but its header declares shape {shape} ({expected} bytes). "
                       f"{_DAMAGED_HINT}")
  return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load(split: str, data_dir: str = "") -> Tuple[np.ndarray, np.ndarray]:
  """Returns (images uint8 (N, 28, 28, 1), labels int32 (N,)) for split 'train' or 'test'."""
  if split not in FILES:
    raise ValueError(f"Fashion-MNIST split {split!r}; valid: {', '.join(FILES)}.")
  data_dir = data_dir or DEFAULT_DIR
  image_file, label_file, count = FILES[split]
  image_path, label_path = os.path.join(data_dir, image_file), os.path.join(data_dir, label_file)
  images, labels = read_idx(image_path), read_idx(label_path)
  if images.shape != (count, 28, 28):
    raise DatasetError(f"Fashion-MNIST file {image_path}: expected shape ({count}, 28, 28), found "
                       f"{images.shape}; it is not the Fashion-MNIST {split} split. "
                       f"{_DAMAGED_HINT}")
  if labels.shape != (count,):
    raise DatasetError(f"Fashion-MNIST file {label_path}: expected {count} labels, found shape "
                       f"{labels.shape}; it is not the Fashion-MNIST {split} split. "
                       f"{_DAMAGED_HINT}")
  if labels.max() > 9:
    raise DatasetError(f"Fashion-MNIST file {label_path}: labels must lie in 0..9, found "
                       f"{int(labels.max())}. {_DAMAGED_HINT}")
  return images[..., None], labels.astype(np.int32)
