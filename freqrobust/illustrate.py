"""Draws the paper's Figure 3 (power suppression) and Figure 4 (NFD) for real images.

  python -m freqrobust.illustrate --out=/tmp/figures

Writes, for a Fashion-MNIST test image and a scikit-image colour photograph resized to 32x32:
  figure3_<name>.png  rows M_L, M_M, M_H; columns: the mask (shifted spectrum, lowest frequency
                      in the centre) and D(I, M, keep) for keep = 0, 1/4, 1/2, 3/4 (METHOD §2).
  figure4_<name>.png  rows: the band masks M_0..M_4; NFD with control M = M_k (eq. 11: noise
                      everywhere except band k); NFD with M = 1 - M_k (noise only in band k,
                      "low to high frequency noises" of the paper's caption) and that noise
                      alone, amplified 5x; NFD with random controls (eq. 14). sigma = 3 as in
                      the paper.
As in training, the operations run on the image zero-padded by 4 px (CIFAR: 40x40, Fashion-MNIST:
36x36); the panels show the centre crop of the original size, clipped to [0, 1] for display.
"""
from __future__ import annotations

import gzip
import os
import struct

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from freqrobust import frequency

_OUT = flags.DEFINE_string("out", None, "Output folder for the PNG files.", required=True)
_FASHION = flags.DEFINE_string(
    "fashion_mnist", "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz",
    "Gzipped IDX file of Fashion-MNIST test images.")
_INDEX = flags.DEFINE_integer("index", 0, "Which Fashion-MNIST test image to draw.")
_PHOTO = flags.DEFINE_enum("photo", "chelsea", ["chelsea", "astronaut", "coffee", "rocket"],
                           "scikit-image photograph, resized to 32x32 like CIFAR.")
_PAD = flags.DEFINE_integer("pad", 4, "Zero padding before the frequency operations.")
_SIGMA = flags.DEFINE_float("sigma", 3.0, "NFD noise variance for Figure 4 (paper: 3).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the NFD noise and the random controls.")

KEEPS = (0.0, 0.25, 0.5, 0.75)


def read_idx_image(path: str, index: int) -> np.ndarray:
  """One image of a gzipped IDX3 file as float32 HWC in [0, 1]."""
  with gzip.open(path, "rb") as f:
    magic, count, rows, cols = struct.unpack(">IIII", f.read(16))
    if magic != 2051:
      raise ValueError(f"{path} is not an IDX3 image file (magic {magic}, expected 2051).")
    if not 0 <= index < count:
      raise ValueError(f"Image index {index} out of range: {path} holds {count} images.")
    f.seek(16 + index * rows * cols)
    pixels = np.frombuffer(f.read(rows * cols), np.uint8).reshape(rows, cols, 1)
  return pixels.astype(np.float32) / 255.0


def photograph(name: str, size: int = 32) -> np.ndarray:
  """A scikit-image colour photograph, centre-cropped square and resized to size x size."""
  from skimage import data, transform  # pylint: disable=g-import-not-at-top
  image = getattr(data, name)()[..., :3]
  h, w = image.shape[:2]
  side = min(h, w)
  top, left = (h - side) // 2, (w - side) // 2
  square = image[top:top + side, left:left + side]
  return transform.resize(square, (size, size), anti_aliasing=True).astype(np.float32)


def _show(ax, image, title=None):
  image = np.clip(np.asarray(image), 0.0, 1.0)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0.0, vmax=1.0,
            interpolation="nearest")
  ax.set_xticks([])
  ax.set_yticks([])
  if title:
    ax.set_title(title, fontsize=8)


def _crop(image, pad):
  return image[pad:image.shape[0] - pad, pad:image.shape[1] - pad] if pad else image


def figure3(image: np.ndarray, pad: int, path: str, name: str) -> None:
  """Power suppression: each mask x keep (paper Figure 3)."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
  h, w = padded.shape[:2]
  suppress = jax.jit(frequency.power_suppress)
  fig, axes = plt.subplots(3, 2 + len(KEEPS), figsize=(1.6 * (2 + len(KEEPS)), 5.0))
  for row, kind in enumerate(frequency.MASK_NAMES):
    mask = frequency.aps_mask(kind, h, w)
    _show(axes[row, 0], image, "image I" if row == 0 else None)
    _show(axes[row, 1], np.fft.fftshift(mask), f"mask M_{kind}")
    for col, keep in enumerate(KEEPS):
      out = suppress(jnp.asarray(padded), mask, keep)
      _show(axes[row, 2 + col], _crop(out, pad), f"keep = {keep:g}" if row == 0 else None)
    axes[row, 0].set_ylabel(f"M_{kind}", fontsize=9)
  fig.suptitle(f"Power suppression D(I, M, keep) on {name} ({h}x{w} padded, centre crop shown)",
               fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def figure4(image: np.ndarray, pad: int, sigma: float, seed: int, path: str, name: str) -> None:
  """NFD per band and with random controls (paper Figure 4)."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  padded = jnp.asarray(np.pad(image, ((pad, pad), (pad, pad), (0, 0))))
  h, w = padded.shape[:2]
  bands = frequency.nfd_band_masks(h, w)
  edges = frequency.nfd_band_edges(h, w)
  nfd = jax.jit(frequency.nfd)
  noise_key, control_key = jax.random.split(jax.random.key(seed))
  num = len(bands)
  fig, axes = plt.subplots(5, num + 1, figsize=(1.6 * (num + 1), 8.6))
  rows = ("band mask M_k", "control M_k", "control 1 - M_k", "(row 3 - I) x 5 + 0.5",
          "random control")
  for row, label in enumerate(rows):
    _show(axes[row, 0], image, "image I" if row == 0 else None)
    axes[row, 0].set_ylabel(label, fontsize=8)
  for k in range(num):
    a, b = edges[k]
    _show(axes[0, k + 1], np.fft.fftshift(bands[k]), f"M_{k}: m_{{{a},{b}}}")
    _show(axes[1, k + 1], _crop(nfd(noise_key, padded, bands[k], sigma), pad))
    in_band = nfd(noise_key, padded, 1.0 - bands[k], sigma)
    _show(axes[2, k + 1], _crop(in_band, pad))
    _show(axes[3, k + 1], _crop((in_band - padded) * 5.0 + 0.5, pad))
    key = jax.random.fold_in(control_key, k)
    control = frequency.nfd_control(jax.random.fold_in(key, 0), bands)
    _show(axes[4, k + 1], _crop(nfd(jax.random.fold_in(key, 1), padded, control, sigma), pad))
  fig.suptitle(f"NFD N_sigma(I, M), sigma = {sigma:g}, on {name} ({h}x{w} padded, centre crop "
               "shown)", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main(argv):
  del argv
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  os.makedirs(_OUT.value, exist_ok=True)
  images = {
      "fashion_mnist": read_idx_image(_FASHION.value, _INDEX.value),
      _PHOTO.value: photograph(_PHOTO.value),
  }
  for name, image in images.items():
    for path, draw in (
        (f"figure3_{name}.png", lambda p: figure3(image, _PAD.value, p, name)),
        (f"figure4_{name}.png",
         lambda p: figure4(image, _PAD.value, _SIGMA.value, _SEED.value, p, name))):
      full = os.path.join(_OUT.value, path)
      draw(full)
      print(f"wrote {full}")


if __name__ == "__main__":
  from freqrobust import cli
  cli.run(main)
