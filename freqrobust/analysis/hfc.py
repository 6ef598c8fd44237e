"""High-frequency components (Wang, Wu, Huang and Xing, CVPR 2020, "High-Frequency Component
Helps Explain the Generalization of Convolutional Neural Networks"; issue #30).

Low/high split (official code: github.com/HaohanWang/HFC, utility/frequencyHelper.py at commit
9bc0030, `distance` lines 22-27, `mask_radial` 29-35,
`generateDataWithDifferentFrequencies_3Channel` 66-86; the first commit 992ef8f had 0.5 instead of 0
outside the disc, fixed by ba9c909): per channel, the centred (fftshift-ed) DFT is multiplied by a
*circular* mask that is 1 where dist < r (strict) and 0 elsewhere, dist = sqrt((i - n/2)^2 + (j -
n/2)^2) on the shifted grid; low = real(IDFT(F * mask)), high = real(IDFT(F * (1 - mask))). Here:

- dist is `frequency.radial_distance` (integer frequencies in FFT layout), identical to the
  official distance for even sizes (the shifted DC sits at n/2); for odd sizes the official
  centre n/2 lies half a pixel off DC, and this module keeps the distance to DC. The official
  code uses the rows for both axes (square images); here each axis uses its own size;
- `low = frequency.remove_radial_band(x, r, inf)` (zeroes r <= dist) and high = x - low, which
  equals the official real(IDFT(F (1 - mask))) up to rounding since x is real;
- r = 0 keeps nothing (low = 0, high = x; DC is at dist 0, not < 0); r > max dist keeps all.
- Radii: the official evaluation uses r = 4, 8, 12, 16 (scripts/resnet.py line 448; 4..28 in
  steps of 4 at line 625) on 32x32 CIFAR-10. `scaled_radii` scales them by min(H, W) / 32
  (28x28: 3.5, 7, 10.5, 14), the same fraction of the image's frequency range.
- Rescaling: the official scripts rescale every filtered image by its maximum before feeding the
  model (`td[i] = td[i] / np.max(td[i]) * 255`, scripts/resnet.py lines 458, 467 and 483, on
  0..255 data). `rescale="max"` (default) does the same on [0, 1] data, x / max(x) over all
  pixels and channels of the image (an image whose max is <= 0 is left as it is);
  `rescale="none"` feeds the filtered images unchanged. Values are not clipped (nor officially).

Kernel smoothing (official: `generateSmoothKernel`, frequencyHelper.py lines 38-52, applied at
scripts/resnet.py lines 420-423 to the first conv layer "conv0" only, when rho > 0): every 2-D
slice kernel[:, :, i, o] of the HWIO kernel is convolved with [[rho, rho, rho], [rho, 1, rho],
[rho, rho, rho]] (not normalised) by `scipy.signal.convolve2d(..., boundary='symm', mode='same')`:
'same' size with *symmetric* (mirror, edge repeated) padding, not zero padding.
`smooth_kernel(..., boundary="symmetric")` (default) matches it; `boundary="zeros"` pads with 0.
"""
from collections.abc import Callable, Mapping, Sequence
import copy
import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from freqrobust import frequency
from freqrobust.analysis import _batching
from freqrobust.analysis import records

LogitsFn = Callable[[jax.Array], jax.Array]
OFFICIAL_RADII = (4, 8, 12, 16)
OFFICIAL_SIZE = 32
RESCALE_MODES = ("max", "none")
# Cost: 2 x radii x N forward passes; 4 radii x 500 CIFAR-sized images took 10.2 s with the
# default small ResNet on 2 busy CPU cores (2026-12-04).
DEFAULT_NUM_IMAGES = 1000
FIRST_LAYER_PATH = ("params", "stem", "semantic", "conv", "kernel")  # models.first_layer_kernel


def scaled_radii(h: int, w: int, radii: Sequence[float] = OFFICIAL_RADII,
                 reference: int = OFFICIAL_SIZE) -> list[float]:
  """Radii r * min(H, W) / reference (module docstring); the radii unchanged for 32x32."""
  scale = min(h, w) / reference
  return [float(r) * scale for r in radii]


def hfc_mask(h: int, w: int, r: float) -> np.ndarray:
  """The low-pass mask (H, W) in FFT layout: 1 where radial distance < r, else 0."""
  return (np.asarray(frequency.radial_distance(h, w)) < np.float32(r)).astype(np.float32)


@jax.jit
def hfc_split(images: jax.typing.ArrayLike, r: jax.typing.ArrayLike
              ) -> tuple[jax.Array, jax.Array]:
  """(low, high) of HW, HWC or NHWC images; low + high = images (module docstring)."""
  images = jnp.asarray(images, jnp.float32)
  low = frequency.remove_radial_band(images, r, jnp.inf)
  return low, images - low


@jax.jit
def rescale_to_max(images: jax.Array) -> jax.Array:
  """x / max(x) per image of an NHWC batch (the official scripts' rescaling; max <= 0: as is)."""
  peak = jnp.max(images, axis=(1, 2, 3), keepdims=True)
  return jnp.where(peak > 0, images / jnp.where(peak > 0, peak, 1.0), images)


@functools.partial(jax.jit, static_argnames=("rescale",))
def _split_pair(pair: jax.Array, images: jax.Array, radii: jax.Array, rescale: str
                ) -> tuple[jax.Array, jax.Array]:
  n = images.shape[0]
  low, high = jax.vmap(hfc_split)(images[pair % n], radii[pair // n])
  if rescale == "max":
    low, high = rescale_to_max(low), rescale_to_max(high)
  return low, high


def _check_rescale(rescale: str) -> None:
  if rescale not in RESCALE_MODES:
    raise ValueError(f"rescale must be one of {RESCALE_MODES}, got {rescale!r}")


def hfc_accuracies(logits_fn: LogitsFn, images: np.ndarray, labels: np.ndarray,
                   radii: Sequence[float], rescale: str = "max", batch_size: int = 256,
                   progress: bool = True) -> dict[str, np.ndarray]:
  """Accuracy on the low and high components for every radius, and on the clean images.

  Returns `radii`, `low_accuracy`, `high_accuracy` (R,) in [0, 1] and `clean_accuracy`.
  """
  _check_rescale(rescale)
  images = jnp.asarray(images, jnp.float32)
  labels = jnp.asarray(labels, jnp.int32)
  n = images.shape[0]
  if images.ndim != 4 or labels.shape != (n,):
    raise ValueError(f"need NHWC images and (N,) labels, got {images.shape} and {labels.shape}")
  radii_np = np.asarray(list(radii), np.float32)
  if radii_np.ndim != 1 or radii_np.size == 0 or np.any(radii_np < 0):
    raise ValueError(f"radii must be a non-empty list of non-negative numbers, got {radii}")
  radii_j = jnp.asarray(radii_np)
  low, high = _batching.split_accuracy(
      logits_fn, images, labels, radii_np.size,
      lambda pair: _split_pair(pair, images, radii_j, rescale), batch_size, "hfc", progress)
  clean = _batching.map_chunks(
      lambda idx: np.asarray(jnp.argmax(logits_fn(images[idx]), -1) == labels[idx], np.float32),
      n, batch_size, progress=False)
  return {"radii": radii_np, "low_accuracy": low, "high_accuracy": high,
          "clean_accuracy": np.float64(clean.mean())}


def hfc_accuracy(logits_fn: LogitsFn, images: np.ndarray, labels: np.ndarray,
                 radii: Sequence[float] | None = None, rescale: str = "max",
                 batch_size: int = 256, progress: bool = True
                 ) -> dict[float, tuple[float, float]]:
  """{r: (low_accuracy, high_accuracy)}; radii default to `scaled_radii` of the image size."""
  if radii is None:
    radii = scaled_radii(*np.shape(images)[1:3])
  result = hfc_accuracies(logits_fn, images, labels, radii, rescale, batch_size, progress)
  return {float(r): (float(lo), float(hi)) for r, lo, hi in
          zip(result["radii"], result["low_accuracy"], result["high_accuracy"])}


def hfc_curve_row(logits_fn: LogitsFn, images: np.ndarray, labels: np.ndarray,
                  radii: Sequence[float] | None = None, rescale: str = "max",
                  batch_size: int = 256) -> dict[str, Any]:
  """One row (one model, e.g. one epoch's checkpoint) of the HFC curves over training.

  JSON-able: {"radii": [...], "low_accuracy": [...], "high_accuracy": [...],
  "clean_accuracy": float}; `plot_hfc_curves` / `run_hfc_curves` take {epoch: row}.
  """
  if radii is None:
    radii = scaled_radii(*np.shape(images)[1:3])
  result = hfc_accuracies(logits_fn, images, labels, radii, rescale, batch_size, progress=False)
  return {k: np.asarray(v).tolist() for k, v in result.items()}


# --- kernel smoothing -----------------------------------------------------------------------

SMOOTH_BOUNDARIES = ("symmetric", "zeros")


def smoothing_mask(rho: float) -> np.ndarray:
  """[[rho, rho, rho], [rho, 1, rho], [rho, rho, rho]] (not normalised)."""
  mask = np.full((3, 3), float(rho))
  mask[1, 1] = 1.0
  return mask


def smooth_kernel(kernel: jax.typing.ArrayLike, rho: float, boundary: str = "symmetric"
                  ) -> np.ndarray:
  """Each kernel[:, :, i, o] of an HWIO kernel convolved ('same') with `smoothing_mask(rho)`.

  `boundary="symmetric"` pads by mirroring with the edge repeated (scipy's 'symm', the official
  code), "zeros" with 0. rho = 0 returns the kernel unchanged. Computed in float64 NumPy, returned
  in the kernel's dtype.
  """
  if boundary not in SMOOTH_BOUNDARIES:
    raise ValueError(f"boundary must be one of {SMOOTH_BOUNDARIES}, got {boundary!r}")
  kernel_np = np.asarray(kernel)
  if kernel_np.ndim != 4:
    raise ValueError(f"expected an HWIO kernel (kh, kw, c_in, c_out), got {kernel_np.shape}")
  x = kernel_np.astype(np.float64)
  kh, kw = x.shape[:2]
  mode = "symmetric" if boundary == "symmetric" else "constant"
  padded = np.pad(x, ((1, 1), (1, 1), (0, 0), (0, 0)), mode=mode)
  mask = smoothing_mask(rho)
  out = np.zeros_like(x)
  # 'same' convolution with a centred 3x3 mask: out[y, x] = sum_{a, b} m[a, b] in[y - a, x - b]
  # (a, b in -1..1); the mask is symmetric, so convolution and correlation agree.
  for a in range(3):
    for b in range(3):
      out += mask[a, b] * padded[2 - a:2 - a + kh, 2 - b:2 - b + kw]
  return out.astype(kernel_np.dtype)


def smooth_first_layer(variables: Mapping[str, Any], rho: float, boundary: str = "symmetric",
                       path: Sequence[str] = FIRST_LAYER_PATH) -> Any:
  """A copy of `variables` whose first conv kernel (`models.first_layer_kernel`) is smoothed.

  Only the containers on `path` are copied; every other array is shared with `variables`, which
  is left unchanged. Works on dicts and flax FrozenDicts.
  """
  def replace(tree: Any, keys: Sequence[str]) -> Any:
    if not keys:
      return jnp.asarray(smooth_kernel(tree, rho, boundary))
    if keys[0] not in tree:
      raise KeyError(f"no {'/'.join(path)} in the variables (missing {keys[0]!r})")
    if hasattr(tree, "copy") and type(tree).__name__ == "FrozenDict":
      return tree.copy({keys[0]: replace(tree[keys[0]], keys[1:])})
    new = copy.copy(tree)
    new[keys[0]] = replace(tree[keys[0]], keys[1:])
    return new

  return replace(variables, tuple(path))


def smoothing_curve(eval_fn: Callable[[Any], float | Mapping[str, float]],
                    variables: Mapping[str, Any], rhos: Sequence[float],
                    boundary: str = "symmetric") -> dict[str, list[float]]:
  """`eval_fn(smooth_first_layer(variables, rho))` for every rho.

  `eval_fn` returns a number (stored as "metric") or a mapping of named numbers (e.g. clean and
  adversarial accuracy). Returns {"rho": rhos, name: values, ...}.
  """
  curve: dict[str, list[float]] = {"rho": [float(r) for r in rhos]}
  for rho in rhos:
    value = eval_fn(smooth_first_layer(variables, rho, boundary))
    values = value if isinstance(value, Mapping) else {"metric": value}
    for name, v in values.items():
      curve.setdefault(name, []).append(float(v))
  return curve


# --- runners: arrays in, files out ----------------------------------------------------------


def run_hfc(out_dir: str, logits_fn: LogitsFn, images: np.ndarray, labels: np.ndarray,
            radii: Sequence[float] | None = None, rescale: str = "max", batch_size: int = 256,
            progress: bool = True) -> dict[str, Any]:
  """HFC tool: accuracy on low / high components per radius; `hfc.npz/.json/.png`, and an
  example figure of one image's components."""
  from freqrobust.analysis import explain_plots  # matplotlib only when drawing
  h, w = np.shape(images)[1:3]
  radii = list(radii) if radii else scaled_radii(h, w)
  result = hfc_accuracies(logits_fn, images, labels, radii, rescale, batch_size, progress)
  figures = [explain_plots.plot_hfc(os.path.join(out_dir, "hfc.png"), result,
                                    f"{len(labels)} images, rescale={rescale}")]
  example = np.asarray(images[:1], np.float32)
  parts = [hfc_split(example, r) for r in radii]
  figures.append(explain_plots.plot_hfc_examples(
      os.path.join(out_dir, "hfc_examples.png"), example[0],
      [np.asarray(lo[0]) for lo, _ in parts], [np.asarray(hi[0]) for _, hi in parts], radii))
  records.save_arrays(out_dir, "hfc", result)
  summary = {k: np.asarray(v).tolist() for k, v in result.items()}
  summary.update(num_images=int(len(labels)), rescale=rescale,
                 figures=[os.path.basename(f) for f in figures])
  records.save_json(out_dir, "hfc", summary)
  return summary


def run_hfc_curves(out_dir: str, rows_by_epoch: Mapping[int, Mapping[str, Any]]
                   ) -> dict[str, Any]:
  """HFC accuracy over training from `hfc_curve_row` rows: `hfc_curves.npz/.json/.png`."""
  from freqrobust.analysis import explain_plots
  epochs = sorted(rows_by_epoch)
  arrays = {"epochs": np.asarray(epochs),
            "radii": np.asarray(rows_by_epoch[epochs[0]]["radii"], np.float64)}
  for key in ("low_accuracy", "high_accuracy", "clean_accuracy"):
    arrays[key] = np.asarray([rows_by_epoch[e][key] for e in epochs], np.float64)
  path = explain_plots.plot_hfc_curves(os.path.join(out_dir, "hfc_curves.png"), rows_by_epoch)
  records.save_arrays(out_dir, "hfc_curves", arrays)
  summary = {k: v.tolist() for k, v in arrays.items()}
  summary["figures"] = [os.path.basename(path)]
  records.save_json(out_dir, "hfc_curves", summary)
  return summary


def run_smoothing(out_dir: str, eval_fn: Callable[[Any], float | Mapping[str, float]],
                  variables: Mapping[str, Any], rhos: Sequence[float] = (0.0, 0.05, 0.1, 0.25,
                                                                         0.5, 1.0),
                  boundary: str = "symmetric") -> dict[str, Any]:
  """Kernel-smoothing tool: eval_fn over rho; `smoothing.npz/.json/.png`."""
  from freqrobust.analysis import explain_plots
  curve = smoothing_curve(eval_fn, variables, rhos, boundary)
  path = explain_plots.plot_smoothing(os.path.join(out_dir, "smoothing.png"), curve,
                                      f"first-layer kernel smoothing ({boundary} boundary)")
  records.save_arrays(out_dir, "smoothing", {k: np.asarray(v) for k, v in curve.items()})
  summary: dict[str, Any] = dict(curve)
  summary.update(boundary=boundary, figures=[os.path.basename(path)])
  records.save_json(out_dir, "smoothing", summary)
  return summary
