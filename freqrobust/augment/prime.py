"""PRIME: a few PRImitives with Maximum Entropy (Modas, Rade, Ortiz-Jimenez, Moosavi-Dezfooli,
Frossard, ECCV 2022).

Official code: github.com/amodas/PRIME-augmentations; utils/prime.py (mixing),
utils/diffeomorphism.py, utils/color_jitter.py, utils/rand_filter.py (the three primitives),
train.py:137-170 (how they are built), config/cifar10_cfg.py (CIFAR-10 hyperparameters),
lightning/systems/augmentation.py:31-66 (loss).

Primitives on an image x in [0, 1] (each one draws its own parameters, `stochastic=True`):

- Spatial, random diffeomorphism (diffeomorphism.py): cutmax' ~ U{cutmin+1, ..., cutmax},
  cut = int(B_c (cutmax' + 1 - cutmin) + cutmin), B_c ~ Beta(scut - scut/(rcut+1), scut/(rcut+1));
  T ~ T1 + B_T (T2 - T1), B_T ~ Beta(sT - sT/(rT+1), sT/(rT+1)), T1 = 1 / (pi n^2 log cut),
  T2 = max(T1, alpha 4 / (pi^3 cut^2 log cut)); displacement fields
  u(y, x) = sum_{i,j <= cut, i^2+j^2 < (cut+1/2)^2} c_ij / sqrt(i^2+j^2) sin(pi i x') sin(pi j y'),
  c_ij ~ N(0, 1), x' = linspace(0, 1, n); dx = sqrt(T) n u, dy = sqrt(T) n v; the image is
  resampled bilinearly at (x - dx, y - dy) clamped to the image.
- Colour, random smooth colour map (color_jitter.py): cut ~ U{1, ..., cut_max}, T ~ U(0, T_max),
  x_c <- clip(x_c + sum_{k <= cut} beta_ck sin(pi k x_c), 0, 1), beta_ck ~ N(0, T).
- Spectral, random filter (rand_filter.py): sigma ~ U(0, sigma_max),
  w = delta + sigma N(0, 1)^(k x k),
  x <- clip(w * x, 0, 1) (cross-correlation, zero 'same' padding, one kernel for all channels).

Mixing (prime.py:54-85): like AugMix, w ~ Dirichlet(1, 1, 1) over 3 chains, m ~ Beta(1, 1);
each chain has depth ~ U{1, 2, 3} and each step applies one primitive drawn uniformly;
x_prime = (1 - m) x + m sum_i w_i chain_i. Views (clean, PRIME, PRIME); loss CE(clean) +
12 JS(p_clean, p_1, p_2) (augmentation.py:55-66).

CIFAR-10 hyperparameters (config/cifar10_cfg.py:49-72): diffeo sT = rT = scut = rcut = 1,
cutmin 2, cutmax 100, alpha 1; colour cut 100, T 0.01; filter kernel 3, sigma 4; width 3,
depth -1 (max 3); preprocessing RandomCrop(32, padding=4) + flip (train.py:94-97).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import ClassVar, Optional

import jax
import jax.numpy as jnp
import numpy as np

from freqrobust.augment import base, ops

Array = jax.Array
TRANSFORMS = ("diffeo", "color", "filter")  # the order of train.py:139-162
_UNIFORMS_PER_STEP = 7  # choice; diffeo cutmax, B_cut, B_T; colour cut, T; filter sigma
_SEEDS_PER_STEP = 4  # (2,) uint32 seeds of the normal draws: diffeo u, diffeo v, colour, filter


@functools.lru_cache(maxsize=None)
def _mode_radius(max_cut: int) -> np.ndarray:
  """r = sqrt(i^2 + j^2) on the (max_cut, max_cut) mode grid, i, j >= 1."""
  k = np.arange(1, max_cut + 1, dtype=np.float64)
  r = np.sqrt(k[:, None] ** 2 + k[None, :] ** 2).astype(np.float32)
  r.flags.writeable = False
  return r


@functools.lru_cache(maxsize=None)
def alias_matrix(n: int, max_cut: int) -> tuple[np.ndarray, np.ndarray]:
  """Sampled on n points x' = linspace(0, 1, n), the sine modes sin(pi k x'), k = 1..max_cut
  (diffeomorphism.py:96-106), are +-1 times one of the first n' = min(max_cut, n - 2) modes or
  zero: sin(pi k x') = sum_a A[k, a] sin(pi a x') with k mod 2(n-1) = a (sign +),
  2(n-1) - a (sign -), or 0, n-1 (the zero mode).

  Returns (A (max_cut, n'), the sines s'[x, a] = sin(pi a x') (n, n')).
  """
  width = max(min(max_cut, n - 2), 0)
  a = np.zeros((max_cut, width), np.float32)
  if n > 2:
    period = 2 * (n - 1)
    for k in range(1, max_cut + 1):
      r = k % period
      if 1 <= r <= n - 2 and r <= width:
        a[k - 1, r - 1] = 1.0
      elif n <= r <= period - 1 and period - r <= width:
        a[k - 1, period - r - 1] = -1.0
  x = np.linspace(0, 1, n)[:, None]
  s = np.sin(np.pi * x * np.arange(1, width + 1)[None, :]).astype(np.float32)
  for m in (a, s):
    m.flags.writeable = False
  return a, s


def sine_series(theta: Array, coeff: Array) -> Array:
  """sum_{k=1..K} coeff[c, k-1] sin(k theta[..., c]) by Clenshaw's recurrence (K multiply-adds
  per pixel instead of K sines): b_k = coeff_k + 2 cos(theta) b_{k+1} - b_{k+2},
  sum = b_1 sin(theta)."""
  two_cos = 2.0 * jnp.cos(theta)

  def step(carry, c_k):
    b1, b2 = carry
    return (c_k + two_cos * b1 - b2, b1), None

  zeros = jnp.zeros_like(theta)
  (b1, _), _ = jax.lax.scan(step, (zeros, zeros), coeff.T[::-1], unroll=10)
  return b1 * jnp.sin(theta)


def temperature_range(n: int, cut: Array) -> tuple[Array, Array]:
  """diffeomorphism.py:183-197 (with its cut + 1e-6)."""
  cut = cut.astype(jnp.float32) + 1e-6
  log = jnp.log(cut)
  return 1.0 / (math.pi * n ** 2 * log), 4.0 / (math.pi ** 3 * cut ** 2 * log)


def scalar_field(seed: Array, rows: int, cols: int, cut: Array, max_cut: int) -> Array:
  """Random field (rows, cols) of the modes i, j <= cut with r < cut + 1/2, amplitude 1/r.

  The reference draws u[y, x] = sum_ij c_ij e_ij sin(pi i x'_x) sin(pi j x'_y), c_ij ~ N(0, 1),
  e_ij = [r_ij < cut + 1/2] / r_ij (`contract('ij,xi,yj->yx')`, cut^2 modes). On the sampled
  grid each mode is +-1 times one of the first n' modes (`alias_matrix`), so the field is
  sum_ab C_ab sin(pi a x'_x) sin(pi b x'_y) with independent C_ab ~ N(0, V_ab),
  V = |A_cols|^T E |A_rows|, E = e^2: the same distribution from n'^2 draws instead of
  max_cut^2.
  """
  r = _mode_radius(max_cut)
  a_cols, s_cols = alias_matrix(cols, max_cut)
  a_rows, s_rows = alias_matrix(rows, max_cut)
  energy = jnp.where(r < cut.astype(jnp.float32) + 0.5, 1.0 / r ** 2, 0.0)
  variance = jnp.abs(a_cols).T @ energy @ jnp.abs(a_rows)  # (n'_cols, n'_rows)
  c = ops.hash_normal(seed, variance.shape) * jnp.sqrt(variance)
  return jnp.asarray(s_rows) @ c.T @ jnp.asarray(s_cols).T


def remap(image: Array, dx: Array, dy: Array) -> Array:
  """Bilinear resampling at (x - dx, y - dy), clamped to the image (diffeomorphism.py:144-168)."""
  h, w = image.shape[:2]
  y = jnp.arange(h, dtype=jnp.float32)[:, None]
  x = jnp.arange(w, dtype=jnp.float32)[None, :]
  xn = jnp.clip(x - dx, 0, w - 1)
  yn = jnp.clip(y - dy, 0, h - 1)
  xf, yf = jnp.floor(xn), jnp.floor(yn)
  xc, yc = jnp.ceil(xn).astype(jnp.int32), jnp.ceil(yn).astype(jnp.int32)
  xv, yv = (xn - xf)[..., None], (yn - yf)[..., None]
  xf, yf = xf.astype(jnp.int32), yf.astype(jnp.int32)
  return ((1 - yv) * (1 - xv) * image[yf, xf] + (1 - yv) * xv * image[yf, xc]
          + yv * (1 - xv) * image[yc, xf] + yv * xv * image[yc, xc])


def _beta_from_uniform(u: Array, seed: Array, s: float, r: float) -> Array:
  """Beta(s - s/(r+1), s/(r+1)) (diffeomorphism.py:58-59); arcsine law for the default s = r = 1
  (from the uniform u), else jax.random.beta keyed by the seed."""
  a, b = s - s / (r + 1.0), s / (r + 1.0)
  if a == b == 0.5:
    return jnp.sin(0.5 * jnp.pi * u) ** 2
  return jax.random.beta(jax.random.wrap_key_data(seed, impl="threefry2x32"), a, b)


@dataclasses.dataclass(frozen=True)
class PRIME(base.CleanAndTwoAugmented):
  """PRIME with the JSD consistency loss (views: clean, PRIME, PRIME).

  Attributes (defaults: config/cifar10_cfg.py):
    diffeo_s_t, diffeo_r_t, diffeo_s_cut, diffeo_r_cut, diffeo_cutmin, diffeo_cutmax,
    diffeo_alpha: the diffeomorphism's sT, rT, scut, rcut, cutmin, cutmax, alpha (1, 1, 1, 1, 2,
      100, 1).
    color_cut, color_t: colour map's maximum cut (100) and maximum temperature T (0.01).
    filter_size, filter_sigma: random filter kernel size (3) and maximum sigma (4).
    transforms: the primitives in use, a subset of ("diffeo", "color", "filter") (config
      enable_aug: all three).
    width, depth: mixture width (3) and depth (-1: U{1, 2, 3} per chain; d > 0: exactly d).
    jsd_weight: 12 (augmentation.py:64).
    pad, flip, crop_fill: RandomCrop(32, padding=4) + flip before PRIME (train.py:94-97).
    shared_draws: as the reference (True): each PRIME call (one per augmented view) draws the
      primitives' scalar parameters (diffeo cutmax', cut, T; colour cut, T; filter sigma) and
      the diffeomorphism's displacement field once per depth step, shared by every image and
      chain of the batch; each image and chain draws its own depth, primitive choice, colour
      coefficients and filter kernel (utils/prime.py:54-85 applies each primitive once to the
      stacked width x batch images; diffeomorphism.py:73-84, color_jitter.py:23-34,
      rand_filter.py:19-20, 53-55). False: every parameter per image and chain.
  """
  name: ClassVar[str] = "prime"
  num_views: ClassVar[int] = 3
  ce_views: ClassVar[tuple[int, ...]] = (0,)
  legacy_fields: ClassVar[dict] = {"shared_draws": False}  # per-image draws before the field

  diffeo_s_t: float = 1.0
  diffeo_r_t: float = 1.0
  diffeo_s_cut: float = 1.0
  diffeo_r_cut: float = 1.0
  diffeo_cutmin: int = 2
  diffeo_cutmax: int = 100
  diffeo_alpha: float = 1.0
  color_cut: int = 100
  color_t: float = 0.01
  filter_size: int = 3
  filter_sigma: float = 4.0
  transforms: tuple[str, ...] = TRANSFORMS
  width: int = 3
  depth: int = -1
  jsd_weight: float = 12.0
  pad: int = 4
  flip: bool = True
  crop_fill: float = 0.0
  shared_draws: bool = True

  def __post_init__(self):
    for name in ("diffeo_s_t", "diffeo_r_t", "diffeo_s_cut", "diffeo_r_cut"):
      ops.set_float(self, name, 0.0, lo_open=True)
    ops.set_int(self, "diffeo_cutmin", 2)
    ops.set_int(self, "diffeo_cutmax", self.diffeo_cutmin + 1)
    ops.set_float(self, "diffeo_alpha", 0.0, lo_open=True)
    ops.set_int(self, "color_cut", 1)
    ops.set_float(self, "color_t", 0.0)
    ops.set_int(self, "filter_size", 1)
    if self.filter_size % 2 == 0:
      raise ValueError(f"PRIME.filter_size must be an odd int >= 1, got {self.filter_size!r}.")
    ops.set_float(self, "filter_sigma", 0.0)
    transforms = self.transforms
    if isinstance(transforms, str):
      transforms = tuple(t.strip() for t in transforms.split(",") if t.strip())
    transforms = tuple(transforms)
    if (not transforms or len(set(transforms)) != len(transforms)
        or any(t not in TRANSFORMS for t in transforms)):
      raise ValueError(f"PRIME.transforms must be a non-empty subset of {TRANSFORMS} without "
                       f"repeats, got {self.transforms!r}.")
    object.__setattr__(self, "transforms", transforms)
    ops.set_int(self, "width", 1)
    ops.set_int(self, "depth", 1, extra=(-1,))
    ops.set_float(self, "jsd_weight", 0.0)
    ops.set_bool(self, "shared_draws")
    ops.set_crop_fields(self)

  # -- primitives ------------------------------------------------------------------------------

  def diffeo(self, seeds: Array, image: Array, u: Array) -> Array:
    """Random diffeomorphism; seeds (2, 2) uint32 (the fields u, v), u: 3 uniforms (cutmax',
    B_cut, B_T)."""
    dx, dy = self.diffeo_displacement(seeds, image.shape[0], image.shape[1], u)
    return remap(image, dx, dy)

  def diffeo_displacement(self, seeds: Array, h: int, w: int, u: Array) -> tuple[Array, Array]:
    """The diffeomorphism's displacement (dx, dy), each (h, w); arguments as `diffeo`."""
    cutmin, cutmax = self.diffeo_cutmin, self.diffeo_cutmax
    # torch.randint(cutmin + 1, cutmax + 1) (diffeomorphism.py:86-87).
    cutmax_drawn = cutmin + 1 + jnp.minimum(jnp.floor(u[0] * (cutmax - cutmin)),
                                            cutmax - cutmin - 1)
    b_cut = _beta_from_uniform(u[1], seeds[0] ^ 1, self.diffeo_s_cut, self.diffeo_r_cut)
    cut = jnp.clip(jnp.floor(b_cut * (cutmax_drawn + 1 - cutmin) + cutmin), cutmin, cutmax_drawn)
    n = w  # the reference's n = img.shape[-1] (square images there)
    t1, t2 = temperature_range(n, cut)
    t2 = jnp.maximum(t1, self.diffeo_alpha * t2)
    t = _beta_from_uniform(u[2], seeds[1] ^ 1, self.diffeo_s_t, self.diffeo_r_t) * (t2 - t1) + t1
    dx = jnp.sqrt(t) * scalar_field(seeds[0], h, w, cut, cutmax) * n
    dy = jnp.sqrt(t) * scalar_field(seeds[1], h, w, cut, cutmax) * n
    return dx, dy

  def smooth_color(self, seed: Array, image: Array, u: Array) -> Array:
    """Random smooth colour map; seed (2,) uint32, u: 2 uniforms (cut, T)."""
    k = jnp.arange(1, self.color_cut + 1, dtype=jnp.float32)
    cut = 1 + jnp.minimum(jnp.floor(u[0] * self.color_cut), self.color_cut - 1)
    temperature = self.color_t * u[1]
    coeff = ops.hash_normal(seed, (image.shape[-1], self.color_cut))
    coeff = coeff * jnp.sqrt(temperature) * (k <= cut)
    return jnp.clip(image + sine_series(image * jnp.pi, coeff), 0.0, 1.0)

  def random_filter(self, seed: Array, image: Array, u: Array) -> Array:
    """Random filter; seed (2,) uint32, u: 1 uniform (sigma)."""
    size = self.filter_size
    sigma = self.filter_sigma * u[0]
    # The reference puts the identity tap at [ceil(k/2), ceil(k/2)] (rand_filter.py:30-32):
    # for k = 3 that is the corner (2, 2), a one-pixel shift, kept as is.
    centre = int(math.ceil(size / 2))
    delta = np.zeros((size, size), np.float32)
    if centre < size:
      delta[centre, centre] = 1.0
    kernel = sigma * ops.hash_normal(seed, (size, size)) + delta
    half = size // 2
    h, w = image.shape[:2]
    padded = jnp.pad(image, ((half, half), (half, half), (0, 0)))
    out = 0.0
    for a in range(size):
      for b in range(size):
        out = out + kernel[a, b] * padded[a:a + h, b:b + w]
    return jnp.clip(out, 0.0, 1.0)

  # -- mixing ----------------------------------------------------------------------------------

  def _max_depth(self) -> int:
    return self.depth if self.depth > 0 else 3

  def _chain_words(self) -> int:
    return 1 + self._max_depth() * (_UNIFORMS_PER_STEP + 2 * _SEEDS_PER_STEP)

  def shared_params(self, key: Array, h: int, w: int) -> dict:
    """The parameters the reference draws once per PRIME call and depth step, shared by every
    image and chain of the call (`shared_draws`): per step the 6 uniforms of the primitives'
    scalar parameters (diffeo cutmax', B_cut, B_T; colour cut, T; filter sigma), "u"
    (max_depth, 6), and the diffeomorphism's displacement field (one per step, from one pair of
    random fields), "disp" (max_depth, 2, h, w)."""
    max_depth = self._max_depth()
    bits = jax.random.bits(key, (max_depth * (_UNIFORMS_PER_STEP - 1 + 4),), jnp.uint32)
    n_uniforms = max_depth * (_UNIFORMS_PER_STEP - 1)
    u = ops.bits_to_uniform(bits[:n_uniforms]).reshape(max_depth, _UNIFORMS_PER_STEP - 1)
    seeds = bits[n_uniforms:].reshape(max_depth, 2, 2)
    if "diffeo" in self.transforms:
      disp = jax.vmap(lambda s, v: jnp.stack(self.diffeo_displacement(s, h, w, v[0:3])))(seeds, u)
    else:
      disp = jnp.zeros((max_depth, 2, h, w), jnp.float32)
    return {"u": u, "disp": disp}

  def _chain(self, bits: Array, image: Array, shared: Optional[dict] = None) -> Array:
    """One chain from its random bits (`_chain_words()` uint32); with `shared`
    (`shared_params`), the primitives' scalar parameters and the displacement field of each
    step come from there, and only the depth, the primitive chosen at each step, the colour
    coefficients and the filter kernel are the chain's own."""
    max_depth = self._max_depth()
    n_uniforms = 1 + max_depth * _UNIFORMS_PER_STEP
    u = ops.bits_to_uniform(bits[:n_uniforms])
    seeds = bits[n_uniforms:].reshape(max_depth, _SEEDS_PER_STEP, 2)
    # depth_combos = tril(ones(3, 3)) picked uniformly: depth U{1, 2, 3} (prime.py:43, 68-69).
    depth = (self.depth if self.depth > 0
             else 1 + jnp.minimum(jnp.floor(u[0] * max_depth), max_depth - 1))
    own = u[1:].reshape(max_depth, _UNIFORMS_PER_STEP)
    if shared is None:
      params = own[:, 1:]
      disp = jnp.zeros((max_depth, 2, 1, 1), jnp.float32)  # unused
      diffeo = lambda s, x, p, d: self.diffeo(s[0:2], x, p[0:3])
    else:
      params, disp = shared["u"], shared["disp"]
      diffeo = lambda s, x, p, d: remap(x, d[0], d[1])
    primitives = {"diffeo": diffeo,
                  "color": lambda s, x, p, d: self.smooth_color(s[2], x, p[3:5]),
                  "filter": lambda s, x, p, d: self.random_filter(s[3], x, p[5:6])}
    chosen = [primitives[t] for t in self.transforms]

    def step(x, inputs):
      index, choice, p, s, d = inputs
      which = jnp.minimum(jnp.floor(choice * len(chosen)).astype(jnp.int32), len(chosen) - 1)
      candidates = jnp.stack([f(s, x, p, d) for f in chosen])
      return jnp.where(index < depth, candidates[which], x), None

    steps = (jnp.arange(max_depth), own[:, 0], params, seeds, disp)
    return jax.lax.scan(step, image, steps)[0]

  def augment(self, key: Array, image: Array,
              shared: Optional[dict] = None) -> tuple[Array, Array, Array, Array]:
    """One PRIME draw of one HWC image: (mixed, chains (width, H, W, C), w (width,), m).

    Every random choice of the image comes from one `jax.random.bits` call (each call site costs
    compile time): the mixing weights' uniforms and each chain's uniforms and normal-draw seeds.
    `shared`: the call's shared parameters (`shared_params`, drawn once per call from a key of
    their own), or None for per-chain draws.
    """
    bits = jax.random.bits(key, (self.width + 1 + self.width * self._chain_words(),),
                           jnp.uint32)
    u = ops.bits_to_uniform(bits[:self.width + 1])
    e = -jnp.log(u[:self.width])  # Dirichlet(1, ..., 1) = normalised Exp(1)
    w, m = e / jnp.sum(e), u[-1]  # Beta(1, 1) = U(0, 1)
    chain_bits = bits[self.width + 1:].reshape(self.width, self._chain_words())
    chains = jax.vmap(lambda b: self._chain(b, image, shared))(chain_bits)
    mixed = (1.0 - m) * image + m * jnp.tensordot(w, chains, axes=1)
    return mixed, chains, w, m

  def _augment_draws(self, key: Array, images: Array) -> Array:
    if not self.shared_draws:
      return super()._augment_draws(key, images)
    n, h, w = images.shape[:3]
    k_each, k_shared = jax.random.split(key)
    # (2, N) keys; a legacy uint32 key's split has a trailing (2,) axis of key data.
    keys = jax.random.split(k_each, (2, n))
    # Two PRIME calls (the reference's `aug(img)` twice), each with its own shared parameters.
    return jax.vmap(lambda k, s: augment_images(self, k, images, s)[0])(
        keys, jax.vmap(lambda k: self.shared_params(k, h, w))(jax.random.split(k_shared)))

  def _augment_batch(self, keys: Array, images: Array) -> Array:
    return augment_images(self, keys, images)[0]


@functools.partial(jax.jit, static_argnums=0)
def augment_images(method: PRIME, keys: Array, images: Array, shared: Optional[dict] = None):
  """`method.augment` of each image with its key (and the call's `shared` parameters, one set
  for all images, or None), vmapped and compiled once per method and shape (so an eager `views`
  call makes one compiled call): (mixed, chains, w, m), batched."""
  return jax.vmap(lambda k, x: method.augment(k, x, shared))(keys, images)
