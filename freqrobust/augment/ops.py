"""Image operations shared by the baseline augmentation methods (pure JAX, one HWC image each).

- `crop_flip`: torchvision's RandomCrop(size, padding=pad, fill) + RandomHorizontalFlip, the CIFAR
  preprocessing every baseline's official code applies.
- The AugMix operations (google-research/augmix augmentations.py, the `augmentations` list
  without the ops that overlap the test corruptions), written to reproduce Pillow on uint8
  images: `sample_augmix_op` draws (op, level, sign) like the reference, `augmix_op` applies it.
- `jsd_consistency`: the Jensen-Shannon consistency loss of AugMix (cifar.py) and PRIME.
- Field validation helpers for the methods' frozen dataclasses.

Images are float in [0, 1]. The Pillow-style ops round their input to uint8 levels
q = round(255 x) and return levels / 255, as the reference applies them to PIL images.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from freqrobust import frequency

Array = jax.Array

# google-research/augmix augmentations.py:141-144 (`augmentations`; `augmentations_all` adds
# color, contrast, brightness, sharpness, which overlap the test corruptions and are left out).
AUGMIX_OPS = ("autocontrast", "equalize", "posterize", "rotate", "solarize", "shear_x", "shear_y",
              "translate_x", "translate_y")
_LUT_OPS = ("autocontrast", "equalize", "posterize", "solarize")
_IS_LUT_OP = np.array([op in _LUT_OPS for op in AUGMIX_OPS])
# Added before flooring a value that should be an exact integer level (Pillow computes in double).
_LEVEL_EPS = 1e-3


# ---------------------------------------------------------------------------------------------
# Validation of the methods' fields
# ---------------------------------------------------------------------------------------------


def _fail(obj: Any, name: str, valid: str, value: Any) -> None:
  raise ValueError(f"{type(obj).__name__}.{name} must be {valid}, got {value!r}.")


def set_int(obj: Any, name: str, lo: int | None = None, hi: int | None = None,
            extra: tuple[int, ...] = ()) -> None:
  """Checks that field `name` is an int in [lo, hi] (or one of `extra`) and stores it as int."""
  value = getattr(obj, name)
  valid = "an int" + (f" >= {lo}" if lo is not None and hi is None else "") + (
      f" in [{lo}, {hi}]" if lo is not None and hi is not None else "") + (
          f" or one of {extra}" if extra else "")
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
    _fail(obj, name, valid, value)
  value = int(value)
  if value not in extra and ((lo is not None and value < lo) or (hi is not None and value > hi)):
    _fail(obj, name, valid, value)
  object.__setattr__(obj, name, value)


def set_float(obj: Any, name: str, lo: float | None = None, hi: float | None = None,
              lo_open: bool = False, hi_open: bool = False) -> None:
  """Checks that field `name` is a real number in the interval and stores it as float."""
  value = getattr(obj, name)
  left, right = ("(" if lo_open else "["), (")" if hi_open else "]")
  valid = (f"a number in {left}{'-inf' if lo is None else lo}, "
           f"{'inf' if hi is None else hi}{right}")
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                    np.floating)):
    _fail(obj, name, valid, value)
  value = float(value)
  if math.isnan(value):
    _fail(obj, name, valid, value)
  if lo is not None and (value < lo or (lo_open and value == lo)):
    _fail(obj, name, valid, value)
  if hi is not None and (value > hi or (hi_open and value == hi)):
    _fail(obj, name, valid, value)
  object.__setattr__(obj, name, value)


def set_bool(obj: Any, name: str) -> None:
  value = getattr(obj, name)
  if not isinstance(value, (bool, np.bool_)):
    _fail(obj, name, "a bool", value)
  object.__setattr__(obj, name, bool(value))


def set_crop_fields(obj: Any) -> None:
  """The crop/flip fields every method has: pad (int >= 0), flip (bool), crop_fill in [0, 1]."""
  set_int(obj, "pad", 0)
  set_bool(obj, "flip")
  set_float(obj, "crop_fill", 0.0, 1.0)


def check_batch(images: Array, method: Any) -> None:
  if images.ndim != 4:
    raise ValueError(f"{type(method).__name__}.views expects an NHWC batch, got shape "
                     f"{images.shape}.")
  if not jnp.issubdtype(images.dtype, jnp.floating):
    raise ValueError(f"{type(method).__name__}.views expects float images in [0, 1], got dtype "
                     f"{images.dtype}.")


# ---------------------------------------------------------------------------------------------
# Random draws
# ---------------------------------------------------------------------------------------------


def dirichlet(key: Array, alpha: float, size: int) -> Array:
  """Dirichlet(alpha, ..., alpha) of `size` components. alpha = 1 (every baseline's default) is
  drawn as normalised Exp(1) variables: the same distribution, and without the gamma sampler's
  rejection loop, which costs seconds of XLA compile time per call site."""
  if alpha == 1.0:
    e = jax.random.exponential(key, (size,))
    return e / jnp.sum(e)
  return jax.random.dirichlet(key, jnp.full((size,), alpha, jnp.float32))


def beta(key: Array, a: float, b: float) -> Array:
  """Beta(a, b); the cases the baselines use have closed forms: Beta(1, 1) = U(0, 1) and
  Beta(1/2, 1/2) = sin^2(pi U / 2) (the arcsine law)."""
  if a == b == 1.0:
    return jax.random.uniform(key)
  if a == b == 0.5:
    return jnp.sin(0.5 * jnp.pi * jax.random.uniform(key)) ** 2
  return jax.random.beta(key, a, b)


def bits_to_uniform(bits: Array) -> Array:
  """uint32 bits -> float32 uniforms in (0, 1) (23 bits, so never 0 or 1)."""
  return ((bits >> 9).astype(jnp.float32) + 0.5) * (2.0 ** -23)


def _hash32(x: Array) -> Array:
  """A bijective 32-bit integer hash (C. Wellons' "lowbias32")."""
  x = x ^ (x >> 16)
  x = x * jnp.uint32(0x7FEB352D)
  x = x ^ (x >> 15)
  x = x * jnp.uint32(0x846CA68B)
  return x ^ (x >> 16)


def hash_normal(seed: Array, shape: tuple[int, ...]) -> Array:
  """Standard normals (float32, `shape`) from a (2,) uint32 seed: each element hashes its index
  with the seed twice and maps the bits through the inverse error function (the scheme of
  `frequency.fast_standard_normal`, seeded by raw bits instead of a key, so that one PRNG call
  can seed many draws: each `jax.random` call site costs XLA compile time)."""
  size = math.prod(shape)
  counter = jax.lax.iota(jnp.uint32, max(size, 1))[:size].reshape(shape)
  bits = _hash32(_hash32(counter ^ seed[0]) + seed[1])
  return frequency.bits_to_standard_normal(bits).astype(jnp.float32)


# ---------------------------------------------------------------------------------------------
# Crop and flip
# ---------------------------------------------------------------------------------------------


def crop_flip(key: Array, image: Array, pad: int, flip: bool, fill: float = 0.0) -> Array:
  """RandomCrop(size, padding=pad, fill=fill) then RandomHorizontalFlip(0.5) of one HWC image.

  torchvision pads by `pad` on every side with the constant `fill` and takes the crop's corner
  uniformly in [0, 2 pad] per axis; the flip happens with probability 1/2. (AugMix's cifar.py
  flips before cropping; the two orders give the same distribution.)
  """
  h, w, c = image.shape
  u = jax.random.uniform(key, (3,))
  x = image
  if pad:
    x = jnp.pad(image, ((pad, pad), (pad, pad), (0, 0)), constant_values=fill)
    offsets = jnp.minimum(jnp.floor(u[:2] * (2 * pad + 1)).astype(jnp.int32), 2 * pad)
    x = jax.lax.dynamic_slice(x, (offsets[0], offsets[1], 0), (h, w, c))
  if flip:
    x = jnp.where(u[2] < 0.5, x[:, ::-1], x)
  return x


def crop_flip_batch(key: Array, images: Array, pad: int, flip: bool, fill: float = 0.0) -> Array:
  """`crop_flip` of every image of an NHWC batch, one key each."""
  if not pad and not flip:
    return images
  return _crop_flip_batch(key, images, pad, flip, fill)


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _crop_flip_batch(key: Array, images: Array, pad: int, flip: bool, fill: float) -> Array:
  keys = jax.random.split(key, images.shape[0])
  return jax.vmap(lambda k, x: crop_flip(k, x, pad, flip, fill))(keys, images)


# ---------------------------------------------------------------------------------------------
# Quantisation to uint8 levels
# ---------------------------------------------------------------------------------------------


def to_levels(x: Array) -> Array:
  """round(255 clip(x, 0, 1)) as int32: the uint8 image PIL would hold."""
  return jnp.round(jnp.clip(x, 0.0, 1.0) * 255.0).astype(jnp.int32)


def truncate_to_uint8(x: Array, wrap: bool = False) -> Array:
  """The (uint8) cast of the reference code (numpy `astype(np.uint8)`, torchvision ToPILImage's
  `mul(255).byte()`) of an image in [0, 1] units, back in [0, 1].

  wrap=True is what that cast does on x86 (measured with numpy 2.4 and torch 2.13; C leaves
  out-of-range casts undefined): 255 x truncated toward zero, modulo 256, so -1.2/255 -> 255,
  300.2/255 -> 44, and values in (-1, 0]/255 -> 0. wrap=False clips x to [0, 1] first, then
  floors. A 1e-3 level guard, away from zero, absorbs float32 round-off on exact levels."""
  if wrap:
    y = x * 255.0
    return jnp.mod(jnp.trunc(y + jnp.where(y < 0, -_LEVEL_EPS, _LEVEL_EPS)), 256.0) / 255.0
  return jnp.floor(jnp.clip(x, 0.0, 1.0) * 255.0 + _LEVEL_EPS) / 255.0


# ---------------------------------------------------------------------------------------------
# AugMix operations (augmentations.py), Pillow semantics
# ---------------------------------------------------------------------------------------------


def _int_parameter(level: Array, maxval: float) -> Array:
  """augmentations.py:24-35: int(level * maxval / 10) (level > 0, so int() is floor)."""
  return jnp.floor(level * maxval / 10.0).astype(jnp.int32)


def _float_parameter(level: Array, maxval: float) -> Array:
  """augmentations.py:38-49: level * maxval / 10."""
  return level * maxval / 10.0


def sample_augmix_op(u: Array, severity: float) -> tuple[Array, Array, Array]:
  """(op index into AUGMIX_OPS, level ~ U(0.1, severity), sign in {+1, -1}) from three uniforms.

  `np.random.choice(augmentations)` picks an op uniformly, `sample_level` draws the level
  (augmentations.py:52-53) and the geometric ops negate it with probability 1/2.
  """
  op = jnp.minimum(jnp.floor(u[0] * len(AUGMIX_OPS)).astype(jnp.int32), len(AUGMIX_OPS) - 1)
  level = 0.1 + (severity - 0.1) * u[1]
  sign = jnp.where(u[2] > 0.5, -1.0, 1.0)
  return op, level, sign


def _histogram(levels: Array) -> Array:
  """Per-channel 256-bin histogram of int levels (H, W, C) -> (256, C) int32."""
  flat = levels.reshape(-1, levels.shape[-1])
  return jax.vmap(lambda v: jnp.bincount(v, length=256), in_axes=1, out_axes=1)(flat)


def _lut(levels: Array, op: Array, level: Array) -> Array:
  """The 256-entry lookup table (256, C) of the point ops, identity for the others."""
  i = jnp.arange(256, dtype=jnp.int32)[:, None]
  lo = levels.min(axis=(0, 1))
  hi = levels.max(axis=(0, 1))
  # ImageOps.autocontrast(cutoff=0): int(ix * 255 / (hi - lo) - lo * 255 / (hi - lo)), clipped;
  # identity where hi <= lo. Exact integer arithmetic (Pillow's double can land one below).
  span = jnp.maximum(hi - lo, 1)
  autocontrast = jnp.clip(((i - lo) * 255) // span, 0, 255)
  autocontrast = jnp.where(hi > lo, autocontrast, i)
  # ImageOps.equalize: step = (total - h[last non-empty bin]) // 255; identity if step == 0;
  # else lut[i] = (step // 2 + sum_{j < i} h[j]) // step.
  hist = _histogram(levels)
  total = levels.shape[0] * levels.shape[1]
  last = jnp.take_along_axis(hist, hi[None, :], axis=0)[0]
  step = (total - last) // 255
  below = jnp.cumsum(hist, axis=0) - hist
  equalize = jnp.minimum((step // 2 + below) // jnp.maximum(step, 1), 255)
  equalize = jnp.where(step > 0, equalize, i)
  # posterize(4 - int_parameter(level, 4)): keep the top `bits` bits.
  shift = 8 - (4 - _int_parameter(level, 4))
  posterize = jnp.broadcast_to((i >> shift) << shift, autocontrast.shape)
  # solarize(256 - int_parameter(level, 256)): invert levels >= threshold.
  threshold = 256 - _int_parameter(level, 256)
  solarize = jnp.broadcast_to(jnp.where(i < threshold, i, 255 - i), autocontrast.shape)
  identity = jnp.broadcast_to(i, autocontrast.shape)
  tables = {"autocontrast": autocontrast, "equalize": equalize, "posterize": posterize,
            "solarize": solarize}
  stacked = jnp.stack([tables.get(name, identity) for name in AUGMIX_OPS])
  return stacked[op]


def _affine_matrix(op: Array, level: Array, sign: Array, h: int, w: int) -> Array:
  """Pillow's AFFINE data (a, b, c, d, e, f): the output pixel centre (x, y) samples the input at
  (a x + b y + c, d x + e y + f). Identity for the point ops."""
  # rotate: degrees = int_parameter(level, 30), negated w.p. 1/2; Image.rotate about (w/2, h/2)
  # with angle = -radians(degrees).
  angle = -jnp.deg2rad(_int_parameter(level, 30).astype(jnp.float32) * sign)
  cos, sin = jnp.cos(angle), jnp.sin(angle)
  cx, cy = w / 2.0, h / 2.0
  rotate = jnp.stack([cos, sin, cos * -cx + sin * -cy + cx,
                      -sin, cos, -sin * -cx + cos * -cy + cy])
  shear = _float_parameter(level, 0.3) * sign
  one, zero = jnp.float32(1.0), jnp.float32(0.0)
  shear_x = jnp.stack([one, shear, zero, zero, one, zero])
  shear_y = jnp.stack([one, zero, zero, shear, one, zero])
  # translate: int_parameter(level, IMAGE_SIZE / 3) pixels (IMAGE_SIZE = 32 for CIFAR; here
  # the image's own width or height).
  tx = _int_parameter(level, w / 3.0).astype(jnp.float32) * sign
  ty = _int_parameter(level, h / 3.0).astype(jnp.float32) * sign
  translate_x = jnp.stack([one, zero, tx, zero, one, zero])
  translate_y = jnp.stack([one, zero, zero, zero, one, ty])
  identity = jnp.stack([one, zero, zero, zero, one, zero])
  matrices = {"rotate": rotate, "shear_x": shear_x, "shear_y": shear_y,
              "translate_x": translate_x, "translate_y": translate_y}
  stacked = jnp.stack([matrices.get(name, identity) for name in AUGMIX_OPS])
  return stacked[op]


def pil_affine_bilinear(levels: Array, matrix: Array) -> Array:
  """Image.transform(size, AFFINE, matrix, BILINEAR) of an int-level HWC image (Geometry.c).

  The output pixel (x, y) samples the input at (xin, yin) = matrix applied to (x + 0.5, y + 0.5);
  points outside [0, w) x [0, h) get the fill 0; inside, bilinear interpolation between the
  pixel centres with edge-clamped neighbours, truncated to uint8 like `(UINT8) v1`.
  """
  h, w, _ = levels.shape
  a, b, c, d, e, f = (matrix[k] for k in range(6))
  yo = jnp.arange(h, dtype=jnp.float32)[:, None] + 0.5
  xo = jnp.arange(w, dtype=jnp.float32)[None, :] + 0.5
  xin = a * xo + b * yo + c
  yin = d * xo + e * yo + f
  inside = (xin >= 0) & (xin < w) & (yin >= 0) & (yin < h)
  xin, yin = xin - 0.5, yin - 0.5
  x0, y0 = jnp.floor(xin), jnp.floor(yin)
  dx, dy = (xin - x0)[..., None], (yin - y0)[..., None]
  x0, y0 = x0.astype(jnp.int32), y0.astype(jnp.int32)
  xa, xb = jnp.clip(x0, 0, w - 1), jnp.clip(x0 + 1, 0, w - 1)
  ya, yb = jnp.clip(y0, 0, h - 1), jnp.clip(y0 + 1, 0, h - 1)
  img = levels.astype(jnp.float32)
  top = img[ya, xa] + (img[ya, xb] - img[ya, xa]) * dx
  bottom = img[yb, xa] + (img[yb, xb] - img[yb, xa]) * dx
  value = top + (bottom - top) * dy
  value = jnp.floor(jnp.clip(value, 0.0, 255.0) + _LEVEL_EPS)
  return jnp.where(inside[..., None], value, 0.0).astype(jnp.int32)


def augmix_op(image: Array, op: Array, level: Array, sign: Array) -> Array:
  """Applies AUGMIX_OPS[op] with `level` (and `sign` for the geometric ops) to an HWC image in
  [0, 1], as Pillow does to the uint8 image; returns levels / 255."""
  h, w, c = image.shape
  levels = to_levels(image)
  table = _lut(levels, op, level)
  pointwise = table[levels, jnp.arange(c)[None, None, :]]
  geometric = pil_affine_bilinear(levels, _affine_matrix(op, level, sign, h, w))
  out = jnp.where(jnp.asarray(_IS_LUT_OP)[op], pointwise, geometric)
  return out.astype(jnp.float32) / 255.0


def augmix_sequence(image: Array, u_ops: Array, severity: float) -> Array:
  """Applies len(u_ops) AugMix ops one after the other (op k from the uniforms u_ops[k], (3,));
  returns every intermediate result (D, H, W, C). A scan, so the op is compiled once."""
  def step(x, u):
    y = augmix_op(x, *sample_augmix_op(u, severity))
    return y, y
  return jax.lax.scan(step, image, u_ops)[1]


def random_augmix_op(key: Array, image: Array, severity: float) -> Array:
  """`op(pil_img, severity)` for an op drawn uniformly from AUGMIX_OPS."""
  return augmix_op(image, *sample_augmix_op(jax.random.uniform(key, (3,)), severity))


# ---------------------------------------------------------------------------------------------
# Jensen-Shannon consistency (AugMix cifar.py:227-236; PRIME lightning/systems/augmentation.py)
# ---------------------------------------------------------------------------------------------


def jsd_consistency(logits: Array) -> Array:
  """mean_v KL(p_v || M) with M = clamp(mean_v p_v, 1e-7, 1), averaged over the batch.

  `logits` (V, N, K); torch's `F.kl_div(log M, p_v, reduction='batchmean')` summed over the V
  views and divided by V (the caller multiplies by the weight, 12 in AugMix and PRIME).
  """
  log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  p = jnp.exp(log_p)
  log_mixture = jnp.log(jnp.clip(jnp.mean(p, axis=0), 1e-7, 1.0))
  kl = jnp.sum(p * (log_p - log_mixture[None]), axis=-1)  # (V, N)
  return jnp.mean(kl)


def cross_entropy(logits: Array, labels: Array) -> Array:
  """Mean cross-entropy of int labels (torch's F.cross_entropy)."""
  log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return -jnp.mean(jnp.take_along_axis(log_p, labels[:, None].astype(jnp.int32), axis=-1))
