"""Corruption evaluation with a hand-made classifier on hand-made data (generated source)."""
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from freqrobust import evaluate
from freqrobust.evaluators import corruptions as cev
from freqrobust import metrics
from freqrobust import workdir as workdir_lib
from workdirs import random_workdir

# Cheap-to-compile corruptions keep this file fast; the report logic does not depend on which.
NAMES = ("brightness", "contrast", "pixelate")


def _load_split(data_cfg, split):
  """Dark images are class 0, bright ones class 1 (20 test images, 12 x 12 grey)."""
  assert split == "test"
  levels = np.linspace(0.1, 0.9, 20)
  images = (levels[:, None, None, None] * 255 * np.ones((20, 12, 12, 1))).astype(np.uint8)
  return images, (levels > 0.5).astype(np.int32)


@jax.jit
def _predict(images):
  """A linear classifier on the mean brightness: logits (1 - 2m, 2m - 1)."""
  m = images.mean(axis=(1, 2, 3))
  return jnp.stack([1 - 2 * m, 2 * m - 1], -1)


def _config(tmp_path, **corruption_fields):
  config = ml_collections.ConfigDict()
  config.data = ml_collections.ConfigDict({"dataset": "toy"})
  config.eval = ml_collections.ConfigDict({"batch_size": 8})
  config.corruptions = ml_collections.ConfigDict(dict(
      source="generated", cache_dir=str(tmp_path / "cache"), names=NAMES, seed=0))
  config.corruptions.update(corruption_fields)
  return config


def test_accuracy_counts_every_image_through_the_batched_predictor():
  from freqrobust import sharding
  images, labels = _load_split(None, "test")
  labels = labels.copy()
  labels[:3] = 1 - labels[:3]  # three mistakes
  assert cev.accuracy(_predict, images, labels) == pytest.approx(85.)
  for batch_size in (1, 7, 20, 64):  # Padded, sharded over 8 devices, unpadded: same answer.
    batched = sharding.batched_predict(lambda v, x: _predict(x), {}, batch_size)
    assert cev.accuracy(batched, images, labels) == pytest.approx(85.)


def test_report_files_and_figures_follow_the_metrics(tmp_path):
  config = _config(tmp_path)
  results = cev.run_corruption_eval(_predict, config, str(tmp_path / "run"),
                                    load_split=_load_split, progress=False)
  out = tmp_path / "run" / "corruption_eval"
  for name in ("results.json", "accuracy.csv", "report.md", "heatmap.png", "per_corruption.png"):
    assert (out / name).stat().st_size > 0, name
  assert results["clean_accuracy"] == 100.
  table = workdir_lib.accuracy_table(results)
  assert set(table) == set(NAMES)
  assert results["robust_accuracy"] == pytest.approx(metrics.robust_accuracy(table, NAMES))
  assert results["mce_unnormalized"] == pytest.approx(metrics.mce_unnormalized(table, NAMES))
  assert results["mce_relative"] is None
  # Strong contrast loss pulls every image to its own mean: the brightness rule survives it.
  assert table["contrast"][5] == 100.
  # Brightness pushes dark images over the threshold at high severity.
  assert table["brightness"][5] < table["brightness"][1]
  assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(results))
  report = (out / "report.md").read_text()
  assert "Robust." in report and "AugMix" in report and "| contrast |" in report
  # Every report names its convention and how many corruptions its summary figures average.
  assert results["corruptions_averaged"] == len(NAMES)
  assert f"{len(NAMES)} corruptions averaged" in report and "Hendrycks & Dietterich" in report
  rows = (out / "accuracy.csv").read_text().splitlines()
  assert len(rows) == 1 + 1 + len(NAMES) * 5


def test_relative_mce_against_itself_is_100(tmp_path):
  config = _config(tmp_path)
  first = str(tmp_path / "a")
  cev.run_corruption_eval(_predict, config, first, load_split=_load_split, progress=False)
  results = cev.run_corruption_eval(_predict, config, str(tmp_path / "b"), first,
                                    load_split=_load_split, progress=False)
  # The baseline (this classifier) is perfect on contrast and pixelate: their error ratios, and
  # so the mean over corruptions, are undefined; the report says why instead of failing.
  assert results["mce_relative"] is None
  assert results["mce_relative_undefined_on"] == ["contrast", "pixelate"]
  # Clean accuracy 100 and none lost on them: H&D's Relative mCE is undefined there too.
  assert results["relative_mce_hd"] is None and results["baseline_clean_accuracy"] == 100.
  assert results["relative_mce_hd_undefined_on"] == ["contrast", "pixelate"]
  report = (tmp_path / "b" / "corruption_eval" / "report.md").read_text()
  assert "no error on contrast, pixelate" in report and "loses nothing on contrast" in report
  assert "mCE vs baseline" in report and "Relative mCE (H&D)" in report
  config = _config(tmp_path, names=("brightness",))  # errs at every severity > 1
  first = str(tmp_path / "a1")
  cev.run_corruption_eval(_predict, config, first, load_split=_load_split, progress=False)
  results = cev.run_corruption_eval(_predict, config, str(tmp_path / "b1"), first,
                                    load_split=_load_split, progress=False)
  assert results["mce_relative"] == pytest.approx(100.)
  assert results["relative_mce_hd"] == pytest.approx(100.)
  # A model with its own clean error: each side's degradation is taken from its own clean error.
  shifted = jax.jit(lambda images: _predict(images) + jnp.asarray([0.3, -0.3]))
  results = cev.run_corruption_eval(shifted, config, str(tmp_path / "s1"), first,
                                    load_split=_load_split, progress=False)
  clean, base_clean = results["clean_accuracy"], results["baseline_clean_accuracy"]
  assert clean < base_clean == 100.
  ce, base_ce = (results["corruption_error"]["brightness"],
                 results["baseline_corruption_error"]["brightness"])
  by_hand = 100 * (ce - (100 - clean)) / (base_ce - (100 - base_clean))
  swapped = 100 * (ce - (100 - base_clean)) / (base_ce - (100 - clean))
  assert results["relative_mce_hd"] == pytest.approx(by_hand)
  assert abs(by_hand - swapped) > 1 and abs(by_hand - results["mce_relative"]) > 1
  with pytest.raises(ValueError, match="evaluate that run first"):
    cev.run_corruption_eval(_predict, config, str(tmp_path / "c"), str(tmp_path / "none"),
                            load_split=_load_split, progress=False)


def test_interrupted_evaluation_resumes_and_equals_an_uninterrupted_one(tmp_path):
  config = _config(tmp_path)
  full = cev.run_corruption_eval(_predict, config, str(tmp_path / "full"),
                                 load_split=_load_split, progress=False)
  calls = {"n": 0}

  def flaky(images):
    calls["n"] += 1
    if calls["n"] > 3:  # the clean set and two corrupted sets
      raise KeyboardInterrupt
    return _predict(images)

  workdir = str(tmp_path / "resumed")
  with pytest.raises(KeyboardInterrupt):
    cev.run_corruption_eval(flaky, config, workdir, load_split=_load_split, progress=False)
  partial = json.loads(open(os.path.join(workdir, "corruption_eval", "partial.json")).read())
  done = len(partial["sets"])
  assert 0 < done < len(NAMES) * 5

  counted = {"n": 0}

  def counting(images):
    counted["n"] += 1
    return _predict(images)

  resumed = cev.run_corruption_eval(counting, config, workdir, load_split=_load_split,
                                    progress=False)
  assert counted["n"] == len(NAMES) * 5 - done  # only the missing sets
  assert resumed["accuracy"] == full["accuracy"]
  assert resumed["clean_accuracy"] == full["clean_accuracy"]


def test_changed_settings_or_model_start_over(tmp_path):
  """Nothing evaluated under other settings, or for another model, is reused."""
  workdir = str(tmp_path / "run")
  calls = {"n": 0}

  def counting(images):
    calls["n"] += 1
    return _predict(images)

  def run(step, model="a", **fields):
    calls["n"] = 0
    cev.run_corruption_eval(counting, _config(tmp_path, names=("contrast",), **fields),
                            workdir, load_split=_load_split, progress=False, step=step,
                            model_fingerprint=model)
    return calls["n"]

  first = run(step=10)
  assert first > 0
  assert run(step=10) == 0  # Same settings and model: everything reused.
  assert run(step=20) == first  # A newer checkpoint: evaluated again.
  # A retrained model that reached the same step (another seed): evaluated again.
  assert run(step=20, model="b") == first
  assert run(step=20, model="b", num_examples=10) == first  # Other settings: evaluated again.


def test_baseline_on_other_sets_is_refused(tmp_path):
  base = str(tmp_path / "base")
  cev.run_corruption_eval(_predict, _config(tmp_path, names=("contrast",)), base,
                          load_split=_load_split, progress=False)
  with pytest.raises(ValueError, match="num_examples"):
    cev.run_corruption_eval(_predict, _config(tmp_path, names=("contrast",), num_examples=10),
                            str(tmp_path / "model"), base, load_split=_load_split,
                            progress=False)



def test_cli_evaluates_a_checkpoint(tmp_path):
  from absl import flags
  workdir = random_workdir(str(tmp_path / "run"))
  flag_values = flags.FlagValues()
  evaluate.define_flags(flag_values)
  flag_values(["evaluate", f"--workdir={workdir}", "--evals=corruptions", "--num_examples=16",
               "--names=contrast",
               f"--cache_dir={tmp_path / 'cache'}", "--progress=false"])
  evaluate.main([], flag_values)
  results = workdir_lib.read_corruption_results(workdir)
  assert results["dataset"] == "synthetic" and results["num_examples"] == 16
  assert list(results["accuracy"]) == ["contrast"]
  assert 0. <= results["clean_accuracy"] <= 100.


def test_baseline_on_another_clean_test_set_is_refused(tmp_path):
  base = str(tmp_path / "base")
  cev.run_corruption_eval(_predict, _config(tmp_path, names=("contrast",)), base,
                          load_split=_load_split, progress=False)

  def other_split(data_cfg, split):  # Same dataset name, other images.
    images, labels = _load_split(data_cfg, split)
    return images[::-1].copy(), labels[::-1].copy()

  with pytest.raises(ValueError, match="clean_sha256"):
    cev.run_corruption_eval(_predict, _config(tmp_path, names=("contrast",)),
                            str(tmp_path / "model"), base, load_split=other_split,
                            progress=False)
  # A baseline that cannot show which images it saw (a field missing) is refused too.
  results_path = os.path.join(base, "corruption_eval", "results.json")
  with open(results_path) as f:
    written = json.load(f)
  del written["clean_sha256"]
  with open(results_path, "w") as f:
    json.dump(written, f)
  with pytest.raises(ValueError, match="clean_sha256: None"):
    cev.run_corruption_eval(_predict, _config(tmp_path, names=("contrast",)),
                            str(tmp_path / "model2"), base, load_split=_load_split,
                            progress=False)
