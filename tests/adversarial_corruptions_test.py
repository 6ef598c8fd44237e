"""Laws of the adversarial corruptions (freqrobust/attacks/corruption_attacks.py, corruption_ops.py):
per attack, budget zero returns the image, the budget bounds the latents, and the attack is at
least as strong as its random draw; the JPEG shortcut equals the reference's encode / perturb /
decode; a uniform elastic flow is a shift; the UA summary's mean. Tiny: 8x8x3, 4 classes."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.fft

from freqrobust.attacks import corruption_attacks as ca
from freqrobust.attacks import corruption_ops as ops

N, SHAPE, K = 8, (8, 8, 3), 4
_rng = np.random.default_rng(11)
W1 = jnp.asarray(_rng.standard_normal((int(np.prod(SHAPE)), K)) * 0.3, jnp.float32)


def linear(x):
  return (x.reshape(x.shape[0], -1) - 0.5) @ W1


def images(shape=SHAPE, seed=2):
  n = N * int(np.prod(shape))
  return jax.random.uniform(jax.random.key(seed), (n,), jnp.float32).reshape((N,) + shape)


def labels_of(x):
  return jnp.argmax(linear(x), -1).astype(jnp.int32)


@pytest.mark.parametrize("name", list(ca.ATTACKS))
def test_budget_zero_returns_the_image(name):
  x = images()
  adv, latents = ca.adversarial_corruption(linear, jax.random.key(0), x, labels_of(x), name,
                                           0.0, steps=2)
  # Snow's zero latents leave its deterministic part, the wintery tint.
  if name == "snow":  # (Another XLA program: equal to float rounding.)
    np.testing.assert_allclose(np.asarray(adv), np.clip(ops.snow_discolour(x), 0, 1), atol=1e-6)
  else:
    np.testing.assert_array_equal(np.asarray(adv), np.asarray(x))
  assert float(jnp.max(ca.latent_norms(latents, ca.ATTACKS[name].norm))) == 0.0


@pytest.mark.parametrize("name", list(ca.ATTACKS))
def test_budget_bounds_the_latents_and_the_attack_beats_its_random_draw(name):
  x = images()
  y = labels_of(x)
  spec = ca.ATTACKS[name]
  eps = ca.budget_of(name, "high")
  key = jax.random.key(3)
  random, _ = ca.adversarial_corruption(linear, key, x, y, name, "high", steps=0)
  adv, latents = ca.adversarial_corruption(linear, key, x, y, name, "high", steps=3,
                                           step_size=eps / 2)
  assert float(jnp.max(ca.latent_norms(latents, spec.norm))) <= eps * (1 + 1e-5)
  assert float(jnp.max(ca.latent_norms(latents, spec.norm))) > 0  # (Snow: some have no flake.)
  assert bool(jnp.all((adv >= 0) & (adv <= 1)))

  def ce(z):
    logits = jax.nn.log_softmax(linear(z))
    return np.asarray(-jnp.take_along_axis(logits, y[:, None], -1)[:, 0])

  def accuracy(z):
    return float(jnp.mean(jnp.argmax(linear(z), -1) == y))

  assert accuracy(adv) <= accuracy(random)
  assert np.all(ce(adv) >= ce(random) - 1e-6)
  assert ce(adv).mean() > ce(random).mean()


def test_jpeg_equals_the_reference_encode_perturb_decode():
  x = np.asarray(images((16, 8, 3)))
  v = 0.02 * np.asarray(jax.random.normal(jax.random.key(1), x.shape))
  to_ycbcr = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5],
                       [0.5, -0.418688, -0.081312]])
  to_rgb = np.array([[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]])
  ycbcr = (255 * x.astype(np.float64)) @ to_ycbcr.T + [0, 128, 128]
  out = np.empty_like(ycbcr)
  for r in range(0, 16, 8):  # Each 8x8 block: DCT of (value - 128), + 255 v, inverse, + 128.
    block = ycbcr[:, r:r + 8] - 128
    coef = scipy.fft.dctn(block, type=2, axes=(1, 2), norm="ortho") + 255 * v[:, r:r + 8]
    out[:, r:r + 8] = scipy.fft.idctn(coef, type=2, axes=(1, 2), norm="ortho") + 128
  expected = np.clip(((out - [0, 128, 128]) @ to_rgb.T) / 255, 0, 1)
  got = ops.jpeg_apply(jnp.asarray(x), jnp.asarray(v, jnp.float32), None)
  np.testing.assert_allclose(np.asarray(got), expected, atol=2e-5)


def test_snow_flake_is_a_centred_diagonal_line():
  thin, wide = ops.snow_flake(1.0), ops.snow_flake(5.0)
  np.testing.assert_array_equal(np.diag(thin), [1, 1, 1])
  assert thin[0, 2] == thin[2, 0] == 0 and 0 < thin[0, 1] < 1
  np.testing.assert_array_equal(thin, thin.T)
  assert wide[0, 1] == 1  # A wider line fills its neighbours.


def test_uniform_elastic_flow_is_a_shift():
  x = images()
  flow = jnp.zeros((N, 4, 4, 2)).at[..., 0].set(2.0 / SHAPE[1])  # One pixel in x.
  got = ops.elastic_apply(x, flow, None)
  np.testing.assert_allclose(np.asarray(got[:, :, :-1]), np.asarray(x[:, :, 1:]), atol=1e-5)


@pytest.mark.parametrize("name", ["jpeg", "fog", "elastic"])
def test_grey_images_of_any_size(name):
  x = images((12, 12, 1))
  adv, _ = ca.adversarial_corruption(linear_grey, jax.random.key(0), x,
                                     jnp.zeros(N, jnp.int32), name, 0.0, steps=1)
  np.testing.assert_array_equal(np.asarray(adv), np.asarray(x))
  adv, _ = ca.adversarial_corruption(linear_grey, jax.random.key(0), x,
                                     jnp.zeros(N, jnp.int32), name, "medium", steps=1)
  assert adv.shape == x.shape and float(jnp.max(jnp.abs(adv - x))) > 0


def linear_grey(x):
  return (x.reshape(x.shape[0], -1) - 0.5) @ W1[:144]


def test_ua_summary_is_the_mean_over_the_attacks():
  x = images()
  out = ca.ua_summary(linear, jax.random.key(0), x, labels_of(x), names=("jpeg", "fog"),
                      steps=1)
  assert set(out) == {"jpeg", "fog", "mean"}
  assert out["mean"] == pytest.approx((out["jpeg"] + out["fog"]) / 2)


def test_bad_budget_and_name_are_refused():
  with pytest.raises(ValueError, match="budget="):
    ca.budget_of("fog", "extreme")
  with pytest.raises(ValueError, match="Unknown adversarial corruption"):
    ca.budget_of("rain", "low")


def test_the_loop_and_the_unrolled_steps_agree():
  x = images()
  y = labels_of(x)
  a, _ = ca.adversarial_corruption(linear, jax.random.key(1), x, y, "fog", "high", steps=2,
                                   unroll=True)
  b, _ = ca.adversarial_corruption(linear, jax.random.key(1), x, y, "fog", "high", steps=2,
                                   unroll=False)
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
