"""The differentiable corruptions of the adversarial-corruption attacks (docs/METHOD.md §12), each
as `init(key, images, eps) -> (latents, aux)` (the random draw of Kaufmann et al.'s attack: the
latent variables the attack optimises, and the fixed random parts) and
`apply(images, latents, aux) -> images in [0, 1]`.

Parameterisations as in Kaufmann et al. (2023), "Testing Robustness Against Unforeseen
Adversaries" (ImageNet-UA / CIFAR-10-UA), github.com/centerforaisafety/adversarial-corruptions
(read at commit 772509b; attacks/*.py, attacks/attack_params_cifar10_default.conf), re-derived
in JAX; deviations are listed per function and in docs/METHOD.md §12. Images NHWC in [0, 1];
C = 1 or 3.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from freqrobust.corruptions import filters, textures

Array = jax.Array

# JFIF's RGB -> YCbCr matrix and its inverse as the reference writes it (jpeg.py).
_RGB_TO_YCBCR = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5],
                          [0.5, -0.418688, -0.081312]], np.float32)
_YCBCR_TO_RGB = np.array([[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]],
                         np.float32)
JPEG_BLOCK = 8


def _padded(size: int, multiple: int) -> int:
  return -(-size // multiple) * multiple


# ---------------------------------------------------------------------------------------------
# JPEG: the 8x8 block DCT coefficients of the YCbCr image, perturbed (jpeg.py)
# ---------------------------------------------------------------------------------------------


def jpeg_init(key, images, eps):
  """Latents (N, H8, W8, C): one per block DCT coefficient (H8, W8: H, W rounded up to a
  multiple of 8; the image is treated as edge-padded and the result cropped), drawn eps U(0, 1)
  as the reference draws them."""
  n, h, w, c = images.shape
  shape = (n, _padded(h, JPEG_BLOCK), _padded(w, JPEG_BLOCK), c)
  draw = jax.random.uniform(key, (math.prod(shape),), jnp.float32).reshape(shape)
  return eps * draw, None


def block_idct(coefficients: Array) -> Array:
  """Inverse orthonormal 2-D DCT of every 8x8 block of (N, H8, W8, C)."""
  n, h, w, c = coefficients.shape
  b = JPEG_BLOCK
  blocks = coefficients.reshape(n, h // b, b, w // b, b, c)
  pixels = jax.scipy.fft.idctn(blocks, type=2, axes=(2, 4), norm="ortho")
  return pixels.reshape(n, h, w, c)


def jpeg_apply(images, latents, aux):
  """decode(encode(x) + v): the reference encodes 255 x to YCbCr, takes the DCT of each 8x8
  block (unquantised), adds 255 v and decodes; every step but the final clip is linear, so this
  is clip(x + YCbCr->RGB(block IDCT(v)), 0, 1) (grey images: the luma channel alone)."""
  del aux
  n, h, w, c = images.shape
  delta = block_idct(latents)[:, :h, :w, :]
  if c == 3:
    delta = delta @ jnp.asarray(_YCBCR_TO_RGB).T
  return jnp.clip(images + delta, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Gabor noise: a sparse grid convolved with a Gabor kernel (gabor.py)
# ---------------------------------------------------------------------------------------------

GABOR_KERNEL_SIZE, GABOR_SIDES, GABOR_SIGMA, GABOR_DENSITY = 23, 3, 3.0, 0.1


def gabor_kernel(size: int, sigma: float, frequency: Array, theta: Array,
                 sides: int = GABOR_SIDES) -> Array:
  """(size, size): the reference's `get_gabor_with_sides` (coordinates linspace(-0.5, 0.5);
  the kernel at theta plus the kernels at theta + pi s / sides, s >= 1, weighted 1 / sides)."""
  y, x = jnp.meshgrid(jnp.linspace(-0.5, 0.5, size), jnp.linspace(-0.5, 0.5, size),
                      indexing="ij")
  out = 0.0
  for s in range(sides):
    angle = theta + np.pi * s / sides
    rot_x = x * jnp.cos(angle) + y * jnp.sin(angle)
    rot_y = -x * jnp.sin(angle) + y * jnp.cos(angle)
    g = jnp.exp(-0.5 * (rot_x ** 2 + rot_y ** 2) / (sigma + 1e-3) ** 2)
    g = g * jnp.cos(2 * np.pi * frequency * rot_x)
    out = out + (g if s == 0 else g / sides)
  return out


def gabor_init(key, images, eps):
  """Latents (N, H, W, C) on a fixed random sparse grid (density 0.1), all eps r with r ~ U(0, 1)
  per image (the reference: one r per batch); the kernel per image: theta ~ U(0, pi), frequency
  ~ U(3, k / 4) (the reference redraws the kernel at every step; here it is drawn once)."""
  n = images.shape[0]
  k_mask, k_r, k_theta, k_freq = jax.random.split(key, 4)
  mask = jax.random.bernoulli(k_mask, GABOR_DENSITY, (images.size,)).reshape(images.shape)
  mask = mask.astype(jnp.float32)
  r = jax.random.uniform(k_r, (n,), jnp.float32)[:, None, None, None]
  theta = jax.random.uniform(k_theta, (n,), jnp.float32, 0.0, np.pi)
  freq = jax.random.uniform(k_freq, (n,), jnp.float32, 3.0, GABOR_KERNEL_SIZE / 4.0)
  kernels = jax.vmap(lambda f, t: gabor_kernel(GABOR_KERNEL_SIZE, GABOR_SIGMA, f, t))(freq, theta)
  return eps * r * mask, {"mask": mask, "kernels": kernels}


def gabor_apply(images, latents, aux):
  """x + the sparse latents (times the mask) convolved, per channel, with the image's kernel
  ("same" size, zero padding: the reference's padding for 32 px and k = 23), clipped."""
  grid = latents * aux["mask"]

  def one(g, kernel):  # g (H, W, C) -> (H, W, C), the channels as a batch.
    x = jnp.transpose(g, (2, 0, 1))[..., None]
    out = jax.lax.conv_general_dilated(x, kernel[:, :, None, None], (1, 1), "SAME",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.transpose(out[..., 0], (1, 2, 0))

  noise = jax.vmap(one)(grid, aux["kernels"])
  return jnp.clip(images + noise, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Elastic: a flow field at half resolution, upsampled bicubically (elastic.py)
# ---------------------------------------------------------------------------------------------

ELASTIC_UPSAMPLE = 2


def elastic_init(key, images, eps):
  """Latents (N, ceil(H / 2), ceil(W / 2), 2): (x, y) flow in the reference's normalised units
  (1 = half the image), drawn U(-1, 1) and projected onto the L2 ball of radius eps."""
  n, h, w, _ = images.shape
  shape = (n, -(-h // ELASTIC_UPSAMPLE), -(-w // ELASTIC_UPSAMPLE), 2)
  draw = jax.random.uniform(key, (math.prod(shape),), jnp.float32, -1.0, 1.0).reshape(shape)
  return draw, None


def elastic_apply(images, latents, aux):
  """Samples x at p + flow(p) (bilinear, edge border), flow the bicubic upsampling of the
  latents in pixels (x: W / 2 per unit, y: H / 2, grid_sample's align_corners=False scale).
  Deviation: the reference samples on linspace(-1, 1) with align_corners=False, which rescales
  the image slightly even at zero flow; here zero flow is the identity."""
  del aux
  n, h, w, c = images.shape
  flow = jax.image.resize(latents, (n, h, w, 2), method="cubic")
  ys, xs = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                        indexing="ij")
  sample = jax.vmap(lambda im, f: filters.bilinear_sample(
      im, ys + f[..., 1] * (h / 2), xs + f[..., 0] * (w / 2), "edge"))
  return jnp.clip(sample(images, flow), 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Fog: diamond-square with the random displacements as latents (fog.py)
# ---------------------------------------------------------------------------------------------

FOG_DECAY = 3.0
FOG_GREY = (0.485, 0.45, 0.406)


def _fog_mapsize(h: int, w: int) -> int:
  return textures.next_power_of_2(max(h, w, 2))


def fog_init(key, images, eps):
  """Latents: per level l of the diamond-square, (N, 3, 2^l, 2^l), drawn eps U(0, 1)."""
  n, h, w, _ = images.shape
  mapsize = _fog_mapsize(h, w)
  sizes = [2 ** level for level in range(mapsize.bit_length() - 1)]
  keys = jax.random.split(key, len(sizes))
  return [eps * jax.random.uniform(k, (n * 3 * s * s,), jnp.float32).reshape(n, 3, s, s)
          for k, s in zip(keys, sizes)], None


def fog_apply(images, latents, aux):
  """fog = clip(|diamond_square(latents)|, 0, 1) with amplitude 1 / 3^l at level l
  (`textures.diamond_square`, the corruptions' plasma fractal without its normalisation), its
  centre crop; x (1 - fog) + fog grey (grey images: the grey's mean)."""
  del aux
  n, h, w, c = images.shape
  amplitudes = [FOG_DECAY ** -level for level in range(len(latents))]
  maps = jax.vmap(lambda *levels: textures.diamond_square(list(levels), amplitudes))(*latents)
  top, left = (maps.shape[1] - h) // 2, (maps.shape[2] - w) // 2
  fog = jnp.clip(jnp.abs(maps[:, top:top + h, left:left + w, None]), 0.0, 1.0)
  grey = jnp.asarray(FOG_GREY if c == 3 else (float(np.mean(FOG_GREY)),) * c, jnp.float32)
  return images * (1.0 - fog) + fog * grey


# ---------------------------------------------------------------------------------------------
# Snow: flakes on a sparse grid of intensities, each a short anti-aliased line (snow.py)
# ---------------------------------------------------------------------------------------------

SNOW_LAYERS, SNOW_GRID, SNOW_INIT, SNOW_DISCOLOUR, SNOW_POWER = 5, 10, 5.0, 0.15, 4.0
SNOW_WIDTHS, SNOW_WIDTH_P = (1.0, 3.0, 5.0), (0.6, 0.3, 0.1)


def snow_flake(width: float) -> np.ndarray:
  """The reference's 3x3 flake (flake size 3, Gaussian blur of size 1: none): a diagonal line
  through the centre, anti-aliased as 1 + w' / 2 - (vertical distance to the line), clipped to
  [0, 1], with w' = width sqrt(1 + slope) / 2 (slope 1); the corners off the line stay 0."""
  w = width * np.sqrt(2.0) / 2.0
  rows, cols = np.meshgrid(np.arange(3), np.arange(3), indexing="ij")
  value = np.clip(1.0 + w / 2.0 - np.abs(rows - cols), 0.0, 1.0)
  value[0, 2] = value[2, 0] = 0.0
  return value.astype(np.float32)


def snow_discolour(images):
  """The wintery tint (1 - d) x + d max(x, 1.5 luma + 0.5), d = 0.15 (grey: luma = x)."""
  if images.shape[-1] == 3:
    luma = images @ jnp.asarray([0.2126, 0.7152, 0.0722], jnp.float32)
  else:
    luma = images[..., 0]
  bright = jnp.maximum(images, 1.5 * luma[..., None] + 0.5)
  return (1.0 - SNOW_DISCOLOUR) * images + SNOW_DISCOLOUR * bright


def snow_init(key, images, eps):
  """Latents (N, 5, H, W): intensities exp(-U(0, 1) / 5) projected onto the L2 ball of radius
  eps, then kept only on a random grid of density 1 / 10^2 (the mask); each (image, layer) has a
  flake of width 1, 3 or 5 (p 0.6, 0.3, 0.1), mirrored left-right for half of the images."""
  n, h, w, _ = images.shape
  k_u, k_mask, k_width, k_flip = jax.random.split(key, 4)
  shape = (n, SNOW_LAYERS, h, w)
  u = jax.random.uniform(k_u, (math.prod(shape),), jnp.float32).reshape(shape)
  intensity = jnp.exp(-u / SNOW_INIT)
  norm = jnp.sqrt(jnp.sum(intensity.reshape(n, -1) ** 2, -1))[:, None, None, None]
  intensity = intensity * jnp.minimum(1.0, eps / norm)
  mask = jax.random.bernoulli(k_mask, 1.0 / SNOW_GRID ** 2, (math.prod(shape),))
  mask = mask.reshape(shape).astype(jnp.float32)
  flakes = jnp.asarray(np.stack([snow_flake(wd) for wd in SNOW_WIDTHS]))
  width = jax.random.choice(k_width, len(SNOW_WIDTHS), (n, SNOW_LAYERS),
                            p=jnp.asarray(SNOW_WIDTH_P))
  kernels = flakes[width]
  flip = jax.random.bernoulli(k_flip, 0.5, (n,))[:, None, None, None]
  kernels = jnp.where(flip, kernels[..., ::-1], kernels)
  return intensity * mask, {"mask": mask, "kernels": kernels}


def snow_apply(images, latents, aux):
  """clip(discolour(x) + sum over layers of (latent mask)^4 convolved with the layer's flake,
  0, 1), the snow added to every channel."""
  grid = (latents * aux["mask"]) ** SNOW_POWER

  def one(g, kernels):  # g (L, H, W), kernels (L, 3, 3) -> (H, W)
    out = jax.lax.conv_general_dilated(
        g[None], kernels[:, None], (1, 1), "SAME", feature_group_count=SNOW_LAYERS,
        dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return jnp.sum(out[0], axis=0)

  snow = jax.vmap(one)(grid, aux["kernels"])
  return jnp.clip(snow_discolour(images) + snow[..., None], 0.0, 1.0)
