"""Laws of PRIME (freqrobust/augment/prime.py)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselines_test import assert_views_contract, images
from freqrobust.augment import ops, prime, registry

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


def test_shared_draws_share_the_warp_across_the_batch_as_the_reference():
  """shared_draws (the reference): one displacement field per PRIME call and depth step, so
  identical images whose chains are the diffeomorphism come out identical; the two augmented
  views are two calls with their own fields. Per-image draws warp each image differently."""
  batch = jnp.broadcast_to(images(6, (1, 8, 8, 3)), (4, 8, 8, 3))
  only_diffeo = dict(transforms=("diffeo",), width=1, depth=1, pad=0, flip=False)
  labels = jnp.zeros(4, jnp.int32)
  shared = prime.PRIME(**only_diffeo)
  assert shared.shared_draws  # the default
  views, _ = shared.views(jax.random.key(2), batch, labels)
  warped = np.asarray(views[1:])  # (2, 4, H, W, C); mixed = (1 - m) x + m warp(x), m per image
  x = np.asarray(batch[0])
  for v in range(2):
    mixed, chains, w, m = prime.augment_images(
        shared, jax.random.split(jax.random.key(0), 4), batch,
        shared.shared_params(jax.random.key(v), 8, 8))
    chains = np.asarray(chains[:, 0])
    assert np.abs(chains[0] - x).max() > 1e-3  # it warps ...
    for n in range(1, 4):  # ... every image the same way
      np.testing.assert_allclose(chains[n], chains[0], atol=1e-6)
  # In the views: warp = x + (view - x) / m for each image; equal across the batch, not
  # across the two views.
  delta = warped - x[None, None]
  direction = delta / np.maximum(np.abs(delta).reshape(2, 4, -1).max(-1)[..., None, None, None],
                                 1e-12)
  for v in range(2):
    for n in range(1, 4):
      np.testing.assert_allclose(direction[v, n], direction[v, 0], atol=1e-4)
  assert np.abs(direction[0, 0] - direction[1, 0]).max() > 1e-2
  # Per-image draws: the same images get different warps.
  own = prime.PRIME(shared_draws=False, **only_diffeo)
  _, chains, _, _ = prime.augment_images(own, jax.random.split(jax.random.key(0), 4), batch)
  assert np.abs(np.asarray(chains[1, 0]) - np.asarray(chains[0, 0])).max() > 1e-3


def test_shared_draws_keep_per_image_colour_and_filter_noise():
  """Shared: the colour map's cut and T and the filter's sigma are the call's, but the colour
  coefficients and the filter kernel are each image's own (color_jitter.py:51-54,
  rand_filter.py:35): identical images still differ."""
  batch = jnp.broadcast_to(images(7, (1, 8, 8, 3)), (3, 8, 8, 3)) * 0.5 + 0.25
  for transform in ("color", "filter"):
    method = prime.PRIME(transforms=(transform,), width=1, depth=1, pad=0, flip=False)
    params = method.shared_params(jax.random.key(4), 8, 8)
    _, chains, _, _ = prime.augment_images(method, jax.random.split(jax.random.key(1), 3), batch,
                                           params)
    assert np.abs(np.asarray(chains[1, 0]) - np.asarray(chains[0, 0])).max() > 1e-4, transform
  # The colour map's T is shared: at a shared T uniform of 0 every image's map is the identity.
  method = prime.PRIME(transforms=("color",), width=1, depth=1, pad=0, flip=False)
  params = method.shared_params(jax.random.key(4), 8, 8)
  params = dict(params, u=params["u"].at[:, 4].set(0.0))
  _, chains, _, _ = prime.augment_images(method, jax.random.split(jax.random.key(1), 3), batch,
                                         params)
  np.testing.assert_allclose(chains[:, 0], batch, atol=1e-6)
  # The filter's sigma is shared: with the shared sigma uniform at 0 every image gets the
  # identity tap only (the reference's one-pixel shift), whatever its own kernel noise.
  method = prime.PRIME(transforms=("filter",), width=1, depth=1, pad=0, flip=False)
  params = method.shared_params(jax.random.key(4), 8, 8)
  params = dict(params, u=params["u"].at[:, 5].set(0.0))
  _, chains, _, _ = prime.augment_images(method, jax.random.split(jax.random.key(1), 3), batch,
                                         params)
  shifted = jnp.pad(batch[0], ((0, 1), (0, 1), (0, 0)))[1:, 1:]
  for n in range(3):
    np.testing.assert_allclose(chains[n, 0], shifted, atol=1e-6)


def test_per_image_draws_are_the_earlier_prime():
  """shared_draws=False keeps the per-image PRIME that the first CPU runs trained with: its
  views are the flat vmap over 2N keys."""
  method = prime.PRIME(shared_draws=False, pad=0, flip=False)
  batch = images(8, (2, 8, 8, 3))
  views, _ = method.views(jax.random.key(5), batch, jnp.zeros(2, jnp.int32))
  _, k_aug = jax.random.split(jax.random.key(5))
  mixed, _, _, _ = prime.augment_images(method, jax.random.split(k_aug, 4),
                                        jnp.concatenate([batch, batch]))
  np.testing.assert_allclose(views[1:], np.asarray(mixed).reshape(2, 2, 8, 8, 3), atol=1e-6)
  with pytest.raises(ValueError, match="shared_draws"):
    prime.PRIME(shared_draws="no")


def test_views_accept_a_legacy_uint32_key():
  """A plain `jax.random.PRNGKey(0)` ((2,) uint32, the most common key) works as a typed key
  does: the shared draws split it into (2, N) keys (issue #27)."""
  method = prime.PRIME(pad=0, flip=False, width=1, depth=1)
  batch = images(10, (2, 8, 8, 3))
  labels = jnp.zeros(2, jnp.int32)
  legacy, _ = method.views(jax.random.PRNGKey(0), batch, labels)
  typed, _ = method.views(jax.random.wrap_key_data(jax.random.PRNGKey(0)), batch, labels)
  assert legacy.shape == (3, 2, 8, 8, 3)
  np.testing.assert_allclose(legacy, typed, atol=1e-6)  # the same draws from the same bits


@pytest.mark.parametrize("name", sorted(registry.METHODS))
def test_every_method_accepts_a_legacy_key(name):
  """Every method's views take a legacy (2,) uint32 key as well as a typed one, eagerly."""
  batch = images(11, (2, 8, 8, 3))
  labels = jnp.asarray([0, 1], jnp.int32)
  if name == "paper":
    from freqrobust.augment import aps, paper
    method = aps.PaperMethod(augment=paper.AugmentParams())
  else:
    method = registry.METHODS[name]()
  # base.Forward: forward(images, bn=...) -> logits; linear in the images (attacks need a
  # gradient).
  forward = lambda x, **kwargs: (jnp.zeros((x.shape[0], 10), jnp.float32)
                                 + x.mean((1, 2, 3))[:, None] * jnp.arange(10.0))
  views, _ = method.views(jax.random.PRNGKey(1), batch, labels, forward)
  assert views.shape == (method.num_views,) + batch.shape
  assert bool(jnp.all(jnp.isfinite(views)))
