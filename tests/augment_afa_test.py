"""Laws of Fourier-basis noise and AFA (freqrobust/augment/fourier_basis.py, afa.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselines_test import assert_views_contract, images
from freqrobust.augment import afa, fourier_basis, ops

_DRAW = jax.jit(fourier_basis.draw_waves, static_argnums=(1, 2, 3, 4, 5, 6, 7))


def _circular_distance(a, b, size):
  d = (a - b) % size
  return min(d, size - d)


def test_waves_are_unit_planar_waves_at_the_drawn_frequency():
  size = 16
  for seed in range(6):
    waves, strengths, nu, omega = _DRAW(jax.random.key(seed), size, 3, 2, 2, 448, 0.0, 10.0)
    assert waves.shape == (3, 2, 2, size, size) and strengths.shape == (3, 2, 2)
    np.testing.assert_allclose(np.linalg.norm(waves, axis=(-2, -1)), size / 32, rtol=1e-4)
    grid = np.linspace(-size / 2, size / 2, size)
    for c, f, p in [(0, 0, 0), (2, 1, 1)]:
      w = np.asarray(waves[c, f, p], np.float64)
      n, o = float(nu[c, f]), float(omega[c, f, p])
      # The closed form sin(2 pi nu (u cos omega + v sin omega) - pi/4), normalised.
      expected = np.sin(2 * np.pi * n * (grid[:, None] * np.cos(o) + grid[None, :] * np.sin(o))
                        - np.pi / 4)
      np.testing.assert_allclose(w, size / 32 * expected / np.linalg.norm(expected), atol=2e-5)
      # A planar wave sin(a i + b j + c) = sin(a i + c) cos(b j) + cos(a i + c) sin(b j): rank 2.
      sv = np.linalg.svd(w, compute_uv=False)
      assert sv[2] < 1e-4 * sv[0]
      # Its DFT peaks at the drawn frequency vector (cycles per image, the grid step being
      # S / (S - 1)) or its mirror, up to one bin (the frequency is generally not on the grid).
      peak = np.unravel_index(np.argmax(np.abs(np.fft.fft2(w))), w.shape)
      scale = n * size / (size - 1) * size
      rows, cols = scale * np.cos(o), scale * np.sin(o)
      assert any(_circular_distance(peak[0], s * rows, size) <= 1
                 and _circular_distance(peak[1], s * cols, size) <= 1 for s in (1, -1))
    directions = np.asarray(omega)
    assert np.all((directions <= 0) & (directions >= -np.pi))


def test_strengths_are_exponential_and_perturbation_is_their_sum_of_waves():
  strengths = np.stack([np.asarray(_DRAW(jax.random.key(k), 16, 3, 2, 2, 448, 0.0, 10.0)[1])
                        for k in range(100)]).ravel()
  assert strengths.min() >= 0  # 1200 draws of Exp(mean 10): s.e. of the mean 0.29
  np.testing.assert_allclose(strengths.mean(), 10.0, atol=1.5)
  np.testing.assert_allclose(np.median(strengths), 10.0 * np.log(2), atol=1.5)

  image = jnp.full((16, 16, 3), 0.5)
  waves, strengths, _, _ = _DRAW(jax.random.key(1), 16, 3, 2, 2, 448, 0.0, 10.0)
  out, perturbation = fourier_basis.apply_waves(image, waves, strengths * 0.01)
  expected = jnp.einsum("cfphw->hwc", waves * 0.01 * strengths[..., None, None]) / 4  # 1/(F P)
  np.testing.assert_allclose(perturbation, expected, atol=1e-6)
  np.testing.assert_allclose(out, jnp.clip(image + perturbation, 0, 1))


def test_fourier_basis_views_contract():
  method = fourier_basis.FourierBasisNoise()
  assert (method.name, method.num_views, method.ce_views) == ("fourier_basis", 1, (0,))
  assert_views_contract(method, images(2, (4, 8, 8, 3)), jnp.zeros(4, jnp.int32))
  with pytest.raises(ValueError, match="square"):
    method.views(jax.random.key(0), images(0, (2, 8, 6, 3)), jnp.zeros(2, jnp.int32))


def _linear_model(seed=0):
  rng = np.random.default_rng(seed)
  w = jnp.asarray(rng.normal(size=(8 * 8 * 3, 5)) * 0.3, jnp.float32)
  b = jnp.asarray(rng.normal(size=(5,)), jnp.float32)
  return lambda x: x.reshape(x.shape[0], -1) @ w + b


def test_afa_views_loss_and_official_setting():
  method = afa.AFA(pad=0, flip=False)
  assert (method.num_views, method.ce_views, method.aux_bn_views) == (2, (0, 1), (1,))
  assert method.ascent_steps == 0  # the official code samples the strengths, no inner loop
  batch = images(4, (4, 8, 8, 3))
  views, aux = assert_views_contract(method, batch, jnp.zeros(4, jnp.int32))
  np.testing.assert_array_equal(views[0], batch)
  assert aux["afa_strength"].shape == (4, 3)
  assert float(jnp.abs(views[1] - views[0]).max()) > 1e-3


def test_afa_ascent_stays_in_bounds_and_raises_the_loss():
  forward = _linear_model()
  grey = jnp.full((6, 8, 8, 3), 0.5)  # perturbations up to 0.35 per pixel: no clipping
  labels = jnp.arange(6, dtype=jnp.int32) % 5
  common = dict(pad=0, flip=False, min_str=0.5, mean_str=1.0, max_str=3.0,
                ascent_step_size=0.5)
  start = afa.AFA(**common)
  ascended = afa.AFA(ascent_steps=3, **common)
  # The contract's views and aux are those of key 0; `start` draws the same waves and strengths.
  v1, aux1 = assert_views_contract(ascended, grey, labels, forward=forward)
  v0, aux0 = jax.jit(start.views, static_argnums=3)(jax.random.key(0), grey, labels, forward)
  strengths = np.asarray(aux1["afa_strength"])
  assert strengths.min() >= 0.5 - 1e-6 and strengths.max() <= 3.0 + 1e-6
  # Same key, same waves: only the strengths moved, by at most 3 steps of 0.5.
  moved = np.abs(strengths - np.asarray(aux0["afa_strength"]))
  assert moved.max() <= 1.5 + 1e-5 and moved.max() > 0.1
  loss_before = float(ops.cross_entropy(forward(v0[1]), labels))
  loss_after = float(ops.cross_entropy(forward(v1[1]), labels))
  # CE of a linear model is convex in the strengths, and a projected signed-gradient step moves
  # each strength along its gradient's sign: the loss cannot decrease.
  assert loss_after > loss_before + 1e-4, (loss_before, loss_after)
  # The clean view and the gradient never touch the model: forward's parameters are constants.
  np.testing.assert_array_equal(v1[0], grey)
  with pytest.raises(ValueError, match="forward"):
    ascended.views(jax.random.key(0), grey, labels, None)
