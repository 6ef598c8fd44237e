"""The analysis tools of `python -m freqrobust.analyze` as a registry: each tool's own flags, the
new frequency explanations on a trained run, and the curves over kept checkpoints."""
import json
import os
import re

from absl import flags
import numpy as np
import pytest

import workdirs
from freqrobust import analyze, tools, train
from freqrobust.tools import base
from freqrobust.workdir import UserError


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
  """A tiny run with a checkpoint kept at each of its two epochs."""
  workdir = str(tmp_path_factory.mktemp("tools") / "run")
  c = workdirs.tiny_config()
  c.train.num_epochs = 2
  c.train.keep_every_epochs = 1.0
  c.train.keep_checkpoints = 1
  c.train.log_every_steps = 2
  c.evals.clean.every_epochs = 0
  train.train_and_evaluate(c, workdir)
  return workdir


def run_tool(tool, *args):
  values = flags.FlagValues()
  analyze.define_flags(values, tool)
  values(["analyze", "--progress=false", *args])
  analyze.main(["analyze", tool], values)


def test_each_tool_defines_only_its_own_flags():
  seen = {}
  for name in tools.TOOLS:
    values = flags.FlagValues()
    analyze.define_flags(values, name)
    seen[name] = set(values)
  assert "eps" in seen["heatmap"] and "eps" not in seen["pdm"]
  assert "curves" in seen["hfc"] and "curves" not in seen["dct"]
  assert "rhos" in seen["smoothing"] and "deltas" in seen["fprinciple"]
  assert "attack_steps" in seen["smoothing"] and "attack_steps" not in seen["hfc"]
  with pytest.raises(UserError, match=r"no tool named 'nonsense'; the tools: pdm, heatmap"):
    run_tool("nonsense")


def test_hfc_curves_and_fprinciple_over_kept_checkpoints(trained_run):
  run_tool("hfc", f"--workdir={trained_run}", "--curves", "--num_images=16")
  out = os.path.join(trained_run, "analysis", "hfc")
  summary = json.load(open(os.path.join(out, "hfc.json")))
  for split in ("train", "test"):
    assert summary[split]["epochs"] == [1.0, 2.0]  # The two kept checkpoints.
    low = np.asarray(summary[split]["low_accuracy"])
    assert low.shape == (2, 4) and np.all((low >= 0) & (low <= 1))
    assert os.path.getsize(os.path.join(out, split, "hfc_curves.png")) > 1000
  run_tool("fprinciple", f"--workdir={trained_run}", "--num_images=24", "--deltas=1,10")
  f = json.load(open(os.path.join(trained_run, "analysis", "fprinciple", "fprinciple.json")))
  assert f["epochs"] == [1.0, 2.0] and np.shape(f["e_low"]) == (2, 2)


def test_dct_smoothing_and_hfc_of_one_model(trained_run):
  run_tool("dct", f"--workdir={trained_run}", "--num_images=16", "--num_bands=4")
  d = json.load(open(os.path.join(trained_run, "analysis", "dct", "dct_attribution.json")))
  assert d["num_bands"] == 4 and d["num_images"] == 16
  run_tool("smoothing", f"--workdir={trained_run}", "--num_images=16", "--rhos=0,0.5",
           "--corruption_severity=2", "--attack_steps=2")
  s = json.load(open(os.path.join(trained_run, "analysis", "smoothing", "smoothing.json")))
  # rho = 0 is the model itself: its accuracy on the first 16 test images, and on the same
  # corrupted images (one key per corruption, fold_in(key(seed), index)).
  import jax
  from freqrobust import corruptions, trained
  from freqrobust.tools import base
  run = trained.load_trained(trained_run)
  images, labels = base.load_test_images(run.config, 16)
  acc = lambda x: 100.0 * np.mean(run.predict(x).argmax(-1) == labels)
  assert s["rho"] == [0.0, 0.5] and s["clean_accuracy"][0] == pytest.approx(acc(images))
  corrupted = np.mean([acc(np.asarray(corruptions.corrupt(jax.random.fold_in(jax.random.key(0), i),
                                                          images, name, 2)))
                       for i, name in enumerate(corruptions.CORRUPTIONS)])
  assert s["corrupted_accuracy_s2"][0] == pytest.approx(corrupted)
  # PGD keeps the clean image as a candidate: never above the clean accuracy.
  assert all(p <= c for p, c in zip(s["pgd2_accuracy"], s["clean_accuracy"]))
  assert s["attack_eps"] == pytest.approx(0.1 if run.config.data.dataset == "fashion_mnist"
                                          else 8 / 255)
  run_tool("hfc", f"--workdir={trained_run}", "--num_images=16", "--step=4")
  assert os.path.exists(os.path.join(trained_run, "steps", "4", "analysis", "hfc", "hfc.json"))


def test_perturbation_spectra_of_the_model_pgd(trained_run):
  run_tool("perturbation", f"--workdir={trained_run}", "--num_images=16", "--pgd_steps=3",
           "--attack_eps=0.05")
  out = os.path.join(trained_run, "analysis", "perturbation")
  p = json.load(open(os.path.join(out, "perturbation.json")))
  assert p["eps"] == 0.05 and p["num_images"] == 16 and 0 <= p["fooled"] <= 1
  # Every perturbation lies in the L-inf ball: its L2 norm is at most eps * sqrt(H W C).
  assert 0 < p["mean_l2_norm"] <= 0.05 * np.sqrt(12 * 12 * 1) + 1e-6
  assert 0 <= p["half_power_radius"] <= np.sqrt(2) * 6 + 1e-6
  assert os.path.getsize(os.path.join(out, "perturbation.png")) > 1000


# ----------------------------------------------------------------------------- refused flags


@pytest.mark.parametrize("tool,flag", [
    ("perturbation", "--num_images=-5"), ("dct", "--num_images=-5"), ("hfc", "--num_images=-5"),
    ("smoothing", "--num_images=-5"), ("fprinciple", "--num_images=-5"),
    ("perturbation", "--attack_eps=-1"), ("smoothing", "--attack_eps=-1"),
    ("dct", "--num_bands=-3"), ("occlusion", "--num_bands=-3"), ("fprinciple", "--deltas=-1"),
    ("fprinciple", "--deltas=1,x"), ("perturbation", "--pgd_steps=0"),
    ("bandpass", "--bandwidths=0"), ("bandpass", "--bandwidths=1.5"), ("heatmap", "--eps=0"),
    ("spectra", "--severity=6"), ("pdm", "--ignore_fraction=0.7"), ("hfc", "--radii=nan"),
    ("hfc", "--batch_size=-1"), ("hfc", "--step=-2"), ("smoothing", "--rhos=0,-0.5")])
def test_a_bad_numeric_flag_is_refused_by_name_before_anything_is_loaded(tmp_path, tool, flag):
  """The workdir does not exist: the flag's own error comes first, a UserError (exit 2)."""
  name = flag.split("=")[0]
  with pytest.raises(UserError, match=re.escape(name + "=") + r"[^:]*: .*must be"):
    run_tool(tool, f"--workdir={tmp_path / 'none'}", flag)
  assert name[2:] in base.FLAG_BOUNDS


def test_every_numeric_flag_of_the_tools_has_bounds():
  """A new numeric flag (or list of numbers) of any tool is checked with the others."""
  values = flags.FlagValues()
  analyze.define_flags(values)  # Every tool's flags.
  text_lists = {"workdirs", "labels", "corruptions"}
  for name in values:
    parser = type(values[name].parser).__name__
    if parser in ("IntegerParser", "FloatParser") or (
        parser == "ListParser" and name not in text_lists):
      assert name in base.FLAG_BOUNDS, name
  assert base.FLAG_BOUNDS["pgd_steps"].problem(0) and not base.FLAG_BOUNDS["seed"].problem(0)


def test_an_object_store_that_does_not_answer_is_named(monkeypatch):
  """Offline, a gs:// workdir is one paragraph naming the object, not the backend's traceback."""
  from etils import epath

  def offline(self):
    raise OSError("Could not resolve host: storage.googleapis.com")

  monkeypatch.setattr(type(epath.Path("gs://bucket/run")), "exists", offline)
  with pytest.raises(UserError, match=r"gs://bucket/run/config.json could not be read: .*"
                                      r"OSError: Could not resolve host.*credentials"):
    run_tool("hfc", "--workdir=gs://bucket/run")
