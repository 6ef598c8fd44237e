"""Laws of the augmentation noise: finite at the sampler's extremes (a regression found by
training on real data: NaN in one image in about 30 000), and the per-coefficient variance the
paper states for NFD, through `frequency.nfd` and through the training augmentation."""
import jax
import jax.numpy as jnp
import numpy as np

from freqrobust import augment
from freqrobust import frequency


def test_bits_to_standard_normal_is_finite_at_the_extremes():
  bits = jnp.asarray([0, 1, 2**31, 2**32 - 2, 2**32 - 1], jnp.uint32)
  z = np.asarray(frequency.bits_to_standard_normal(bits))
  assert np.all(np.isfinite(z))
  assert z[0] < -5 and z[-1] > 5  # The tails are still reached.
  np.testing.assert_allclose(z[0], -z[-1], rtol=1e-5)  # Symmetric mapping.



# --- the noise variance the paper states, per coefficient (eq. 11-12) --------------------------

H, W, C = 10, 12, 3  # even sizes: the self-conjugate rows and columns (0, H/2; 0, W/2) exist
SIGMA = 2.0  # a variance (METHOD §4)
DRAWS = 4096  # x C channels: the variance estimate of one coefficient is within ~1.3 % (1 std)


def _control() -> np.ndarray:
  """A fixed control matrix: full stop on one band (variance 0), partial on others."""
  masks = frequency.nfd_band_masks(H, W)
  return (0.3 * masks[0] + 1.0 * masks[2] + 0.6 * masks[4]).astype(np.float32)


def _recovered_amplitude(image: np.ndarray, outs: np.ndarray) -> np.ndarray:
  """(DFT(out) - DFT(in)) / Dir DFT(in): real when the phase is kept; (draws, H, W, C)."""
  before = np.fft.fft2(np.asarray(image, np.float64), axes=(0, 1))
  after = np.fft.fft2(np.asarray(outs, np.float64), axes=(1, 2))
  amplitude = (after - before) / (before / np.abs(before))
  np.testing.assert_allclose(amplitude.imag, 0.0, atol=1e-3)  # the phase is kept
  return amplitude.real


def _assert_per_coefficient_variance(amplitude: np.ndarray, control: np.ndarray) -> None:
  variance = amplitude.var(axis=(0, 3))  # over draws and channels, per coefficient [i, j]
  expected = SIGMA * (1.0 - control)
  active = expected > 0.05 * SIGMA
  assert active.sum() > H * W // 3 and (~active).sum() > 10
  np.testing.assert_allclose(variance[active], expected[active], rtol=0.10)
  np.testing.assert_allclose(variance[~active], expected[~active], atol=0.01 * SIGMA)


def _image() -> np.ndarray:
  # + 0.5: no zero coefficient, so every direction Dir DFT(I) is defined.
  return np.asarray(jax.random.uniform(jax.random.key(0), (H, W, C)) + 0.5, np.float32)


def test_nfd_noise_has_variance_sigma_one_minus_m_at_every_coefficient():
  """Each coefficient's amplitude moves by R ~ N(0, sigma (1 - M)), including the self-conjugate
  ones (DC, Nyquist rows and columns): the noise is Hermitian, not halved by the real part."""
  image, control = _image(), _control()
  run = jax.jit(jax.vmap(lambda k: frequency.nfd(k, image, control, SIGMA)))
  outs = run(jax.random.split(jax.random.key(1), DRAWS))
  _assert_per_coefficient_variance(_recovered_amplitude(image, outs), control)


def test_augmentation_noise_has_the_same_per_coefficient_variance(monkeypatch):
  """The training path (rfft2 half-spectrum, `augment_example`) with pad, crop, flip, clip and
  suppression off, and its random control replaced by the fixed one to measure it."""
  image, control = _image(), _control()
  monkeypatch.setattr(frequency, "nfd_control", lambda key, band_masks: jnp.asarray(control))
  params = augment.AugmentParams(pad=0, suppress_prob=0.0, nfd=True, nfd_sigma=SIGMA,
                                 crop=False, flip=False, clip=False)
  run = jax.jit(jax.vmap(lambda k: augment.augment_example(k, image, params)[0]))
  outs = run(jax.random.split(jax.random.key(2), DRAWS))
  _assert_per_coefficient_variance(_recovered_amplitude(image, outs), control)
