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


# ----------------------------------------------------------------------------- the run's record


def test_a_newest_checkpoint_results_json_does_not_record_is_refused(tmp_path):
  """A finished run trained on and stopped at a later checkpoint: evaluating without --step
  would put the new model's numbers under the old record's step and model; it is refused, naming
  both steps, and results.json is left as it was. --step evaluates it apart, recorded as what it
  is."""
  from workdirs import random_checkpoint
  workdir = random_workdir(str(tmp_path / "run"))
  evaluate.evaluate_run(workdir, ["clean"], progress=False)
  recorded = dict(workdir_lib.read_results(workdir), status="finished")
  workdir_lib.write_results(workdir, recorded)
  random_checkpoint(workdir, 2, seed=1)
  with pytest.raises(workdir_lib.UserError, match=r"newest checkpoint .* is step 2 .*records "
                                                  r"step 1 .*--step=2"):
    evaluate.evaluate_run(workdir, ["clean"], progress=False)
  assert workdir_lib.read_results(workdir) == recorded
  evaluate.evaluate_run(workdir, ["clean"], step=2, progress=False)
  apart = workdir_lib.read_results(workdir_lib.step_dir(workdir, 2))
  assert apart["step"] == 2 and apart["model"] != recorded["model"]
  assert apart["evals"]["clean"]["step"] == 2
  assert workdir_lib.read_results(workdir) == recorded
  # The recorded model itself, named by its step, still updates results.json.
  evaluate.evaluate_run(workdir, ["clean"], step=1, progress=False)
  assert workdir_lib.read_results(workdir)["model"] == recorded["model"]


def test_evaluate_takes_the_workdir_lock_before_loading_anything(tmp_path, monkeypatch):
  """While a training holds the workdir, evaluate is refused at once (WorkdirBusy), so its write
  of results.json can never interleave with the training's."""
  from freqrobust import trained
  workdir = random_workdir(str(tmp_path / "run"))

  def must_not_load(*args, **kwargs):
    raise AssertionError("loaded a checkpoint of a busy workdir")

  monkeypatch.setattr(trained, "load_trained", must_not_load)
  with workdir_lib.locked(workdir):
    with pytest.raises(workdir_lib.WorkdirBusy, match="in use by another run"):
      evaluate.evaluate_run(workdir, ["clean"], progress=False)
  assert workdir_lib.read_results(workdir) is None
  # A folder that is no workdir: named, and left without a lock file.
  with pytest.raises(workdir_lib.UserError, match="config.json not found"):
    evaluate.evaluate_run(str(tmp_path / "none"), ["clean"], progress=False)
  assert not os.path.exists(tmp_path / "none")


def _cli(workdir, *args):
  from absl import flags
  argv = ["evaluate", f"--workdir={workdir}", "--progress=false", *args]
  flag_values = flags.FlagValues()
  evaluate.define_flags(flag_values, sys_argv=argv)
  flag_values(argv)
  evaluate.main([], flag_values)


def test_config_overrides_of_the_evaluation_settings(tmp_path, capsys):
  """`evaluate --help` promises `--config.<...>` overrides of the evaluations' settings: they
  apply to this evaluation, typed as the defaults; a bad value is refused naming its field."""
  workdir = random_workdir(str(tmp_path / "run"))
  adversarial = ["--evals=adversarial", "--config.evals.adversarial.num_examples=8",
                 "--config.evals.adversarial.attacks=pgd", "--config.evals.adversarial.pgd_steps=1",
                 "--config.evals.adversarial.batch_size=8",
                 "--config.evals.adversarial.version=fast"]
  _cli(workdir, *adversarial, "--config.evals.adversarial.eps=0,0.02",
       "--config.evals.adversarial.main_eps=0.02")
  printed = capsys.readouterr().out
  assert "adversarial/pgd_eps0.02" in printed and "adversarial/pgd_eps0 " in printed
  record = workdir_lib.read_results(workdir)["evals"]["adversarial"]
  assert record["settings"]["main_eps"] == 0.02 and record["settings"]["num_examples"] == 8
  assert workdir_lib.read_config(workdir).evals.adversarial.num_examples == 1000  # Unchanged.
  with pytest.raises(workdir_lib.UserError, match=r"adversarial\.main_eps=-0\.1"):
    _cli(workdir, *adversarial, "--config.evals.adversarial.main_eps=-0.1")
  # A value typed as the default's replaces one config.json wrote as another type.
  config = workdir_lib.read_config(workdir)
  config.evals.clean.every_epochs = 10
  assert evaluate.apply_config_overrides(
      config, {"evals.clean.every_epochs": 2.5}).evals.clean.every_epochs == 2.5
  with pytest.raises(workdir_lib.UserError, match=r"config\.evals\.nonsense"):
    evaluate.apply_config_overrides(workdir_lib.read_config(workdir),
                                    {"evals.nonsense.eps": 1.0})
  with pytest.raises(workdir_lib.UserError, match="only the evaluations' settings"):
    evaluate.apply_config_overrides(workdir_lib.read_config(workdir), {"model.name": "x"})
  from absl import flags
  with pytest.raises(workdir_lib.UserError, match=r"names 'epz'.*--config\.evals\.<"):
    evaluate.define_flags(flags.FlagValues(), sys_argv=["evaluate", "--config.evals.clean.epz=1"])


def test_an_evaluation_added_after_the_run_was_trained_runs_with_its_defaults(tmp_path, capsys):
  """A run whose config.json predates an evaluator (no config.evals.adversarial_bands) is
  evaluated by it when named, with configs/default.py's settings and the overrides given; it was
  refused ("the run's config has no config.evals.adversarial_bands")."""
  workdir = random_workdir(str(tmp_path / "run"))
  config = workdir_lib.read_config(workdir)
  del config.evals["adversarial_bands"]
  workdir_lib.write_config(workdir, config)
  settings = dict(num_examples=4, apgd_steps=1, num_bands=2, apgd_losses="ce", main_eps=0.02)
  _cli(workdir, "--evals=adversarial_bands",
       *[f"--config.evals.adversarial_bands.{k}={v}" for k, v in settings.items()])
  printed = capsys.readouterr().out
  assert "config.evals.adversarial_bands: not in the run's config" in printed
  assert "adversarial_bands/full" in printed
  record = workdir_lib.read_results(workdir)["evals"]["adversarial_bands"]
  assert record["settings"]["num_examples"] == 4
  assert "adversarial_bands" not in workdir_lib.read_config(workdir).evals  # config.json kept.
  with pytest.raises(workdir_lib.UserError, match="nonsense"):
    _cli(workdir, "--evals=nonsense")
