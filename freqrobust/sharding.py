"""One mesh with one data axis, and the one batched-prediction helper (pad, shard, unpad).

Data parallelism is `jax.jit` over `Mesh(devices, ('data',))`: batches sharded `P('data')`,
parameters replicated `P()`. The same code runs on one CPU, on 8 fake CPU devices (tests) and on
every GPU/TPU of a cluster (each host feeds its slice of the global batch).

Multi-process: the mesh orders the devices by (process, id), so process p's devices hold one
contiguous block of every global batch, `local_slice` (positions [p B / P, (p + 1) B / P) when
every process has as many devices): the global batch, and so every result, is the one a single
process with the same devices in that order would see (docs/SCALING.md).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


class Sharder:
  """The mesh and the host-to-device transfer of global batches (each host gives its slice)."""

  def __init__(self, devices=None):
    devices = list(devices if devices is not None else jax.devices())
    # Process-major order: each process's devices form one contiguous block of the batch axis.
    self.devices = sorted(devices, key=lambda d: (d.process_index, d.id))
    self.mesh = Mesh(np.asarray(self.devices), ("data",))
    self.data = NamedSharding(self.mesh, P("data"))
    self.replicated = NamedSharding(self.mesh, P())

  @property
  def num_devices(self) -> int:
    return len(self.devices)

  def local_slice(self, global_batch: int) -> slice:
    """The positions of a global batch of `global_batch` that this process's devices hold (and
    that it feeds, `jax.make_array_from_process_local_data`)."""
    mine = [i for i, d in enumerate(self.devices) if d.process_index == jax.process_index()]
    if not mine:
      return slice(0, 0)
    per_device = global_batch // self.num_devices
    return slice(mine[0] * per_device, (mine[-1] + 1) * per_device)

  def put(self, batch: Dict[str, np.ndarray]) -> Dict[str, jax.Array]:
    """A global batch from this process's slice of it (every process passes its own)."""
    return {k: jax.make_array_from_process_local_data(self.data, v) for k, v in batch.items()}

  def put_global(self, array: np.ndarray, sharding=None) -> jax.Array:
    """A global array from the whole of `array`, which every process passes identically: each
    process places the parts its devices hold (`jax.make_array_from_callback`)."""
    array = np.asarray(array)
    return jax.make_array_from_callback(array.shape, sharding or self.data, lambda i: array[i])


def _fetch(array: jax.Array) -> np.ndarray:
  """A replicated output on the host: this process's own copy (every process has one)."""
  if array.is_fully_addressable:
    return np.asarray(jax.device_get(array))
  return np.asarray(array.addressable_shards[0].data)


def round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


class BatchedPredict:
  """`predictor(variables, images) -> outputs` over any number of images, in fixed-size batches.

  `apply(variables, images (B, ...)) -> pytree of (B, ...) arrays` is jitted once, for a batch of
  `batch_size` rounded up to a multiple of the device count, sharded over the mesh: every batch,
  the last one included, is padded to that size so nothing recompiles, and the padding rows are
  dropped from the result. Images are passed as float32 (uint8 is NOT rescaled: give [0, 1]).
  The one batched-prediction helper of the package (training's clean evaluation, trained runs,
  corruption evaluation and analysis all use it).

  Multi-process: every process calls it with the same images (each process places the parts of
  each batch its devices hold); the outputs are replicated, so every process gets all of them.
  """

  def __init__(self, apply: Callable[[Any, jax.Array], Any], batch_size: int,
               sharder: Optional[Sharder] = None):
    self.sharder = sharder or Sharder()
    self.apply = apply  # The one function object (attacks key their compilations on it).
    self.batch_size = round_up(max(1, int(batch_size)), self.sharder.num_devices)
    self._fn = jax.jit(apply, in_shardings=(self.sharder.replicated, self.sharder.data),
                       out_shardings=self.sharder.replicated)

  def __call__(self, variables: Any, images) -> Any:
    images = np.asarray(images, np.float32)
    if len(images) == 0:
      raise ValueError("predict got no images.")
    size, outputs = self.batch_size, []
    for start in range(0, len(images), size):
      chunk = images[start:start + size]
      real = len(chunk)
      if real < size:
        chunk = np.concatenate([chunk, np.zeros((size - real,) + chunk.shape[1:], chunk.dtype)])
      out = self._fn(self._global(variables), self.sharder.put_global(chunk))
      outputs.append(jax.tree.map(lambda o, real=real: _fetch(o)[:real], out))
    return jax.tree.map(lambda *parts: np.concatenate(parts), *outputs)

  def _global(self, variables: Any) -> Any:
    """Variables as arrays on the whole mesh: global arrays stay, host arrays are replicated."""
    if jax.process_count() == 1:
      return variables
    return jax.tree.map(
        lambda v: v if isinstance(v, jax.Array) and not v.is_fully_addressable
        else self.sharder.put_global(np.asarray(v), self.sharder.replicated), variables)

  def bind(self, variables: Any) -> Callable[[np.ndarray], Any]:
    """`predict(images)` with the variables placed on the devices once."""
    if jax.process_count() == 1:
      variables = jax.device_put(variables, self.sharder.replicated)
    else:
      variables = self._global(variables)
    predict = lambda images: self(variables, images)
    predict.batch_size = self.batch_size
    return predict


def batched_predict(apply: Callable[[Any, jax.Array], Any], variables: Any, batch_size: int,
                    sharder: Optional[Sharder] = None) -> Callable[[np.ndarray], Any]:
  """`BatchedPredict(apply, batch_size, sharder).bind(variables)`: `predict(images)`."""
  return BatchedPredict(apply, batch_size, sharder).bind(variables)


def unseen_accelerator_warning() -> Optional[str]:
  """A WARNING line when this machine has an NVIDIA GPU (`nvidia-smi -L` lists one) that JAX does
  not use (its devices are CPUs: jax without CUDA support, or a driver it cannot load); None
  otherwise. Training then runs, slowly, on the CPU."""
  import shutil
  import subprocess
  if jax.default_backend() != "cpu" or shutil.which("nvidia-smi") is None:
    return None
  try:
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
  except (OSError, subprocess.SubprocessError):
    return None
  gpus = [line for line in listed.stdout.splitlines() if line.startswith("GPU ")]
  if listed.returncode != 0 or not gpus:
    return None
  return (f"WARNING: this machine has {len(gpus)} NVIDIA GPU(s) ({gpus[0].strip()}) but JAX runs "
          f"on the CPU ({jax.devices()[0].device_kind}): install jax[cuda12] of the version in "
          "requirements.txt (bash launch/setup.sh does) or check the driver; training continues "
          "on the CPU.")
