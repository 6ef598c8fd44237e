"""Laws of the adversarial Fourier-basis search (freqrobust/attacks/fourier_bases.py): a model
sensitive to one known basis has that basis found; accuracy under the per-image worst basis is
<= accuracy under any fixed basis, which matches a direct evaluation; chunking of the images does
not change the answer. Tiny: 8x8x2."""
import jax
import jax.numpy as jnp
import numpy as np

from freqrobust import frequency
from freqrobust.attacks import fourier_bases

N, H, W, C = 12, 8, 8, 2
U = frequency.fourier_basis(H, W, 2, 3)


def sensitive(x):
  """Class 0 unless the image moves along +U_{2,3} (3 classes)."""
  proj = jnp.einsum("nhwc,hw->n", x - 0.5, U)
  return jnp.stack([jnp.zeros_like(proj), 10.0 * proj - 1.0, jnp.full_like(proj, -5.0)], -1)


_rng = np.random.default_rng(7)
W1 = jnp.asarray(_rng.standard_normal((H * W * C, 16)) * 0.2, jnp.float32)
W2 = jnp.asarray(_rng.standard_normal((16, 4)), jnp.float32)


def mlp(x):
  return jax.nn.relu(x.reshape(x.shape[0], -1) @ W1) @ W2


def images(lo, hi):
  return np.asarray(jax.random.uniform(jax.random.key(0), (N, H, W, C), jnp.float32, lo, hi))


def test_the_one_sensitive_basis_is_found():
  x = images(0.45, 0.55)
  y = np.zeros(N, np.int32)
  assert bool(np.all(np.argmax(sensitive(jnp.asarray(x)), -1) == 0))
  out = fourier_bases.worst_fourier_basis(sensitive, x, y, eps=0.2)
  assert np.all(out["worst_i"] == 2) and np.all(out["worst_j"] == 3)
  assert np.all(out["worst_sign"] == 1)
  assert out["accuracy"] == 0
  expected = np.zeros((H, W), np.float32)
  expected[2, 3] = expected[-2, -3] = 1.0  # Both members of the mirror pair.
  np.testing.assert_array_equal(out["heatmap"], expected)
  acc = np.ones((2, H, W), np.float32)
  acc[0, 2, 3] = acc[0, -2, -3] = 0.0
  np.testing.assert_array_equal(out["basis_accuracy"], acc)


def test_worst_basis_is_no_weaker_than_any_fixed_basis():
  x = images(0.0, 1.0)
  y = np.asarray(jnp.argmax(mlp(jnp.asarray(x)), -1), np.int32)
  eps = 1.5
  out = fourier_bases.worst_fourier_basis(mlp, x, y, eps=eps, bases_per_step=8)
  assert out["accuracy"] <= out["basis_accuracy"].min()
  assert out["accuracy"] < 1  # The search found something.
  assert out["correct"].mean() == out["accuracy"]
  for i, j, s in [(0, 0, 1), (1, 2, -1), (4, 4, 1), (3, 7, -1)]:
    delta = s * eps * frequency.fourier_basis(H, W, i, j)[:, :, None] / np.sqrt(C)
    fixed = float(np.mean(np.argmax(mlp(jnp.clip(x + delta, 0, 1)), -1) == y))
    assert out["accuracy"] <= fixed
    assert abs(out["basis_accuracy"][0 if s > 0 else 1, i, j] - fixed) < 1e-6
  chunked = fourier_bases.worst_fourier_basis(mlp, x, y, eps=eps, bases_per_step=8,
                                              images_per_call=5)
  for k in ("worst_i", "worst_j", "worst_sign", "correct", "basis_accuracy", "heatmap"):
    np.testing.assert_array_equal(chunked[k], out[k])
