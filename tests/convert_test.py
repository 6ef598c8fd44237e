"""freqrobust.convert: a PyTorch checkpoint becomes a workdir that load_trained restores.

Key accounting (every key used, ignored by name or refused in a listed error), the errors of a
file that is not a checkpoint, prefix stripping, and end to end: a random-weight checkpoint saved
with torch.save, converted by the command line, predicts through `trained.load_trained` what
the PyTorch model predicts. References: RobustBench's definitions (see models_zoo_test.py).
"""
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl import flags

from freqrobust import convert, trained, workdir as workdir_lib
from freqrobust.workdir import UserError

from models_zoo_test import (TOLERANCE, flax_model, images_and_labels, randomise,
                             rb_architecture, relative_error)


def small_wrn():
  """TRADES-style WRN-10-1 (one block per group, both with and without projection)."""
  return randomise(rb_architecture("wide_resnet").WideResNet(depth=10, widen_factor=1,
                                                              sub_block1=True))


def abstract(arch="wrn", **fields):
  model = flax_model(arch, **(fields or dict(depth=10, width=1)))
  return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)),
                                           train=False))


def arrays_of(model):
  return convert.state_dict_arrays(model.state_dict())


# ----------------------------------------------------------------------------- key accounting


def test_every_key_is_mapped_or_ignored_by_name():
  arrays = arrays_of(small_wrn())
  result = convert.convert_state_dict(arrays, "wrn", abstract())
  assert set(result.mapping) | set(result.ignored) == set(arrays)
  assert all(k.endswith("num_batches_tracked") or k.startswith("sub_block1.")
             for k in result.ignored)
  assert result.mapping["conv1.weight"] == "params/stem/semantic/conv/kernel"
  assert result.mapping["block2.layer.0.convShortcut.weight"] == (
      "params/group1_block0/shortcut/kernel")
  assert result.mapping["bn1.running_var"] == "batch_stats/final_bn/var"
  assert result.mapping["fc.weight"] == "params/head/kernel"
  # OIHW -> HWIO and (out, in) -> (in, out), values kept.
  np.testing.assert_array_equal(result.variables["params"]["stem"]["semantic"]["conv"]["kernel"],
                                arrays["conv1.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(result.variables["params"]["head"]["kernel"],
                                arrays["fc.weight"].T)


def test_an_extra_key_is_refused_by_name():
  arrays = arrays_of(small_wrn())
  arrays["block1.layer.0.extra.weight"] = np.zeros(3, np.float32)
  with pytest.raises(UserError, match=r"1 keys unused: block1\.layer\.0\.extra\.weight"):
    convert.convert_state_dict(arrays, "wrn", abstract())


def test_a_missing_key_is_refused_by_name():
  arrays = arrays_of(small_wrn())
  del arrays["block1.layer.0.conv1.weight"]
  with pytest.raises(UserError, match=r"1 Flax variables without a key: "
                                      r"params/group0_block0/conv0/kernel"):
    convert.convert_state_dict(arrays, "wrn", abstract())


def test_a_wrong_size_or_family_is_refused():
  arrays = arrays_of(small_wrn())
  with pytest.raises(UserError, match="shapes differ"):  # WRN-10-1 read as WRN-10-2.
    convert.convert_state_dict(arrays, "wrn", abstract(depth=10, width=2))
  with pytest.raises(UserError, match="keys unused"):  # TRADES keys read as DeepMind's.
    convert.convert_state_dict(arrays, "dm_wrn", abstract("dm_wrn", depth=10, width=1))


# ----------------------------------------------------------------------------- reading the file


def test_an_html_page_is_refused_in_one_paragraph(tmp_path):
  page = tmp_path / "model.pt"
  page.write_text("<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title>"
                  "</head><body>Can't scan this file for viruses.</body></html>")
  with pytest.raises(UserError, match="is an HTML page, not a PyTorch checkpoint") as info:
    convert.load_state_dict(str(page))
  assert "\n" not in str(info.value)


def test_garbage_and_missing_files_are_refused(tmp_path):
  pytest.importorskip("torch")
  junk = tmp_path / "junk.pt"
  junk.write_bytes(os.urandom(1000))
  with pytest.raises(UserError, match="could not be read as a PyTorch checkpoint"):
    convert.load_state_dict(str(junk))
  with pytest.raises(UserError, match="no such file"):
    convert.load_state_dict(str(tmp_path / "absent.pt"))


class TrainingArgs:  # A pickled object besides the weights, as older training scripts saved.
  lr = 0.1


def test_pickled_objects_need_allow_pickle(tmp_path):
  torch = pytest.importorskip("torch")
  path = tmp_path / "old.pt"
  torch.save({"state_dict": {"module.fc.bias": torch.zeros(10)}, "args": TrainingArgs()}, path)
  with pytest.raises(UserError, match="--allow_pickle"):
    convert.load_state_dict(str(path))
  assert list(convert.load_state_dict(str(path), allow_pickle=True)) == ["fc.bias"]


def test_prefixes_are_stripped_only_as_prefixes():
  assert convert.strip_prefixes("module.model.conv1.weight") == "conv1.weight"
  assert convert.strip_prefixes("model.module.conv1.weight") == "conv1.weight"
  assert convert.strip_prefixes("block1.layer.0.module.weight") == "block1.layer.0.module.weight"
  assert convert.strip_prefixes("modules.conv.weight") == "modules.conv.weight"
  assert convert.strip_prefixes("my_model.conv.weight") == "my_model.conv.weight"
  arrays = {"w": np.ones(1)}
  for wrapped in ({"state_dict": {"module.w": np.ones(1)}}, {"last": {"model.w": np.ones(1)}},
                  {"w": np.ones(1)}):
    assert list(convert.state_dict_arrays(wrapped)) == list(arrays)


def test_without_torch_the_error_says_how_to_install_it(tmp_path, monkeypatch):
  path = tmp_path / "model.pt"
  path.write_bytes(b"PK\x03\x04" + b"\0" * 100)  # A zip header, as torch.save writes.
  monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError.
  with pytest.raises(UserError, match="needs PyTorch.*pip install torch"):
    convert.load_state_dict(str(path))


# ----------------------------------------------------------------------------- the workdir


def test_a_leftover_or_an_interrupted_import_never_leaves_a_half_run(tmp_path, monkeypatch):
  """Another run's leftover checkpoint is refused before anything is written (it ended in Orbax's
  StepAlreadyExistsError after config.json); a convert stopped while saving leaves no config.json
  (readers do not take it for a run), and the same command then redoes the import."""
  torch = pytest.importorskip("torch")
  checkpoint = tmp_path / "wrn.pt"
  torch.save(small_wrn().state_dict(), checkpoint)
  leftover = tmp_path / "leftover"
  (leftover / "checkpoints" / "1").mkdir(parents=True)
  with pytest.raises(UserError, match="holds checkpoints but no config.json"):
    convert.convert("wrn", str(checkpoint), str(leftover), depth=10, width=1)
  assert sorted(os.listdir(leftover)) == ["checkpoints"]

  from freqrobust import checkpoint as checkpoint_lib
  workdir = tmp_path / "run"

  def killed(manager, step, state):  # Stopped in mid-save: Orbax's temporary folder remains.
    (workdir / "checkpoints" / f"{step}.orbax-checkpoint-tmp-0").mkdir(parents=True)
    raise KeyboardInterrupt

  monkeypatch.setattr(checkpoint_lib, "save", killed)
  with pytest.raises(KeyboardInterrupt):
    convert.convert("wrn", str(checkpoint), str(workdir), depth=10, width=1)
  monkeypatch.undo()
  assert not (workdir / "config.json").exists() and (workdir / convert.IMPORTING).exists()
  convert.convert("wrn", str(checkpoint), str(workdir), depth=10, width=1)  # The retry.
  assert not (workdir / convert.IMPORTING).exists()
  assert sorted(os.listdir(workdir / "checkpoints")) == ["1"]
  assert workdir_lib.read_results(str(workdir))["status"] == "trained"
  assert trained.load_trained(str(workdir)).step == 1
  with pytest.raises(UserError, match="already holds a run"):
    convert.convert("wrn", str(checkpoint), str(workdir), depth=10, width=1)


# ----------------------------------------------------------------------------- end to end


def test_cli_converts_a_checkpoint_that_load_trained_predicts_like_torch(tmp_path):
  torch = pytest.importorskip("torch")
  reference = small_wrn()
  mu = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
  sigma = torch.tensor([0.2471, 0.2435, 0.2616]).view(1, 3, 1, 1)
  # As a RobustBench wrapper saves it: normalisation buffers mu/sigma, DataParallel's prefix,
  # nested under state_dict.
  state = {f"module.{k}": v.float() for k, v in reference.state_dict().items()}
  state.update({"module.mu": mu, "module.sigma": sigma})
  checkpoint = tmp_path / "wrn.pt"
  torch.save({"state_dict": state, "epoch": 100}, checkpoint)
  images, _ = images_and_labels(4, seed=1)
  with torch.no_grad():
    x = torch.tensor(images.transpose(0, 3, 1, 2), dtype=torch.float64)
    want = reference((x - mu.double()) / sigma.double()).numpy()

  workdir = str(tmp_path / "run")
  values = flags.FlagValues()
  convert.define_flags(values)
  values(["convert", "--arch=wrn", f"--checkpoint={checkpoint}", f"--workdir={workdir}",
          "--depth=10", "--width=1", "--source=test:Wong-style WRN-10-1"])
  convert.main([], values)

  loaded = trained.load_trained(workdir)
  got = np.asarray(loaded.predict(images), np.float64)
  assert relative_error(got, want) < TOLERANCE
  config = workdir_lib.read_config(workdir)
  assert (config.model.name, config.model.wrn_depth, config.model.wrn_width,
          config.model.padding, config.model.activation, config.model.attention) == (
              "wrn", 10, 1, "pytorch", "relu", "none")
  np.testing.assert_allclose(config.model.input_mean, [0.4914, 0.4822, 0.4465], rtol=1e-6)
  results = workdir_lib.read_results(workdir)
  assert results["status"] == "trained"
  imported = results["imported"]
  assert imported["sha256"] == convert.sha256(str(checkpoint))
  assert imported["arch"] == "wrn" and imported["source"] == "test:Wong-style WRN-10-1"
  assert imported["input_normalisation"]["from"] == "checkpoint"
  assert imported["date"] and any(k.startswith("sub_block1.") for k in imported["keys_ignored"])
  # A second conversion into the same workdir is refused.
  with pytest.raises(UserError, match="already holds a run"):
    convert.convert("wrn", str(checkpoint), workdir, depth=10, width=1)
  # Every evaluation and analysis then runs on the converted run unchanged. Offline, synthetic
  # 32x32x3 data stands in for CIFAR-10 (TFDS needs a network): only config.data changes.
  from freqrobust import analyze, evaluate
  config.data.dataset = "synthetic"
  config.data.synthetic_size, config.data.synthetic_channels = 32, 3
  config.eval.batch_size = 32  # Every prediction pads to it.
  config.evals.adversarial.update(dict(num_examples=8, pgd_steps=2, attacks=("pgd",),
                                       version="fast",
                                       batch_size=8, eps=(0.0, 8 / 255), main_eps=8 / 255))
  workdir_lib.write_config(workdir, config)
  flat = evaluate.evaluate_run(workdir, ["clean", "hfc_split", "adversarial"], progress=False)
  assert flat["clean/examples"] == 128 and 0 <= flat["hfc_split/low_r16"] <= 100
  assert flat["adversarial/pgd_eps0"] == pytest.approx(flat["adversarial/clean"])
  # Its at_end evaluations (clean) done: the imported run is "finished", its provenance kept, and
  # the report and the sweep read it like a trained run.
  results = workdir_lib.read_results(workdir)
  assert results["status"] == "finished" and results["imported"]["sha256"] == imported["sha256"]
  values = flags.FlagValues()
  analyze.define_flags(values, "bandpass")
  values(["analyze", f"--workdir={workdir}", "--num_images=4", "--bandwidths=1,33",
          "--progress=false"])
  analyze.main(["analyze", "bandpass"], values)
  assert os.path.exists(os.path.join(workdir, "analysis", "bandpass", "bandpass.png"))
