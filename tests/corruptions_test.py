"""Laws of the corruptions (docs/METHOD.md §6).

One non-square image size, 28 x 20, throughout: each corruption compiles once (grey images run
through the RGB function, and the severity is traced).
"""
import gzip
import io

import chex
import jax
import numpy as np
import pytest
import scipy.ndimage
import skimage.color
import skimage.data
import skimage.filters
import skimage.transform
from PIL import Image

from freqrobust import corruptions
from freqrobust.corruptions import filters
from freqrobust.corruptions import host
from freqrobust.corruptions import ops
from freqrobust.corruptions import textures

FASHION_TEST_IMAGES = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
SIZE = (28, 20)
RANDOM = {"gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "glass_blur",
          "motion_blur", "snow", "frost", "fog", "spatter", "elastic_transform"}
NOISE = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise")
# Damage grows with severity step by step, except where the recipe itself is not monotonic:
# elastic_transform (severity 1 has the largest affine jitter), saturate (severity 3 is a mild
# x1.5), spatter (water at 1-3, mud at 4-5), glass_blur and frost (shuffle / blend dominate).
NOT_STEPWISE = {"elastic_transform", "saturate", "spatter", "glass_blur", "frost"}


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
  """(4, 28, 20, 3) float32: the astronaut photograph and three crops of it, resized."""
  photo = skimage.data.astronaut()
  crops = [photo, photo[:256, 128:384], photo[200:456, :256], photo[256:, 256:]]
  return np.stack([skimage.transform.resize(c, SIZE, anti_aliasing=True)
                   for c in crops]).astype(np.float32)


@pytest.fixture(scope="module")
def fashion() -> np.ndarray:
  """(4, 28, 20, 1) uint8: four Fashion-MNIST test images, cropped to a non-square size."""
  with gzip.open(FASHION_TEST_IMAGES) as f:
    data = np.frombuffer(f.read(), np.uint8, offset=16)
  return data[:4 * 784].reshape(4, 28, 28, 1)[:, :, 4:24].copy()


def _damage(images, name, severity, seed=0):
  out = corruptions.corrupt(jax.random.key(seed), images, name, severity)
  scale = 255. if images.dtype == np.uint8 else 1.
  return np.abs(out.astype(np.float64) - images.astype(np.float64)).mean() / scale


def test_public_names():
  assert len(corruptions.CORRUPTIONS) == 15 and len(corruptions.EXTRA_CORRUPTIONS) == 4
  assert corruptions.CORRUPTIONS[0] == "gaussian_noise"
  assert corruptions.CORRUPTIONS[-1] == "jpeg_compression"
  assert set(corruptions.ALL_CORRUPTIONS) == set(corruptions.PARAMS)


@pytest.mark.parametrize("name, severity, match", [
    ("fog_of_war", 1, "valid names: gaussian_noise"),
    ("fog", 0, "valid severities"),
    ("fog", 6, "valid severities"),
    ("fog", True, "valid severities"),
])
def test_bad_name_or_severity_lists_valid_values(name, severity, match):
  with pytest.raises(ValueError, match=match):
    corruptions.corrupt(jax.random.key(0), np.zeros((1, 8, 8, 3), np.uint8), name, severity)


def test_bad_shape_or_dtype_is_refused():
  with pytest.raises(ValueError, match="C = 1 or 3"):
    corruptions.corrupt(jax.random.key(0), np.zeros((8, 8, 3), np.uint8), "fog", 1)
  with pytest.raises(ValueError, match="uint8 or float"):
    corruptions.corrupt(jax.random.key(0), np.zeros((1, 8, 8, 3), np.int32), "fog", 1)


@pytest.mark.parametrize("name", corruptions.ALL_CORRUPTIONS)
def test_shape_dtype_range_determinism_and_damage(name, astronaut, fashion):
  rgb_uint8 = np.round(astronaut * 255).astype(np.uint8)
  grey_float = fashion.astype(np.float32) / 255.
  for images in (rgb_uint8, grey_float):
    out = corruptions.corrupt(jax.random.key(0), images, name, 3)
    assert isinstance(out, np.ndarray)
    assert out.shape == images.shape and out.dtype == images.dtype
    if out.dtype != np.uint8:
      assert out.min() >= 0. and out.max() <= 1.
    again = corruptions.corrupt(jax.random.key(0), images, name, 3)
    np.testing.assert_array_equal(out, again)
    if name in RANDOM:
      other = corruptions.corrupt(jax.random.key(1), images, name, 3)
      assert np.any(other != out)
  # JAX arrays in, JAX arrays out.
  out = corruptions.corrupt(jax.random.key(0), jax.numpy.asarray(grey_float), name, 2)
  assert isinstance(out, jax.Array) and out.dtype == np.float32

  for images in (astronaut, fashion):
    damage = [_damage(images, name, s) for s in corruptions.SEVERITIES]
    if name == "saturate" and images.shape[-1] == 1:
      # Grey images have no saturation until the recipe adds some (severities 4 and 5).
      assert damage[0] == damage[1] == damage[2] == 0. < damage[3] < damage[4]
      continue
    if name not in {"elastic_transform", "saturate", "spatter"}:
      assert damage[4] > damage[0], damage
    if name not in NOT_STEPWISE:
      assert all(b >= a - 0.003 for a, b in zip(damage, damage[1:])), damage


@pytest.mark.parametrize("name", ["gaussian_noise", "zoom_blur"])
def test_jitted_batch_equals_the_eager_op_per_image(name, astronaut):
  key = jax.random.key(0)
  batch = corruptions.corrupt(key, astronaut, name, 4)
  corruption = ops.device_corruption(name, *SIZE, 1.)
  tables = {k: jax.numpy.asarray(v[3]) for k, v in corruption.tables(*SIZE, 1.).items()}
  for i, image_key in enumerate(jax.random.split(key, len(astronaut))):
    single = np.clip(corruption.op(image_key, jax.numpy.asarray(astronaut[i]), tables), 0, 1)
    np.testing.assert_allclose(batch[i], single, atol=1e-5)


def test_gaussian_noise_has_the_requested_std_before_clipping():
  grey = np.full((4, *SIZE, 3), 0.5, np.float32)  # 5 sigma from both bounds
  for severity, sigma in zip(corruptions.SEVERITIES, corruptions.PARAMS["gaussian_noise"]):
    noise = corruptions.corrupt(jax.random.key(severity), grey, "gaussian_noise", severity) - grey
    assert abs(noise.mean()) < 0.1 * sigma
    np.testing.assert_allclose(noise.std(), sigma, rtol=0.05)


def test_shot_and_speckle_noise_are_unbiased_with_their_variance():
  grey = np.full((4, *SIZE, 3), 0.5, np.float32)
  rate = corruptions.PARAMS["shot_noise"][4]
  shot = corruptions.corrupt(jax.random.key(0), grey, "shot_noise", 5)
  np.testing.assert_allclose(shot.mean(), 0.5, atol=0.01)
  np.testing.assert_allclose(shot.var(), 0.5 / rate, rtol=0.1)  # Poisson: var = mean
  c = corruptions.PARAMS["speckle_noise"][4]
  speckle = corruptions.corrupt(jax.random.key(0), grey, "speckle_noise", 5)
  np.testing.assert_allclose(speckle.std(), 0.5 * c, rtol=0.05)


def test_shot_noise_follows_the_poisson_law():
  from scipy import stats
  rate = corruptions.PARAMS["shot_noise"][4]
  for level in (100 / 255., 0.3):  # a tabulated grey level; one between two levels
    grey = np.full((4, *SIZE, 3), level, np.float32)
    counts = np.round(corruptions.corrupt(jax.random.key(0), grey, "shot_noise", 5) * rate)
    ks = np.arange(0, 40)
    empirical = np.array([(counts == k).mean() for k in ks])
    np.testing.assert_allclose(empirical, stats.poisson.pmf(ks, level * rate), atol=0.015)


def test_impulse_noise_flips_the_requested_fraction_to_black_or_white():
  grey = np.full((4, *SIZE, 3), 0.5, np.float32)
  amount = corruptions.PARAMS["impulse_noise"][4]
  out = corruptions.corrupt(jax.random.key(0), grey, "impulse_noise", 5)
  flipped = out != 0.5
  assert set(np.unique(out[flipped])) <= {0., 1.}
  np.testing.assert_allclose(flipped.mean(), amount, rtol=0.15)


def test_contrast_scales_deviations_from_the_mean(astronaut):
  for severity, factor in zip(corruptions.SEVERITIES, corruptions.PARAMS["contrast"]):
    out = corruptions.corrupt(jax.random.key(0), astronaut, "contrast", severity)
    mean = astronaut.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(out - mean, factor * (astronaut - mean), atol=1e-5)


def test_brightness_adds_to_the_value_of_grey_pixels(fashion):
  # A grey pixel has saturation 0 and HSV value equal to its level: brightness adds c to it.
  grey = fashion.astype(np.float32) / 255.
  for severity, c in zip(corruptions.SEVERITIES, corruptions.PARAMS["brightness"]):
    out = corruptions.corrupt(jax.random.key(0), grey, "brightness", severity)
    np.testing.assert_allclose(out, np.clip(grey + c, 0, 1), atol=1e-5)


def test_blurs_keep_constant_images(astronaut):
  grey = np.full(astronaut.shape, 0.5, np.float32)
  for name in ("gaussian_blur", "defocus_blur", "motion_blur", "zoom_blur", "pixelate"):
    out = corruptions.corrupt(jax.random.key(0), grey, name, 5)
    np.testing.assert_allclose(out, grey, atol=1e-5, err_msg=name)
  # glass_blur quantises to 8 bits in between, as the recipe does.
  out = corruptions.corrupt(jax.random.key(0), grey, "glass_blur", 5)
  np.testing.assert_allclose(out, grey, atol=1 / 255)


def test_pixelate_at_factor_one_is_the_identity(astronaut):
  np.testing.assert_array_equal(ops.pixelate_matrix(32, 1.0), np.eye(32))
  tables = {"rows": ops.pixelate_matrix(28, 1.0), "cols": ops.pixelate_matrix(20, 1.0)}
  out = ops.pixelate(None, jax.numpy.asarray(astronaut[0]), tables)
  np.testing.assert_allclose(out, astronaut[0], atol=1e-6)


def test_pixelate_matches_pillow_box_resampling(astronaut):
  image = np.round(astronaut[0] * 255).astype(np.uint8)
  for severity, factor in zip(corruptions.SEVERITIES, corruptions.PARAMS["pixelate"]):
    small = (int(20 * factor), int(28 * factor))  # Pillow sizes are (width, height)
    reference = Image.fromarray(image).resize(small, Image.BOX).resize((20, 28), Image.BOX)
    ours = corruptions.corrupt(jax.random.key(0), image[None], "pixelate", severity)[0]
    # Pillow rounds to 8 bits after each of its passes.
    assert np.abs(ours.astype(int) - np.asarray(reference, int)).max() <= 2


def test_filters_match_their_reference_implementations(astronaut):
  image = astronaut[0]
  chex.assert_trees_all_close(
      np.asarray(filters.gaussian_filter(jax.numpy.asarray(image), 0.8)),
      skimage.filters.gaussian(image, sigma=0.8, channel_axis=-1, preserve_range=True),
      atol=1e-5)
  hsv = np.asarray(filters.rgb_to_hsv(jax.numpy.asarray(image)))
  chex.assert_trees_all_close(hsv, skimage.color.rgb2hsv(image), atol=1e-5)
  chex.assert_trees_all_close(np.asarray(filters.hsv_to_rgb(jax.numpy.asarray(hsv))),
                              skimage.color.hsv2rgb(hsv), atol=1e-5)
  square, n = image[:20, :20], 20
  for zoom in (1.06, 1.25):  # the recipe's clipped_zoom, SciPy zoom with order 1
    crop = int(np.ceil(n / zoom))
    top = (n - crop) // 2
    zoomed = scipy.ndimage.zoom(square[top:top + crop, top:top + crop], (zoom, zoom, 1), order=1)
    trim = (zoomed.shape[0] - n) // 2
    reference = zoomed[trim:trim + n, trim:trim + n]
    matrix = filters.zoom_matrix(n, zoom)
    ours = np.asarray(filters.resample(jax.numpy.asarray(square), matrix, matrix))
    chex.assert_trees_all_close(ours, reference, atol=1e-4)
  kernel = filters.disk_kernel(1.5, 0.1)
  reference = np.stack([scipy.ndimage.correlate(image[..., c], kernel, mode="mirror")
                        for c in range(3)], -1)
  ours = np.asarray(filters.correlate2d(jax.numpy.asarray(image), kernel, "mirror"))
  chex.assert_trees_all_close(ours, reference, atol=1e-5)


def test_zoom_taps_equal_the_zoom_matrix():
  for size, zoom in ((20, 1.06), (28, 1.25), (7, 1.11)):
    i0, i1, w1 = filters.zoom_taps(size, zoom)
    matrix = np.zeros((size, size))
    np.add.at(matrix, (np.arange(size), i0), 1 - w1)
    np.add.at(matrix, (np.arange(size), i1), w1)
    np.testing.assert_allclose(matrix, filters.zoom_matrix(size, zoom), atol=1e-6)


def _recipe_plasma(noise, mapsize, decay):
  """make_cifar_c.py's plasma_fractal (strided writes into the full map), fed `noise`."""
  grid = np.zeros((mapsize, mapsize))
  step, wibble, level = mapsize, 100., 0
  while step >= 2:
    half = step // 2
    corner = grid[0::step, 0::step]
    square = corner + np.roll(corner, -1, 0)
    square += np.roll(square, -1, 1)
    grid[half::step, half::step] = square / 4 + wibble ** 2 * noise[level][0]
    dr, ul = grid[half::step, half::step], grid[0::step, 0::step]
    grid[0::step, half::step] = (dr + np.roll(dr, 1, 0) + ul + np.roll(ul, -1, 1)) / 4 + (
        wibble ** 2 * noise[level][1])
    grid[half::step, 0::step] = (dr + np.roll(dr, 1, 1) + ul + np.roll(ul, -1, 0)) / 4 + (
        wibble ** 2 * noise[level][2])
    step, wibble, level = step // 2, wibble / decay, level + 1
  grid -= grid.min()
  return grid / grid.max()


def test_plasma_fractal_equals_the_recipe_diamond_square():
  key = jax.random.key(4)
  noise = [np.asarray(n, np.float64) for n in textures.plasma_noise(key, 32)]
  ours = np.asarray(textures.plasma_fractal(key, 32, 2.5))
  np.testing.assert_allclose(ours, _recipe_plasma(noise, 32, 2.5), atol=1e-4)


def test_elastic_smoothing_matrix_equals_scipy_and_zero_distortion_is_identity(astronaut):
  noise = np.random.default_rng(0).random((28, 20))
  for sigma in (0.6, 6.4):
    ours = ops._smoothing_matrix(28, sigma) @ noise @ ops._smoothing_matrix(20, sigma).T
    np.testing.assert_allclose(
        ours, scipy.ndimage.gaussian_filter(noise, sigma, mode="reflect", truncate=3.),
        atol=1e-12)
  tables = {k: jax.numpy.asarray(v[0]) for k, v in ops.elastic_transform_tables(28, 20, 1.).items()}
  tables["c"] = jax.numpy.zeros(3)  # no affine jitter, no displacement
  out = ops.elastic_transform(jax.random.key(0), jax.numpy.asarray(astronaut[0]), tables)
  np.testing.assert_allclose(out, astronaut[0], atol=1e-5)


def test_jpeg_round_trips_through_pillow_at_the_recipe_quality(astronaut):
  image = np.round(astronaut * 255).astype(np.uint8)
  out = corruptions.corrupt(jax.random.key(0), image, "jpeg_compression", 5)
  buffer = io.BytesIO()
  Image.fromarray(image[1]).save(buffer, "JPEG", quality=corruptions.PARAMS["jpeg_compression"][4])
  np.testing.assert_array_equal(out[1], np.asarray(Image.open(buffer)))


def _high_frequency_share(clean, corrupted, radius=6.):
  """Share of E|DFT(C(X) - X)| (summed over frequencies) above `radius` (docs/METHOD.md §1 r)."""
  h, w = clean.shape[1:3]
  fy, fx = np.meshgrid(np.fft.fftfreq(h) * h, np.fft.fftfreq(w) * w, indexing="ij")
  spectrum = np.abs(np.fft.fft2(corrupted - clean, axes=(1, 2))).mean(axis=(0, 3))
  return spectrum[np.hypot(fy, fx) > radius].sum() / spectrum.sum()


def test_spectral_signature_noise_high_fog_and_contrast_low(astronaut):
  # Yin et al. 2019: noise corruptions live at high frequencies, fog and contrast at low ones.
  for name in NOISE:
    out = corruptions.corrupt(jax.random.key(0), astronaut, name, 3)
    assert _high_frequency_share(astronaut, out) > 0.7, name
  for name in ("fog", "contrast"):
    out = corruptions.corrupt(jax.random.key(0), astronaut, name, 3)
    assert _high_frequency_share(astronaut, out) < 0.5, name


def test_frost_photographs_from_frost_dir(tmp_path, astronaut):
  photo = np.zeros((200, 300, 3), np.uint8)
  photo[..., 2] = 255  # pure blue frost
  Image.fromarray(photo).save(tmp_path / "frost1.png")
  out = corruptions.corrupt(jax.random.key(0), astronaut, "frost", 1, frost_dir=str(tmp_path))
  image_weight, frost_weight = corruptions.PARAMS["frost"][0]
  expected = np.clip(image_weight * astronaut + frost_weight * photo[:28, :20] / 255., 0, 1)
  np.testing.assert_allclose(out, expected, atol=1e-5)
  with pytest.raises(ValueError, match="not a directory"):
    corruptions.corrupt(jax.random.key(0), astronaut, "frost", 1, frost_dir=str(tmp_path / "x"))


def test_frost_source_resolution(tmp_path, monkeypatch):
  """frost_dir > the photographs of an installed imagecorruptions package > procedural; the
  package is located without being imported (its import fails under NumPy 2)."""
  import importlib.machinery
  import importlib.util
  import sys
  assert corruptions.frost_source("/my/frost") == "photographs (/my/frost)"
  assert corruptions.resolve_frost("/my/frost")[0] == "/my/frost"
  assert corruptions.resolve_frost(corruptions.PROCEDURAL_FROST) == ("", "procedural")
  package = tmp_path / "imagecorruptions"
  (package / "frost").mkdir(parents=True)
  (package / "__init__.py").write_text("raise ImportError('must not be imported')\n")
  for name in ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg",
               "frost6.jpg"):
    (package / "frost" / name).write_bytes(b"")
  monkeypatch.syspath_prepend(str(tmp_path))
  monkeypatch.delitem(sys.modules, "imagecorruptions", raising=False)
  importlib.invalidate_caches()
  assert corruptions.resolve_frost("") == (str(package / "frost"),
                                           "photographs (imagecorruptions)")
  assert "imagecorruptions" not in sys.modules  # found, not executed
  assert corruptions.frost_source("/my/frost") == "photographs (/my/frost)"  # explicit wins
  (package / "frost" / "frost6.jpg").unlink()  # an incomplete copy is not used
  assert corruptions.resolve_frost("") == ("", "procedural")
  monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # not installed
  assert corruptions.frost_source("") == "procedural"


def test_frost_photo_resize_is_the_recipe_opencv_bilinear():
  """make_cifar_c.py: cv2.resize(frost, (0, 0), fx=0.2, fy=0.2), INTER_LINEAR: output pixel d
  samples (d + 0.5) / 0.2 - 0.5 = 5 d + 2, an integer: a subsampling, no averaging."""
  photo = np.random.default_rng(0).integers(0, 256, (63, 47, 3)).astype(np.uint8)
  small = host.resize_linear(photo, 0.2)
  assert small.shape == (13, 9, 3)  # round(12.6), round(9.4), as OpenCV rounds the size
  np.testing.assert_array_equal(small, photo[2::5, 2::5][:13, :9])
  # At 0.4 (size_scale 2) output (0, 3) samples y = 0.5 * 2.5 - 0.5 = 0.75, x = 3.5 * 2.5 - 0.5
  # = 8.25: bilinear between rows 0, 1 and columns 8, 9.
  big = host.resize_linear(photo, 0.4).astype(np.float64)
  p = photo.astype(np.float64)
  expected = (0.25 * (0.75 * p[0, 8] + 0.25 * p[0, 9]) + 0.75 * (0.75 * p[1, 8] + 0.25 * p[1, 9]))
  np.testing.assert_allclose(big[0, 3], expected, atol=0.5)


@pytest.mark.skipif(not corruptions.resolve_frost("")[0],
                    reason="imagecorruptions (pip install --no-deps imagecorruptions) absent")
def test_frost_uses_the_installed_benchmark_photographs(astronaut):
  assert corruptions.frost_source("") == "photographs (imagecorruptions)"
  photos = host.load_frost_images(corruptions.resolve_frost("")[0], *SIZE, 1.0)
  assert len(photos) == 6 and photos[0].shape == (120, 180, 3)  # frost1.png, 900 x 600, x 0.2
  out = corruptions.corrupt(jax.random.key(0), astronaut, "frost", 5)
  procedural = corruptions.corrupt(jax.random.key(0), astronaut, "frost", 5,
                                   frost_dir=corruptions.PROCEDURAL_FROST)
  assert out.shape == astronaut.shape and np.abs(out - procedural).mean() > 0.01


def test_size_scale_only_grows_pixel_parameters():
  assert corruptions.size_scale(28, 28) == 1.0
  assert corruptions.size_scale(64, 96) == 2.0
  small = ops.motion_blur_tables(32, 32, 1.0)["kernel"]
  large = ops.motion_blur_tables(64, 64, 2.0)["kernel"]
  assert large.shape[1] == 2 * (small.shape[1] - 1) + 1


def test_canny_suppression_is_strict_along_diagonals():
  """cv2.Canny's non-maximum suppression keeps a diagonal-gradient pixel only when it is strictly
  above both neighbours along the gradient (horizontal/vertical: `>` one side, `>=` the other).
  A two-step diagonal ramp (0, 127, 254 across y + x = 11, 12) has Sobel magnitudes 4, 6, 4
  (x 127 x 2) on the diagonals 10, 11, 12: only diagonal 11 is an edge; the equal flanks are not."""
  y, x = np.mgrid[:12, :12]
  image = 127. * (y + x >= 11) + 127. * (y + x >= 12)
  edges = np.asarray(filters.canny(jax.numpy.asarray(image, jax.numpy.float32), 50., 150.))
  inner = (y > 0) & (y < 11) & (x > 0) & (x < 11)  # away from the replicated border
  assert set((y + x)[edges & inner].tolist()) == {11}
  # The same ramp along rows (a horizontal gradient) gives one column, as the `>=` side allows.
  image = 127. * (x >= 6) + 127. * (x >= 7)
  edges = np.asarray(filters.canny(jax.numpy.asarray(image, jax.numpy.float32), 50., 150.))
  assert set(x[edges & inner].tolist()) == {6}


def test_grey_frost_from_photographs_is_clipped_before_the_luma(tmp_path, fashion):
  """A grey image is frosted as RGB, clipped, then converted, as every other colour corruption."""
  photo = np.zeros((200, 300, 3), np.uint8)
  photo[..., 0] = 255  # pure red frost: the red channel overshoots 1 on bright pixels
  Image.fromarray(photo).save(tmp_path / "frost1.png")
  grey = fashion.astype(np.float32) / 255.
  out = corruptions.corrupt(jax.random.key(0), grey, "frost", 5, frost_dir=str(tmp_path))
  image_weight, frost_weight = corruptions.PARAMS["frost"][4]
  rgb = np.clip(image_weight * np.tile(grey, (1, 1, 1, 3)) + frost_weight * photo[:28, :20] / 255.,
                0, 1)
  np.testing.assert_allclose(out, np.asarray(filters.luma(jax.numpy.asarray(rgb))), atol=1e-5)
  unclipped = image_weight * np.tile(grey, (1, 1, 1, 3)) + frost_weight * photo[:28, :20] / 255.
  assert (unclipped > 1).any()  # the case the order decides is present


def test_spatter_box_mean_keeps_exact_integer_means():
  """cv2.blur then astype(uint8): a 3x3 mean that is an integer stays that integer (summing float32
  weights of 1/9 gives 2.9999998 for 3, whose floor loses a level), and others are floored."""
  for value in range(21):  # the distance map is truncated at 20
    constant = jax.numpy.full((6, 5, 1), float(value), jax.numpy.float32)
    np.testing.assert_array_equal(ops.box_mean_uint8(constant), value)
  ramp = jax.numpy.asarray(np.arange(30, dtype=np.float32).reshape(6, 5, 1))
  by_hand = np.floor(scipy.ndimage.uniform_filter(np.arange(30.).reshape(6, 5), 3,
                                                  mode="mirror") + 1e-9)
  np.testing.assert_array_equal(np.asarray(ops.box_mean_uint8(ramp))[..., 0], by_hand)
