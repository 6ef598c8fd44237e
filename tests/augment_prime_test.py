"""Laws of PRIME (freqrobust/augment/prime.py)."""
import math

import jax
import jax.numpy as jnp
import numpy as np

from baselines_test import assert_views_contract, images
from freqrobust.augment import ops, prime

METHOD = prime.PRIME()


def _seed(i):
  return jnp.asarray([i, 7 * i + 1], jnp.uint32)


def _seeds(i):
  return jnp.stack([_seed(i), _seed(i + 100)])


def test_random_filter_is_delta_plus_noise_with_the_reference_centre():
  image = images(0, (1, 8, 8, 3))[0] * 0.5 + 0.25
  f = jax.jit(METHOD.random_filter)
  # sigma = 0: only the identity tap, which the reference puts at (ceil(3/2), ceil(3/2)) = (2, 2)
  # of the 3x3 kernel: out[y, x] = in[y + 1, x + 1], zero past the border.
  out = f(_seed(0), image, jnp.zeros(1))
  expected = jnp.pad(image, ((0, 1), (0, 1), (0, 0)))[1:, 1:]
  np.testing.assert_allclose(out, expected, atol=1e-6)
  # sigma > 0: linear in the image (before the clip): f(a x) = a f(x) for a clip-free input.
  small = image * 0.01
  out_small = f(_seed(1), small, jnp.full((1,), 0.01))
  out_half = f(_seed(1), small * 0.5, jnp.full((1,), 0.01))
  np.testing.assert_allclose(out_half, 0.5 * out_small, atol=1e-6)


def test_smooth_color_is_a_per_channel_pointwise_map():
  levels = jnp.asarray([0.1, 0.4, 0.8], jnp.float32)
  image = levels[np.random.default_rng(0).integers(0, 3, (8, 8, 3))]
  f = jax.jit(METHOD.smooth_color)
  out = f(_seed(1), image, jnp.asarray([0.99, 1.0]))
  for c in range(3):
    for value in np.asarray(levels):
      mapped = np.asarray(out[..., c])[np.asarray(image[..., c]) == value]
      assert mapped.size == 0 or np.ptp(mapped) < 1e-6  # equal inputs -> equal outputs
  assert float(jnp.abs(out - image).max()) > 1e-3
  assert float(out.min()) >= 0 and float(out.max()) <= 1
  # T = 0 is the identity.
  np.testing.assert_allclose(f(_seed(1), image, jnp.asarray([0.99, 0.0])), image,
                             atol=1e-6)


def test_fast_forms_equal_the_reference_sums():
  # Mode aliasing on the sampled grid: sin(pi k x') = sum_a A[k, a] sin(pi a x') for k <= 100.
  for n in (2, 8, 13):
    a, s = prime.alias_matrix(n, 100)
    full = np.sin(np.pi * np.linspace(0, 1, n)[:, None] * np.arange(1, 101)[None, :])
    np.testing.assert_allclose(s @ a.T if a.size else 0 * full, full, atol=1e-5)
    assert np.all(np.abs(a).sum(axis=1) <= 1)  # each mode lands on one low mode (or none)
  # Clenshaw's recurrence = the colour map's explicit sum of sines.
  theta = np.asarray(images(9, (1, 6, 6, 3))[0]) * np.pi
  coeff = np.random.default_rng(0).normal(size=(3, 100)).astype(np.float32) * 0.1
  expected = np.einsum("hwck,ck->hwc", np.sin(theta[..., None] * np.arange(1, 101)), coeff)
  np.testing.assert_allclose(prime.sine_series(jnp.asarray(theta), jnp.asarray(coeff)), expected,
                             atol=2e-4)


def test_diffeo_moves_pixels_but_keeps_constants():
  f = jax.jit(METHOD.diffeo)
  flat = jnp.full((8, 8, 3), 0.3)
  np.testing.assert_allclose(f(_seeds(0), flat, jnp.asarray([0.5, 0.5, 0.5])), flat,
                             atol=1e-6)
  image = images(1, (1, 8, 8, 3))[0]
  out = f(_seeds(0), image, jnp.asarray([0.9, 0.9, 0.99]))
  assert float(jnp.abs(out - image).max()) > 1e-3
  # Bilinear resampling stays within the range of the image.
  assert float(out.min()) >= float(image.min()) - 1e-6
  assert float(out.max()) <= float(image.max()) + 1e-6
  np.testing.assert_allclose(prime.remap(image, jnp.zeros((8, 8)), jnp.zeros((8, 8))), image)
  t1, t2 = prime.temperature_range(32, jnp.asarray(10))
  np.testing.assert_allclose(t1, 1 / (math.pi * 32 ** 2 * math.log(10)), rtol=1e-5)
  np.testing.assert_allclose(t2, 4 / (math.pi ** 3 * 100 * math.log(10)), rtol=1e-5)


def test_mixture_is_a_convex_combination_and_views_contract():
  method = prime.PRIME(pad=0, flip=False)
  batch = images(4, (2, 8, 8, 3))
  views, _ = assert_views_contract(method, batch, jnp.zeros(2, jnp.int32))
  np.testing.assert_array_equal(views[0], batch)
  assert (method.num_views, method.ce_views) == (3, (0,))
  # The batch function of the eager call above (4 = 2 draws x 2 images): already compiled.
  both = jnp.concatenate([batch, batch])
  mixed, chains, w, m = prime.augment_images(method, jax.random.split(jax.random.key(3), 4), both)
  assert chains.shape == (4, 3, 8, 8, 3)
  for n in range(4):
    assert bool(jnp.all(w[n] >= 0)) and abs(float(w[n].sum()) - 1) < 1e-5
    assert 0 <= float(m[n]) <= 1
    np.testing.assert_allclose(
        mixed[n], (1 - m[n]) * both[n] + m[n] * jnp.tensordot(w[n], chains[n], 1), atol=1e-6)
  assert float(jnp.abs(chains - both[:, None]).max()) > 1e-3
  logits = jnp.asarray(np.random.default_rng(0).normal(size=(3, 2, 10)), jnp.float32)
  np.testing.assert_allclose(float(method.loss_terms(logits, None, None, {}, None)["jsd"]),
                             12 * float(ops.jsd_consistency(logits)), rtol=1e-6)


def test_transforms_subset():
  only_color = prime.PRIME(transforms=("color",), pad=0, flip=False, color_t=0.0)
  # With colour as the only primitive and T = 0 every chain is the identity.
  batch = images(5, (2, 8, 8, 3))
  mixed, chains, _, _ = prime.augment_images(only_color, jax.random.split(jax.random.key(0), 2),
                                             batch)
  np.testing.assert_allclose(chains, jnp.broadcast_to(batch[:, None], chains.shape), atol=1e-6)
  np.testing.assert_allclose(mixed, batch, atol=1e-6)
