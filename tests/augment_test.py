"""Laws of the training augmentation (METHOD §2, §4; docs/ARCHITECTURE.md)."""
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from freqrobust import augment, frequency

AugmentParams = augment.AugmentParams
FULL = AugmentParams(pad=4, suppress_prob=0.5, nfd=True, nfd_sigma=1.0, crop=True, flip=True,
                     clip=True)


def _images(seed, shape):
  return jax.random.uniform(jax.random.key(seed), shape, jnp.float32)


_AUGMENT_BATCH = jax.jit(augment.augment_batch, static_argnames="params")
_AUGMENT_EXAMPLE = jax.jit(augment.augment_example, static_argnames="params")


def _run(params, key, images):
  return _AUGMENT_BATCH(key, images, params=params)


class AugmentTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_all_switches_off_is_identity(self):
    image = _images(0, (12, 10, 3))
    out, aux = self.variant(augment.augment_example, static_argnums=2)(
        jax.random.key(1), image, AugmentParams.identity())
    chex.assert_trees_all_close(out, image)
    self.assertFalse(bool(aux["suppressed"]))
    self.assertEqual(float(aux["keep"]), 1.0)

  @parameterized.parameters(((12, 12, 3),), ((9, 14, 1),))
  def test_shape_dtype_and_aux(self, shape):
    images = _images(2, (4,) + shape)
    out, aux = _run(FULL, jax.random.key(3), images)
    chex.assert_shape(out, images.shape)
    chex.assert_type(out, jnp.float32)
    chex.assert_shape([aux["suppressed"], aux["mask"], aux["keep"]], [(4,)] * 3)
    chex.assert_type([aux["suppressed"], aux["mask"], aux["keep"]],
                     [jnp.bool_, jnp.int32, jnp.float32])
    self.assertTrue(bool(jnp.all((out >= 0) & (out <= 1))))
    self.assertGreater(float(jnp.abs(out - images).max()), 1e-3)

  def test_hw_image(self):
    image = _images(4, (12, 12))
    out, _ = _AUGMENT_EXAMPLE(jax.random.key(5), image, params=FULL)
    chex.assert_shape(out, (12, 12))

  def test_suppression_frequency_masks_and_keep(self):
    params = AugmentParams(pad=2, suppress_prob=0.3, suppress_masks=("L", "H"),
                           keep_range=(0.2, 0.6), crop=False, flip=False, clip=False)
    n = 2000
    _, aux = _run(params, jax.random.key(6), jnp.zeros((n, 8, 8, 1)))
    suppressed = np.asarray(aux["suppressed"])
    self.assertBetween(suppressed.mean(), 0.3 - 0.045, 0.3 + 0.045)  # 4.4 standard errors
    masks = np.asarray(aux["mask"])[suppressed]
    self.assertEqual(set(masks.tolist()), {0, 2})
    self.assertBetween((masks == 0).mean(), 0.4, 0.6)
    keep = np.asarray(aux["keep"])
    self.assertTrue(np.all((keep[suppressed] >= 0.2) & (keep[suppressed] <= 0.6)))
    np.testing.assert_array_equal(keep[~suppressed], 1.0)

  def test_suppression_matches_power_suppress(self):
    params = AugmentParams(pad=4, suppress_prob=1.0, nfd=False, crop=False, flip=False,
                           clip=False)
    images = _images(7, (4, 12, 12, 3))
    out, aux = _run(params, jax.random.key(8), images)
    self.assertTrue(bool(jnp.all(aux["suppressed"])))
    suppress = jax.jit(frequency.power_suppress)
    for image, result, m, k in zip(images, out, aux["mask"], aux["keep"]):
      padded = jnp.pad(image, ((4, 4), (4, 4), (0, 0)))
      expected = suppress(padded, frequency.aps_mask("LMH"[int(m)], 20, 20), k)
      chex.assert_trees_all_close(result, expected[4:16, 4:16], atol=1e-5)

  def test_nfd_with_zero_sigma_is_identity(self):
    params = AugmentParams(pad=4, suppress_prob=0.0, nfd=True, nfd_sigma=0.0, crop=False,
                           flip=False, clip=False)
    images = _images(9, (4, 12, 12, 3))
    out, _ = _run(params, jax.random.key(10), images)
    chex.assert_trees_all_close(out, images, atol=1e-5)

  def test_crop_and_flip(self):
    image = _images(13, (8, 8, 1))
    padded = np.pad(np.asarray(image), ((2, 2), (2, 2), (0, 0)))
    windows = {(dy, dx): padded[dy:dy + 8, dx:dx + 8] for dy in range(5) for dx in range(5)}
    params = AugmentParams(pad=2, suppress_prob=0.0, nfd=False, crop=True, flip=True,
                           clip=False)
    out, _ = _run(params, jax.random.key(14), jnp.broadcast_to(image, (200, 8, 8, 1)))
    seen, flips = set(), 0
    for x in np.asarray(out):
      match = [(o, f) for o, win in windows.items() for f, cand in ((0, win), (1, win[:, ::-1]))
               if np.array_equal(x, cand)]
      self.assertLen(match, 1)
      seen.add(match[0][0])
      flips += match[0][1]
    self.assertLen(seen, 25)  # every offset in [0, 2 * pad] is reachable
    self.assertBetween(flips / 200, 0.35, 0.65)

  def test_deterministic_for_a_key_and_no_retrace(self):
    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(key, images):
      return augment.augment_batch(key, images, FULL)

    images = _images(15, (4, 12, 12, 3))
    a, aux_a = step(jax.random.key(16), images)
    b, aux_b = step(jax.random.key(16), images)
    c, _ = step(jax.random.key(17), _images(16, (4, 12, 12, 3)))
    chex.assert_trees_all_equal((a, aux_a), (b, aux_b))
    self.assertGreater(float(jnp.abs(a - c).max()), 1e-3)

  def test_batch_equals_example_loop(self):
    images = _images(18, (4, 12, 12, 3))
    key = jax.random.key(19)
    out, aux = _run(FULL, key, images)
    keys = jax.random.split(key, 4)
    loop = [_AUGMENT_EXAMPLE(k, x, params=FULL) for k, x in zip(keys, images)]
    chex.assert_trees_all_close(out, jnp.stack([o for o, _ in loop]), atol=1e-5)
    for name in ("suppressed", "mask", "keep"):
      chex.assert_trees_all_close(aux[name], jnp.stack([a[name] for _, a in loop]))

  def test_bad_inputs_raise(self):
    with pytest.raises(ValueError, match="NHWC"):
      augment.augment_batch(jax.random.key(0), jnp.zeros((8, 8, 3)), FULL)
    with pytest.raises(ValueError, match="float"):
      augment.augment_example(jax.random.key(0), jnp.zeros((8, 8, 3), jnp.uint8), FULL)


class ParamsTest(parameterized.TestCase):

  def test_from_config(self):
    cfg = ml_collections.ConfigDict(dict(
        pad=2, suppress_prob=0.25, suppress_masks=("M", "H"), keep_range=(0.1, 0.9), nfd=True,
        nfd_sigma=0.5, crop=False, flip=True, clip=False))
    params = AugmentParams.from_config(cfg)
    self.assertEqual(params, AugmentParams(2, 0.25, ("M", "H"), (0.1, 0.9), True, 0.5, False,
                                           True, False))
    self.assertEqual(hash(params), hash(AugmentParams.from_config(cfg)))
    self.assertEqual(AugmentParams.from_config({"suppress_masks": "LH"}).suppress_masks,
                     ("L", "H"))
    self.assertEqual(AugmentParams.from_config({"suppress_masks": ["L"]}).suppress_masks, ("L",))

  @parameterized.parameters(
      ({"suppress_masks": ("L", "X")}, "Unknown suppress_masks"),
      ({"suppress_masks": ("L", "L")}, "repeats"),
      ({"suppress_masks": ()}, "at least one mask"),
      ({"keep_range": (0.5, 0.2)}, "keep_range"),
      ({"keep_range": (0.0, 1.5)}, "keep_range"),
      ({"suppress_prob": 1.5}, "suppress_prob"),
      ({"pad": -1}, "pad"),
      ({"nfd_sigma": -1.0}, "nfd_sigma"),
      ({"flip": "yes"}, "flip"),
      ({"padding": 4}, "known fields"),
  )
  def test_invalid_config_raises(self, fields, message):
    with pytest.raises(ValueError, match=message):
      AugmentParams.from_config(ml_collections.ConfigDict(fields))
