"""Laws of PRIME (freqrobust/augment/prime.py)."""
import math

import jax
import jax.numpy as jnp
import numpy as np

from baselines_test import assert_views_contract, images
from freqrobust.augment import ops, prime

METHOD = prime.PRIME()


def test_random_filter_is_delta_plus_noise_with_the_reference_centre():
  image = images(0, (1, 8, 8, 3))[0] * 0.5 + 0.25
  f = jax.jit(METHOD.random_filter)
  # sigma = 0: only the identity tap, which the reference puts at (ceil(3/2), ceil(3/2)) = (2, 2)
  # of the 3x3 kernel: out[y, x] = in[y + 1, x + 1], zero past the border.
  out = f(jax.random.key(0), image, jnp.zeros(1))
  expected = jnp.pad(image, ((0, 1), (0, 1), (0, 0)))[1:, 1:]
  np.testing.assert_allclose(out, expected, atol=1e-6)
  # sigma > 0: linear in the image (before the clip): f(a x) = a f(x) for a clip-free input.
  small = image * 0.01
  out_small = f(jax.random.key(1), small, jnp.full((1,), 0.01))
  out_half = f(jax.random.key(1), small * 0.5, jnp.full((1,), 0.01))
  np.testing.assert_allclose(out_half, 0.5 * out_small, atol=1e-6)


def test_smooth_color_is_a_per_channel_pointwise_map():
  levels = jnp.asarray([0.1, 0.4, 0.8], jnp.float32)
  image = levels[jax.random.randint(jax.random.key(0), (8, 8, 3), 0, 3)]
  f = jax.jit(METHOD.smooth_color)
  out = f(jax.random.key(1), image, jnp.asarray([0.99, 1.0]))
  for c in range(3):
    for value in np.asarray(levels):
      mapped = np.asarray(out[..., c])[np.asarray(image[..., c]) == value]
      assert mapped.size == 0 or np.ptp(mapped) < 1e-6  # equal inputs -> equal outputs
  assert float(jnp.abs(out - image).max()) > 1e-3
  assert float(out.min()) >= 0 and float(out.max()) <= 1
  # T = 0 is the identity.
  np.testing.assert_allclose(f(jax.random.key(1), image, jnp.asarray([0.99, 0.0])), image,
                             atol=1e-6)


def test_diffeo_moves_pixels_but_keeps_constants():
  f = jax.jit(METHOD.diffeo)
  flat = jnp.full((8, 8, 3), 0.3)
  np.testing.assert_allclose(f(jax.random.key(0), flat, jnp.asarray([0.5, 0.5, 0.5])), flat,
                             atol=1e-6)
  image = images(1, (1, 8, 8, 3))[0]
  out = f(jax.random.key(0), image, jnp.asarray([0.9, 0.9, 0.99]))
  assert float(jnp.abs(out - image).max()) > 1e-3
  # Bilinear resampling stays within the range of the image.
  assert float(out.min()) >= float(image.min()) - 1e-6
  assert float(out.max()) <= float(image.max()) + 1e-6
  np.testing.assert_allclose(prime.remap(image, jnp.zeros((8, 8)), jnp.zeros((8, 8))), image)
  t1, t2 = prime.temperature_range(32, jnp.asarray(10))
  np.testing.assert_allclose(t1, 1 / (math.pi * 32 ** 2 * math.log(10)), rtol=1e-5)
  np.testing.assert_allclose(t2, 4 / (math.pi ** 3 * 100 * math.log(10)), rtol=1e-5)


def test_mixture_is_a_convex_combination_and_views_contract():
  image = images(2, (1, 8, 8, 3))[0]
  mixed, chains, w, m = jax.jit(METHOD.augment)(jax.random.key(3), image)
  assert chains.shape == (3, 8, 8, 3)
  assert bool(jnp.all(w >= 0)) and abs(float(w.sum()) - 1) < 1e-5 and 0 <= float(m) <= 1
  np.testing.assert_allclose(mixed, (1 - m) * image + m * jnp.tensordot(w, chains, 1), atol=1e-6)
  assert float(jnp.abs(chains - image).max()) > 1e-3

  method = prime.PRIME(pad=0, flip=False)
  batch = images(4, (2, 8, 8, 3))
  views, _ = assert_views_contract(method, batch, jnp.zeros(2, jnp.int32))
  np.testing.assert_array_equal(views[0], batch)
  assert (method.num_views, method.ce_views) == (3, (0,))
  logits = jax.random.normal(jax.random.key(0), (3, 2, 10))
  np.testing.assert_allclose(float(method.loss_terms(logits, None, None, {}, None)["jsd"]),
                             12 * float(ops.jsd_consistency(logits)), rtol=1e-6)


def test_transforms_subset():
  only_color = prime.PRIME(transforms=("color",), pad=0, flip=False, color_t=0.0)
  # With colour as the only primitive and T = 0 every chain is the identity.
  image = images(5, (1, 8, 8, 3))[0]
  mixed, chains, _, _ = jax.jit(only_color.augment)(jax.random.key(0), image)
  np.testing.assert_allclose(chains, jnp.broadcast_to(image, chains.shape), atol=1e-6)
  np.testing.assert_allclose(mixed, image, atol=1e-6)
