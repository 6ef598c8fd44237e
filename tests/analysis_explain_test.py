"""Laws of the explanation tools of issue #30: perturbation spectra and RCT, DCT attribution,
HFC (low/high split, accuracy, kernel smoothing) and the F-principle filter, on hand-made
models and perturbations whose answers are known."""
import json
import os

import flax
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest
import scipy.fft
import scipy.signal

from freqrobust import frequency
from freqrobust.analysis import dct_attribution as dct_lib
from freqrobust.analysis import fprinciple
from freqrobust.analysis import hfc
from freqrobust.analysis import perturbation


def random_images(n: int, h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
  return np.asarray(jax.random.uniform(jax.random.key(seed), (n, h, w, c)), np.float32)


def linear_model(h: int, w: int, c: int, classes: int = 4, seed: int = 3, bias: bool = True):
  weights = jax.random.normal(jax.random.key(seed), (h * w * c, classes)) / np.sqrt(h * w * c)
  offset = jax.random.normal(jax.random.key(seed + 1), (classes,)) if bias else jnp.zeros(classes)
  return jax.jit(lambda x: x.reshape(x.shape[0], -1) @ weights + offset), weights, offset


def assert_nonblank_png(path: str) -> None:
  assert os.path.exists(path), path
  pixels = np.asarray(Image.open(path).convert("L"), np.float32)
  assert pixels.size > 100 and pixels.std() > 0, path


# --- DCT ------------------------------------------------------------------------------------


def test_dct_round_trip_orthonormality_and_scipy_agreement():
  images = random_images(2, 16, 12, 3)
  coefficients = np.asarray(dct_lib.dct2(images))
  reference = scipy.fft.dctn(images.astype(np.float64), type=2, axes=(1, 2), norm="ortho")
  np.testing.assert_allclose(coefficients, reference, atol=1e-5)
  np.testing.assert_allclose(np.asarray(dct_lib.idct2(coefficients)), images, atol=1e-5)
  # Orthonormal: energy preserved; DC = sum / sqrt(H W) per image and channel.
  np.testing.assert_allclose((coefficients ** 2).sum(axis=(1, 2)), (images ** 2).sum(axis=(1, 2)),
                             rtol=1e-5)
  np.testing.assert_allclose(coefficients[:, 0, 0], images.sum(axis=(1, 2)) / np.sqrt(16 * 12),
                             rtol=1e-5)


@pytest.mark.parametrize("h,w,num_bands", [(8, 8, None), (8, 8, 4), (16, 12, 8), (5, 7, 11)])
def test_diagonal_bands_partition_by_u_plus_v(h, w, num_bands):
  bands = dct_lib.diagonal_bands(h, w, num_bands)
  d = np.arange(h)[:, None] + np.arange(w)[None, :]
  expected = h + w - 1 if num_bands is None else num_bands
  assert bands[0, 0] == 0 and bands.max() == expected - 1
  assert set(np.unique(bands)) == set(range(expected))  # every band holds coefficients
  # Bands are unions of whole diagonals, ordered from the low corner.
  for k in range(h + w - 1):
    assert len(np.unique(bands[d == k])) == 1
  order = [bands[d == k][0] for k in range(h + w - 1)]
  assert order == sorted(order)
  if num_bands is None:
    np.testing.assert_array_equal(bands, d)
  edges = dct_lib.band_diagonals(h, w, num_bands)
  assert edges[0, 0] == 0 and edges[-1, 1] == h + w - 2
  np.testing.assert_array_equal(edges[1:, 0], edges[:-1, 1] + 1)


def test_attribution_with_the_images_own_coefficients_is_zero():
  images = random_images(5, 8, 8, 3)
  labels = np.array([0, 1, 2, 3, 1])
  model, _, _ = linear_model(8, 8, 3)
  result = dct_lib.dct_band_attribution(model, images, labels, num_bands=6,
                                   baseline=np.asarray(dct_lib.dct2(images)), batch_size=8,
                                   progress=False)
  scale = np.abs(np.asarray(model(images))).max()
  assert result["attribution"].shape == (6,)
  np.testing.assert_allclose(result["attribution"], 0.0, atol=1e-5 * scale)
  finite = np.isfinite(result["attribution_per_class"])
  np.testing.assert_allclose(result["attribution_per_class"][finite], 0.0, atol=1e-5 * scale)
  np.testing.assert_array_equal(result["class_counts"], [1, 2, 1, 1])


@pytest.mark.parametrize("baseline", ["zeros", "noise"])
def test_a_mean_intensity_model_is_attributed_to_band_zero_alone(baseline):
  images = random_images(6, 8, 8, 3, seed=1)
  labels = np.array([0, 1, 2, 0, 1, 2])
  gain = jnp.asarray([1.0, -2.0, 3.0])

  @jax.jit
  def mean_model(x):
    return jnp.mean(x, axis=(1, 2, 3))[:, None] * gain[None, :] + 0.25

  result = dct_lib.dct_band_attribution(mean_model, images, labels, num_bands=5, baseline=baseline,
                                   key=jax.random.key(4), batch_size=8, progress=False)
  attribution = result["attribution"]
  np.testing.assert_allclose(attribution[1:], 0.0, atol=1e-5)
  assert abs(attribution[0]) > 0.05
  if baseline == "zeros":
    # Removing DC leaves a zero-mean image: O_0 = gain_c * mean(x).
    expected = np.mean(np.asarray(gain)[labels] * images.mean(axis=(1, 2, 3)))
    np.testing.assert_allclose(attribution[0], expected, rtol=1e-4)
    # Class 3 has no images.
  else:
    assert result["noise_std"].shape == (5, 3) and np.all(result["noise_std"] > 0)


def test_zero_baseline_attributions_of_a_linear_model_sum_to_its_response():
  images = random_images(4, 8, 8, 3, seed=2)
  labels = np.array([3, 0, 1, 2])
  model, _, offset = linear_model(8, 8, 3)
  result = dct_lib.dct_band_attribution(model, images, labels, num_bands=7, num_classes=5,
                                   batch_size=8, progress=False)
  # The bands partition the coefficients and the model is linear: sum_i O_i = f_c(x) - f_c(0).
  logits = np.asarray(model(images))
  expected = np.mean(logits[np.arange(4), labels] - np.asarray(offset)[labels])
  np.testing.assert_allclose(result["attribution"].sum(), expected, rtol=1e-4, atol=1e-5)
  assert result["attribution_per_class"].shape == (7, 5)
  assert np.all(np.isnan(result["attribution_per_class"][:, 4]))


# --- perturbation spectra and RCT -------------------------------------------------------------


@pytest.mark.parametrize("i,j", [(3, 5), (0, 2), (4, 4), (7, 1)])
def test_a_fourier_basis_perturbation_has_its_power_at_its_frequency_and_mirror(i, j):
  h = w = 8
  eps = 0.7
  clean = random_images(5, h, w, 3, seed=5)
  basis = np.asarray(frequency.fourier_basis(h, w, i, j))
  perturbed = clean + eps * basis[None, :, :, None]
  result = perturbation.perturbation_spectra(perturbed, clean, batch_size=4, progress=False)
  power = result["power_spectrum"]
  support = np.zeros((h, w), bool)
  support[i, j] = support[-i % h, -j % w] = True
  # Parseval (norm="backward"): sum |F|^2 = H W sum d^2 = H W eps^2 (unit-norm basis).
  np.testing.assert_allclose(power.sum(), h * w * eps ** 2, rtol=1e-4)
  assert power[~support].sum() < 1e-6 * power.sum()
  np.testing.assert_allclose(power[i, j], power[-i % h, -j % w], rtol=1e-4)
  r = float(frequency.radial_distance(h, w)[i, j])
  assert result["half_power_radius"] == pytest.approx(r, abs=1e-5)
  # The shifted copy has its peak at DC-centred coordinates.
  shifted = result["mean_abs_spectrum_shifted"]
  fi, fj = (i + h // 2) % h, (j + w // 2) % w
  assert shifted[fi, fj] == pytest.approx(shifted.max())
  profile = result["radial_profile"]
  assert np.count_nonzero(profile > 1e-3 * profile.max()) == 1
  assert result["radii"][np.argmax(profile)] == round(r)


def test_half_power_radius_counts_ties_and_stops_at_exactly_half():
  power = np.zeros((8, 8))
  power[1, 0] = power[-1, 0] = 1.0  # r = 1, one mirror pair
  power[0, 3] = power[0, -3] = 1.0  # r = 3
  assert perturbation.half_power_radius(power) == pytest.approx(1.0)  # exactly half at r <= 1
  power[0, 3] = 1.5
  assert perturbation.half_power_radius(power) == pytest.approx(3.0)
  power[:] = 0.0
  power[1, 0] = power[0, 1] = 1.0  # two frequencies of the same radius: their sum counts
  power[2, 2] = 1.9
  assert perturbation.half_power_radius(power) == pytest.approx(1.0)


def test_rct_of_a_scaled_image_is_the_scale_in_every_band():
  clean = random_images(4, 8, 8, 3, seed=6) + 0.1
  result = perturbation.perturbation_spectra(1.3 * clean, clean, num_bands=5, batch_size=4,
                                             progress=False)
  np.testing.assert_allclose(result["rct"], 0.3, rtol=1e-4)
  np.testing.assert_allclose(result["rct_map"], 0.3, rtol=1e-3)
  assert result["rct"].shape == (5,)


def test_rct_of_one_dct_basis_perturbation_sits_in_its_band_alone():
  h = w = 8
  clean = random_images(4, h, w, 3, seed=7)
  delta = np.zeros((h, w, 3), np.float32)
  delta[2, 4, :] = 0.5  # u + v = 6
  perturbed = clean + np.asarray(dct_lib.idct2(delta))[None]
  result = perturbation.perturbation_spectra(perturbed, clean, batch_size=4, progress=False)
  rct = result["rct"]
  assert rct.shape == (h + w - 1,)
  assert rct[6] > 0 and np.all(np.delete(rct, 6) < 1e-5 * rct[6])


def test_zero_perturbation():
  clean = random_images(4, 8, 8, 3)
  result = perturbation.perturbation_spectra(clean, clean, batch_size=4, progress=False)
  assert np.isnan(result["half_power_radius"])
  np.testing.assert_array_equal(result["rct"], 0.0)


# --- HFC ----------------------------------------------------------------------------------------


def official_low(images: np.ndarray, r: float) -> np.ndarray:
  """HaohanWang/HFC frequencyHelper.py: fftshift, mask dist < r around (n/2, n/2), inverse."""
  n, h, w, c = images.shape
  ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  mask = (np.sqrt((ii - h / 2) ** 2 + (jj - w / 2) ** 2) < r).astype(np.float64)
  out = np.zeros(images.shape)
  for k in range(n):
    for ch in range(c):
      fd = np.fft.fftshift(np.fft.fft2(images[k, :, :, ch])) * mask
      out[k, :, :, ch] = np.real(np.fft.ifft2(np.fft.ifftshift(fd)))
  return out


@pytest.mark.parametrize("shape", [(2, 32, 32, 3), (2, 28, 28, 1)])
def test_hfc_split_matches_the_official_mask_and_adds_up(shape):
  images = random_images(*shape, seed=8)
  for r in (0, 3.5, 4, 8, 12.5, 16, 100):
    low, high = (np.asarray(a) for a in hfc.hfc_split(images, r))
    np.testing.assert_allclose(low + high, images, atol=1e-5)
    np.testing.assert_allclose(low, official_low(images, r), atol=2e-5)
  low0, high0 = hfc.hfc_split(images, 0.0)
  np.testing.assert_allclose(np.asarray(low0), 0.0, atol=1e-6)
  np.testing.assert_allclose(np.asarray(high0), images, atol=1e-6)
  low_all, _ = hfc.hfc_split(images, 100.0)
  np.testing.assert_allclose(np.asarray(low_all), images, atol=1e-5)


def test_hfc_components_have_disjoint_spectra():
  images = random_images(1, 16, 16, 2, seed=9)
  low, high = hfc.hfc_split(images, 5.0)
  inside = np.asarray(frequency.radial_distance(16, 16)) < 5.0
  low_f = np.abs(np.fft.fft2(np.asarray(low), axes=(1, 2)))
  high_f = np.abs(np.fft.fft2(np.asarray(high), axes=(1, 2)))
  assert low_f[:, ~inside].max() < 1e-4 and high_f[:, inside].max() < 1e-4
  assert low_f[:, inside].max() > 1 and high_f[:, ~inside].max() > 0.1


def test_scaled_radii():
  assert hfc.scaled_radii(32, 32) == [4.0, 8.0, 12.0, 16.0]
  assert hfc.scaled_radii(28, 28) == [3.5, 7.0, 10.5, 14.0]


def test_hfc_accuracy_limits_and_rescale_invariance():
  images = random_images(12, 8, 8, 3, seed=10) - 0.5
  model, _, _ = linear_model(8, 8, 3, bias=False)
  labels = np.array(jnp.argmax(model(images), -1))
  labels[:3] = (labels[:3] + 1) % 4  # clean accuracy 9/12
  radii = [0.0, 4.0, 100.0]
  plain = hfc.hfc_accuracy(model, images, labels, radii, rescale="none", batch_size=5,
                           progress=False)
  clean = 0.75
  assert plain[100.0][0] == pytest.approx(clean)  # low = the image
  assert plain[0.0][1] == pytest.approx(clean)  # high = the image
  # An unbiased linear model's argmax ignores positive scaling: max-rescaling changes nothing.
  rescaled = hfc.hfc_accuracy(model, images, labels, radii, rescale="max", batch_size=5,
                              progress=False)
  assert rescaled == plain
  row = hfc.hfc_curve_row(model, images, labels, radii, rescale="none")
  assert row["clean_accuracy"] == pytest.approx(clean)
  assert row["low_accuracy"] == [plain[r][0] for r in radii]
  json.dumps(row)


def test_rescale_to_max():
  x = jnp.asarray(np.stack([np.full((2, 2, 1), 0.5), np.full((2, 2, 1), -1.0)]), jnp.float32)
  out = np.asarray(hfc.rescale_to_max(x))
  np.testing.assert_allclose(out[0], 1.0)
  np.testing.assert_allclose(out[1], -1.0)  # max <= 0: unchanged


# --- kernel smoothing -----------------------------------------------------------------------


@pytest.mark.parametrize("boundary,scipy_boundary", [("symmetric", "symm"), ("zeros", "fill")])
def test_smooth_kernel_is_the_official_convolution(boundary, scipy_boundary):
  kernel = np.asarray(jax.random.normal(jax.random.key(11), (3, 3, 2, 4)), np.float32)
  np.testing.assert_array_equal(hfc.smooth_kernel(kernel, 0.0, boundary), kernel)
  rho = 0.3
  mask = np.full((3, 3), rho)
  mask[1, 1] = 1.0
  smoothed = hfc.smooth_kernel(kernel, rho, boundary)
  for i in range(2):
    for o in range(4):
      expected = scipy.signal.convolve2d(kernel[:, :, i, o], mask, boundary=scipy_boundary,
                                         mode="same")
      np.testing.assert_allclose(smoothed[:, :, i, o], expected, rtol=1e-5, atol=1e-6)
  # A constant kernel, mirrored at the border, stays constant times (1 + 8 rho).
  if boundary == "symmetric":
    np.testing.assert_allclose(hfc.smooth_kernel(np.ones((3, 3, 1, 1)), rho), 1 + 8 * rho)


@pytest.mark.parametrize("frozen", [False, True])
def test_smooth_first_layer_and_smoothing_curve(frozen):
  kernel = jnp.asarray(jax.random.normal(jax.random.key(12), (3, 3, 3, 2)))
  other = jnp.ones((5,))
  variables = {"params": {"stem": {"semantic": {"conv": {"kernel": kernel, "bias": other}}},
                          "head": {"w": other}}, "batch_stats": {"m": other}}
  if frozen:
    variables = flax.core.freeze(variables)
  same = hfc.smooth_first_layer(variables, 0.0)
  np.testing.assert_array_equal(same["params"]["stem"]["semantic"]["conv"]["kernel"], kernel)
  smoothed = hfc.smooth_first_layer(variables, 0.5)
  new_kernel = smoothed["params"]["stem"]["semantic"]["conv"]["kernel"]
  assert not np.allclose(new_kernel, kernel)
  assert variables["params"]["stem"]["semantic"]["conv"]["kernel"] is kernel  # untouched
  assert smoothed["params"]["head"]["w"] is other and smoothed["batch_stats"]["m"] is other
  curve = hfc.smoothing_curve(
      lambda v: {"norm": float(jnp.sum(v["params"]["stem"]["semantic"]["conv"]["kernel"] ** 2))},
      variables, [0.0, 0.5])
  assert curve["rho"] == [0.0, 0.5]
  assert curve["norm"][0] == pytest.approx(float(jnp.sum(kernel ** 2)), rel=1e-5)
  assert curve["norm"][1] == pytest.approx(float(jnp.sum(new_kernel ** 2)), rel=1e-5)


# --- F-principle -----------------------------------------------------------------------------


def test_kernel_rows_sum_to_one_and_distances_are_exact():
  images = random_images(7, 8, 8, 3, seed=13)
  flat = images.reshape(7, -1).astype(np.float64)
  brute = ((flat[:, None, :] - flat[None, :, :]) ** 2).sum(-1)
  dist = fprinciple.pairwise_sq_distances(images, block_size=3)
  np.testing.assert_allclose(dist, brute, rtol=1e-9, atol=1e-9)
  for delta in (0.01, 2.0, 1e6):
    k = fprinciple.gaussian_kernel_matrix(images, delta, block_size=4)
    np.testing.assert_allclose(k.sum(axis=1), 1.0, rtol=1e-12)
    assert np.all(k >= 0) and np.all(np.isfinite(k))
    # K_ij proportional to exp(-d_ij / 2 delta) within a row: the diagonal is the row's maximum.
    np.testing.assert_allclose(np.diag(k), k.max(axis=1))
  # Far-apart images (distances ~1e6): no row underflows to 0 / 0.
  far = fprinciple.gaussian_kernel_matrix(images * 1000.0, 1.0)
  np.testing.assert_allclose(far, np.eye(7), atol=1e-12)


def test_frequency_errors_laws():
  rng = np.random.default_rng(0)
  n, k = 9, 3
  images = rng.uniform(size=(n, 4, 4, 1))
  dist = fprinciple.pairwise_sq_distances(images)
  y = np.eye(k)[rng.integers(0, k, n)]
  exact = fprinciple.frequency_errors(dist, y, y, [0.1, 1.0, 10.0])
  np.testing.assert_allclose(exact["e_low"], 0.0, atol=1e-12)
  np.testing.assert_allclose(exact["e_high"], 0.0, atol=1e-12)
  h = rng.dirichlet(np.ones(k), n)
  wide = fprinciple.frequency_errors(dist, y, h, [1e12])
  # K -> 1/N everywhere: K f = the column means of f.
  expected = np.linalg.norm(y.mean(0) - h.mean(0)) / np.linalg.norm(y.mean(0))
  np.testing.assert_allclose(wide["e_low"][0], expected, rtol=1e-6)
  narrow = fprinciple.frequency_errors(dist, y, h, [1e-9])
  # K = identity: the low part is everything, the high part of y is 0.
  np.testing.assert_allclose(narrow["e_low"][0], np.linalg.norm(y - h) / np.linalg.norm(y))
  assert np.isnan(narrow["e_high"][0])
  blocks = fprinciple.frequency_errors(dist, y, h, [0.3], block_size=2)
  whole = fprinciple.frequency_errors(dist, y, h, [0.3], block_size=100)
  np.testing.assert_allclose(blocks["e_low"], whole["e_low"], rtol=1e-12)


def test_high_part_keeps_its_precision_when_the_kernel_is_nearly_the_identity():
  # Two images: K = [[1 - e, e], [e, 1 - e]], (I - K) f = e (f_1 - f_2, f_2 - f_1), so
  # e_high = |d(y - h)| / |d y| for every delta, even where e ~ 1e-200 (f - K f would round).
  images = np.stack([np.zeros((2, 2, 1)), np.full((2, 2, 1), 0.5)])  # distance 1
  dist = fprinciple.pairwise_sq_distances(images)
  y = np.eye(2)
  h = np.array([[0.7, 0.3], [0.4, 0.6]])
  expected = np.linalg.norm((y - h)[0] - (y - h)[1]) / np.linalg.norm(y[0] - y[1])
  for delta in (1e-3, 0.05, 1.0, 100.0):
    np.testing.assert_allclose(fprinciple.frequency_errors(dist, y, h, [delta])["e_high"][0],
                               expected, rtol=1e-9)


def test_default_deltas_are_the_official_ones_on_cifar():
  np.testing.assert_allclose(fprinciple.default_deltas((32, 32, 3)), np.linspace(2, 100, 20))
  np.testing.assert_allclose(fprinciple.default_deltas((28, 28, 1)),
                             np.linspace(2, 100, 20) * 784 / 3072)


# --- runners: arrays in, files out (CIFAR-sized) ----------------------------------------------


def test_runners_write_figures_and_numbers(tmp_path):
  images = random_images(4, 32, 32, 3, seed=14)
  labels = np.array([0, 1, 2, 1])
  model, _, _ = linear_model(32, 32, 3)
  perturbed = np.clip(images + 0.03 * np.sign(random_images(4, 32, 32, 3, seed=15) - 0.5), 0, 1)
  kernel = jnp.asarray(jax.random.normal(jax.random.key(16), (3, 3, 3, 4)))
  variables = {"params": {"stem": {"semantic": {"conv": {"kernel": kernel}}}}}
  row_hfc = hfc.hfc_curve_row(model, images, labels)
  rows_hfc = {1: row_hfc, 2: row_hfc}  # one model stands for every epoch
  dist = fprinciple.pairwise_sq_distances(images)
  row_fp = fprinciple.fprinciple_row(model, images, labels, sq_distances=dist)
  rows_fp = {1: row_fp, 2: row_fp, 3: row_fp}
  assert len(row_fp["e_low"]) == 20 and 0 <= row_fp["accuracy"] <= 1
  runs = {
      "perturbation": lambda d: perturbation.run_perturbation(d, perturbed, images,
                                                              progress=False),
      "dct_attribution": lambda d: dct_lib.run_dct_attribution(
          d, model, images, labels, num_bands=6, baseline="noise", progress=False),
      "hfc": lambda d: hfc.run_hfc(d, model, images, labels, progress=False),
      "hfc_curves": lambda d: hfc.run_hfc_curves(d, rows_hfc),
      "smoothing": lambda d: hfc.run_smoothing(
          d, lambda v: float(jnp.abs(v["params"]["stem"]["semantic"]["conv"]["kernel"]).sum()),
          variables, rhos=(0.0, 0.5)),
      "fprinciple": lambda d: fprinciple.run_fprinciple(d, rows_fp),
  }
  for tool, run in runs.items():
    out = tmp_path / tool
    os.makedirs(out)
    summary = run(str(out))
    assert summary["figures"], tool
    for name in summary["figures"]:
      assert_nonblank_png(str(out / name))
    assert (out / f"{tool}.npz").exists()
    json.loads((out / f"{tool}.json").read_text())
  hfc_summary = json.loads((tmp_path / "hfc" / "hfc.json").read_text())
  assert hfc_summary["radii"] == [4.0, 8.0, 12.0, 16.0]
