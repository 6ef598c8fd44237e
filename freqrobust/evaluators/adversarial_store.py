"""The adversarial evaluation's files beside adversarial.json in DIR/evals/<name>/:

  records.npz + records.json: every attack's per-example results ((R, N) bool "values", one row
      per record, named in records.json with its meta) and the key they were made under (the
      model's fingerprint, the step, the test images and labels, the norm, the seed, the batch
      size). A later evaluation with the same key reuses them: only attacks not yet recorded
      run (an attack added to the settings runs alone).
  adversarial_images.npz: the worst-case white-box image per example at the main radius (the
      first PGD/APGD image that fooled this model, else the last one's), with "fooled",
      "labels", "eps", "norm", the attacks it was built from, the model's fingerprint and the
      digest of the clean images and labels ("clean"): the
      images another run scores in its transfer check (`transfer_from`).
"""
from __future__ import annotations

import hashlib
import io
from typing import Any, Dict, Mapping, Optional

import numpy as np

from freqrobust import workdir as workdir_lib
from freqrobust.attacks.records import Records

RECORDS, RECORDS_META, IMAGES = "records.npz", "records.json", "adversarial_images.npz"


def digest(*arrays: np.ndarray) -> str:
  h = hashlib.sha256()
  for a in arrays:
    a = np.ascontiguousarray(a)
    h.update(f"{a.shape}|{a.dtype}|".encode())
    h.update(a.tobytes())
  return h.hexdigest()[:16]


def _load_npz(target: str) -> Dict[str, np.ndarray]:
  if workdir_lib.is_remote(target):
    from etils import epath
    data = epath.Path(target).read_bytes()
  else:
    with open(target, "rb") as f:
      data = f.read()
  with np.load(io.BytesIO(data), allow_pickle=False) as npz:
    return {k: npz[k] for k in npz.files}


def _save_npz(target: str, arrays: Mapping[str, np.ndarray]) -> None:
  workdir_lib.atomic_write(target, lambda f: np.savez(f, **arrays), mode="wb")


def load_records(folder: str, key: Mapping[str, Any], n: int) -> Records:
  """The records stored under the same key (empty when none or another key)."""
  meta_path = workdir_lib.path(folder, RECORDS_META)
  arrays_path = workdir_lib.path(folder, RECORDS)
  if not (workdir_lib.exists(meta_path) and workdir_lib.exists(arrays_path)):
    return Records(n)
  meta = workdir_lib.read_json(meta_path)
  if meta.get("key") != workdir_lib.to_jsonable(dict(key)):
    return Records(n)
  values = _load_npz(arrays_path)["values"]
  names = list(meta["records"])
  if values.shape != (len(names), n):
    return Records(n)
  return Records.from_arrays(n, dict(zip(names, values)), meta["records"])


def save_records(folder: str, key: Mapping[str, Any], records: Records) -> None:
  workdir_lib.make_dir(folder)
  names = list(records.values)
  values = (np.stack([records.values[k] for k in names]) if names
            else np.zeros((0, records.n), bool))
  _save_npz(workdir_lib.path(folder, RECORDS), {"values": values})
  workdir_lib.write_json(workdir_lib.path(folder, RECORDS_META),
                         {"key": dict(key), "records": records.meta})


def add_images(folder: str, model: str, name: str, images: np.ndarray, fooled: np.ndarray,
               labels: np.ndarray, eps: float, norm: str, clean: str) -> None:
  """Folds one attack's images at the main radius into adversarial_images.npz (a file of
  another model or radius is replaced)."""
  target = workdir_lib.path(folder, IMAGES)
  old = load_images(target) if workdir_lib.exists(target) else None
  if (old is not None and str(old["model"]) == model and float(old["eps"]) == eps
      and str(old["norm"]) == norm and str(old["clean"]) == clean):
    if name in [str(a) for a in old["attacks"]]:
      return
    take = fooled & ~old["fooled"]
    images = np.where(take.reshape((-1,) + (1,) * (images.ndim - 1)), images, old["images"])
    fooled, attacks = fooled | old["fooled"], [str(a) for a in old["attacks"]] + [name]
  else:
    attacks = [name]
  workdir_lib.make_dir(folder)
  _save_npz(target, {"images": np.asarray(images, np.float32), "fooled": fooled,
                     "labels": np.asarray(labels), "eps": np.float64(eps), "norm": np.str_(norm),
                     "model": np.str_(model), "clean": np.str_(clean), "attacks": np.asarray(attacks, dtype=np.str_)})


def load_images(target: str) -> Optional[Dict[str, np.ndarray]]:
  return _load_npz(target)
