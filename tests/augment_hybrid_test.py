"""Laws of HybridAugment / HybridAugment++ (freqrobust/augment/hybrid.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselines_test import assert_views_contract, images
from freqrobust.augment import hybrid, ops


def _torchvision_blur(image: np.ndarray, kernel_size: int = 3, sigma: float = 0.5) -> np.ndarray:
  """torchvision.transforms.functional.gaussian_blur of an HWC image, in NumPy float64."""
  half = (kernel_size - 1) / 2
  x = np.linspace(-half, half, kernel_size)
  k = np.exp(-0.5 * (x / sigma) ** 2)
  k /= k.sum()
  kernel = np.outer(k, k)
  r = kernel_size // 2
  padded = np.pad(np.asarray(image, np.float64), ((r, r), (r, r), (0, 0)), mode="reflect")
  h, w = image.shape[:2]
  out = np.zeros((h, w, image.shape[2]))
  for a in range(kernel_size):
    for b in range(kernel_size):
      out += kernel[a, b] * padded[a:a + h, b:b + w]
  return out


def test_low_pass_is_torchvision_gaussian_blur():
  image = np.asarray(images(0, (1, 9, 7, 3))[0])
  np.testing.assert_allclose(hybrid.low_pass(jnp.asarray(image)), _torchvision_blur(image),
                             atol=1e-6)
  k = hybrid.gaussian_kernel1d(3, 0.5)
  np.testing.assert_allclose(k, [0.10650698, 0.78698604, 0.10650698], atol=1e-7)


def test_paired_hybrid_has_low_band_of_image_and_high_band_of_partner():
  batch = images(1, (5, 8, 8, 3))
  pair = jax.jit(hybrid.hybrid_pair, static_argnames="plus")
  mixed, applied, partner = pair(jax.random.key(0), batch, plus=False, prob=1.0)
  assert bool(applied) and sorted(np.asarray(partner).tolist()) == list(range(5))
  low = jax.vmap(hybrid.low_pass)(batch)
  high = batch - low
  np.testing.assert_allclose(mixed, low + high[partner], atol=1e-6)
  # So the output minus the partner is the low band of (image - partner): the partner's high
  # frequencies pass untouched and only the image's low frequencies are added.
  np.testing.assert_allclose(mixed - batch[partner],
                             jax.vmap(hybrid.low_pass)(batch - batch[partner]), atol=1e-6)
  untouched, applied, _ = pair(jax.random.key(0), batch, plus=False, prob=0.0)
  assert not bool(applied)
  np.testing.assert_array_equal(untouched, batch)


def test_paired_hybrid_plus_recombines_the_low_bands():
  batch = images(2, (4, 8, 8, 3))
  mixed, _, partner = jax.jit(hybrid.hybrid_pair, static_argnames="plus")(
      jax.random.key(3), batch, plus=True, prob=1.0, apr_prob=1.0)
  low = jax.vmap(hybrid.low_pass)(batch)
  recombined = np.asarray(mixed - (batch - low)[partner], np.float64)
  f_low = np.fft.fftn(np.asarray(low, np.float64), axes=(1, 2, 3))
  f_rec = np.fft.fftn(recombined, axes=(1, 2, 3))
  for n in range(4):
    # The phase of image n's own low band ...
    defined = np.abs(f_rec[n]) > 1e-3 * np.abs(f_rec[n]).max()
    phase_error = np.angle(f_rec[n][defined] * np.conj(f_low[n][defined]))
    assert np.abs(phase_error).max() < 1e-3
    # ... with the amplitude of some image's low band (APR-P's own permutation).
    errors = [np.abs(np.abs(f_rec[n]) - np.abs(f_low[j])).max() for j in range(4)]
    assert min(errors) < 1e-4 * np.abs(f_low).max()


def test_keep_black_keeps_the_black_pixels_and_mixes_the_rest():
  """The ablation field: black pixels of x_n stay black in its paired view; every other pixel
  is the published HA++-P output with the same partners."""
  batch = np.array(images(4, (4, 8, 8, 1)))
  batch[:, :3] = 0.0  # a black band at the top of every image
  batch = jnp.asarray(batch)
  pair = jax.jit(hybrid.hybrid_pair, static_argnames=("plus", "keep_black"))
  mixed, applied, partner = pair(jax.random.key(5), batch, plus=True, prob=1.0,
                                 keep_black=True)
  plain, _, partner_plain = pair(jax.random.key(5), batch, plus=True, prob=1.0)
  assert bool(applied)
  np.testing.assert_array_equal(np.asarray(partner), np.asarray(partner_plain))
  black = np.asarray(batch) == 0
  assert np.all(np.asarray(mixed)[black] == 0)
  assert np.abs(np.asarray(plain)[black]).max() > 1e-2  # HA++-P itself lifts them
  np.testing.assert_array_equal(np.asarray(mixed)[~black], np.asarray(plain)[~black])
  # Through the method's views: the paired view keeps the zeros (no crop, no flip here).
  method = hybrid.HybridAugmentP(keep_black=True, pad=0, flip=False, pair_prob=1.0)
  views, extras = method.views(jax.random.key(1), batch, jnp.zeros(4, jnp.int32))
  assert bool(np.asarray(extras["pair_applied"]).all())
  np.testing.assert_array_equal(np.asarray(views[0]), np.asarray(batch))
  assert np.all(np.asarray(views[1])[black] == 0)
  assert np.abs(np.asarray(views[1])[~black] - np.asarray(batch)[~black]).max() > 1e-2
  with pytest.raises(ValueError, match="keep_black"):
    hybrid.HybridAugmentP(keep_black="yes")


@pytest.mark.parametrize("wrap", [True, False])
def test_single_hybrid_is_one_of_its_branches(wrap):
  image = images(4, (1, 8, 8, 3))[0]
  single = jax.jit(lambda k: hybrid.hybrid_single(k, image, plus=False,
                                                  return_intermediates=True, uint8_wrap=wrap))
  kinds = set()
  for seed in range(24):
    out, x1, x2 = single(jax.random.key(seed))
    if np.array_equal(out, x1):
      kinds.add("op only")
      continue
    lp = hybrid.low_pass
    candidates = [ops.truncate_to_uint8(lp(x1) + x2 - lp(x2), wrap),
                  ops.truncate_to_uint8(lp(x2) + x1 - lp(x1), wrap)]
    errors = [float(jnp.abs(out - c).max()) for c in candidates]
    assert min(errors) < 1.5 / 255, errors  # a floor may fall on the other side of a level
    kinds.add(("low x1, high x2", "low x2, high x1")[int(np.argmin(errors))])
  assert kinds == {"op only", "low x1, high x2", "low x2, high x1"}


def test_hybrid_plus_single_wraps_its_uint8_casts():
  """HA++-S (plus=True, the default): with uint8_wrap the casts wrap, so some outputs differ from
  the clipped variant's (same key, same draws); every output is a uint8 level either way."""
  batch = images(11, (16, 8, 8, 3))
  keys = jax.random.split(jax.random.key(2), 16)
  run = lambda wrap: jax.vmap(lambda k, x: hybrid.hybrid_single(k, x, uint8_wrap=wrap))(keys, batch)
  wrapped, clipped = np.asarray(run(True)), np.asarray(run(False))
  for out in (wrapped, clipped):
    np.testing.assert_allclose(out * 255, np.round(out * 255), atol=1e-3)
    assert out.min() >= 0 and out.max() <= 1
  differ = np.abs(wrapped - clipped) > 1.5 / 255
  assert differ.any() and not differ.all()


def test_views_and_loss():
  labels = jnp.arange(4, dtype=jnp.int32)
  batch = images(5, (4, 8, 8, 3))
  views, aux = assert_views_contract(hybrid.HybridAugmentPS(pair_prob=1.0), batch, labels)
  assert float(views[0].min()) >= 0 and float(views[0].max()) <= 1
  np.testing.assert_allclose(views[0] * 255, jnp.round(views[0] * 255), atol=1e-3)  # uint8
  assert bool(jnp.all(aux["pair_applied"]))
  method = hybrid.HybridAugmentP(plus=False, pair_prob=1.0, pad=0, flip=False)
  views, aux = assert_views_contract(method, batch, labels, vmap_batches=images(6, (2, 4, 8, 8, 3)))
  np.testing.assert_array_equal(views[0], batch)
  low = jax.vmap(hybrid.low_pass)(batch)
  np.testing.assert_allclose(views[1], low + (batch - low)[aux["partner"]], atol=1e-6)
  # HA-S alone: the first view of HA-PS (whose jit = eager is checked above), run eagerly.
  views, _ = assert_views_contract(hybrid.HybridAugmentS(), batch, labels, jit=False)
  assert views.shape == (1, 4, 8, 8, 3)

  logits = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4, 10)), jnp.float32)
  for cls in (hybrid.HybridAugmentP, hybrid.HybridAugmentPS):
    assert (cls.num_views, cls.ce_views, cls.ce_paired_views) == (2, (0,), (1,))
    assert cls().loss_terms(logits, None, labels, aux, None) == {}
  assert hybrid.HybridAugmentS.ce_paired_views == ()
  assert hybrid.HybridAugmentS().loss_terms(logits[:1], None, labels, {}, None) == {}
