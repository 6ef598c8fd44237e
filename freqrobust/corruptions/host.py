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


@functools.lru_cache(maxsize=8)
def load_frost_images(frost_dir: str, height: int, width: int,
                      size_scale: float) -> tuple[np.ndarray, ...]:
  """Frost photographs of `frost_dir`, RGB float32 in [0, 1], resized as in the recipe.

  make_cifar_c.py shrinks each photo by 0.2 for 32 px images; here by 0.2 * size_scale, and
  never below the image size, so that a random crop fits.
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
      photo = photo.convert("RGB")
      factor = max(0.2 * size_scale, (height + 1) / photo.height, (width + 1) / photo.width)
      size = (int(np.ceil(photo.width * factor)), int(np.ceil(photo.height * factor)))
      photos.append(np.asarray(photo.resize(size, Image.BILINEAR), np.float32) / 255.)
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
