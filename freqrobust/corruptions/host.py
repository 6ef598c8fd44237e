"""The host-side parts of the corruptions: JPEG through Pillow and frost photographs from disk."""
import functools
import io
import os

import jax
import numpy as np
from PIL import Image

FROST_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _jpeg_one(image: np.ndarray, quality: int) -> np.ndarray:
  mode = "L" if image.shape[-1] == 1 else "RGB"
  buffer = io.BytesIO()
  Image.fromarray(image[..., 0] if mode == "L" else image, mode).save(
      buffer, "JPEG", quality=quality)
  decoded = np.asarray(Image.open(buffer).convert(mode))
  return decoded.reshape(image.shape)


def jpeg_compression(images_uint8: np.ndarray, quality: int) -> np.ndarray:
  """JPEG-encodes and decodes each image of an (N, H, W, C) uint8 batch with Pillow.

  Grey images are encoded as 8-bit greyscale JPEG. A plain loop: for small images a thread
  pool was slower here (Python overhead dominates the codec).
  """
  return np.stack([_jpeg_one(image, quality) for image in images_uint8])


# make_cifar_c.py: `frost = cv2.resize(cv2.imread(name), (0, 0), fx=0.2, fy=0.2)`.
RECIPE_FROST_SCALE = 0.2


def _linear_taps(size_in: int, factor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Source taps of OpenCV's INTER_LINEAR resize by `factor` along one axis.

  Output length round(size_in * factor); output pixel d samples x = (d + 0.5) / factor - 0.5
  (half-pixel centres) from its two neighbours, clamped at the borders, with no low-pass filter
  before (unlike Pillow's BILINEAR resize, which widens its filter when shrinking).
  """
  size_out = max(int(np.rint(size_in * factor)), 1)
  x = (np.arange(size_out) + 0.5) * (1.0 / factor) - 0.5
  x0 = np.floor(x)
  frac = x - x0
  frac[x0 < 0], x0[x0 < 0] = 0.0, 0.0
  beyond = x0 >= size_in - 1
  frac[beyond], x0[beyond] = 0.0, size_in - 1
  x0 = x0.astype(np.int64)
  return x0, np.minimum(x0 + 1, size_in - 1), frac


def resize_linear(photo: np.ndarray, factor: float) -> np.ndarray:
  """`cv2.resize(photo, (0, 0), fx=factor, fy=factor)` (INTER_LINEAR) of an (H, W, C) uint8
  photo, as uint8, without OpenCV. At the recipe's 0.2 every source coordinate is an integer
  (5 d + 2), so it is the subsampling photo[2::5, 2::5], exactly as OpenCV's."""
  photo = np.asarray(photo, np.float64)
  r0, r1, fr = _linear_taps(photo.shape[0], factor)
  c0, c1, fc = _linear_taps(photo.shape[1], factor)
  rows = photo[r0] * (1 - fr)[:, None, None] + photo[r1] * fr[:, None, None]
  out = rows[:, c0] * (1 - fc)[None, :, None] + rows[:, c1] * fc[None, :, None]
  return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=8)
def load_frost_images(frost_dir: str, height: int, width: int,
                      size_scale: float) -> tuple[np.ndarray, ...]:
  """Frost photographs of `frost_dir`, RGB float32 in [0, 1], resized as in the recipe.

  make_cifar_c.py shrinks each photo with OpenCV's bilinear resize by 0.2 for 32 px images
  (`resize_linear`); here by 0.2 * size_scale, and never below the image size + 1, so that a
  random crop fits. Alpha channels are dropped, as cv2.imread does.
  """
  if not os.path.isdir(frost_dir):
    raise ValueError(f"frost_dir {frost_dir!r} is not a directory; point it at frost photos "
                     "(e.g. frost1.png ... frost6.jpg of the ImageNet-C release) or leave it "
                     "empty for the procedural texture.")
  names = sorted(n for n in os.listdir(frost_dir) if n.lower().endswith(FROST_EXTENSIONS))
  if not names:
    raise ValueError(f"frost_dir {frost_dir!r} holds no images ({', '.join(FROST_EXTENSIONS)}).")
  photos = []
  for name in names:
    with Image.open(os.path.join(frost_dir, name)) as photo:
      photo = np.asarray(photo.convert("RGB"))
    factor = max(RECIPE_FROST_SCALE * size_scale, (height + 1) / photo.shape[0],
                 (width + 1) / photo.shape[1])
    shrunk = resize_linear(photo, factor)
    if shrunk.shape[0] <= height or shrunk.shape[1] <= width:  # rounding: grow by one step
      shrunk = resize_linear(photo, factor + 1.0 / min(photo.shape[:2]))
    photos.append(shrunk.astype(np.float32) / 255.)
  return tuple(photos)


def frost_crops(key: jax.Array, frost_dir: str, num: int, height: int, width: int,
                size_scale: float) -> np.ndarray:
  """Random (num, height, width, 3) crops of the frost photos, deterministic for `key`.

  The recipe draws the photo with randint(5), i.e. among the first five of six; here among
  the first five when there are six or more, else among all.
  """
  photos = load_frost_images(frost_dir, height, width, size_scale)
  seed = int(jax.random.randint(key, (), 0, np.iinfo(np.int32).max))
  rng = np.random.default_rng(seed)
  choices = len(photos) - 1 if len(photos) >= 6 else len(photos)
  crops = np.empty((num, height, width, 3), np.float32)
  for i in range(num):
    photo = photos[rng.integers(choices)]
    top = rng.integers(0, photo.shape[0] - height)
    left = rng.integers(0, photo.shape[1] - width)
    crops[i] = photo[top:top + height, left:left + width]
  return crops
