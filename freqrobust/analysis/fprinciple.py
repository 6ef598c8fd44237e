"""Frequency Principle by the filtering method (Xu et al., "Frequency Principle: Fourier Analysis
Sheds Light on Deep Neural Networks"; issue #30).

On N training images x_i (flattened, in [0, 1]) with one-hot labels y (N, K) and the model's
softmax outputs h (N, K), a Gaussian low-pass filter over the *input space*:

    K_delta[i, j] = exp(-|x_i - x_j|^2 / (2 delta)) / sum_j exp(-|x_i - x_j|^2 / (2 delta)),
    e_low  = |K y - K h|_F / |K y|_F,
    e_high = |(y - K y) - (h - K h)|_F / |y - K y|_F.

Official code (github.com/xuzhiqin1990/F-Principle, filter_gd.py at commit 7c3d7a4):
`compute_distance` (lines 34-37) is the squared Euclidean distance by the Gram identity
|a|^2 + |b|^2 - 2 a.b of the flattened images scaled to [0, 1] (`/ 255.0`, line 16; no other
normalisation, no division by the dimension); `normal_kernel` (lines 40-45) is
exp(-dist / 2 / delta) divided by its row sums; the errors are `np.linalg.norm` (Frobenius) of
the differences over those of the targets (lines 133-136); h is the output of the model's final
Softmax layer (line 78, `model.predict`, line 129); N = 5000 training images (`train_size`, line
92) and 20 deltas `np.linspace(2, 100, 20)` (lines 88-90, 101-102) for CIFAR-10 (32x32x3).

Here the row normalisation is a row-wise softmax of -dist / (2 delta) (the row's largest term,
its own diagonal at distance 0, factored out first), so no row underflows to 0/0 in any dtype;
distances are float64 on the host, with negative rounding residues of the Gram identity clipped
to 0 and the diagonal set to exactly 0. `default_deltas` scales the official deltas by D / 3072
(D = H W C), which keeps the exponent's typical size for images of another size (this scaling is
our choice; 32x32x3 gets the official values). e_high is NaN where y = K y (a delta so small
that K is the identity).

Memory: the pairwise distance matrix is N x N float64, N^2 * 8 bytes (N = 1000: 8 MB; 5000:
200 MB; 10000: 800 MB); K_delta is never held whole (rows are filtered in blocks of
`block_size`, each block block_size x N x 8 bytes), and the distances are computed once and
reused for every delta and every epoch (`pairwise_sq_distances`). The high parts y - K y are
computed from K's off-diagonal entries (`lowpass`), so they keep their relative precision when
K is close to the identity (small delta).
"""
from collections.abc import Callable, Mapping, Sequence
import os
from typing import Any

import jax
import numpy as np

from freqrobust.analysis import _batching
from freqrobust.analysis import records

LogitsFn = Callable[[jax.Array], jax.Array]
OFFICIAL_DELTAS = tuple(np.linspace(2, 100, 20).tolist())
OFFICIAL_DIMENSION = 32 * 32 * 3
# 2000 images: a 32 MB distance matrix (1.2 s) and 4.9 s per row of 20 deltas on 2 busy CPU
# cores (2026-12-04); the official N = 5000 needs 200 MB and about 6x the time.
DEFAULT_NUM_IMAGES = 2000


def default_deltas(image_shape: Sequence[int], num: int = 20) -> list[float]:
  """linspace(2, 100, num) * D / 3072 for images of shape (H, W, C) (module docstring)."""
  scale = float(np.prod(image_shape)) / OFFICIAL_DIMENSION
  return (np.linspace(2, 100, num) * scale).tolist()


def pairwise_sq_distances(images: np.ndarray, block_size: int = 1024) -> np.ndarray:
  """|x_i - x_j|^2 (N, N) float64 of the flattened images (memory: N^2 * 8 bytes)."""
  x = np.asarray(images, np.float64).reshape(len(images), -1)
  n = len(x)
  norms = np.einsum("ij,ij->i", x, x)
  dist = np.empty((n, n), np.float64)
  for start in range(0, n, block_size):
    stop = min(start + block_size, n)
    block = norms[start:stop, None] + norms[None, :] - 2.0 * (x[start:stop] @ x.T)
    dist[start:stop] = np.maximum(block, 0.0)
  np.fill_diagonal(dist, 0.0)
  return dist


def kernel_rows(sq_distances: np.ndarray, delta: float) -> np.ndarray:
  """Rows of K_delta for a block of rows of the distance matrix (row-wise softmax)."""
  if not delta > 0:
    raise ValueError(f"delta must be positive, got {delta}")
  logits = -np.asarray(sq_distances, np.float64) / (2.0 * float(delta))
  logits -= logits.max(axis=-1, keepdims=True)
  weights = np.exp(logits)
  return weights / weights.sum(axis=-1, keepdims=True)


def gaussian_kernel_matrix(images: np.ndarray, delta: float, block_size: int = 1024
                           ) -> np.ndarray:
  """The whole K_delta (N, N) float64, rows summing to 1 (for small N; memory 2 N^2 * 8)."""
  return kernel_rows(pairwise_sq_distances(images, block_size), delta)


def lowpass(sq_distances: np.ndarray, delta: float, f: np.ndarray, block_size: int = 1024
            ) -> tuple[np.ndarray, np.ndarray]:
  """(K_delta f, f - K_delta f) (N, K) in blocks of rows, never holding K_delta whole.

  The high part is computed as sum_{j != i} K_ij (f_i - f_j) = f_i s_i - (K' f)_i with K' the
  off-diagonal part of K and s_i its row sums, not as f - K f: when delta is small against the
  distances, K is the identity up to ~1e-50 and f - K f would round to 0 (or to noise).
  """
  f = np.asarray(f, np.float64)
  low, high = np.empty_like(f), np.empty_like(f)
  for start in range(0, len(f), block_size):
    stop = min(start + block_size, len(f))
    rows = kernel_rows(sq_distances[start:stop], delta)
    low[start:stop] = rows @ f
    rows[np.arange(stop - start), np.arange(start, stop)] = 0.0
    high[start:stop] = f[start:stop] * rows.sum(axis=1, keepdims=True) - rows @ f
  return low, high


def frequency_errors(sq_distances: np.ndarray, targets: np.ndarray, outputs: np.ndarray,
                     deltas: Sequence[float], block_size: int = 1024) -> dict[str, np.ndarray]:
  """e_low and e_high (D,) of `outputs` h against `targets` y for every delta (module docstring)."""
  y = np.asarray(targets, np.float64)
  h = np.asarray(outputs, np.float64)
  if y.shape != h.shape or y.ndim != 2 or sq_distances.shape != (len(y), len(y)):
    raise ValueError(f"need targets and outputs (N, K) and distances (N, N), got {y.shape}, "
                     f"{h.shape} and {sq_distances.shape}")
  low, high = [], []
  for delta in deltas:
    # K y - K h = K (y - h) and (y - K y) - (h - K h) = (I - K)(y - h): one filtering per delta.
    low_part, high_part = lowpass(sq_distances, delta, np.concatenate([y, y - h], axis=1),
                                  block_size)
    k = y.shape[1]
    y_low, diff_low = low_part[:, :k], low_part[:, k:]
    y_high, diff_high = high_part[:, :k], high_part[:, k:]
    low.append(_norm_ratio(diff_low, y_low))
    high.append(_norm_ratio(diff_high, y_high))
  return {"deltas": np.asarray(deltas, np.float64), "e_low": np.asarray(low),
          "e_high": np.asarray(high)}


def _norm_ratio(a: np.ndarray, b: np.ndarray) -> float:
  """|a|_F / |b|_F, both scaled by their largest entry first (squares of ~1e-200 underflow);
  NaN when b = 0."""
  scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0))
  if not scale > 0:
    return float("nan")
  denominator = np.linalg.norm(b / scale)
  return float(np.linalg.norm(a / scale) / denominator) if denominator > 0 else float("nan")


def softmax_outputs(logits_fn: LogitsFn, images: np.ndarray, batch_size: int = 256
                    ) -> np.ndarray:
  """softmax(logits_fn(images)) (N, K) float64, in fixed-size batches."""
  images = np.asarray(images, np.float32)
  logits = _batching.map_chunks(lambda idx: np.asarray(logits_fn(images[idx]), np.float32),
                                len(images), batch_size, progress=False).astype(np.float64)
  logits -= logits.max(axis=-1, keepdims=True)
  probs = np.exp(logits)
  return probs / probs.sum(axis=-1, keepdims=True)


def fprinciple_row(logits_fn: LogitsFn, images: np.ndarray, labels: np.ndarray,
                   deltas: Sequence[float] | None = None,
                   sq_distances: np.ndarray | None = None, num_classes: int | None = None,
                   batch_size: int = 256, block_size: int = 1024) -> dict[str, Any]:
  """One row (one model, e.g. one epoch) of the F-principle curves, JSON-able.

  Pass `sq_distances = pairwise_sq_distances(images)` to reuse it across epochs. Returns
  {"deltas": [...], "e_low": [...], "e_high": [...], "accuracy": float, "num_images": N}.
  """
  images = np.asarray(images, np.float32)
  labels = np.asarray(labels, np.int64)
  if labels.shape != (len(images),):
    raise ValueError(f"labels must have shape ({len(images)},), got {labels.shape}")
  deltas = list(deltas) if deltas is not None else default_deltas(images.shape[1:])
  if sq_distances is None:
    sq_distances = pairwise_sq_distances(images, block_size)
  probs = softmax_outputs(logits_fn, images, batch_size)
  num_classes = num_classes or probs.shape[1]
  targets = np.eye(num_classes)[labels]
  errors = frequency_errors(sq_distances, targets, probs, deltas, block_size)
  row = {k: v.tolist() for k, v in errors.items()}
  row.update(accuracy=float(np.mean(np.argmax(probs, -1) == labels)),
             num_images=int(len(images)))
  return row


def run_fprinciple(out_dir: str, rows_by_epoch: Mapping[int, Mapping[str, Any]],
                   max_deltas_drawn: int = 4) -> dict[str, Any]:
  """F-principle tool from `fprinciple_row` rows: `fprinciple.npz/.json/.png`."""
  from freqrobust.analysis import explain_plots  # matplotlib only when drawing
  epochs = sorted(rows_by_epoch)
  arrays = {"epochs": np.asarray(epochs),
            "deltas": np.asarray(rows_by_epoch[epochs[0]]["deltas"], np.float64)}
  for key in ("e_low", "e_high", "accuracy"):
    arrays[key] = np.asarray([rows_by_epoch[e][key] for e in epochs], np.float64)
  path = explain_plots.plot_fprinciple_curves(os.path.join(out_dir, "fprinciple.png"),
                                              rows_by_epoch, max_deltas_drawn)
  records.save_arrays(out_dir, "fprinciple", arrays)
  summary = {k: v.tolist() for k, v in arrays.items()}
  summary.update(num_images=int(rows_by_epoch[epochs[0]].get("num_images", 0)),
                 figures=[os.path.basename(path)])
  records.save_json(out_dir, "fprinciple", summary)
  return summary
