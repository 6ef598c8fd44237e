"""Laws of the band-limited attacks (freqrobust/attacks/bands.py, `band=` of pgd and apgd):
band=None is the unrestricted attack bit for bit; the unclipped perturbation has no energy
outside the band; the full band is the unrestricted attack; a band never beats the full attack
run at least as strongly; the out-of-band energy the clip adds is reported. Tiny: 8x8x2."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from freqrobust import attacks
from freqrobust.attacks import ball, bands, fgsm_pgd

N, SHAPE, K = 12, (8, 8, 2), 5
D = int(np.prod(SHAPE))
_rng = np.random.default_rng(3)
W1 = jnp.asarray(_rng.standard_normal((D, 32)) * np.sqrt(2.0 / D), jnp.float32)
B1 = jnp.asarray(0.1 * _rng.standard_normal(32), jnp.float32)
W2 = jnp.asarray(_rng.standard_normal((32, K)) * np.sqrt(2.0 / 32), jnp.float32)
BANDS = [("dct", 0, 4), ("dct", 6, 15), ("fft", 0, 2), ("fft", 3, 10)]


def mlp(x):
  h = jax.nn.relu(x.reshape(x.shape[0], -1) @ W1 + B1)
  return 4.0 * (h @ W2)


def images(lo=0.0, hi=1.0, seed=1):
  x = jax.random.uniform(jax.random.key(seed), (N * D,), jnp.float32, lo, hi)
  return x.reshape((N,) + SHAPE)


def labels_of(x):
  return jnp.argmax(mlp(x), -1).astype(jnp.int32)


def accuracy(x, y):
  return float(jnp.mean(jnp.argmax(mlp(x), -1) == y))


def test_band_none_is_the_unrestricted_attack_bit_for_bit():
  x = images()
  y = labels_of(x)
  key = jax.random.key(0)
  eps, a = 0.1, 0.05

  @jax.jit
  def reference(key, x):  # The attack as it was: ball's operations only.
    z = ball.random_start(jax.random.fold_in(key, 0), x, eps, "linf")
    for _ in range(2):
      _, _, g = fgsm_pgd.loss_and_grad(mlp, z, y, "ce")
      z = ball.project(z + a * ball.step_direction(g, "linf"), x, eps, "linf")
    return ball.project(z, x, eps, "linf")

  got = attacks.pgd(mlp, key, x, y, eps=eps, steps=2, step_size=a, select="last", band=None,
                    unroll=True)  # The same program on any backend.
  np.testing.assert_array_equal(np.asarray(got), np.asarray(reference(key, x)))
  assert bands.space(None) is bands.PIXEL


@pytest.mark.parametrize("band", BANDS)
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_delta_lies_in_the_band_and_the_ball(band, norm):
  x = images()
  v = x + 0.5 * jax.random.normal(jax.random.key(2), x.shape)
  eps = 0.1 if norm == "linf" else 0.5
  space = bands.space(bands.check_band(band, 8, 8))
  d = space.delta(v, x, eps, norm)
  outside = d - bands.project_band(d, space.band)
  assert float(jnp.max(jnp.abs(outside))) < 1e-5
  assert float(jnp.max(ball.norms(d, norm))) <= eps * (1 + 1e-5)
  assert float(jnp.min(ball.norms(d, norm))) > 0.1 * eps  # Not trivially zero.
  np.testing.assert_allclose(np.asarray(space.project(v, x, eps, norm)),
                             np.asarray(jnp.clip(x + d, 0, 1)), atol=1e-6)


@pytest.mark.parametrize("band", [("dct", 0, 4), ("fft", 3, 10)])
def test_unclipped_perturbation_has_no_energy_outside_the_band(band):
  x = images(0.4, 0.6)  # Interior: eps 0.1 never reaches the [0, 1] clip, so adv - x = delta.
  y = labels_of(x)
  for adv in (attacks.pgd(mlp, jax.random.key(0), x, y, eps=0.1, steps=5, band=band),
              attacks.apgd(mlp, jax.random.key(0), x, y, eps=0.1, steps=5, band=band)):
    assert bool(jnp.all(ball.in_ball(adv, x, 0.1, "linf")))
    assert float(jnp.min(jnp.sum(jnp.abs(adv - x), axis=(1, 2, 3)))) > 0
    report = bands.out_of_band_energy(adv, x, band)
    assert float(jnp.max(report["fraction"])) < 1e-8


def test_clip_out_of_band_energy_is_reported():
  x = images()  # Pixels near 0 and 1: the clip cuts the band-limited perturbation.
  y = labels_of(x)
  adv = attacks.pgd(mlp, jax.random.key(0), x, y, eps=0.3, steps=5, band=("dct", 0, 3))
  report = bands.out_of_band_energy(adv, x, ("dct", 0, 3))
  assert float(jnp.min(report["fraction"])) > 1e-3
  assert float(jnp.max(report["fraction"])) <= 1.0


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 0.8)])
def test_full_band_is_the_unrestricted_attack(norm, eps):
  x = images()
  y = labels_of(x)
  key = jax.random.key(4)
  ref = attacks.pgd(mlp, key, x, y, eps=eps, norm=norm, steps=3)
  ref_apgd = attacks.apgd(mlp, key, x, y, eps=eps, norm=norm, steps=4)
  for kind in bands.BAND_KINDS:
    full = bands.full_band(kind, 8, 8)
    got = attacks.pgd(mlp, key, x, y, eps=eps, norm=norm, steps=3, band=full)
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), atol=2e-5)
    got = attacks.apgd(mlp, key, x, y, eps=eps, norm=norm, steps=4, band=full)
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref_apgd), atol=2e-5)


def test_a_band_never_beats_the_full_attack_and_the_check_flags_it():
  x = images()
  y = labels_of(x)
  key = jax.random.key(5)
  full = accuracy(attacks.pgd(mlp, key, x, y, eps=0.02, steps=10, restarts=2), y)
  assert 0 < full < 1  # Neither trivial nor hopeless.
  per_band = {}
  for band in (BANDS[1], BANDS[3]):  # The high bands: the ones this model is vulnerable in.
    adv = attacks.pgd(mlp, key, x, y, eps=0.02, steps=10, band=band)
    per_band[str(band)] = accuracy(adv, y)
  assert min(per_band.values()) >= full
  assert bands.masking_check(per_band, full) == []
  assert bands.masking_check({"low": full - 0.2, "high": full}, full) == ["low"]


@pytest.mark.parametrize("band", [("wavelet", 0, 1), ("dct", 3, 3), ("dct", -1, 2), ("dct", 1)])
def test_malformed_band_is_refused(band):
  x = images()
  with pytest.raises(ValueError, match="band="):
    attacks.pgd(mlp, jax.random.key(0), x, labels_of(x), eps=0.1, band=band)


def test_empty_band_is_refused():
  with pytest.raises(ValueError, match="holds no FFT"):
    bands.check_band(("fft", 20, math.inf), 8, 8)


def test_the_loop_and_the_unrolled_steps_agree():
  x = images()
  y = labels_of(x)
  a = attacks.pgd(mlp, jax.random.key(1), x, y, eps=0.1, steps=2, band=("fft", 0, 3),
                  unroll=True)
  b = attacks.pgd(mlp, jax.random.key(1), x, y, eps=0.1, steps=2, band=("fft", 0, 3),
                  unroll=False)
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
