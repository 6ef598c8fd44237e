"""The corruptions of docs/METHOD.md §6 on one image (HWC float32 in [0, 1], C = 1 or 3).

Each corruption is a pair:
- `tables(height, width, size_scale) -> dict` of NumPy arrays with one row per severity
  (parameters, kernels, resampling matrices), built on the host once per image shape;
- `op(key, image, t) -> image`, where `t` holds those tables' rows for the severity, picked by a
  traced index, so one compilation serves all five severities.
`size_scale = max(1, min(H, W) / 32)` scales the recipe's pixel-size parameters. Comments name
the call of make_cifar_c.py (Hendrycks & Dietterich) that each step re-implements.
"""
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from freqrobust.corruptions import filters
from freqrobust.corruptions import textures
from freqrobust.corruptions.params import PARAMS
from freqrobust.corruptions.params import SEVERITIES

Tables = dict[str, np.ndarray]


class Corruption(NamedTuple):
  tables: Callable[[int, int, float], Tables]
  op: Callable[[jax.Array, jax.Array, dict], jax.Array]


def _params(name: str) -> Tables:
  return {"c": np.asarray(PARAMS[name], np.float32)}


def _radius(value: float, size_scale: float) -> int:
  return max(1, int(round(value * size_scale)))


def _gaussian_stack(sigmas, truncate: float = 4.0) -> np.ndarray:
  return filters.pad_center([filters.gaussian_kernel1d(s, truncate) for s in sigmas])


def _motion_stack(rows, size_scale: float) -> np.ndarray:
  """Motion kernels per severity, tap 0 first, zero-padded at the end to the longest."""
  kernels = [filters.motion_kernel(_radius(r, size_scale), s * size_scale) for r, s in rows]
  longest = max(k.shape[0] for k in kernels)
  return np.stack([np.pad(k, (0, longest - k.shape[0])) for k in kernels])


def _to_rgb(image: jax.Array) -> jax.Array:
  """Colour operations see grey images as RGB with equal channels."""
  return jnp.tile(image, (1, 1, 3)) if image.shape[-1] == 1 else image


def _from_rgb(rgb: jax.Array, channels: int) -> jax.Array:
  """Back to the input's channels: grey images take the luma of the corrupted RGB."""
  return filters.luma(rgb) if channels == 1 else rgb


def _scalar_tables(name: str):
  return lambda height, width, size_scale: _params(name)


# --- noise ---

def gaussian_noise(key, image, t):
  return image + t["c"] * jax.random.normal(key, image.shape)


# Terms of the small-rate inversion: P(X > 14 | lam < 2) < 1e-8.
_SMALL_RATE_TERMS = 14


def _poisson_small(u: jax.Array, lam: jax.Array) -> jax.Array:
  """Inversion of uniforms `u` against the Poisson CDF of small rates (lam < 2), term by term."""
  term = jnp.exp(-lam)
  cdf = term
  count = jnp.zeros_like(lam)
  for j in range(1, _SMALL_RATE_TERMS + 1):
    count = count + (u > cdf)
    term = term * lam / j
    cdf = cdf + term
  return count


def shot_noise_tables(height, width, size_scale):
  """Poisson CDF rows F(k; v / 255 * c) for the 256 grey levels v, per severity."""
  from scipy import stats  # host only
  rates = np.asarray(PARAMS["shot_noise"], np.float64)
  length = int(rates.max() + 12 * np.sqrt(rates.max()) + 16)
  length = 2 ** int(np.ceil(np.log2(length)))  # binary search over a power of two
  levels = np.arange(256) / 255.
  cdf = np.stack([stats.poisson.cdf(np.arange(length)[None, :], levels[:, None] * c)
                  for c in rates]).astype(np.float32)
  return {"c": rates.astype(np.float32), "cdf": cdf}


def shot_noise(key, image, t):
  """Poisson(c * x) / c, sampled exactly and fast.

  x = v / 255 + r with v = floor(255 x): Poisson(c x) = Poisson(c v / 255) + Poisson(c r)
  (independent rates add). The first term inverts a uniform against the tabulated CDF of grey
  level v (binary search); the second, with rate below c / 255 < 2, by term-by-term inversion.
  For uint8 images r = 0. (jax.random.poisson redraws the whole array for every step of its
  loops and is about 10x slower here.)
  """
  rate, cdf = t["c"], t["cdf"]
  u = jax.random.uniform(key, (2,) + image.shape)
  level = jnp.clip(jnp.floor(image * 255. + 1e-3), 0, 255).astype(jnp.int32)
  rest = jnp.maximum(image * rate - level.astype(jnp.float32) / 255. * rate, 0.)
  length = cdf.shape[-1]
  lo = jnp.zeros(image.shape, jnp.int32)  # count of k with F(k) < u, found by bisection
  step = length // 2
  while step >= 1:
    probe = cdf[level, lo + step - 1]
    lo = jnp.where(probe < u[0], lo + step, lo)
    step //= 2
  return (lo.astype(jnp.float32) + _poisson_small(u[1], rest)) / rate


def impulse_noise(key, image, t):
  """skimage.util.random_noise(mode='s&p', amount=c): each element flips with prob. c."""
  draws = jax.random.uniform(key, (2,) + image.shape)
  return jnp.where(draws[0] < t["c"], (draws[1] < 0.5).astype(jnp.float32), image)


def speckle_noise(key, image, t):
  return image + image * t["c"] * jax.random.normal(key, image.shape)


# --- blur ---

def gaussian_blur_tables(height, width, size_scale):
  return {"kernel": _gaussian_stack([s * size_scale for s in PARAMS["gaussian_blur"]])}


def gaussian_blur(key, image, t):
  del key
  return filters.separable(image, t["kernel"], "edge")  # skimage gaussian, mode 'nearest'


def defocus_blur_tables(height, width, size_scale):
  kernels = [filters.disk_kernel(r * size_scale, a * size_scale)
             for r, a in PARAMS["defocus_blur"]]
  stack = filters.pad_center(kernels)
  # Trim zero borders common to all severities (the recipe's 17x17 grid is mostly empty).
  used = np.nonzero(np.abs(stack).sum(0).sum(0))[0]
  half = stack.shape[-1] // 2
  reach = int(max(abs(used - half))) if used.size else 0
  return {"kernel": stack[:, half - reach:half + reach + 1, half - reach:half + reach + 1]}


def defocus_blur(key, image, t):
  del key
  return filters.correlate2d(image, t["kernel"], "mirror")  # cv2.filter2D, BORDER_REFLECT_101


def glass_blur_tables(height, width, size_scale):
  rows = PARAMS["glass_blur"]
  deltas = {_radius(d, size_scale) for _, d, _ in rows}
  if len(deltas) != 1:
    raise NotImplementedError("glass_blur needs the same max delta at every severity.")
  return {"kernel": _gaussian_stack([s * size_scale for s, _, _ in rows]),
          "iterations": np.asarray([i for _, _, i in rows], np.int32),
          "delta": np.full(len(SEVERITIES), deltas.pop(), np.int32)}


def glass_blur(key, image, t, *, delta: int, max_iterations: int):
  """Blur, locally shuffle, blur again.

  The recipe's swap `x[h, w], x[h', w'] = x[h', w'], x[h, w]` acts on NumPy views, so it only
  copies x[h', w'] into x[h, w]; that effective behaviour is what the published data has and is
  reproduced here. Offsets come from randint(-delta, delta) (upper bound exclusive).
  """
  height, width = image.shape[:2]
  x = jnp.floor(filters.separable(image, t["kernel"], "edge") * 255.)  # np.uint8(gaussian*255)
  hs = np.arange(height - delta, delta, -1)  # the recipe's loops: bottom-right to top-left
  ws = np.arange(width - delta, delta, -1)
  if hs.size and ws.size:
    if delta == 1:
      # Offsets are in {-1, 0} and positions run from the bottom-right, so every source pixel
      # is still unmodified when read: one dense gather per iteration equals the loop.
      rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
      inside = np.zeros((height, width), bool)
      inside[hs.min():hs.max() + 1, ws.min():ws.max() + 1] = True
      offsets = jax.random.randint(key, (max_iterations, height, width, 2), -delta, delta)
      for it in range(max_iterations):
        src_h = rows + jnp.where(inside, offsets[it, ..., 1], 0)
        src_w = cols + jnp.where(inside, offsets[it, ..., 0], 0)
        x = jnp.where(it < t["iterations"], x[src_h, src_w], x)
    else:
      grid_h, grid_w = np.meshgrid(hs, ws, indexing="ij")
      pos_h, pos_w = jnp.asarray(grid_h.reshape(-1)), jnp.asarray(grid_w.reshape(-1))
      offsets = jax.random.randint(key, (max_iterations, pos_h.size, 2), -delta, delta)
      for it in range(max_iterations):
        src_h, src_w = pos_h + offsets[it, :, 1], pos_w + offsets[it, :, 0]
        def body(i, img, sh=src_h, sw=src_w):
          return img.at[pos_h[i], pos_w[i]].set(img[sh[i], sw[i]])
        x = jnp.where(it < t["iterations"], jax.lax.fori_loop(0, pos_h.size, body, x), x)
  return filters.separable(x / 255., t["kernel"], "edge")


def motion_blur_tables(height, width, size_scale):
  return {"kernel": _motion_stack(PARAMS["motion_blur"], size_scale)}


def motion_blur(key, image, t):
  angle = jax.random.uniform(key, (), minval=-45., maxval=45.)
  return filters.motion_blur(image, t["kernel"], angle)


def zoom_factors(c: float) -> np.ndarray:
  return np.arange(1, c, .01)  # the recipe's arange, float quirks included


def zoom_blur_tables(height, width, size_scale):
  """Per severity and zoom slot, the two taps of `clipped_zoom` along each axis.

  Unused slots (severities with fewer factors) have zero weight in `use`.
  """
  del size_scale  # zoom factors are relative to the image size
  most = max(len(zoom_factors(c)) for c in PARAMS["zoom_blur"])
  shape = (len(SEVERITIES), most)
  tables = {f"{axis}{part}": np.zeros(shape + (size,), dtype)
            for axis, size in (("rows", height), ("cols", width))
            for part, dtype in (("_i0", np.int32), ("_i1", np.int32), ("_w1", np.float32))}
  tables["use"] = np.zeros(shape, np.float32)
  for s, c in enumerate(PARAMS["zoom_blur"]):
    for z, zoom in enumerate(zoom_factors(c)):
      for axis, size in (("rows", height), ("cols", width)):
        i0, i1, w1 = filters.zoom_taps(size, zoom)
        tables[f"{axis}_i0"][s, z], tables[f"{axis}_i1"][s, z] = i0, i1
        tables[f"{axis}_w1"][s, z] = w1
      tables["use"][s, z] = 1.
  tables["count"] = tables["use"].sum(1)
  return tables


def zoom_blur(key, image, t):
  """(x + sum_z clipped_zoom(x, z)) / (count + 1), each zoom as two-tap bilinear gathers."""
  del key
  out = jnp.zeros_like(image)
  for z in range(t["use"].shape[0]):
    w = t["rows_w1"][z][:, None, None]
    rows = image[t["rows_i0"][z]] * (1 - w) + image[t["rows_i1"][z]] * w
    w = t["cols_w1"][z][None, :, None]
    zoomed = rows[:, t["cols_i0"][z]] * (1 - w) + rows[:, t["cols_i1"][z]] * w
    out = out + t["use"][z] * zoomed
  return (image + out) / (t["count"] + 1)


# --- weather ---

def snow_tables(height, width, size_scale):
  rows = PARAMS["snow"]
  return {"c": np.asarray(rows, np.float32),
          "zoom_rows": np.stack([filters.zoom_matrix(height, r[2]) for r in rows]),
          "zoom_cols": np.stack([filters.zoom_matrix(width, r[2]) for r in rows]),
          "kernel": _motion_stack([(r[4], r[5]) for r in rows], size_scale)}


def snow(key, image, t):
  mean, std, _, threshold, _, _, blend = (t["c"][i] for i in range(7))
  height, width, channels = image.shape
  k_layer, k_angle = jax.random.split(key)
  layer = mean + std * jax.random.normal(k_layer, (height, width, 1))
  layer = filters.resample(layer, t["zoom_rows"], t["zoom_cols"])  # clipped_zoom
  layer = jnp.where(layer < threshold, 0., layer)
  layer = jnp.floor(jnp.clip(layer, 0, 1) * 255.)  # to an 8-bit PNG for ImageMagick
  angle = jax.random.uniform(k_angle, (), minval=-135., maxval=-45.)
  layer = jnp.round(filters.motion_blur(layer, t["kernel"], angle)) / 255.
  rgb = _to_rgb(image)
  rgb = blend * rgb + (1 - blend) * jnp.maximum(rgb, filters.luma(rgb) * 1.5 + 0.5)
  rgb = rgb + layer + jnp.rot90(layer, k=2)
  return _from_rgb(rgb, channels)


def frost_blend(image: jax.Array, texture: jax.Array, c: jax.Array) -> jax.Array:
  """c[0] * image + c[1] * frost, clipped to [0, 1]; `texture` (H, W, 3) in [0, 1]. A grey
  image is blended as RGB, clipped, then converted (as every other colour corruption)."""
  rgb = jnp.clip(c[0] * _to_rgb(image) + c[1] * texture, 0., 1.)
  return _from_rgb(rgb, image.shape[-1])


def frost_tables(height, width, size_scale):
  return {"c": np.asarray(PARAMS["frost"], np.float32),
          "scale": np.full(len(SEVERITIES), size_scale, np.float32)}


def frost(key, image, t, *, size_scale: float):
  """Frost with the procedural texture (see textures.procedural_frost)."""
  height, width = image.shape[:2]
  texture = textures.procedural_frost(key, height, width, size_scale)
  return frost_blend(image, texture, t["c"])


def fog(key, image, t):
  amount, decay = t["c"][0], t["c"][1]
  height, width = image.shape[:2]
  mapsize = textures.next_power_of_2(max(height, width))  # drawn at the image's own size
  max_val = image.max()
  plasma = textures.plasma_fractal(key, mapsize, decay)[:height, :width, None]
  return (image + amount * plasma) * max_val / (max_val + amount)


def spatter_tables(height, width, size_scale):
  rows = PARAMS["spatter"]
  return {"c": np.asarray(rows, np.float32),
          "liquid_kernel": _gaussian_stack([r[2] * size_scale for r in rows]),
          "mud_kernel": _gaussian_stack([r[4] * size_scale for r in rows])}


def box_mean_uint8(x: jax.Array) -> jax.Array:
  """floor of the 3x3 mean (mirror borders): the window's sum divided by 9, so that a mean that
  is an exact integer stays one (summing weights of 1/9 in float32 gives 3.9999998 for 4)."""
  ones = np.ones((3, 3), np.float32)
  return jnp.floor(filters.correlate2d(x, ones, "mirror") / 9.)


def _water(liquid, rgb, t):
  """Water drops: edges of the liquid layer, shaded by the distance to them."""
  levels = jnp.floor(jnp.clip(liquid[..., 0] * 255., 0, 255))  # astype(np.uint8), clipped
  edges = filters.canny(levels, 50., 150.)
  dist = jnp.minimum(filters.euclidean_distance_to(edges), 20.)  # THRESH_TRUNC at 20
  box = np.full((3, 3), 1 / 9, np.float32)
  dist = box_mean_uint8(dist[..., None])  # cv2.blur, then astype(np.uint8)
  dist = filters.equalize_hist(dist)
  relief = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], np.float32)
  dist = jnp.clip(jnp.round(filters.correlate2d(dist, relief, "mirror")), 0, 255)  # CV_8U
  dist = jnp.round(filters.correlate2d(dist, box, "mirror"))
  m = levels[..., None] * dist
  m = m / jnp.maximum(m.max(), 1e-12) * t["c"][4]
  return rgb + m * jnp.asarray([175 / 255., 238 / 255., 238 / 255.])  # pale turquoise


def _mud(liquid, rgb, t):
  m = filters.separable((liquid > t["c"][3]).astype(jnp.float32), t["mud_kernel"], "edge")
  m = jnp.where(m < 0.8, 0., m)
  return rgb * (1 - m) + m * jnp.asarray([63 / 255., 42 / 255., 20 / 255.])  # mud brown


def spatter(key, image, t):
  mean, std, threshold = t["c"][0], t["c"][1], t["c"][3]
  height, width, channels = image.shape
  liquid = mean + std * jax.random.normal(key, (height, width, 1))
  liquid = filters.separable(liquid, t["liquid_kernel"], "edge")
  liquid = jnp.where(liquid < threshold, 0., liquid)
  # The severity (not the image) picks the branch, so under vmap this stays a real cond.
  rgb = jax.lax.cond(t["c"][5] > 0, _mud, _water, liquid, _to_rgb(image), t)
  return _from_rgb(rgb, channels)


# --- digital ---

def brightness(key, image, t):
  del key
  hsv = filters.rgb_to_hsv(_to_rgb(image))
  hsv = hsv.at[..., 2].set(jnp.clip(hsv[..., 2] + t["c"], 0, 1))
  return _from_rgb(filters.hsv_to_rgb(hsv), image.shape[-1])


def saturate(key, image, t):
  del key
  hsv = filters.rgb_to_hsv(_to_rgb(image))
  hsv = hsv.at[..., 1].set(jnp.clip(hsv[..., 1] * t["c"][0] + t["c"][1], 0, 1))
  return _from_rgb(filters.hsv_to_rgb(hsv), image.shape[-1])


def contrast(key, image, t):
  del key
  means = image.mean(axis=(0, 1), keepdims=True)
  return (image - means) * t["c"] + means


def _smoothing_matrix(size: int, sigma: float, truncate: float = 3.) -> np.ndarray:
  """scipy gaussian_filter1d (mode 'reflect', i.e. symmetric) as a (size, size) matrix."""
  kernel = filters.gaussian_kernel1d(sigma, truncate)
  radius = (len(kernel) - 1) // 2
  out = np.zeros((size, size))
  for o in range(size):
    for tap, weight in enumerate(kernel):
      i = o + tap - radius
      i = np.mod(i, 2 * size)
      i = 2 * size - 1 - i if i >= size else i
      out[o, i] += weight
  return out


def _affine_points(height: int, width: int) -> np.ndarray:
  """The recipe's three reference points (cv2 (x, y) order, as it passes them)."""
  center = np.array([height // 2, width // 2], np.float64)
  square = min(height, width) // 3
  return np.array([center + square, [center[0] + square, center[1] - square],
                   center - square])


def elastic_transform_tables(height, width, size_scale):
  del size_scale  # the recipe gives these as fractions of the image size
  size = min(height, width)
  rows = np.asarray(PARAMS["elastic_transform"], np.float64) * size
  src = np.concatenate([_affine_points(height, width), np.ones((3, 1))], axis=1)
  return {"c": rows.astype(np.float32),
          "smooth_rows": np.stack([_smoothing_matrix(height, s) for _, s, _ in rows]),
          "smooth_cols": np.stack([_smoothing_matrix(width, s) for _, s, _ in rows]),
          "points_solve": np.broadcast_to(np.linalg.inv(src), (len(SEVERITIES), 3, 3))}


def elastic_transform(key, image, t):
  """Random affine (cv2.warpAffine, BORDER_REFLECT_101), then a smoothed random displacement
  field (scipy map_coordinates, order 1, mode 'reflect'); sizes are fractions of min(H, W)."""
  alpha, affine = t["c"][0], t["c"][2]
  height, width = image.shape[:2]
  k_affine, k_field = jax.random.split(key)
  pts1 = jnp.asarray(_affine_points(height, width), jnp.float32)
  pts2 = pts1 + jax.random.uniform(k_affine, (3, 2), minval=-1., maxval=1.) * affine
  forward = (t["points_solve"] @ pts2).T  # cv2.getAffineTransform: dst = M @ [x, y, 1]
  (a, b, tx), (c, d, ty) = forward[0], forward[1]
  det = a * d - b * c  # warpAffine samples the source at the inverse map
  ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
  ys, xs = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32),
                        jnp.arange(width, dtype=jnp.float32), indexing="ij")
  src_x = ia * (xs - tx) + ib * (ys - ty)
  src_y = ic * (xs - tx) + id_ * (ys - ty)
  image = filters.bilinear_sample(image, src_y, src_x, "mirror")
  noise = jax.random.uniform(k_field, (2, height, width), minval=-1., maxval=1.)
  field = jnp.einsum("oh,khw,pw->kop", t["smooth_rows"], noise, t["smooth_cols"],
                     precision=jax.lax.Precision.HIGHEST) * alpha
  return filters.bilinear_sample(image, ys + field[1], xs + field[0], "symmetric")


def pixelate_matrix(size: int, factor: float) -> np.ndarray:
  """Pillow BOX resize to int(size * factor) and back, along one axis, as one matrix."""
  small = max(1, int(size * factor))
  return filters.pil_box_matrix(small, size) @ filters.pil_box_matrix(size, small)


def pixelate_tables(height, width, size_scale):
  del size_scale
  return {"rows": np.stack([pixelate_matrix(height, c) for c in PARAMS["pixelate"]]),
          "cols": np.stack([pixelate_matrix(width, c) for c in PARAMS["pixelate"]])}


def pixelate(key, image, t):
  """Pillow BOX down to int(size * c), BOX back up (make_cifar_c.py uses BOX both ways)."""
  del key
  return filters.resample(image, t["rows"], t["cols"])


def _with_static(fn, **static):
  return lambda key, image, t: fn(key, image, t, **static)


def device_corruption(name: str, height: int, width: int, size_scale: float) -> Corruption:
  """The (tables, op) pair of a device-side corruption for one image shape."""
  if name == "glass_blur":
    tables = glass_blur_tables(height, width, size_scale)
    op = _with_static(glass_blur, delta=int(tables["delta"][0]),
                      max_iterations=int(tables["iterations"].max()))
    return Corruption(lambda *_: tables, op)
  if name == "frost":
    return Corruption(frost_tables, _with_static(frost, size_scale=size_scale))
  return DEVICE_OPS[name]


# JPEG runs on the host (Pillow): see freqrobust/corruptions/host.py.
DEVICE_OPS: dict[str, Corruption] = {
    "gaussian_noise": Corruption(_scalar_tables("gaussian_noise"), gaussian_noise),
    "shot_noise": Corruption(shot_noise_tables, shot_noise),
    "impulse_noise": Corruption(_scalar_tables("impulse_noise"), impulse_noise),
    "speckle_noise": Corruption(_scalar_tables("speckle_noise"), speckle_noise),
    "gaussian_blur": Corruption(gaussian_blur_tables, gaussian_blur),
    "defocus_blur": Corruption(defocus_blur_tables, defocus_blur),
    "glass_blur": Corruption(glass_blur_tables, glass_blur),
    "motion_blur": Corruption(motion_blur_tables, motion_blur),
    "zoom_blur": Corruption(zoom_blur_tables, zoom_blur),
    "snow": Corruption(snow_tables, snow),
    "frost": Corruption(frost_tables, frost),
    "fog": Corruption(_scalar_tables("fog"), fog),
    "spatter": Corruption(spatter_tables, spatter),
    "brightness": Corruption(_scalar_tables("brightness"), brightness),
    "saturate": Corruption(_scalar_tables("saturate"), saturate),
    "contrast": Corruption(_scalar_tables("contrast"), contrast),
    "elastic_transform": Corruption(elastic_transform_tables, elastic_transform),
    "pixelate": Corruption(pixelate_tables, pixelate),
}
