"""Common corruptions (CIFAR-10-C recipe, docs/METHOD.md §6) for any image size, batched in JAX.

`corrupt(key, images, name, severity)` takes an (N, H, W, C) batch, C = 1 or 3, uint8 or float
in [0, 1], and returns the corrupted batch in the same dtype (NumPy in, NumPy out; JAX in, JAX
out). Everything but JPEG runs jitted and vmapped on the device; JPEG goes through Pillow.

Rules beyond the 32 px recipe:
- Image size: parameters given in pixels for 32 px images (blur radii and sigmas, glass-blur
  displacement, motion-blur length, snow streaks, spatter blur, the frost photo scale) are
  multiplied by `size_scale = max(1, min(H, W) / 32)`; integer ones are rounded and kept >= 1.
  Images smaller than 32 px keep the 32 px values (the recipe's kernels are already one pixel
  wide there; shrinking them would turn them into the identity). Elastic alpha, sigma and
  affine are fractions of the image size in the recipe and use min(H, W) itself. Zoom factors,
  pixelate factors, snow zoom and noise levels are relative already and unchanged; the fog
  fractal is drawn at the next power of two >= max(H, W).
- Grey images (C = 1) run through the RGB pipeline as three equal channels (so one compiled
  function serves both). Colour corruptions (brightness, saturate, snow, frost, spatter) return
  the luma (0.299 R + 0.587 G + 0.114 B) of the corrupted RGB, which equals the common channel
  when the operation keeps colours neutral; every other corruption acts on each channel alike
  and returns channel 0, which is exactly the grey image corrupted on its own.
- Frost: the recipe blends crops of six frost photographs. Their source (`resolve_frost`):
  an explicit `frost_dir`; else the copies shipped as package data of an installed
  `imagecorruptions` package (found without importing it: its import needs OpenCV and breaks
  with NumPy 2);
  else a procedural frost texture stands in. Reports and cache keys record the source
  (`frost_source`): "photographs (DIR)", "photographs (imagecorruptions)" or "procedural".
- Randomness: one key per image (`jax.random.split(key, N)`), so a batch is deterministic for a
  key; results depend on the batch split, not on the device.
- uint8 output is rounded (the recipe truncates with np.uint8, which shifts means by half a
  grey level).
"""
import functools
import importlib.util
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from freqrobust.corruptions import filters
from freqrobust.corruptions import host
from freqrobust.corruptions import ops
from freqrobust.corruptions.params import ALL_CORRUPTIONS
from freqrobust.corruptions.params import CORRUPTIONS
from freqrobust.corruptions.params import EXTRA_CORRUPTIONS
from freqrobust.corruptions.params import PARAMS
from freqrobust.corruptions.params import RECIPE_VERSION
from freqrobust.corruptions.params import SEVERITIES

__all__ = ["CORRUPTIONS", "EXTRA_CORRUPTIONS", "ALL_CORRUPTIONS", "SEVERITIES", "PARAMS",
           "RECIPE_VERSION", "corrupt", "frost_source", "resolve_frost", "PROCEDURAL_FROST",
           "size_scale"]


# Corruptions that mix channels; grey images take the luma of their result.
COLOUR_CORRUPTIONS = ("brightness", "saturate", "snow", "frost", "spatter")


def size_scale(height: int, width: int) -> float:
  """Factor applied to the recipe's pixel-size parameters (defined for 32 px images).

  max(1, min(H, W) / 32): larger images scale them up; smaller ones keep the 32 px values, as
  shrinking sub-pixel kernels (a defocus disk of radius 1) would make them the identity.
  """
  return max(1., min(height, width) / 32.)


# `frost_dir` value that forces the procedural texture even when photographs are installed.
PROCEDURAL_FROST = "procedural"
FROST_PACKAGE = "imagecorruptions"
FROST_PHOTOS = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg",
                "frost6.jpg")


def packaged_frost_dir() -> str:
  """The `frost` folder of an installed imagecorruptions package holding the six recipe photos,
  or ''. Found with importlib.util.find_spec, which locates a top-level package without
  executing it (importing imagecorruptions needs OpenCV and breaks with NumPy 2)."""
  try:
    spec = importlib.util.find_spec(FROST_PACKAGE)
  except (ImportError, ValueError):
    return ""
  for location in (spec.submodule_search_locations or []) if spec else []:
    folder = os.path.join(location, "frost")
    if all(os.path.isfile(os.path.join(folder, name)) for name in FROST_PHOTOS):
      return folder
  return ""


def resolve_frost(frost_dir: str = "") -> tuple[str, str]:
  """(folder of the frost photographs, or '' for the procedural texture; its source label).

  An explicit `frost_dir` wins; '' takes the photographs of an installed imagecorruptions
  package, else the procedural texture; PROCEDURAL_FROST forces the texture.
  """
  if frost_dir == PROCEDURAL_FROST:
    return "", "procedural"
  if frost_dir:
    return frost_dir, f"photographs ({frost_dir})"
  packaged = packaged_frost_dir()
  if packaged:
    return packaged, f"photographs ({FROST_PACKAGE})"
  return "", "procedural"


def frost_source(frost_dir: str = "") -> str:
  """How frost is made (goes into reports and cache keys): "photographs (DIR)",
  "photographs (imagecorruptions)" or "procedural"."""
  return resolve_frost(frost_dir)[1]


def _check(images: Any, name: str, severity: int) -> None:
  if name not in ALL_CORRUPTIONS:
    raise ValueError(f"Unknown corruption {name!r}; valid names: {', '.join(ALL_CORRUPTIONS)}.")
  if isinstance(severity, bool) or severity not in SEVERITIES:
    raise ValueError(f"Unknown severity {severity!r}; valid severities: {SEVERITIES}.")
  shape = getattr(images, "shape", None)
  if shape is None or len(shape) != 4 or shape[-1] not in (1, 3):
    raise ValueError(f"Expected images of shape (N, H, W, C) with C = 1 or 3, got {shape}.")
  dtype = np.dtype(images.dtype)
  if dtype != np.uint8 and not np.issubdtype(dtype, np.floating):
    raise ValueError(f"Expected uint8 or float images in [0, 1], got dtype {dtype}.")


@functools.lru_cache(maxsize=None)
def _batched(name: str, height: int, width: int):
  """jit(vmap(op)) for one corruption and image size: (keys, float images, severity index)
  -> float images in [0, 1]. The severity is traced: one compilation serves all five."""
  corruption = ops.device_corruption(name, height, width, size_scale(height, width))
  tables = corruption.tables(height, width, size_scale(height, width))

  @jax.jit
  def run(keys: jax.Array, images: jax.Array, severity_index: jax.Array) -> jax.Array:
    rows = {k: jnp.asarray(v)[severity_index] for k, v in tables.items()}
    out = jax.vmap(lambda k, x: corruption.op(k, x, rows))(keys, images)
    return jnp.clip(out, 0., 1.)

  return run


@jax.jit
def _frost_blend_batch(images: jax.Array, textures: jax.Array, c: jax.Array) -> jax.Array:
  return jnp.clip(jax.vmap(lambda x, t: ops.frost_blend(x, t, c))(images, textures), 0., 1.)


def corrupt(key: jax.Array, images: Any, name: str, severity: int, *,
            frost_dir: str = "") -> Any:
  """Corrupts a batch (N, H, W, C) with corruption `name` at `severity` (1..5).

  Args:
    key: a jax.random key; each image gets its own split of it.
    images: uint8 in [0, 255] or float in [0, 1], C = 1 or 3; NumPy or JAX.
    name: one of CORRUPTIONS or EXTRA_CORRUPTIONS.
    severity: 1..5.
    frost_dir: directory of frost photographs; '' uses those of an installed imagecorruptions
      package, else the procedural texture; PROCEDURAL_FROST forces the texture.

  Returns:
    The corrupted batch, same shape, dtype and array type as `images`.
  """
  _check(images, name, severity)
  is_numpy = isinstance(images, np.ndarray)
  dtype = np.dtype(images.dtype)
  num, height, width, channels = images.shape
  if num == 0:
    return images
  c = PARAMS[name][severity - 1]
  if name == "jpeg_compression" and is_numpy and dtype == np.uint8:
    return host.jpeg_compression(images, c)  # host-side: Pillow, no device round trip
  as_float = (jnp.asarray(images, jnp.float32) / 255. if dtype == np.uint8
              else jnp.asarray(images, jnp.float32))
  if name == "jpeg_compression":
    as_uint8 = np.asarray(jnp.round(jnp.clip(as_float, 0., 1.) * 255.), np.uint8)
    out = jnp.asarray(host.jpeg_compression(as_uint8, c), jnp.float32) / 255.
  elif name == "frost" and resolve_frost(frost_dir)[0]:
    crops = host.frost_crops(key, resolve_frost(frost_dir)[0], num, height, width,
                             size_scale(height, width))
    out = _frost_blend_batch(as_float, jnp.asarray(crops), jnp.asarray(c, jnp.float32))
  else:
    keys = jax.random.split(key, num)
    rgb = jnp.tile(as_float, (1, 1, 1, 3)) if channels == 1 else as_float
    out = _batched(name, height, width)(keys, rgb, jnp.int32(severity - 1))
    if channels == 1:
      out = filters.luma(out) if name in COLOUR_CORRUPTIONS else out[..., :1]
  if dtype == np.uint8:
    out = jnp.round(out * 255.).astype(jnp.uint8)
  if is_numpy:
    return np.asarray(out).astype(dtype, copy=False)
  return out.astype(dtype) if dtype != np.float64 else out
