"""Image filters used by the corruptions: JAX re-implementations of the SciPy, scikit-image,
OpenCV, Pillow and ImageMagick calls of the recipe (single images HWC float32; vmap for batches).

Kernels whose size depends only on static parameters are built on the host with NumPy.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np

# cv2.COLOR_RGB2GRAY / ITU-R 601 luma weights.
LUMA = (0.299, 0.587, 0.114)


def fold_index(idx: jax.Array, size: int, mode: str) -> jax.Array:
  """Maps integer indices outside [0, size) back inside, for a border mode.

  'edge': replicate (scipy 'nearest', cv2 BORDER_REPLICATE); 'symmetric': dcba|abcd (scipy
  'reflect'); 'mirror': dcb|abcd (scipy 'mirror', cv2 BORDER_REFLECT_101).
  """
  if size == 1 or mode == "edge":
    return jnp.clip(idx, 0, size - 1)
  if mode == "symmetric":
    period = 2 * size
    idx = jnp.mod(idx, period)
    return jnp.where(idx >= size, period - 1 - idx, idx)
  if mode == "mirror":
    period = 2 * (size - 1)
    idx = jnp.mod(idx, period)
    return jnp.where(idx >= size, period - idx, idx)
  raise ValueError(f"Unknown border mode {mode!r}; use 'edge', 'symmetric' or 'mirror'.")


def _pad_axis(x: jax.Array, before: int, after: int, axis: int, mode: str) -> jax.Array:
  idx = fold_index(jnp.arange(-before, x.shape[axis] + after), x.shape[axis], mode)
  return jnp.take(x, idx, axis=axis)


def correlate1d(x: jax.Array, kernel: np.ndarray | jax.Array, axis: int,
                mode: str) -> jax.Array:
  """Correlates `x` with a 1-D odd-length kernel along `axis`, same size out.

  A NumPy kernel skips its zero taps at trace time; a JAX kernel (e.g. picked by a traced
  severity) uses all taps.
  """
  radius = (kernel.shape[0] - 1) // 2
  static = isinstance(kernel, np.ndarray)
  if radius == 0:
    return x * (float(kernel[0]) if static else kernel[0])
  padded = _pad_axis(x, radius, radius, axis, mode)
  size = x.shape[axis]
  out = 0.
  for tap in range(kernel.shape[0]):
    if static and kernel[tap] == 0:
      continue
    weight = float(kernel[tap]) if static else kernel[tap]
    out = out + weight * jax.lax.slice_in_dim(padded, tap, tap + size, axis=axis)
  return out


def pad_center(kernels: list[np.ndarray]) -> np.ndarray:
  """Stacks odd-sized 1-D or 2-D kernels, zero-padded to the largest, centred."""
  size = max(k.shape[0] for k in kernels)
  out = []
  for k in kernels:
    pad = (size - k.shape[0]) // 2
    out.append(np.pad(k, [(pad, pad)] * k.ndim))
  return np.stack(out)


def separable(x: jax.Array, kernel: np.ndarray | jax.Array, mode: str) -> jax.Array:
  """The same 1-D kernel along both spatial axes of HWC `x`."""
  return correlate1d(correlate1d(x, kernel, 0, mode), kernel, 1, mode)


def correlate2d(x: jax.Array, kernel: np.ndarray | jax.Array, mode: str) -> jax.Array:
  """Correlates each channel of HWC `x` with a 2-D odd-sized kernel, same size out.

  A NumPy kernel is first trimmed of zero borders (symmetrically, so it stays centred).
  """
  if isinstance(kernel, np.ndarray):
    kernel = np.asarray(kernel, np.float32)
    rows, cols = np.nonzero(kernel)
    cy, cx = kernel.shape[0] // 2, kernel.shape[1] // 2
    ry = int(max(abs(rows - cy))) if rows.size else 0
    rx = int(max(abs(cols - cx))) if cols.size else 0
    kernel = kernel[cy - ry:cy + ry + 1, cx - rx:cx + rx + 1]
  ry, rx = kernel.shape[0] // 2, kernel.shape[1] // 2
  padded = _pad_axis(_pad_axis(x, ry, ry, 0, mode), rx, rx, 1, mode)
  static = isinstance(kernel, np.ndarray)
  height, width = x.shape[0], x.shape[1]
  # A sum of shifted copies: small kernels, and much faster than a depthwise conv on XLA:CPU.
  out = 0.
  for dy in range(kernel.shape[0]):
    for dx in range(kernel.shape[1]):
      if static and kernel[dy, dx] == 0:
        continue
      weight = float(kernel[dy, dx]) if static else kernel[dy, dx]
      out = out + weight * padded[dy:dy + height, dx:dx + width]
  return out


def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> np.ndarray:
  """SciPy's `gaussian_filter` kernel: radius int(truncate * sigma + 0.5)."""
  radius = int(truncate * sigma + 0.5)
  if sigma <= 0 or radius == 0:
    return np.ones(1)
  taps = np.arange(-radius, radius + 1)
  kernel = np.exp(-0.5 * taps ** 2 / sigma ** 2)
  return kernel / kernel.sum()


def gaussian_filter(x: jax.Array, sigma: float, mode: str = "edge",
                    truncate: float = 4.0) -> jax.Array:
  """skimage.filters.gaussian over the two spatial axes of HW or HWC (default mode 'nearest')."""
  return separable(x, gaussian_kernel1d(sigma, truncate), mode)


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
  """The recipe's anti-aliased disk: a pixel disk blurred by cv2.GaussianBlur."""
  half = 8 if radius <= 8 else int(math.ceil(radius))
  taps = np.arange(-half, half + 1)
  xx, yy = np.meshgrid(taps, taps)
  disk = ((xx ** 2 + yy ** 2) <= radius ** 2).astype(np.float64)
  disk /= disk.sum()
  ksize = 3 if radius <= 8 else 5
  g = np.exp(-0.5 * (np.arange(ksize) - ksize // 2) ** 2 / max(alias_blur, 1e-6) ** 2)
  g /= g.sum()
  # cv2.GaussianBlur uses BORDER_REFLECT_101 on the kernel image itself.
  pad = ksize // 2
  padded = np.pad(disk, pad, mode="reflect")
  rows = sum(g[k] * padded[k:k + disk.shape[0], :] for k in range(ksize))
  return sum(g[k] * rows[:, k:k + disk.shape[1]] for k in range(ksize))


def motion_kernel(radius: int, sigma: float) -> np.ndarray:
  """ImageMagick's one-sided Gaussian of 2 * radius + 1 taps, normalised."""
  taps = np.arange(2 * radius + 1)
  kernel = np.exp(-taps ** 2 / (2 * sigma ** 2))
  return kernel / kernel.sum()


def motion_blur(x: jax.Array, kernel: np.ndarray | jax.Array, angle_deg: jax.Array) -> jax.Array:
  """ImageMagick's MotionBlurImage as re-implemented by `imagecorruptions` (edge padding).

  Tap i of `kernel` (see `motion_kernel`; trailing zeros allowed) weighs the image shifted by
  i pixels along `angle_deg`; taps whose offset leaves the image end the sum, as in the
  reference loop.
  """
  angle = jnp.deg2rad(angle_deg)
  height, wide = x.shape[0], x.shape[1]
  rows, cols = jnp.arange(height), jnp.arange(wide)
  out = jnp.zeros_like(x)
  inside = jnp.array(True)
  for i in range(kernel.shape[0]):
    dy = -jnp.ceil(i * jnp.sin(angle) - 0.5).astype(jnp.int32)
    dx = -jnp.ceil(i * jnp.cos(angle) - 0.5).astype(jnp.int32)
    inside = inside & (jnp.abs(dy) < height) & (jnp.abs(dx) < wide)
    shifted = x[jnp.clip(rows - dy, 0, height - 1)][:, jnp.clip(cols - dx, 0, wide - 1)]
    out = out + jnp.where(inside, kernel[i], 0.) * shifted
  return out


def bilinear_sample(image: jax.Array, ys: jax.Array, xs: jax.Array, mode: str) -> jax.Array:
  """Samples HWC `image` at float coordinates (ys, xs) of any shape with order-1 splines."""
  height, width = image.shape[0], image.shape[1]
  y0, x0 = jnp.floor(ys), jnp.floor(xs)
  wy, wx = (ys - y0)[..., None], (xs - x0)[..., None]
  y0, x0 = y0.astype(jnp.int32), x0.astype(jnp.int32)
  ya, yb = fold_index(y0, height, mode), fold_index(y0 + 1, height, mode)
  xa, xb = fold_index(x0, width, mode), fold_index(x0 + 1, width, mode)
  top = image[ya, xa] * (1 - wx) + image[ya, xb] * wx
  bottom = image[yb, xa] * (1 - wx) + image[yb, xb] * wx
  return top * (1 - wy) + bottom * wy


def zoom_matrix(size: int, zoom: float) -> np.ndarray:
  """Linear map (size, size) of the recipe's `clipped_zoom` along one axis.

  Crop the central ceil(size / zoom) pixels, scipy.ndimage.zoom them by `zoom` with order 1
  (corner-aligned grid), and trim the centre `size` pixels.
  """
  crop = int(math.ceil(size / zoom))
  top = (size - crop) // 2
  zoomed = int(round(crop * zoom))
  trim = (zoomed - size) // 2
  out = np.zeros((size, size))
  for o in range(size):
    j = o + trim
    coord = j * (crop - 1) / (zoomed - 1) if zoomed > 1 else 0.
    lo = min(int(math.floor(coord)), crop - 1)
    frac = coord - lo
    out[o, top + lo] += 1 - frac
    if frac > 0:
      out[o, top + min(lo + 1, crop - 1)] += frac
  return out


def pil_box_matrix(in_size: int, out_size: int) -> np.ndarray:
  """Pillow's BOX resampling along one axis as an (out_size, in_size) matrix."""
  scale = in_size / out_size
  filterscale = max(scale, 1.0)
  support = 0.5 * filterscale
  out = np.zeros((out_size, in_size))
  for o in range(out_size):
    center = (o + 0.5) * scale
    lo = max(int(center - support + 0.5), 0)
    hi = min(int(center + support + 0.5), in_size)
    for i in range(lo, hi):
      t = (i - center + 0.5) / filterscale
      out[o, i] = 1.0 if -0.5 < t <= 0.5 else 0.0
    total = out[o].sum()
    if total > 0:
      out[o] /= total
  return out


def zoom_taps(size: int, zoom: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """`zoom_matrix` as its two taps per output pixel: (index0, index1, weight1)."""
  matrix = zoom_matrix(size, zoom)
  first = np.argmax(matrix > 0, axis=1)
  second = np.minimum(first + 1, size - 1)
  weight = np.where(second != first, matrix[np.arange(size), second], 0.)
  return first.astype(np.int32), second.astype(np.int32), weight.astype(np.float32)


def resample(image: jax.Array, rows: np.ndarray, cols: np.ndarray) -> jax.Array:
  """Applies separable linear maps: out = rows @ image @ cols.T for each channel."""
  return jnp.einsum("oh,hwc,pw->opc", jnp.asarray(rows, jnp.float32), image,
                    jnp.asarray(cols, jnp.float32), precision=jax.lax.Precision.HIGHEST)


def rgb_to_hsv(rgb: jax.Array) -> jax.Array:
  """skimage.color.rgb2hsv for [..., 3] arrays in [0, 1]."""
  r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
  value = rgb.max(-1)
  delta = value - rgb.min(-1)
  safe_delta = jnp.where(delta == 0, 1., delta)
  sat = jnp.where(value == 0, 0., delta / jnp.where(value == 0, 1., value))
  hue = jnp.where(r == value, (g - b) / safe_delta, 0.)
  hue = jnp.where(g == value, 2. + (b - r) / safe_delta, hue)
  hue = jnp.where(b == value, 4. + (r - g) / safe_delta, hue)
  hue = jnp.where(delta == 0, 0., jnp.mod(hue / 6., 1.))
  return jnp.stack([hue, sat, value], -1)


def hsv_to_rgb(hsv: jax.Array) -> jax.Array:
  """skimage.color.hsv2rgb for [..., 3] arrays."""
  h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
  sector = jnp.floor(h * 6)
  f = h * 6 - sector
  sector = jnp.mod(sector, 6).astype(jnp.int32)
  p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
  choices_r = jnp.stack([v, q, p, p, t, v], -1)
  choices_g = jnp.stack([t, v, v, q, p, p], -1)
  choices_b = jnp.stack([p, p, t, v, v, q], -1)
  pick = lambda c: jnp.take_along_axis(c, sector[..., None], -1)[..., 0]
  return jnp.stack([pick(choices_r), pick(choices_g), pick(choices_b)], -1)


def luma(rgb: jax.Array) -> jax.Array:
  """Grey value of [..., 3] RGB (cv2.COLOR_RGB2GRAY weights), keeps a channel axis."""
  return (rgb[..., 0:1] * LUMA[0] + rgb[..., 1:2] * LUMA[1] + rgb[..., 2:3] * LUMA[2])


def euclidean_distance_to(zero_mask: jax.Array) -> jax.Array:
  """Exact Euclidean distance of each pixel to the nearest True pixel of an HW mask (inf if none).

  Two separable brute-force passes (column distances, then the row-wise lower envelope).
  """
  height, width = zero_mask.shape
  rows = jnp.arange(height, dtype=jnp.float32)
  cols = jnp.arange(width, dtype=jnp.float32)
  big = jnp.float32(1e12)
  # g[y, x] = min over y' with mask[y', x] of (y - y')^2
  col_d = (rows[:, None] - rows[None, :]) ** 2  # (y, y')
  g = jnp.min(jnp.where(zero_mask[None, :, :], col_d[:, :, None], big), axis=1)
  row_d = (cols[:, None] - cols[None, :]) ** 2  # (x, x')
  d2 = jnp.min(g[:, None, :] + row_d[None, :, :], axis=-1)
  return jnp.where(d2 >= big, jnp.inf, jnp.sqrt(d2))


def canny(gray: jax.Array, low: float, high: float) -> jax.Array:
  """cv2.Canny (aperture 3, L1 gradient) on an HW array of grey levels 0..255: bool edges."""
  sobel_d = np.array([-1., 0., 1.])
  sobel_s = np.array([1., 2., 1.])
  g = gray[..., None]
  gx = correlate1d(correlate1d(g, sobel_d, 1, "edge"), sobel_s, 0, "edge")[..., 0]
  gy = correlate1d(correlate1d(g, sobel_d, 0, "edge"), sobel_s, 1, "edge")[..., 0]
  mag = jnp.abs(gx) + jnp.abs(gy)
  padded = jnp.pad(mag, 1)
  h, w = mag.shape
  at = lambda dy, dx: padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
  ax, ay = jnp.abs(gx), jnp.abs(gy)
  tan22, tan67 = math.tan(math.radians(22.5)), math.tan(math.radians(67.5))
  horizontal = ay <= ax * tan22
  vertical = ay > ax * tan67
  same_sign = gx * gy > 0
  n1 = jnp.where(horizontal, at(0, -1), jnp.where(vertical, at(-1, 0),
                 jnp.where(same_sign, at(-1, -1), at(-1, 1))))
  n2 = jnp.where(horizontal, at(0, 1), jnp.where(vertical, at(1, 0),
                 jnp.where(same_sign, at(1, 1), at(1, -1))))
  # OpenCV's non-maximum suppression: `> previous, >= next` along the horizontal and vertical
  # classes, but strictly greater than both neighbours along the diagonals.
  diagonal = ~horizontal & ~vertical
  peak = (mag > n1) & jnp.where(diagonal, mag > n2, mag >= n2) & (mag > low)
  strong = peak & (mag > high)

  def grow(state):
    edges, _ = state
    p = jnp.pad(edges, 1)
    near = jnp.zeros_like(edges)
    for dy in (-1, 0, 1):
      for dx in (-1, 0, 1):
        near = near | p[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
    new = edges | (near & peak)
    return new, jnp.any(new != edges)

  edges, _ = jax.lax.while_loop(lambda s: s[1], grow, (strong, jnp.array(True)))
  return edges


def equalize_hist(levels: jax.Array) -> jax.Array:
  """cv2.equalizeHist on an array of integer grey levels 0..255 (float dtype in and out)."""
  flat = levels.reshape(-1).astype(jnp.int32)
  hist = jnp.bincount(flat, length=256)
  total = flat.size
  first = jnp.argmax(hist > 0)
  first_count = hist[first]
  cdf = jnp.cumsum(hist)
  scale = 255. / jnp.maximum(total - first_count, 1)
  lut = jnp.where(jnp.arange(256) >= first, jnp.round((cdf - first_count) * scale), 0.)
  lut = jnp.where(first_count == total, first.astype(jnp.float32), lut)
  return lut[flat].reshape(levels.shape).astype(levels.dtype)
