"""Laws of Amplitude-Phase Recombination (freqrobust/augment/apr.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselines_test import assert_views_contract, images
from freqrobust.augment import apr, ops


def _spectrum(x, axes):
  return np.fft.fftn(np.asarray(x, np.float64), axes=axes)


def _assert_amplitude_and_phase(out, phase_source, amplitude_source, axes):
  """|F(out)| = |F(amplitude_source)| and angle F(out) = angle F(phase_source) (where both
  spectra are clearly non-zero, so that the phase is defined)."""
  f_out = _spectrum(out, axes)
  f_amp = _spectrum(amplitude_source, axes)
  f_phase = _spectrum(phase_source, axes)
  scale = np.abs(f_amp).max()
  np.testing.assert_allclose(np.abs(f_out), np.abs(f_amp), atol=1e-4 * scale)
  defined = (np.abs(f_amp) > 1e-3 * scale) & (np.abs(f_phase) > 1e-3 * np.abs(f_phase).max())
  phase_error = np.angle(f_out[defined] * np.conj(f_phase[defined]))
  assert np.abs(phase_error).max() < 1e-3


def test_recombine_has_amplitude_of_one_and_phase_of_the_other():
  a, b = images(0, (2, 8, 8, 3))
  out = jax.jit(apr.recombine)(a, b)
  # The 3-D DFT over height, width and channels, as np.fft.fftn of the HWC array.
  _assert_amplitude_and_phase(out, a, b, axes=(0, 1, 2))
  # The recombined spectrum is Hermitian, so the image is real: no information was dropped.
  spectrum = np.abs(_spectrum(b, (0, 1, 2))) * np.exp(1j * np.angle(_spectrum(a, (0, 1, 2))))
  assert np.abs(np.fft.ifftn(spectrum).imag).max() < 1e-6


_PAIR = jax.jit(apr.apr_pair)


def test_apr_pair_recombines_with_a_permutation():
  batch = images(1, (5, 8, 8, 3))
  mixed, applied, partner = _PAIR(jax.random.key(0), batch, 1.0)
  assert bool(applied)
  assert sorted(np.asarray(partner).tolist()) == list(range(5))
  for n in range(5):
    _assert_amplitude_and_phase(mixed[n], batch[n], batch[int(partner[n])], axes=(0, 1, 2))
  untouched, applied, _ = _PAIR(jax.random.key(0), batch, 0.0)
  assert not bool(applied)
  np.testing.assert_array_equal(untouched, batch)
  # One coin for the whole batch, heads with probability 0.6 (core/train.py:14-17).
  applied = [bool(_PAIR(jax.random.key(k), batch, 0.6)[1]) for k in range(300)]
  np.testing.assert_allclose(np.mean(applied), 0.6, atol=0.12)  # 4.2 standard errors


@pytest.mark.parametrize("wrap", [True, False])
def test_apr_single_is_one_of_its_two_branches(wrap):
  image = images(4, (1, 8, 8, 3))[0]
  single = jax.jit(lambda k: apr.apr_single(k, image, 3.0, 0.5, return_intermediates=True,
                                            uint8_wrap=wrap))
  kinds, wrapped = set(), 0
  for seed in range(24):
    out, x1, x2 = single(jax.random.key(seed))
    if np.array_equal(out, x1):
      kinds.add("op only")
      continue
    raw = [apr.recombine(x2, x1), apr.recombine(x1, x2)]
    candidates = [ops.truncate_to_uint8(r, wrap) for r in raw]
    errors = [float(jnp.abs(out - c).max()) for c in candidates]
    assert min(errors) < 1e-6, errors
    best = int(np.argmin(errors))
    kinds.add(("x1 amplitude", "x2 amplitude")[best])
    np.testing.assert_allclose(out * 255, jnp.round(out * 255), atol=1e-3)  # uint8, as the cast
    wrapped += int(np.sum(np.asarray(raw[best]) * 255 <= -1.0))
  assert kinds == {"op only", "x1 amplitude", "x2 amplitude"}
  assert wrapped > 0  # the recombination does leave [0, 255] here, so the cast mode matters


def test_uint8_cast_wraps_as_the_reference_or_clips():
  """The reference's `astype(np.uint8)` / `.byte()` on x86: truncation toward zero, modulo 256."""
  levels = np.array([-300.2, -256.0, -3.7, -2.0, -1.2, -1.0, -0.5, 0.0, 0.4, 1.0, 127.9, 254.6,
                     255.0, 256.3, 300.2, 511.0], np.float64)
  want = np.mod(np.trunc(levels), 256) / 255
  got = ops.truncate_to_uint8(jnp.asarray(levels / 255, jnp.float32), wrap=True)
  np.testing.assert_allclose(got, want, atol=1e-6)
  np.testing.assert_allclose(np.asarray(got)[[1, 3, 4, 5, 13]],  # -256, -2, -1.2, -1, 256.3
                             np.array([0, 254, 255, 255, 0]) / 255, atol=1e-6)
  clipped = ops.truncate_to_uint8(jnp.asarray(levels / 255, jnp.float32))
  np.testing.assert_allclose(clipped, np.floor(np.clip(levels, 0, 255)) / 255, atol=1e-6)
  assert apr.APRS().uint8_wrap and not apr.APRS(uint8_wrap=False).uint8_wrap
  with pytest.raises(ValueError, match="uint8_wrap"):
    apr.APRSP(uint8_wrap="maybe")


def test_views_and_loss():
  labels = jnp.arange(4, dtype=jnp.int32)
  batch = images(5, (4, 8, 8, 3))
  plain = dict(pad=0, flip=False)
  views, aux = assert_views_contract(apr.APRP(pair_prob=1.0, **plain), batch, labels,
                                     vmap_batches=images(6, (2, 4, 8, 8, 3)))
  np.testing.assert_array_equal(views[0], batch)
  for n in range(4):
    _assert_amplitude_and_phase(views[1, n], batch[n], batch[int(aux["partner"][n])], (0, 1, 2))
  assert bool(jnp.all(aux["pair_applied"]))

  views, aux = assert_views_contract(apr.APRSP(pair_prob=1.0), batch, labels)
  for n in range(4):  # APR-P on top of the APR-S view
    _assert_amplitude_and_phase(views[1, n], views[0, n], views[0, int(aux["partner"][n])],
                                (0, 1, 2))
  assert float(views[0].min()) >= 0 and float(views[0].max()) <= 1
  # APR-S alone: the first view of APR-SP (whose jit = eager is checked above), run eagerly.
  views, _ = assert_views_contract(apr.APRS(), batch, labels, jit=False)
  assert views.shape == (1, 4, 8, 8, 3)

  logits = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4, 10)), jnp.float32)
  for method in (apr.APRP(), apr.APRSP()):
    # The reference sums CE(view 0) + CE(view 1): the train step computes both
    # (tests/baselines_train_test.py: test_paired_ce_uses_the_runs_label_smoothing).
    assert (method.num_views, method.ce_views, method.ce_paired_views) == (2, (0,), (1,))
    assert method.loss_terms(logits, None, labels, aux, None) == {}
  assert apr.APRS().ce_paired_views == ()
  assert apr.APRS().loss_terms(logits[:1], None, labels, {}, None) == {}


def test_keep_dc_keeps_own_mean_and_the_partners_other_amplitudes():
  """The keep_dc ablation: the output's DC (its mean) is the image's own, every other amplitude
  the partner's, the phase the image's; without it the mean is the partner's."""
  a, b = images(7, (2, 8, 8, 1))
  b = 0.5 * b  # a darker partner
  kept = jax.jit(lambda x, y: apr.recombine(x, y, keep_dc=True))(a, b)
  swapped = jax.jit(apr.recombine)(a, b)
  np.testing.assert_allclose(float(kept.mean()), float(a.mean()), atol=1e-5)
  np.testing.assert_allclose(float(swapped.mean()), float(b.mean()), atol=1e-5)
  assert abs(float(a.mean()) - float(b.mean())) > 1e-2  # the two laws can tell them apart
  f_kept, f_b = _spectrum(kept, (0, 1, 2)), _spectrum(b, (0, 1, 2))
  off_dc = np.ones(f_kept.shape, bool)
  off_dc[0, 0, 0] = False
  np.testing.assert_allclose(np.abs(f_kept)[off_dc], np.abs(f_b)[off_dc],
                             atol=1e-4 * np.abs(f_b).max())
  # Batch axes: the DC of every image is its own.
  batch = images(8, (4, 8, 8, 3))
  pair = jax.jit(apr.apr_pair, static_argnames="keep_dc")
  mixed, applied, partner = pair(jax.random.key(3), batch, 1.0, keep_dc=True)
  assert bool(applied) and not np.array_equal(np.asarray(partner), np.arange(4))
  np.testing.assert_allclose(np.asarray(mixed).mean(axis=(1, 2, 3)),
                             np.asarray(batch).mean(axis=(1, 2, 3)), atol=1e-5)
  method = apr.APRP(keep_dc=True)
  views, _ = method.views(jax.random.key(1), batch, jnp.zeros(4, jnp.int32))
  assert views.shape[0] == 2


def test_keep_black_keeps_the_black_pixels_and_mixes_the_rest():
  batch = np.array(images(9, (4, 8, 8, 1)))
  batch[:, :3] = 0.0  # a black band at the top of every image
  batch = jnp.asarray(batch)
  pair = jax.jit(apr.apr_pair, static_argnames=("keep_dc", "keep_black"))
  mixed, applied, partner = pair(jax.random.key(3), batch, 1.0, keep_black=True)
  plain, _, partner_plain = pair(jax.random.key(3), batch, 1.0)
  assert bool(applied)
  np.testing.assert_array_equal(np.asarray(partner), np.asarray(partner_plain))
  black = np.asarray(batch) == 0
  assert np.all(np.asarray(mixed)[black] == 0)
  assert np.abs(np.asarray(plain)[black]).max() > 1e-2  # APR-P itself lifts them
  np.testing.assert_array_equal(np.asarray(mixed)[~black], np.asarray(plain)[~black])
