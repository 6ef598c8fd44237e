"""One mesh with one data axis, and the one batched-prediction helper (pad, shard, unpad).

Data parallelism is `jax.jit` over `Mesh(devices, ('data',))`: batches sharded `P('data')`,
parameters replicated `P()`. The same code runs on one CPU, on 8 fake CPU devices (tests) and on
every GPU/TPU of a cluster (each host feeds its slice of the global batch).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


class Sharder:
  """The mesh and the host-to-device transfer of global batches (each host gives its slice)."""

  def __init__(self, devices=None):
    self.devices = list(devices if devices is not None else jax.devices())
    self.mesh = Mesh(np.asarray(self.devices), ("data",))
    self.data = NamedSharding(self.mesh, P("data"))
    self.replicated = NamedSharding(self.mesh, P())

  @property
  def num_devices(self) -> int:
    return len(self.devices)

  def local_slice(self, global_batch: int) -> slice:
    per_host = global_batch // jax.process_count()
    start = jax.process_index() * per_host
    return slice(start, start + per_host)

  def put(self, batch: Dict[str, np.ndarray]) -> Dict[str, jax.Array]:
    return {k: jax.make_array_from_process_local_data(self.data, v) for k, v in batch.items()}

  def put_array(self, array: np.ndarray) -> jax.Array:
    return jax.make_array_from_process_local_data(self.data, array)


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
  """

  def __init__(self, apply: Callable[[Any, jax.Array], Any], batch_size: int,
               sharder: Optional[Sharder] = None):
    self.sharder = sharder or Sharder()
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
      out = jax.device_get(self._fn(variables, jax.device_put(chunk, self.sharder.data)))
      outputs.append(jax.tree.map(lambda o, real=real: np.asarray(o)[:real], out))
    return jax.tree.map(lambda *parts: np.concatenate(parts), *outputs)

  def bind(self, variables: Any) -> Callable[[np.ndarray], Any]:
    """`predict(images)` with the variables placed on the devices once."""
    variables = jax.device_put(variables, self.sharder.replicated)
    predict = lambda images: self(variables, images)
    predict.batch_size = self.batch_size
    return predict


def batched_predict(apply: Callable[[Any, jax.Array], Any], variables: Any, batch_size: int,
                    sharder: Optional[Sharder] = None) -> Callable[[np.ndarray], Any]:
  """`BatchedPredict(apply, batch_size, sharder).bind(variables)`: `predict(images)`."""
  return BatchedPredict(apply, batch_size, sharder).bind(variables)
