"""Random textures of the corruptions: plasma fractal (fog) and the procedural frost stand-in."""
import jax
import jax.numpy as jnp
import jax.scipy.special

from freqrobust.corruptions import filters


def next_power_of_2(n: int) -> int:
  return 1 if n <= 1 else 2 ** (n - 1).bit_length()


def plasma_noise(key: jax.Array, mapsize: int) -> list[jax.Array]:
  """The uniform(-1, 1) draws of `plasma_fractal`: per level, (3, n, n) with n = 1, 2, 4, ...

  One draw of exactly the numbers used (fewer PRNG call sites also compile faster).
  """
  if mapsize < 1 or mapsize & (mapsize - 1):
    raise ValueError(f"mapsize must be a power of two, got {mapsize}.")
  sizes = [2 ** level for level in range(int(mapsize).bit_length() - 1)]
  flat = jax.random.uniform(key, (3 * sum(n * n for n in sizes),), minval=-1., maxval=1.)
  out, start = [], 0
  for n in sizes:
    out.append(flat[start:start + 3 * n * n].reshape(3, n, n))
    start += 3 * n * n
  return out


def plasma_fractal(key: jax.Array, mapsize: int, decay: float | jax.Array) -> jax.Array:
  """Diamond-square height map in [0, 1], (mapsize, mapsize); the recipe's `plasma_fractal`.

  `mapsize` must be a power of two. Each level adds uniform noise of amplitude wibble^2 (as the
  recipe's `wibbledmean` does) and divides wibble by `decay`.
  """
  noise = plasma_noise(key, mapsize)
  amplitudes, wibble = [], 100.
  for _ in noise:
    amplitudes.append(wibble * wibble)
    wibble = wibble / decay
  grid = diamond_square(noise, amplitudes)
  grid = grid - grid.min()
  return grid / jnp.maximum(grid.max(), 1e-12)


def diamond_square(noise: list[jax.Array], amplitudes: list) -> jax.Array:
  """The diamond-square map (mapsize, mapsize) before any normalisation: level l adds
  amplitudes[l] * noise[l][j] to the mean of the four neighbours, j = 0 the squares' centres,
  1 and 2 the diamonds' (noise[l] of shape (3, 2^l, 2^l), as `plasma_noise` draws them)."""
  # `grid` holds the known points, every `step`-th of the map; each level adds the squares'
  # centres (S), then the diamonds' (L between columns, T between rows), and interleaves
  # them, which equals the recipe's strided writes into the full map.
  grid = jnp.zeros((1, 1), jnp.float32)
  for level in range(len(noise)):
    cells = grid.shape[0]
    noisy = lambda a, j, amp=amplitudes[level], l=level: a / 4 + amp * noise[l][j]
    square = grid + jnp.roll(grid, -1, 0)
    square = square + jnp.roll(square, -1, 1)
    centres = noisy(square, 0)
    left = noisy(centres + jnp.roll(centres, 1, 0) + grid + jnp.roll(grid, -1, 1), 1)
    top = noisy(centres + jnp.roll(centres, 1, 1) + grid + jnp.roll(grid, -1, 0), 2)
    even_rows = jnp.stack([grid, left], -1).reshape(cells, 2 * cells)
    odd_rows = jnp.stack([top, centres], -1).reshape(cells, 2 * cells)
    grid = jnp.stack([even_rows, odd_rows], 1).reshape(2 * cells, 2 * cells)
  return grid


# Statistics of 32 px crops of the recipe's frost photographs (shrunk by 0.2 with Pillow's
# antialiased bilinear resize), measured on the six photos shipped with the `imagecorruptions`
# package: mean grey level 0.65, spread of the crop means 0.17, spread within a crop 0.056,
# channel means (R, G, B) = (0.58, 0.66, 0.71). The procedural texture matches these moments.
# The recipe's own shrink (OpenCV INTER_LINEAR, no antialiasing: `host.resize_linear`) keeps
# more detail: over crops of the first five photos, level 0.64, spread of the crop means 0.15,
# spread within a crop 0.087, channel means (0.57, 0.65, 0.69).
FROST_LEVEL_MEAN, FROST_LEVEL_STD, FROST_DETAIL_STD = 0.65, 0.17, 0.056
FROST_TINT = (0.89, 1.02, 1.09)  # channel means / grey mean


def procedural_frost(key: jax.Array, height: int, width: int, size_scale: float) -> jax.Array:
  """A frost-like texture (height, width, 3) in [0, 1], standing in for the recipe's photos.

  A per-image brightness level plus zero-mean crystal detail: thin bright veins (ridges of a
  rough plasma fractal), a hazy layer and fine rime speckle, tinted blue-white.
  """
  k_ridge, k_haze, k_rest = jax.random.split(key, 3)
  mapsize = next_power_of_2(max(height, width, 8))
  rough = plasma_fractal(k_ridge, mapsize, 1.4)[:height, :width]
  veins = (1. - jnp.abs(2. * rough - 1.)) ** 4
  haze = plasma_fractal(k_haze, mapsize, 2.2)[:height, :width]
  rest = jax.random.uniform(k_rest, (height * width + 1,), minval=1e-6, maxval=1. - 1e-6)
  speckle = rest[1:].reshape(height, width, 1)
  speckle = filters.gaussian_filter(speckle, 0.5 * size_scale)[..., 0]
  detail = 0.6 * veins + 0.3 * haze + 0.35 * speckle
  detail = (detail - detail.mean()) / jnp.maximum(detail.std(), 1e-6)
  level = FROST_LEVEL_MEAN + FROST_LEVEL_STD * jax.scipy.special.ndtri(rest[0])
  grey = level + FROST_DETAIL_STD * detail
  return jnp.clip(grey[..., None] * jnp.asarray(FROST_TINT, jnp.float32), 0., 1.)
