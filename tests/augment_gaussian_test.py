"""Laws of Gaussian noise training (freqrobust/augment/gaussian.py) and of the crop/flip."""
import jax
import jax.numpy as jnp
import numpy as np

from baselines_test import assert_views_contract, images
from freqrobust.augment import gaussian, ops


def test_noise_has_the_stated_sigma_on_the_noised_half():
  method = gaussian.GaussianNoise(sigma=0.1, pad=0, flip=False)
  grey = jnp.full((8, 16, 16, 3), 0.5)  # 5 sigma from both bounds: the clip does not bite
  views, aux = jax.jit(method.views)(jax.random.key(0), grey, jnp.zeros(8, jnp.int32))
  out = np.asarray(views[0])
  np.testing.assert_array_equal(np.asarray(aux["noised"]), [False] * 4 + [True] * 4)
  np.testing.assert_array_equal(out[:4], 0.5)  # Rusak et al.: p_clean = 0.5 stay clean
  noise = out[4:] - 0.5  # 3072 draws: the std's standard error is 0.1 / sqrt(6144) = 0.0013
  np.testing.assert_allclose(noise.std(), 0.1, atol=0.008)
  np.testing.assert_allclose(noise.mean(), 0.0, atol=0.01)
  np.testing.assert_allclose(np.asarray(aux["sigma"]), [0] * 4 + [0.1] * 4)


def test_clean_fraction_rounding_clip_and_sigma_list():
  assert gaussian.noised_mask(5, 0.5).tolist() == [False, False, True, True, True]  # np.round
  assert gaussian.noised_mask(4, 0.0).tolist() == [True] * 4
  method = gaussian.GaussianNoise(sigmas=(0.05, 0.3), clean_fraction=0.0, pad=0, flip=False)
  batch = images(1, (6, 8, 8, 3))
  views, aux = jax.jit(method.views)(jax.random.key(2), batch, jnp.zeros(6, jnp.int32))
  drawn = np.asarray(aux["sigma"])
  assert np.all(np.isclose(drawn, 0.05) | np.isclose(drawn, 0.3))
  assert float(views.min()) >= 0 and float(views.max()) <= 1


def test_crop_flip_is_a_translated_padded_window():
  image = images(2, (1, 6, 6, 2))[0]
  out = jax.jit(ops.crop_flip, static_argnums=(2, 3, 4))(jax.random.key(0), image, 2, True, 0.5)
  padded = np.pad(np.asarray(image), ((2, 2), (2, 2), (0, 0)), constant_values=0.5)
  windows = [padded[i:i + 6, j:j + 6] for i in range(5) for j in range(5)]
  windows += [w[:, ::-1] for w in windows]
  assert any(np.array_equal(np.asarray(out), w) for w in windows)
  offsets = set()
  for seed in range(60):
    out = np.asarray(ops.crop_flip(jax.random.key(seed), image, 2, False))
    padded = np.pad(np.asarray(image), ((2, 2), (2, 2), (0, 0)))
    offsets |= {(i, j) for i in range(5) for j in range(5)
                if np.array_equal(out, padded[i:i + 6, j:j + 6])}
  assert len(offsets) >= 15  # all 25 offsets are equally likely


def test_views_contract():
  method = gaussian.GaussianNoise()
  assert (method.name, method.num_views, method.ce_views) == ("gaussian", 1, (0,))
  assert_views_contract(method, images(3, (4, 8, 8, 3)), jnp.zeros(4, jnp.int32),
                        vmap_batches=images(4, (2, 4, 8, 8, 3)))
