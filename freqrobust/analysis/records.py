"""How each analysis tool stores its numbers (in `workdir.tool_dir(DIR, T)` = DIR/analysis/T/).

Figures as PNG, arrays as `T.npz` (FFT layout, unshifted, unless the name ends in `_shifted`) and
scalars/lists as `T.json`; both written atomically through `freqrobust.workdir`.
"""
from collections.abc import Mapping
import os
from typing import Any

import numpy as np

from freqrobust import workdir


def save_arrays(out_dir: str, name: str, arrays: Mapping[str, Any]) -> str:
  """Writes `out_dir/<name>.npz` and returns its path."""
  path = os.path.join(out_dir, f"{name}.npz")
  workdir.atomic_write(path, lambda f: np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()}),
                       mode="wb")
  return path


def load_arrays(path: str) -> dict[str, np.ndarray]:
  with np.load(path) as data:
    return {k: data[k] for k in data.files}


def save_json(out_dir: str, name: str, summary: Mapping[str, Any]) -> str:
  """Writes `out_dir/<name>.json` (NumPy scalars and arrays become plain JSON, NaN null)."""
  path = os.path.join(out_dir, f"{name}.json")
  workdir.write_json(path, summary, sort_keys=True)
  return path
