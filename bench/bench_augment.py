"""Augmentation throughput (images/s): jitted `augment_batch` against a vectorised NumPy version.

  python bench/bench_augment.py                       # batch 128, 32x32x3 and 28x28x1
  python bench/bench_augment.py --batch=128 --repeats=7 --iters=20 --clock=cpu

Both sides run the same operations on the same inputs: zero-pad, power suppression with
probability p (METHOD §2), NFD (METHOD §4), random crop, flip, clip. The NumPy side is written as
a NumPy user would (np.fft over the batch, float32 throughout, fancy indexing for the crops,
`default_rng` for the noise), in two variants: "np fft2" follows the method record
(docs/METHOD.md) literally (full spectrum, real part of ifft2) and "np rfft2" uses the same
half-spectrum algorithm as the JAX side. The
JAX side is `jax.jit(augment_batch)` with static params. Each figure is the median over
--repeats timings of --iters calls after one warm-up call, with block_until_ready
(--clock=cpu times this process's CPU seconds instead, steadier on a shared machine).
Pipelines: "aps" (pad, suppression p = 1/3, crop, flip, clip) and "aps+nfd" (the same plus NFD
with sigma = 1, the paper's ResNet-18 pipeline).
"""
import argparse
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from freqrobust import augment, frequency  # noqa: E402


def numpy_augment(rng: np.random.Generator, images: np.ndarray, params: augment.AugmentParams,
                  half_spectrum: bool = False) -> tuple[np.ndarray, dict]:
  """The same augmentation in vectorised NumPy (float32, np.fft over the batch).

  half_spectrum=False follows the method record (docs/METHOD.md) literally (fft2, full-spectrum
  noise, real part of ifft2); True uses the rfft2 half-spectrum and symmetric noise as
  `augment.py` does.
  """
  n, h, w, c = images.shape
  p = params.pad
  x = np.pad(images, ((0, 0), (p, p), (p, p), (0, 0)))
  ph, pw = h + 2 * p, w + 2 * p
  cols = pw // 2 + 1 if half_spectrum else pw
  spectrum = np.fft.rfft2(x, axes=(1, 2)) if half_spectrum else np.fft.fft2(x, axes=(1, 2))
  # Power suppression (METHOD §2).
  suppressed = rng.random(n) < params.suppress_prob
  mask_ids = np.array([frequency.MASK_NAMES.index(m) for m in params.suppress_masks])
  mask_index = mask_ids[rng.integers(0, len(mask_ids), n)]
  keep = np.where(suppressed, rng.uniform(*params.keep_range, n), 1.0).astype(np.float32)
  masks = frequency.aps_masks(ph, pw)[:, :, :cols]
  factor = keep[:, None, None] + (1 - keep[:, None, None]) * masks[mask_index]
  spectrum *= factor[..., None]
  # NFD (METHOD §4, eq. 11-14).
  if params.nfd:
    bands = frequency.nfd_band_masks(ph, pw)[:, :, :cols]
    k = len(bands)
    pick, uniform = rng.integers(0, k, n), rng.random(n, dtype=np.float32)
    bits = rng.integers(0, 2, (n, k)).astype(np.float32)
    alpha = np.where(np.arange(k) == pick[:, None], uniform[:, None], bits)
    control = np.einsum("nk,khw->nhw", alpha, bands)
    std = np.sqrt(params.nfd_sigma * np.maximum(1 - control, 0))[..., None]
    noise = rng.standard_normal(spectrum.shape, dtype=np.float32)
    if half_spectrum:  # symmetric noise: var 1/2, equal on +-i in the self-mirrored columns
      noise *= np.float32(np.sqrt(0.5))
      for j in [0] + ([pw // 2] if pw % 2 == 0 else []):
        column = rng.standard_normal((n, ph, c), dtype=np.float32)
        noise[:, :, j] = (column + np.roll(column[:, ::-1], 1, axis=1)) / 2
    noise *= std
    magnitude = np.abs(spectrum)
    direction = np.where(magnitude > 0, spectrum / np.where(magnitude > 0, magnitude, 1), 1)
    spectrum += noise * direction
  if half_spectrum:
    x = np.fft.irfft2(spectrum, s=(ph, pw), axes=(1, 2)).astype(np.float32)
  else:
    x = np.fft.ifft2(spectrum, axes=(1, 2)).real.astype(np.float32)
  # Random crop, flip, clip.
  oy, ox = rng.integers(0, 2 * p + 1, n), rng.integers(0, 2 * p + 1, n)
  rows = (oy[:, None] + np.arange(h))[:, :, None]
  cols = (ox[:, None] + np.arange(w))[:, None, :]
  x = x[np.arange(n)[:, None, None], rows, cols]
  flip = rng.random(n) < 0.5
  x = np.where(flip[:, None, None, None], x[:, :, ::-1], x)
  np.clip(x, 0.0, 1.0, out=x)
  return x, {"suppressed": suppressed, "mask": mask_index, "keep": keep}


_CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = time.perf_counter


def _median_seconds(call, iters: int, repeats: int) -> float:
  call()  # warm-up (compilation on the JAX side)
  times = []
  for _ in range(repeats):
    start = _clock()
    for _ in range(iters):
      call()
    times.append((_clock() - start) / iters)
  return statistics.median(times)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--iters", type=int, default=20)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--clock", choices=sorted(_CLOCKS), default="wall",
                      help="wall: elapsed time; cpu: this process's CPU time (all threads), "
                      "steadier when other jobs share the machine.")
  args = parser.parse_args()
  global _clock
  _clock = _CLOCKS[args.clock]

  print(f"# {platform.node()} {os.cpu_count()} CPUs, jax {jax.__version__} "
        f"({jax.default_backend()}), numpy {np.__version__}, load {os.getloadavg()[0]:.2f}, "
        f"{args.clock} clock, batch {args.batch}")
  print(f"{'pipeline':<9} {'input':<9} {'jax img/s':>10} {'np fft2':>9} {'np rfft2':>9} "
        f"{'vs fft2':>8} {'vs rfft2':>8}")
  pipelines = {
      "aps": augment.AugmentParams(pad=4, suppress_prob=1 / 3, nfd=False),
      "aps+nfd": augment.AugmentParams(pad=4, suppress_prob=1 / 3, nfd=True, nfd_sigma=1.0),
  }
  run_jax = jax.jit(augment.augment_batch, static_argnames="params")
  for shape in ((32, 32, 3), (28, 28, 1)):
    images_np = np.random.default_rng(0).random((args.batch,) + shape, dtype=np.float32)
    images = jnp.asarray(images_np)
    for name, params in pipelines.items():
      keys = iter(jax.random.split(jax.random.key(0), 10_000))
      rng = np.random.default_rng(1)
      jax_s = _median_seconds(
          lambda: jax.block_until_ready(run_jax(next(keys), images, params=params)),
          args.iters, args.repeats)
      full_s = _median_seconds(lambda: numpy_augment(rng, images_np, params), args.iters,
                               args.repeats)
      half_s = _median_seconds(lambda: numpy_augment(rng, images_np, params, True), args.iters,
                               args.repeats)
      label = "x".join(map(str, shape))
      print(f"{name:<9} {label:<9} {args.batch / jax_s:>10.0f} {args.batch / full_s:>9.0f} "
            f"{args.batch / half_s:>9.0f} {full_s / jax_s:>7.1f}x {half_s / jax_s:>7.1f}x",
            flush=True)


if __name__ == "__main__":
  main()
