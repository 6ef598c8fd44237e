"""Regression law of the augmentation noise, found by training on real data (NaN in one image in
about 30 000 from the fast normal sampler)."""
import jax.numpy as jnp
import numpy as np

from freqrobust import frequency


def test_bits_to_standard_normal_is_finite_at_the_extremes():
  bits = jnp.asarray([0, 1, 2**31, 2**32 - 2, 2**32 - 1], jnp.uint32)
  z = np.asarray(frequency.bits_to_standard_normal(bits))
  assert np.all(np.isfinite(z))
  assert z[0] < -5 and z[-1] > 5  # The tails are still reached.
  np.testing.assert_allclose(z[0], -z[-1], rtol=1e-5)  # Symmetric mapping.

