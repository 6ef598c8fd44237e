"""Laws of the frequency interpretation tools, on hand-made models whose answers are known."""
import json
import os

from absl import flags
import chex
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from freqrobust import analysis
from freqrobust import analyze, tools
from freqrobust import frequency
from freqrobust.analysis import _batching
from freqrobust.analysis import examples
from workdirs import random_workdir, tiny_config

H = W = 12
BOX = examples.BOX_BLUR
LAPLACIAN = examples.LAPLACIAN


def first_layer(kernel2d: np.ndarray, cin: int = 2, cout: int = 3, bias: float = 0.0):
  return examples.handmade_first_layer(kernel2d, cin, cout, bias)


def lowpass_classifier(bandwidth: int, h: int = H, w: int = W, c: int = 2, classes: int = 4):
  """Linear classifier of the low-pass-filtered image: blind to every frequency outside."""
  weights = jax.random.normal(jax.random.key(7), (h * w * c, classes))

  @jax.jit
  def predict(x):
    x = frequency.lowpass_square(x, bandwidth)
    return (x - 0.5).reshape(x.shape[0], -1) @ weights

  return predict


def linear_classifier(h: int = H, w: int = W, c: int = 2, classes: int = 4):
  weights = jax.random.normal(jax.random.key(3), (h * w * c, classes))
  return jax.jit(lambda x: (x - 0.5).reshape(x.shape[0], -1) @ weights)


def grey_images(n: int = 6, c: int = 2, spread: float = 0.15, seed: int = 0):
  images = jax.random.uniform(jax.random.key(seed), (n, H, W, c), minval=0.5 - spread,
                              maxval=0.5 + spread)
  labels = jax.random.randint(jax.random.key(seed + 1), (n,), 0, 4)
  return np.asarray(images), np.asarray(labels)


def assert_nonblank_png(path: str) -> None:
  assert os.path.exists(path), path
  pixels = np.asarray(Image.open(path).convert("L"), np.float32)
  assert pixels.size > 100 and pixels.std() > 0, path


# --- batching -------------------------------------------------------------------------------


def test_padded_chunks_cover_every_item_once():
  seen = []
  for idx, valid in _batching.padded_chunks(11, 4, progress=False):
    assert len(idx) == 4
    seen += list(idx[:valid])
  assert seen == list(range(11))


# --- PDM (METHOD §5) -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def box_and_laplacian_maps():
  box_fn, _ = first_layer(BOX)
  lap_fn, _ = first_layer(LAPLACIAN)
  return (analysis.pdm_response(box_fn, H, W, 2, progress=False),
          analysis.pdm_response(lap_fn, H, W, 2, progress=False))


def test_box_blur_histogram_low_and_laplacian_high(box_and_laplacian_maps):
  radius = H / 4
  area = analysis.high_frequency_fraction(np.ones((H, W)), radius)
  box, lap = (analysis.response_histogram(analysis.normalize_response_maps(m))
              for m in box_and_laplacian_maps)
  assert analysis.high_frequency_fraction(box, radius) < area - 0.2
  assert analysis.high_frequency_fraction(lap, radius) > area + 0.05
  # The normaliser clips each map's top 0.5 % to 1, so the strongest vote is a plateau of a few
  # frequencies that all vote 1 per channel; argmax among them is decided by the last bits of
  # the float arithmetic (it moved from (6, 6) to (5, 6) on AMD). The law: the plateau holds DC
  # (box) or the Nyquist corner (Laplacian), and lies within one step of it.
  fi, fj = (np.abs(np.fft.fftfreq(n) * n) for n in (H, W))
  box_top, lap_top = (np.argwhere(np.isclose(h, h.max(), rtol=1e-4, atol=0)) for h in (box, lap))
  assert [0, 0] in box_top.tolist()
  assert all(fi[i] <= 1 and fj[j] <= 1 for i, j in box_top)
  assert [H // 2, W // 2] in lap_top.tolist()
  assert all(fi[i] >= H // 2 - 1 and fj[j] >= W // 2 - 1 for i, j in lap_top)
  # Before the normalisation the peaks are unique, by margins far above rounding: DC for the box
  # (the next frequency has 38 % of its response), Nyquist for the Laplacian (84 %).
  for maps, peak, margin in ((box_and_laplacian_maps[0], (0, 0), 0.6),
                             (box_and_laplacian_maps[1], (H // 2, W // 2), 0.95)):
    raw = maps.sum(axis=(0, 1))
    assert np.unravel_index(np.argmax(raw), raw.shape) == peak
    assert np.sort(raw.ravel())[-2] < margin * raw[peak]


SOBEL = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])


@pytest.mark.parametrize("kernel2d", [BOX, LAPLACIAN, SOBEL])
def test_pdm_response_follows_the_kernel_gain(kernel2d):
  # Around the flat image the ReLU half-wave-rectifies the filtered cosine, so the response is
  # proportional to the kernel's gain |DFT(K)| at that frequency (up to zero padding at the
  # border); DC and the Nyquist lines have a different cosine amplitude and are left out.
  layer_fn, kernel = first_layer(kernel2d, cin=1, cout=1)
  response = analysis.pdm_response(layer_fn, H, W, 1, progress=False)[0, 0]
  gain = analysis.kernel_spectrum(kernel, H, W)[..., 0, 0]
  i, j = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
  regular = ((i % (H // 2) != 0) | (j % (W // 2) != 0)) & ((i != 0) | (j != 0))
  assert np.corrcoef(response[regular], gain[regular])[0, 1] > 0.97


def test_pdm_response_shape_mirror_symmetry_and_convexity(box_and_laplacian_maps):
  box, _ = box_and_laplacian_maps
  assert box.shape == (3, 2, H, W)
  # cPDM of [i, j] and [-i, -j] is the same image.
  mirrored = np.roll(box[..., ::-1, ::-1], (1, 1), axis=(-2, -1))
  np.testing.assert_allclose(box, mirrored, atol=1e-5)
  # ReLU is convex and the cosine has zero mean: responses are >= 0 (Jensen), and output
  # channels that do not read input channel c do not respond to it.
  assert box.min() >= -1e-6
  np.testing.assert_allclose(box[0, 1], 0.0, atol=1e-7)
  assert box[0, 0].max() > 0


def test_pdm_response_independent_of_batch_size():
  layer_fn, _ = first_layer(LAPLACIAN, bias=0.1)
  a = analysis.pdm_response(layer_fn, 6, 6, 2, batch_size=7, progress=False)
  b = analysis.pdm_response(layer_fn, 6, 6, 2, batch_size=1000, progress=False)
  # Two batch shapes are two XLA programs: equal up to float reordering (responses are O(1)).
  chex.assert_trees_all_close(a, b, atol=1e-5)


def test_linear_regime_channel_has_no_peak_off_dc_and_can_be_left_out_of_the_vote():
  selective, _ = first_layer(LAPLACIAN, cin=1, cout=1)
  always_on, _ = first_layer(LAPLACIAN, cin=1, cout=1, bias=5.0)  # ReLU never clips: linear
  responses = np.concatenate([analysis.pdm_response(fn, H, W, 1, progress=False)
                              for fn in (selective, always_on)])
  peaks = analysis.peak_response_without_dc(responses)
  assert peaks[1] < 0.05 * peaks[0]
  np.testing.assert_array_equal(analysis.voting_channels(responses, 0.1), [1.0, 0.0])
  np.testing.assert_array_equal(analysis.voting_channels(responses, 0.0), [1.0, 1.0])
  with pytest.raises(ValueError, match="min_peak_fraction"):
    analysis.voting_channels(responses, 2.0)


def test_normalize_response_maps_range_order_and_constant():
  maps = np.stack([np.arange(100.0).reshape(1, 10, 10), np.full((1, 10, 10), 3.0)])
  out = analysis.normalize_response_maps(maps, ignore_fraction=0.0)
  # (x - lo) / span at x = hi: exactly 1 with IEEE division, not with a reciprocal multiply.
  assert out[0].min() == 0.0 and out[0].max() == pytest.approx(1.0, abs=1e-6)
  assert np.all(np.diff(out[0].ravel()) > 0)  # order preserved
  np.testing.assert_array_equal(out[1], 0.0)
  clipped = analysis.normalize_response_maps(maps, ignore_fraction=0.2)
  assert np.sum(clipped[0] == 1.0) > 1 and np.sum(clipped[0] == 0.0) > 1
  with pytest.raises(ValueError, match="ignore_fraction"):
    analysis.normalize_response_maps(maps, ignore_fraction=1.5)


def test_response_histogram_weights():
  maps = np.random.default_rng(0).uniform(size=(3, 2, 5, 5))
  np.testing.assert_allclose(analysis.response_histogram(maps, np.ones(3)),
                             analysis.response_histogram(maps))
  np.testing.assert_allclose(analysis.response_histogram(maps, np.array([0.0, 1.0, 0.0])),
                             maps[1].sum(axis=0))
  with pytest.raises(ValueError, match="weights"):
    analysis.response_histogram(maps, np.ones(2))


def test_kernel_spectrum_laws():
  delta = np.zeros((3, 3, 1, 1))
  delta[1, 1] = 1.0
  np.testing.assert_allclose(analysis.kernel_spectrum(delta, 8, 8), 1.0, atol=1e-12)
  box = analysis.kernel_spectrum(BOX[:, :, None, None], 8, 8)[..., 0, 0]
  lap = analysis.kernel_spectrum(LAPLACIAN[:, :, None, None], 8, 8)[..., 0, 0]
  assert box[0, 0] == pytest.approx(1.0) and lap[0, 0] == pytest.approx(0.0, abs=1e-12)
  assert analysis.high_frequency_fraction(box, 2) < analysis.high_frequency_fraction(lap, 2)


# --- Fourier heat map (Yin et al.) ---------------------------------------------------------------


@pytest.mark.parametrize("h,w", [(12, 12), (7, 5), (6, 5)])
def test_mirror_pairs_partition_the_grid(h, w):
  i, j, index_map = analysis.mirror_pairs(h, w)
  self_mirrored = (2 - h % 2) * (2 - w % 2)  # [0 or h/2] x [0 or w/2]
  assert len(i) == (h * w + self_mirrored) // 2
  assert set(np.unique(index_map)) == set(range(len(i)))
  np.testing.assert_array_equal(index_map, np.roll(index_map[::-1, ::-1], (1, 1), (0, 1)))
  np.testing.assert_array_equal(index_map[i, j], np.arange(len(i)))


def test_heatmap_of_lowpass_classifier_is_blind_to_high_frequencies():
  bandwidth = 5
  predict = lowpass_classifier(bandwidth)
  images, labels = grey_images()
  result = analysis.fourier_heatmap(predict, images, labels, eps=1.0, key=jax.random.key(0),
                                    batch_size=50, progress=False)
  fi = np.abs(np.fft.fftfreq(H) * H)[:, None]
  fj = np.abs(np.fft.fftfreq(W) * W)[None, :]
  inside = (fi < bandwidth / 2) & (fj < bandwidth / 2)
  np.testing.assert_allclose(result["error"][~inside], result["clean_error"], atol=1e-7)
  np.testing.assert_allclose(result["logit_change"][~inside], 0.0, atol=1e-4)
  assert np.all(result["logit_change"][inside] > 1e-2)  # the test can fail
  # Chunking does not change the answer; the seed fixes it.
  again = analysis.fourier_heatmap(predict, images, labels, eps=1.0, key=jax.random.key(0),
                                   batch_size=1000, progress=False)
  chex.assert_trees_all_close(result, again, atol=1e-5)
  other = analysis.fourier_heatmap(predict, images, labels, eps=1.0, key=jax.random.key(1),
                                   batch_size=1000, progress=False)
  assert not np.allclose(other["logit_change"], result["logit_change"])


def test_heatmap_of_a_linear_model_is_its_gain_on_the_basis_and_grows_with_eps():
  # One channel, no clipping: logits(x + s eps U) - logits(x) = s eps W^T U, whatever the sign s.
  predict = linear_classifier(c=1)
  weights = np.asarray(jax.random.normal(jax.random.key(3), (H * W, 4)))
  images, _ = grey_images(n=4, c=1)
  labels = np.argmax(np.asarray(predict(jnp.asarray(images))), -1)  # clean error 0
  y, x = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
  gain = np.zeros((H, W))
  for i in range(H):
    for j in range(W):
      basis = np.cos(2 * np.pi * (i * y / H + j * x / W))
      gain[i, j] = np.linalg.norm((basis / np.linalg.norm(basis)).ravel() @ weights)
  results = {eps: analysis.fourier_heatmap(predict, images, labels, eps, jax.random.key(0),
                                           clip=False, progress=False) for eps in (0.01, 50.0)}
  for eps, result in results.items():
    np.testing.assert_allclose(result["logit_change"], eps * gain, rtol=1e-4, atol=1e-5)
    assert result["clean_error"] == 0.0
  assert results[0.01]["error"].mean() < results[50.0]["error"].mean()


def test_cpdm_batch_equals_a_loop():
  c, i, j = (np.array(v) for v in ([0, 1, 1], [0, 3, 5], [2, 0, 5]))
  batch = analysis.cpdm_batch(8, 8, 2, c, i, j, 3.0)
  for n in range(3):
    np.testing.assert_allclose(batch[n], frequency.cpdm(8, 8, 2, c[n], i[n], j[n], 3.0),
                               atol=1e-6)


# --- band-limited accuracy -------------------------------------------------------------------


def test_bandlimited_accuracy_at_full_bandwidth_is_clean_accuracy():
  predict = linear_classifier()
  images, labels = grey_images(n=16)
  full = max(H, W) + 1
  result = analysis.bandlimited_accuracy(predict, images, labels, [0, 1, 5, full],
                                         batch_size=9, progress=False)
  clean = result["clean_accuracy"]
  assert result["lowpass_accuracy"][-1] == pytest.approx(clean)
  assert result["highpass_accuracy"][0] == pytest.approx(clean)  # B = 0 keeps everything
  # Nothing kept: every image is the same (zero) image, so accuracy is the share of one class.
  zero_class = int(np.argmax(np.asarray(predict(jnp.zeros((1, H, W, 2))))))
  assert result["lowpass_accuracy"][0] == pytest.approx(np.mean(labels == zero_class))
  assert result["highpass_accuracy"][-1] == pytest.approx(np.mean(labels == zero_class))


# --- occlusion (Wang et al.) -----------------------------------------------------------------


def test_occlusion_empty_band_changes_nothing_and_blind_bands_do_not_matter():
  bandwidth = 5
  predict = lowpass_classifier(bandwidth)
  images, labels = grey_images(n=10)
  # Radii are 0, 1, sqrt(2), 2, ...: no frequency lies in [0.3, 0.9).
  bands = [(0.3, 0.9), (0.0, 1.0), (4.0, 100.0)]
  result = analysis.occlusion_attribution(predict, images, labels, bands, batch_size=7,
                                          progress=False)
  np.testing.assert_allclose(result["drop"][0], 0.0, atol=1e-6)
  assert abs(result["drop"][1]) > 1e-3  # removing DC matters to this classifier
  # r >= 4 lies outside the classifier's square |f| < 2.5 (max r inside is sqrt(8) < 4).
  np.testing.assert_allclose(result["drop"][2], 0.0, atol=1e-5)
  counts = result["class_counts"]
  present = counts > 0
  weighted = (np.nan_to_num(result["drop_per_class"]) * counts).sum(axis=1) / counts.sum()
  np.testing.assert_allclose(weighted, result["drop"], atol=1e-6)
  assert np.all(np.isnan(result["drop_per_class"][:, ~present]))


def test_radial_bands_cover_every_frequency_once():
  bands = analysis.radial_bands(H, W, 5)
  r = frequency.radial_distance(H, W)
  hits = sum(((r >= lo) & (r < hi)).astype(int) for lo, hi in bands)
  np.testing.assert_array_equal(hits, 1)


# --- corruption spectra -----------------------------------------------------------------------


def checker_corruption(key, images, name, severity):
  del key
  checker = (np.indices(images.shape[1:3]).sum(axis=0) % 2 * 2 - 1)[None, :, :, None]
  if name == "checker":
    return images + 0.01 * severity * checker
  if name == "brighter":
    return images + 0.01 * severity
  return images


def test_corruption_spectra_laws():
  images, _ = grey_images(n=5)
  spectra = analysis.corruption_spectra(jax.random.key(0), images,
                                        ["checker", "brighter", "identity"], 2,
                                        checker_corruption, batch_size=2, progress=False)
  radius = 3.0
  hf = {n: analysis.high_frequency_fraction(s, radius) for n, s in spectra.items()}
  assert hf["checker"] == pytest.approx(1.0, abs=1e-4)
  assert hf["brighter"] == pytest.approx(0.0, abs=1e-4)
  assert spectra["brighter"][0, 0] == pytest.approx(0.02 * H * W, rel=1e-4)  # |DFT| of a constant
  np.testing.assert_allclose(spectra["identity"], 0.0)
  assert analysis.high_frequency_fraction(spectra["identity"], radius) == 0.0


def test_high_frequency_fraction_limits():
  spectrum = np.random.default_rng(0).uniform(0.1, 1.0, size=(2, 8, 8))
  np.testing.assert_allclose(analysis.high_frequency_fraction(spectrum, -1.0), 1.0)
  np.testing.assert_allclose(analysis.high_frequency_fraction(spectrum, 100.0), 0.0)
  low = analysis.high_frequency_fraction(spectrum, 2.0)
  high = analysis.high_frequency_fraction(spectrum, 1.0)
  assert np.all(low < high)


def test_corruption_accuracies_reads_the_evaluation_layout():
  # freqrobust.evaluate's DIR/corruption_eval/results.json (percent, severities as strings).
  results = {"clean_accuracy": 91.0, "robust_accuracy": 70.0,
             "accuracy": {"fog": {"1": 90.0, "2": 80.0, "3": 70.0, "4": 60.0, "5": 0.5}}}
  table = analysis.corruption_accuracies(results)
  assert list(table) == ["fog"]
  # Percent stays percent, even a collapsed set's 0.5 %.
  np.testing.assert_allclose([table["fog"][s] for s in range(1, 6)], [90, 80, 70, 60, 0.5])
  with pytest.raises(ValueError, match="accuracy"):
    analysis.corruption_accuracies({"mce": 30.0})


def test_accuracy_changes():
  base = {"fog": {1: 80.0, 2: 70.0}, "snow": {1: 50.0}}
  better = {"fog": {1: 85.0, 2: 74.0}}
  changes = analysis.accuracy_changes({"nat": base, "aps": better, "same": base}, "nat",
                                      ["fog", "snow"])
  assert list(changes) == ["aps", "same"]
  assert changes["aps"]["fog"] == pytest.approx(4.5)
  assert np.isnan(changes["aps"]["snow"])
  assert changes["same"] == {"fog": 0.0, "snow": 0.0}
  assert analysis.accuracy_changes({"nat": base, "aps": better}, "nat", ["fog"],
                                   severity=2)["aps"]["fog"] == pytest.approx(4.0)
  with pytest.raises(ValueError, match="baseline"):
    analysis.accuracy_changes({"aps": better}, "nat", ["fog"])


def test_one_reader_of_corruption_results(tmp_path):
  """workdir.read_corruption_results is the one reader: None or a UserError naming the command
  when missing, a UserError for a file that is not a report."""
  from freqrobust import workdir as workdir_lib
  assert not hasattr(analysis, "read_corruption_results")
  assert workdir_lib.read_corruption_results(str(tmp_path), required=False) is None
  with pytest.raises(workdir_lib.UserError, match="--evals=corruptions"):
    workdir_lib.read_corruption_results(str(tmp_path))
  os.makedirs(tmp_path / "corruption_eval")
  (tmp_path / "corruption_eval" / "results.json").write_text(json.dumps({"fog_1": 0.5}))
  assert workdir_lib.read_corruption_results(str(tmp_path)) == {"fog_1": 0.5}
  (tmp_path / "corruption_eval" / "results.json").write_text("[1, 2]")
  with pytest.raises(workdir_lib.UserError, match="not a corruption report"):
    workdir_lib.read_corruption_results(str(tmp_path), required=False)


# --- compare and the CLI's tool runners -------------------------------------------------------


def test_compare_keeps_the_order_given(tmp_path):
  hists = {d: np.full((4, 4), k, np.float64) for k, d in enumerate(["a", "b", "c"])}
  for d, hist in hists.items():
    os.makedirs(tmp_path / d / "analysis" / "pdm")
    np.savez(tmp_path / d / "analysis" / "pdm" / "pdm.npz", histogram=hist)
  order = [str(tmp_path / d) for d in ["c", "a", "b"]]
  pairs = analysis.collect_histograms(order, tools.compare.saved_histogram)
  assert [name for name, _ in pairs] == ["c", "a", "b"]
  assert [float(h[0, 0]) for _, h in pairs] == [2.0, 0.0, 1.0]
  summary = tools.compare.run_compare(str(tmp_path), order, tools.compare.saved_histogram,
                                ["C", "A", "B"])
  assert summary["labels"] == ["C", "A", "B"]
  assert summary["pdm_settings"] == [None, None, None]  # no pdm.json written here
  saved = np.load(tmp_path / "compare.npz")["histograms"]
  assert [float(h[0, 0]) for h in saved] == [2.0, 0.0, 1.0]
  assert_nonblank_png(str(tmp_path / "compare.png"))
  with pytest.raises(ValueError, match="labels"):
    analysis.collect_histograms(order, tools.compare.saved_histogram, ["x"])
  with pytest.raises(FileNotFoundError, match="analyze pdm"):
    tools.compare.saved_histogram(str(tmp_path / "missing"))
  computed = []
  tools.compare.saved_histogram(str(tmp_path / "a"), computed.append)
  assert not computed  # only computed when missing


def test_run_pdm_writes_figures_and_numbers(tmp_path):
  layer_fn, kernel = first_layer(BOX)
  summary = tools.pdm.run_pdm(str(tmp_path), layer_fn, (H, W, 2), kernel,
                            open_ratio=np.array([1.0, 0.0, 0.5]), progress=False)
  for name in summary["figures"]:
    assert_nonblank_png(str(tmp_path / name))
  assert set(summary["figures"]) == {"histogram.png", "response_maps.png", "cpdm_examples.png",
                                     "kernel_spectrum.png"}
  saved = np.load(tmp_path / "pdm.npz")
  assert saved["histogram"].std() > 0
  expected = analysis.response_histogram(saved["normalized"], np.array([1.0, 0.0, 0.5]))
  np.testing.assert_allclose(saved["weighted_histogram"], expected)
  assert summary["histogram_high_frequency_fraction"] < summary["area_high_frequency_fraction"]
  assert json.loads((tmp_path / "pdm.json").read_text())["t"] == pytest.approx(4 * np.sqrt(2))


def test_run_heatmap_bandpass_occlusion_spectra_write_outputs(tmp_path):
  predict = lowpass_classifier(5)
  images, labels = grey_images(n=6)
  key = jax.random.key(0)
  runs = {
      "heatmap": lambda d: tools.heatmap.run_heatmap(d, predict, images, labels, 1.0, key,
                                               progress=False),
      "bandpass": lambda d: tools.bandpass.run_bandpass(d, predict, images, labels, progress=False),
      "occlusion": lambda d: tools.occlusion.run_occlusion(d, predict, images, labels, num_bands=4,
                                                   progress=False),
      "spectra": lambda d: tools.spectra.run_spectra(
          d, key, images, ["checker", "brighter"], 3, corrupt_fn=checker_corruption,
          accuracies={"nat": {"checker": {3: 80.0}, "brighter": {3: 90.0}},
                      "aps": {"checker": {3: 85.0}, "brighter": {3: 89.0}}}, progress=False),
  }
  for tool, run in runs.items():
    out = tmp_path / tool
    os.makedirs(out)
    summary = run(str(out))
    for name in summary["figures"]:
      assert_nonblank_png(str(out / name))
    assert (out / f"{tool}.npz").exists()
    json.loads((out / f"{tool}.json").read_text())
  bandpass = json.loads((tmp_path / "bandpass" / "bandpass.json").read_text())
  assert bandpass["bandwidths"][-1] == max(H, W) + 1
  assert bandpass["lowpass_accuracy"][-1] == pytest.approx(bandpass["clean_accuracy"])
  spectra = json.loads((tmp_path / "spectra" / "spectra.json").read_text())
  assert spectra["accuracy_change"] == {"aps": {"checker": 5.0, "brighter": -1.0}}
  assert "hf_vs_accuracy.png" in spectra["figures"]


# --- the command line on a tiny checkpoint with random weights ---------------------------


@pytest.fixture
def cli_flags():
  """Parses command-line flags into a fresh FlagValues (absl's global FLAGS stay untouched)."""
  def parse(*args):
    values = flags.FlagValues()
    analyze.define_flags(values)
    values(["analyze", "--progress=false", *args])
    return values
  return parse


def test_cli_pdm_then_compare_on_a_checkpoint(tmp_path, cli_flags):
  workdir = random_workdir(str(tmp_path / "run"))
  analyze.main(["analyze", "pdm"], cli_flags(f"--workdir={workdir}", "--num_images=16"))
  out = tmp_path / "run" / "analysis" / "pdm"
  saved = np.load(out / "pdm.npz")
  assert saved["responses"].shape == (8, 1, 12, 12)  # 8 stem channels, 1 input channel
  assert saved["open_ratio"].shape == (8,) and np.all((saved["open_ratio"] > 0)
                                                        & (saved["open_ratio"] < 1))
  for name in json.loads((out / "pdm.json").read_text())["figures"]:
    assert_nonblank_png(str(out / name))
  # compare reads the saved numbers (no recomputation) and keeps the order and labels given.
  analyze.main(["analyze", "compare"], cli_flags(f"--workdirs={workdir},{workdir}",
                                                 "--labels=second,first", f"--workdir={tmp_path}"))
  summary = json.loads((tmp_path / "analysis" / "compare" / "compare.json").read_text())
  assert summary["labels"] == ["second", "first"]
  assert summary["pdm_settings"][0] == summary["pdm_settings"][1]
  assert summary["pdm_settings"][0]["t"] == pytest.approx(4 * np.sqrt(2))
  np.testing.assert_allclose(np.load(tmp_path / "analysis" / "compare" / "compare.npz")
                             ["histograms"][0], saved["histogram"])
  from freqrobust.workdir import UserError
  with pytest.raises(UserError, match="no tool named 'nonsense'"):
    analyze.main(["analyze", "nonsense"], cli_flags())


def test_cli_spectra_with_real_corruptions_and_results_files(tmp_path, cli_flags):
  runs = []
  for name, acc in [("nat", [50.0, 40.0]), ("aps", [60.0, 30.0])]:  # Percent, as evaluate writes.
    os.makedirs(tmp_path / name / "corruption_eval")
    (tmp_path / name / "corruption_eval" / "results.json").write_text(json.dumps(
        {"accuracy": {"gaussian_noise": {"3": acc[0]}, "contrast": {"3": acc[1]}}}))
    (tmp_path / name / "config.json").write_text(tiny_config().to_json_best_effort())
    runs.append(str(tmp_path / name))
  values = cli_flags(f"--workdirs={','.join(runs)}", f"--baseline={runs[0]}",
                     "--corruptions=gaussian_noise,contrast", "--severity=3")
  # Smooth images (one low-frequency cosine each): contrast, which scales an image around its
  # mean, changes only that frequency; Gaussian noise is white and fills the whole grid.
  amplitude = np.linspace(0.1, 0.3, 4)[:, None, None, None]
  images = 0.5 + amplitude * np.cos(2 * np.pi * np.arange(H) / H)[None, :, None, None]
  images = np.broadcast_to(images, (4, H, W, 1)).astype(np.float32)
  out = str(tmp_path / "out")
  os.makedirs(out)
  summary = tools.spectra._spectra_main(out, jax.random.key(0), images, runs,
                                  dict(batch_size=8, progress=False), values)
  hf = summary["high_frequency_fraction"]
  assert hf["contrast"] < 0.01 and hf["gaussian_noise"] > 0.5
  assert summary["accuracy_change"]["aps"] == pytest.approx({"gaussian_noise": 10.0,
                                                             "contrast": -10.0})
  for name in summary["figures"]:
    assert_nonblank_png(os.path.join(out, name))
  # The same through the command line, on the first run's (synthetic) test images, writing into
  # a folder that is not a run.
  analyze.main(["analyze", "spectra"], cli_flags(
      f"--workdirs={','.join(runs)}", f"--baseline={runs[0]}", f"--workdir={tmp_path / 'cmp'}",
      "--corruptions=gaussian_noise,contrast", "--severity=3"))
  saved = json.loads((tmp_path / "cmp" / "analysis" / "spectra" / "spectra.json").read_text())
  assert saved["corruptions"] == ["gaussian_noise", "contrast"] and saved["baseline"] == "nat"
  assert saved["num_images"] == 64  # the whole synthetic test split (fewer than the default 200)
