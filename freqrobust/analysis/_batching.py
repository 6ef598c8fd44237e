"""Fixed-shape chunking of a long list of jobs, with a progress bar.

Every heavy loop of the analysis tools (frequencies x images, bands x images) is flattened into
one index list and cut into chunks of `batch_size`. The last chunk is padded to the same size so
a jitted function compiles once; padded rows are dropped again before anything is accumulated.
"""
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np
import tqdm


def padded_chunks(num_items: int, batch_size: int, desc: str = "",
                  progress: bool = True) -> Iterator[tuple[np.ndarray, int]]:
  """Yields `(indices, num_valid)` chunks of equal length covering `range(num_items)`.

  `indices` has length `min(batch_size, num_items)`; the tail of the last chunk repeats the final
  index, and only its first `num_valid` entries are real.
  """
  if num_items <= 0:
    raise ValueError(f"nothing to process ({desc or 'empty job list'}); pass at least one item")
  if batch_size <= 0:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  size = min(batch_size, num_items)
  starts = range(0, num_items, size)
  for start in tqdm.tqdm(starts, desc=desc, disable=not progress, leave=False):
    stop = min(start + size, num_items)
    indices = np.arange(start, start + size)
    indices[stop - start:] = num_items - 1
    yield indices, stop - start


def map_chunks(fn: Callable[[np.ndarray], Any], num_items: int, batch_size: int,
               desc: str = "", progress: bool = True) -> Any:
  """Applies `fn(indices)` chunk by chunk and concatenates its (pytree of) outputs along axis 0."""
  outputs = []
  for indices, num_valid in padded_chunks(num_items, batch_size, desc, progress):
    out = fn(indices)
    outputs.append(_take_leading(out, num_valid))
  return _concat(outputs)


def split_accuracy(predict_fn: Callable[[Any], Any], images, labels, num_values: int,
                   split: Callable[[Any], tuple[Any, Any]], batch_size: int, desc: str = "",
                   progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """Accuracy (fractions, (num_values,) each) of `predict_fn` on the two parts of every image
  under each of `num_values` settings of a filter pair (low/high-pass over a bandwidth or a
  radius): `split(pairs) -> (first, second)` filters image `pairs % N` with setting `pairs // N`.
  The settings x images list is one flat job list (one compilation)."""
  n = images.shape[0]

  def run(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pair = jax.numpy.asarray(idx, jax.numpy.int32)
    truth = np.asarray(labels)[idx % n]
    first, second = split(pair)
    return (np.asarray(np.argmax(np.asarray(predict_fn(first)), -1) == truth, np.float32),
            np.asarray(np.argmax(np.asarray(predict_fn(second)), -1) == truth, np.float32))

  first, second = map_chunks(run, num_values * n, batch_size, desc=desc, progress=progress)
  return first.reshape(num_values, n).mean(axis=1), second.reshape(num_values, n).mean(axis=1)


def _take_leading(tree: Any, n: int) -> Any:
  return jax.tree.map(lambda a: np.asarray(a)[:n], tree)


def _concat(trees: list[Any]) -> Any:
  return jax.tree.map(lambda *xs: np.concatenate(xs, axis=0), *trees)
