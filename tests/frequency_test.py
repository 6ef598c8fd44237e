"""Laws of the frequency-domain operators (docs/METHOD.md §1-5, §7)."""
import functools

from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from freqrobust import frequency

SIZES = ((40, 40), (36, 36), (32, 32), (33, 27), (15, 20))


def _image(seed, shape):
  return jax.random.uniform(jax.random.key(seed), shape, jnp.float32)


def _spectrum(x):
  return np.fft.fft2(np.asarray(x, np.float64), axes=(0, 1))


class MaskTest(parameterized.TestCase):

  @parameterized.parameters(*SIZES)
  def test_radial_distance_layout(self, h, w):
    r = frequency.radial_distance(h, w)
    self.assertEqual(r.shape, (h, w))
    self.assertEqual(r[0, 0], 0.0)
    mirror = np.roll(r[::-1, ::-1], (1, 1), axis=(0, 1))  # r[-i, -j]
    np.testing.assert_allclose(r, mirror)
    np.testing.assert_allclose(r.max(), np.hypot(h // 2, w // 2), rtol=1e-6)
    self.assertEqual(r[1, 0], 1.0)

  @parameterized.parameters(*SIZES)
  def test_aps_masks_are_low_band_high_pass(self, h, w):
    r = frequency.radial_distance(h, w)
    m_l, m_m, m_h = (frequency.aps_mask(k, h, w) for k in "LMH")
    for m in (m_l, m_m, m_h):
      self.assertGreaterEqual(m.min(), 0.0)
      self.assertLessEqual(m.max(), 1.0)
      self.assertEqual(m[0, 0], 1.0)  # the m_step(s - 1) term keeps DC
    # Low-pass: passes r <= 9, blocks r >= 12, non-increasing in r.
    np.testing.assert_array_equal(m_l[r <= 9], 1.0)
    np.testing.assert_array_equal(m_l[r >= 12], 0.0)
    order = np.argsort(r, axis=None, kind="stable")
    self.assertTrue(np.all(np.diff(m_l.ravel()[order]) <= 1e-6))
    # Band-pass: blocks [4, 7] and >= 18, passes [10, 15].
    np.testing.assert_array_equal(m_m[(r >= 4) & (r <= 7)], 0.0)
    np.testing.assert_array_equal(m_m[(r >= 10) & (r <= 15)], 1.0)
    np.testing.assert_array_equal(m_m[r >= 18], 0.0)
    # High-pass (METHOD §2 typo fix): blocks (4, 13], passes r >= 16, non-decreasing beyond r = 4.
    np.testing.assert_array_equal(m_h[(r >= 4) & (r <= 13)], 0.0)
    np.testing.assert_array_equal(m_h[r >= 16], 1.0)
    beyond = order[r.ravel()[order] >= 4]
    self.assertTrue(np.all(np.diff(m_h.ravel()[beyond]) >= -1e-6))

  def test_curves_agree_between_numpy_and_jax(self):
    s = np.linspace(-2.0, 35.0, 371).astype(np.float32)
    for fn in (frequency.mask_step, frequency.mask_hill,
               functools.partial(frequency.hill, a=10, b=13)):
      np.testing.assert_allclose(fn(s), np.asarray(jax.jit(fn)(jnp.asarray(s))), atol=1e-6)

  def test_curves_are_continuous_and_bounded(self):
    s = np.linspace(-2.0, 35.0, 37001)
    for curve in (frequency.mask_step(s), frequency.mask_hill(s), frequency.hill(s, 14, 17)):
      self.assertTrue(np.all((curve >= 0) & (curve <= 1)))
      self.assertLess(np.abs(np.diff(curve)).max(), 2e-3)

  def test_unknown_mask_raises(self):
    with pytest.raises(ValueError, match="valid masks"):
      frequency.aps_mask("X", 8, 8)

  def test_masks_are_read_only_cached_constants(self):
    m = frequency.aps_mask("L", 40, 40)
    self.assertIs(m, frequency.aps_mask("L", 40, 40))
    with pytest.raises(ValueError):
      m[0, 0] = 0.0


class PowerSuppressionTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(((40, 40, 3),), ((33, 27),), ((15, 20, 1),))
  def test_identities(self, shape):
    image = _image(0, shape)
    h, w = shape[:2]
    suppress = self.variant(frequency.power_suppress)
    chex.assert_trees_all_close(suppress(image, np.ones((h, w), np.float32), 0.3), image,
                                atol=1e-5)
    chex.assert_trees_all_close(suppress(image, frequency.aps_mask("M", h, w), 1.0), image,
                                atol=1e-5)
    # A zero mask scales the whole spectrum by keep.
    chex.assert_trees_all_close(suppress(image, np.zeros((h, w), np.float32), 0.25),
                                0.25 * image, atol=1e-5)

  @parameterized.parameters((40, 40), (33, 27))
  def test_full_low_pass_removes_energy_above_cutoff(self, h, w):
    image = _image(1, (h, w, 3))
    out = frequency.power_suppress(image, frequency.aps_mask("L", h, w), 0.0)
    r = frequency.radial_distance(h, w)
    before, after = np.abs(_spectrum(image)), np.abs(_spectrum(out))
    above = r >= 12
    self.assertGreater(before[above].sum(), 10.0)
    self.assertLess(after[above].max(), 1e-3)
    np.testing.assert_allclose(after[r <= 9], before[r <= 9], rtol=1e-4, atol=1e-3)

  def test_more_keep_less_damage(self):
    image = _image(2, (40, 40, 3))
    errors = [float(jnp.linalg.norm(frequency.power_suppress(
        image, frequency.aps_mask("H", 40, 40), k) - image)) for k in (0.0, 0.25, 0.5, 0.75, 1.0)]
    self.assertTrue(all(a > b for a, b in zip(errors, errors[1:])))

  def test_vmap_equals_loop(self):
    images = _image(3, (4, 36, 36, 3))
    keeps = jnp.array([0.0, 0.2, 0.7, 1.0])
    mask = frequency.aps_mask("M", 36, 36)
    batched = jax.vmap(frequency.power_suppress, in_axes=(0, None, 0))(images, mask, keeps)
    loop = jnp.stack([frequency.power_suppress(x, mask, k) for x, k in zip(images, keeps)])
    # Batched and single FFTs are different XLA programs: equal up to float reordering.
    chex.assert_trees_all_close(batched, loop, atol=1e-5)
    # NHWC input with one keep equals the per-image loop too.
    chex.assert_trees_all_close(frequency.power_suppress(images, mask, 0.2),
                                jnp.stack([frequency.power_suppress(x, mask, 0.2)
                                           for x in images]), atol=1e-5)

  def test_no_retrace_for_same_shape(self):
    @jax.jit
    @chex.assert_max_traces(n=1)
    def suppress_l(image, keep):
      h, w = image.shape[:2]
      return frequency.power_suppress(image, frequency.aps_mask("L", h, w), keep)

    for seed in range(3):
      suppress_l(_image(seed, (40, 40, 3)), jnp.float32(0.1 * seed))

  def test_mask_shape_mismatch_raises(self):
    with pytest.raises(ValueError, match="does not match"):
      frequency.power_suppress(_image(0, (32, 32, 3)), frequency.aps_mask("L", 40, 40), 0.5)


class LabelTest(chex.TestCase):

  def test_beta_suppressed(self):
    keeps = jnp.linspace(0.0, 1.0, 11)
    beta = frequency.beta_suppressed(keeps)
    np.testing.assert_allclose(beta[-1], 1.0, atol=1e-5)  # eq. 6: beta_0(1) = 1
    self.assertTrue(bool(jnp.all(jnp.diff(beta) > 0)))
    self.assertTrue(bool(jnp.all((beta > 0) & (beta <= 1.0 + 1e-5))))

  def test_beta_learnable_and_open_ratios(self):
    theta = jnp.array([0.3, -1.0, 2.0])
    b = frequency.basic_open_ratios(theta)
    np.testing.assert_allclose(jnp.sum(b), 1.1, rtol=1e-5)  # eq. 9
    np.testing.assert_allclose(frequency.basic_open_ratios(jnp.zeros(3)), [1.1 / 3] * 3, rtol=1e-5)
    np.testing.assert_allclose(frequency.beta_learnable(0.0, b), b)
    np.testing.assert_allclose(frequency.beta_learnable(1.0, b), 1.0)

  @chex.variants(with_jit=True, without_jit=True)
  def test_fixed_configurations(self):
    masks = jnp.array([0, 1, 2, 0, 1, 2])
    keeps = jnp.array([0.0, 0.0, 0.0, 0.6, 0.6, 0.6])
    for digits in ("000", "011", "101", "110", "001", "010", "100", "111"):
      label = self.variant(functools.partial(frequency.aps_label,
                                             configuration="LMH=" + digits))
      beta = label(masks, keeps)
      expected = [1.0 if digits[m] == "1" else float(frequency.beta_suppressed(k))
                  for m, k in zip(masks.tolist(), keeps.tolist())]
      # Jitted against eager: the sigmoid may be fused (and approximated) differently.
      np.testing.assert_allclose(beta, expected, rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_learnable_configuration_is_differentiable_in_theta(self):
    masks, keeps = jnp.array([0, 1, 2, 2]), jnp.array([0.0, 0.3, 0.5, 0.1])
    theta = jnp.array([0.5, -0.2, 0.1])

    def loss(theta):
      return jnp.sum(frequency.aps_label(masks, keeps, "learnable", theta) ** 2)

    grad = self.variant(jax.grad(loss))(theta)
    self.assertTrue(bool(jnp.all(jnp.isfinite(grad))))
    self.assertGreater(float(jnp.abs(grad).sum()), 0.0)
    beta = frequency.aps_label(masks, keeps, "learnable", theta)
    b = frequency.basic_open_ratios(theta)
    np.testing.assert_allclose(beta, (1 - keeps) * b[masks] + keeps, rtol=1e-5)
    chex.assert_trees_all_close(
        jax.vmap(lambda m, k: frequency.aps_label(m, k, "learnable", theta))(masks, keeps), beta)

  def test_invalid_configuration_raises_listing_valid_values(self):
    for bad in ("LMH=012", "LMH=01", "fully", "", 7):
      with pytest.raises(ValueError, match="LMH=011"):
        frequency.parse_aps_configuration(bad)
    with pytest.raises(ValueError, match="theta"):
      frequency.aps_label(0, 0.5, "learnable")
    self.assertEqual(frequency.parse_aps_configuration("LMH=011"),
                     frequency.ApsConfiguration(False, (False, True, True)))
    self.assertTrue(frequency.parse_aps_configuration("learnable").learnable)


class NfdTest(chex.TestCase):

  def test_paper_band_coverage_40(self):
    edges = frequency.nfd_band_edges(40, 40)
    self.assertEqual(edges, frequency.PAPER_NFD_BANDS_40)
    coverage = [frequency.band_coverage(40, 40, a, b) for a, b in edges]
    np.testing.assert_allclose(coverage, [0.18, 0.18, 0.24, 0.21, 0.20], atol=0.011)
    np.testing.assert_allclose(sum(coverage), 1.0, atol=1e-9)

  @parameterized.parameters((36, 36), (32, 32), (33, 27), (48, 48))
  def test_derived_bands_cover_evenly(self, h, w):
    edges = frequency.nfd_band_edges(h, w)
    self.assertLen(edges, 5)
    self.assertEqual(edges[0][0], 0)
    self.assertEqual(edges[-1][1], int(np.ceil(frequency.radial_distance(h, w).max())))
    for (_, b), (a, _) in zip(edges, edges[1:]):
      self.assertEqual(a, b + 1)
    coverage = [frequency.band_coverage(h, w, a, b) for a, b in edges]
    np.testing.assert_allclose(sum(coverage), 1.0, atol=1e-9)
    for c in coverage:
      self.assertBetween(c, 0.15, 0.25)

  @parameterized.parameters(*SIZES)
  def test_band_masks_partition_unity(self, h, w):
    masks = frequency.nfd_band_masks(h, w)
    self.assertEqual(masks.shape, (5, h, w))
    self.assertTrue(np.all((masks >= 0) & (masks <= 1)))
    np.testing.assert_allclose(masks.sum(0), 1.0, atol=1e-6)

  def test_control_law(self):
    masks = frequency.nfd_band_masks(40, 40)
    # In each band's core [a, b] the control equals alpha_r[k].
    core_points = [np.argwhere(m == 1)[0] for m in masks]
    controls = jax.jit(jax.vmap(frequency.nfd_control, in_axes=(0, None)))(
        jax.random.split(jax.random.key(0), 400), masks)
    alphas = np.stack([np.asarray(controls)[:, i, j] for i, j in core_points], axis=1)
    binary = np.isclose(alphas, 0) | np.isclose(alphas, 1)
    self.assertTrue(np.all(binary.sum(1) >= 4))  # one U(0, 1) element, the rest 0/1
    self.assertTrue(np.all((np.asarray(controls) >= 0) & (np.asarray(controls) <= 1 + 1e-6)))
    self.assertBetween(alphas[binary].mean(), 0.42, 0.58)
    self.assertGreater((~binary).sum(), 380)  # a U(0, 1) draw is almost never exactly 0 or 1

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(((33, 27, 2),))
  def test_sigma_zero_is_identity(self, shape):
    image = _image(4, shape)
    control = frequency.nfd_control(jax.random.key(1), frequency.nfd_band_masks(*shape[:2]))
    out = self.variant(frequency.nfd)(jax.random.key(2), image, control, 0.0)
    chex.assert_trees_all_close(out, image, atol=1e-5)

  @parameterized.parameters(((40, 40, 3),), ((33, 27),))
  def test_phase_is_kept(self, shape):
    image = _image(5, shape)
    h, w = shape[:2]
    out = frequency.nfd(jax.random.key(3), image, jnp.zeros((h, w)), 3.0)
    before, after = _spectrum(image), _spectrum(out)
    self.assertGreater(np.abs(after - before).mean(), 0.3)
    # eq. 12 with the real part (METHOD §1): the coefficient moves along its own direction.
    cross = np.imag(after * np.conj(before / np.abs(before)))
    np.testing.assert_allclose(cross, 0.0, atol=1e-3)

  def test_noise_variance_per_band(self):
    sigma = 2.0
    masks = frequency.nfd_band_masks(40, 40)
    control = masks[1] + 0.5 * masks[3]
    keys = jax.random.split(jax.random.key(6), 256)
    noise = jax.jit(jax.vmap(lambda k: frequency.nfd_noise(k, (40, 40, 3), control, sigma)))(keys)
    # Hermitian-symmetric: R[i, j] = R[-i, -j], so R * Dir F is the spectrum of a real image.
    np.testing.assert_allclose(noise, np.roll(noise[:, ::-1, ::-1], (1, 1), axis=(1, 2)),
                               rtol=1e-5, atol=1e-6)  # (fused arithmetic: not bit-equal)
    variance = np.asarray(noise).var(axis=(0, 3))
    expected = sigma * (1.0 - control)
    for k in range(5):
      core = masks[k] == 1
      np.testing.assert_allclose(variance[core].mean(), expected[core].mean(), rtol=0.05,
                                 atol=1e-6)

  @parameterized.named_parameters(("nfd", "nfd"), ("half_fast", True))
  def test_output_noise_variance_per_band(self, path):
    """Hermitian noise: the output's spectrum carries variance sigma (1 - M) at every
    coefficient, self-mirrored (DC, Nyquist) or not (tests/nfd_noise_test.py: per coefficient)."""
    sigma, h, w = 2.0, 40, 40
    masks = frequency.nfd_band_masks(h, w)
    control = masks[1] + 0.5 * masks[3]
    image = _image(7, (h, w, 3)) + 1.0  # no zero coefficients
    if path == "nfd":
      run = lambda k: frequency.nfd(k, image, control, sigma)
    else:
      run = lambda k: jnp.fft.irfft2(frequency.nfd_half_spectrum(
          k, jnp.fft.rfft2(image, axes=(0, 1)), control, sigma, fast_noise=path),
                                     s=(h, w), axes=(0, 1))
    outs = jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(6), 192))
    spectra = np.fft.fft2(np.asarray(outs, np.float64), axes=(1, 2))
    direction = _spectrum(image) / np.abs(_spectrum(image))
    implied = (spectra - _spectrum(image)) * np.conj(direction)
    np.testing.assert_allclose(np.imag(implied), 0.0, atol=1e-3)  # the phase is kept
    variance = np.real(implied).var(axis=(0, 3))
    expected = sigma * (1.0 - control)
    self_mirror = np.zeros((h, w), bool)
    self_mirror[np.ix_([0, h // 2], [0, w // 2])] = True
    for k in range(5):
      core = (masks[k] == 1) & ~self_mirror
      np.testing.assert_allclose(variance[core].mean(), expected[core].mean(), rtol=0.06,
                                 atol=1e-6)
    np.testing.assert_allclose(variance[self_mirror].mean(), expected[self_mirror].mean(),
                               rtol=0.12)

  def test_half_spectrum_sigma_zero_is_identity(self):
    image = _image(13, (15, 20, 3))
    control = frequency.nfd_band_masks(15, 20)[0]
    for fast_noise in (True, False):
      half = jax.jit(frequency.nfd_half_spectrum, static_argnums=4)(
          jax.random.key(0), jnp.fft.rfft2(image, axes=(0, 1)), control, 0.0, fast_noise)
      chex.assert_trees_all_close(jnp.fft.irfft2(half, s=(15, 20), axes=(0, 1)), image,
                                  atol=1e-5)

  def test_half_spectrum_zero_and_tiny_coefficients(self):
    half = jnp.asarray([[0.0, 1.2e-38, 1e-30j, 3.0 + 4.0j]] * 4, jnp.complex64)  # (4, 4)
    out = jax.jit(frequency.nfd_half_spectrum)(jax.random.key(3), half, jnp.zeros((4, 6)), 1.0)
    self.assertTrue(bool(jnp.all(jnp.isfinite(out))))
    np.testing.assert_allclose(np.imag(out[:, 0]), 0.0)  # Dir 0 = 1: real noise on F = 0
    self.assertGreater(float(jnp.abs(out[:, 0]).max()), 1e-3)
    np.testing.assert_allclose(np.imag(out[:, 1]), 0.0)  # direction kept even when tiny
    np.testing.assert_allclose(np.real(out[:, 2]), 0.0, atol=1e-30)

  def test_fast_standard_normal(self):
    draw = jax.jit(frequency.fast_standard_normal, static_argnums=1)
    z = np.asarray(draw(jax.random.key(0), (400, 500)), np.float64)
    self.assertLess(abs(z.mean()), 0.01)
    np.testing.assert_allclose(z.var(), 1.0, rtol=0.02)
    np.testing.assert_allclose((np.abs(z) > 1.96).mean(), 0.05, atol=0.003)
    np.testing.assert_allclose((np.abs(z) > 3.0).mean(), 0.0027, atol=0.0006)
    other = np.asarray(draw(jax.random.key(1), (400, 500)), np.float64)
    self.assertLess(abs(np.corrcoef(z.ravel(), other.ravel())[0, 1]), 0.01)
    self.assertLess(abs(np.corrcoef(z.ravel()[1:], z.ravel()[:-1])[0, 1]), 0.01)
    np.testing.assert_array_equal(z, np.asarray(draw(jax.random.key(0), (400, 500))))
    keys = jax.random.split(jax.random.key(2), 3)
    batched = jax.vmap(lambda k: frequency.fast_standard_normal(k, (5, 4)))(keys)
    # The same bits; erf_inv eager against jitted may differ in the last bits.
    chex.assert_trees_all_close(batched[2], draw(keys[2], (5, 4)), rtol=1e-5, atol=1e-6)

  def test_vmap_equals_loop_and_deterministic(self):
    images = _image(8, (2, 36, 36, 3))
    keys = jax.random.split(jax.random.key(9), 2)
    control = frequency.nfd_band_masks(36, 36)[2]
    batched = jax.jit(jax.vmap(frequency.nfd, in_axes=(0, 0, None, None)))(
        keys, images, control, 1.0)
    loop = jnp.stack([frequency.nfd(k, x, control, 1.0) for k, x in zip(keys, images)])
    chex.assert_trees_all_close(batched, loop, atol=1e-5)
    chex.assert_trees_all_close(frequency.nfd(keys[0], images[0], control, 1.0), loop[0])
    self.assertGreater(float(jnp.abs(loop[0] - frequency.nfd(keys[1], images[0], control,
                                                              1.0)).max()), 1e-3)

  def test_no_retrace_for_same_shape(self):
    @jax.jit
    @chex.assert_max_traces(n=1)
    def augment(key, image, sigma):
      k1, k2 = jax.random.split(key)
      control = frequency.nfd_control(k1, frequency.nfd_band_masks(*image.shape[:2]))
      return frequency.nfd(k2, image, control, sigma)

    for seed in range(3):
      augment(jax.random.key(seed), _image(seed, (36, 36, 3)), jnp.float32(seed))


class BasisTest(chex.TestCase):

  @parameterized.parameters((8, 8, 1, 2), (8, 8, 4, 4), (8, 8, 0, 0), (9, 7, 2, -3),
                            (16, 12, -5, 6), (9, 7, 4, 0))
  def test_fourier_basis(self, h, w, i, j):
    basis = np.asarray(frequency.fourier_basis(h, w, i, j), np.float64)
    np.testing.assert_allclose(np.linalg.norm(basis), 1.0, rtol=1e-5)
    spectrum = np.abs(np.fft.fft2(basis))
    support = np.zeros((h, w), bool)
    support[i % h, j % w] = support[-i % h, -j % w] = True
    np.testing.assert_allclose(spectrum[~support], 0.0, atol=1e-4)
    self.assertTrue(np.all(spectrum[support] > 0.1))

  @chex.variants(with_jit=True, without_jit=True)
  def test_cpdm(self):
    t = 4.0 * np.sqrt(2.0)
    pdm = self.variant(frequency.cpdm, static_argnums=(0, 1, 2))(10, 12, 3, 1, 3, -2, t)
    self.assertEqual(pdm.shape, (10, 12, 3))
    np.testing.assert_allclose(pdm[..., [0, 2]], 0.5)
    np.testing.assert_allclose(np.linalg.norm(pdm[..., 1] - 0.5), t, rtol=1e-5)

  def test_basis_vmaps_over_frequencies(self):
    ii, jj = jnp.meshgrid(jnp.arange(-3, 4), jnp.arange(-3, 4), indexing="ij")
    grid = jax.vmap(lambda i, j: frequency.fourier_basis(7, 7, i, j))(ii.ravel(), jj.ravel())
    chex.assert_trees_all_close(grid[10], frequency.fourier_basis(7, 7, -2, 0), atol=1e-6)


class BandLimitedTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(((32, 32, 3),), ((33, 27),), ((2, 20, 15, 3),))
  def test_low_plus_high_is_image(self, shape):
    image = _image(10, shape)
    for bandwidth in (0, 1, 5, 12, 40):
      low = self.variant(frequency.lowpass_square)(image, bandwidth)
      high = self.variant(frequency.highpass_square)(image, bandwidth)
      chex.assert_trees_all_close(low + high, image, atol=1e-5)

  def test_lowpass_support(self):
    image = _image(11, (32, 32, 3))
    h = w = 32
    fi, fj = np.meshgrid(np.fft.fftfreq(h) * h, np.fft.fftfreq(w) * w, indexing="ij")
    for bandwidth in (1, 7, 10):
      low = _spectrum(frequency.lowpass_square(image, bandwidth))
      inside = (np.abs(fi) < bandwidth / 2) & (np.abs(fj) < bandwidth / 2)
      self.assertEqual(inside.sum(), (2 * np.ceil(bandwidth / 2) - 1) ** 2)
      np.testing.assert_allclose(np.abs(low[~inside]), 0.0, atol=1e-3)
      np.testing.assert_allclose(low[inside], _spectrum(image)[inside], rtol=1e-4, atol=1e-3)
    chex.assert_trees_all_close(frequency.lowpass_square(image, 0), jnp.zeros_like(image))
    chex.assert_trees_all_close(frequency.lowpass_square(image, 33), image, atol=1e-5)
    # The bandwidth can be traced (a curve over B under vmap).
    curve = jax.vmap(frequency.lowpass_square, in_axes=(None, 0))(image, jnp.array([1, 7]))
    chex.assert_trees_all_close(curve[1], frequency.lowpass_square(image, 7), atol=1e-5)

  def test_remove_radial_band(self):
    image = _image(12, (36, 36, 3))
    r = frequency.radial_distance(36, 36)
    out = frequency.remove_radial_band(image, 5.0, 9.0)
    before, after = _spectrum(image), _spectrum(out)
    band = (r >= 5) & (r < 9)
    np.testing.assert_allclose(np.abs(after[band]), 0.0, atol=1e-3)
    np.testing.assert_allclose(after[~band], before[~band], rtol=1e-4, atol=1e-3)
    chex.assert_trees_all_close(frequency.remove_radial_band(image, 0.0, 100.0),
                                jnp.zeros_like(image), atol=1e-6)
    chex.assert_trees_all_close(frequency.remove_radial_band(image, 30.0, 30.0), image, atol=1e-5)
