"""Where each tool's outputs live and how its numbers are stored.

Tool `T` of workdir `DIR` writes into `DIR/analysis/T/`: figures as PNG, arrays as `T.npz`
(FFT layout, unshifted, unless the name ends in `_shifted`) and scalars/lists as `T.json`.
"""
from collections.abc import Mapping
import json
import os
from typing import Any

import numpy as np


def tool_dir(workdir: str, tool: str) -> str:
  """`DIR/analysis/<tool>/`, created if missing."""
  path = os.path.join(workdir, "analysis", tool)
  os.makedirs(path, exist_ok=True)
  return path


def save_arrays(out_dir: str, name: str, arrays: Mapping[str, Any]) -> str:
  """Writes `out_dir/<name>.npz` and returns its path."""
  path = os.path.join(out_dir, f"{name}.npz")
  np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})
  return path


def load_arrays(path: str) -> dict[str, np.ndarray]:
  with np.load(path) as data:
    return {k: data[k] for k in data.files}


def save_json(out_dir: str, name: str, summary: Mapping[str, Any]) -> str:
  """Writes `out_dir/<name>.json` (NumPy scalars and arrays become plain JSON)."""
  path = os.path.join(out_dir, f"{name}.json")
  with open(path, "w") as f:
    json.dump(_plain(summary), f, indent=2, sort_keys=True)
  return path


def _plain(value: Any) -> Any:
  if isinstance(value, Mapping):
    return {str(k): _plain(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_plain(v) for v in value]
  if isinstance(value, np.ndarray):
    return _plain(value.tolist())
  if isinstance(value, np.generic):
    return _plain(value.item())
  if isinstance(value, float) and not np.isfinite(value):
    return None  # JSON has no NaN.
  return value
