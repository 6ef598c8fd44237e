"""The command line: a real run on tiny synthetic data, and configuration errors that teach."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_main(*args):
  env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "freqrobust.main", *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)


def test_cli_trains_resumes_and_reports(tmp_path):
  args = ["--config=configs/quickstart.py", f"--workdir={tmp_path}",
          "--config.data.dataset=synthetic", "--config.data.synthetic_size=8",
          "--config.data.synthetic_examples=64", "--config.model.small_widths=(4, 4, 4)",
          "--config.model.attention_hidden=4", "--config.augment.pad=2",
          "--config.train.batch_size=16", "--config.train.num_epochs=1",
          "--config.train.log_every_steps=2", "--config.eval.batch_size=16",
          "--config.evals.corruptions.at_end=false", "--config.evals.summary.at_end=false"]
  first = run_main(*args, "--config.train.max_steps=2")
  assert first.returncode == 0, first.stderr[-2000:]
  assert "step 2/2" in first.stdout  # The progress line.
  second = run_main(*args)
  assert second.returncode == 0, second.stderr[-2000:]
  assert "Resumed from the checkpoint of step 2" in second.stdout
  assert "train.max_steps" in second.stdout  # Warned: the config differs from the first run's.
  with open(tmp_path / "results.json") as f:
    results = json.load(f)
  assert results["status"] == "finished" and results["step"] == 4
  assert results["clean"]["examples"] == 64  # Every synthetic test example, none dropped.
  with open(tmp_path / "config.json") as f:
    assert json.load(f)["train"]["batch_size"] == 16
  assert any(name.startswith("events") for name in os.listdir(tmp_path / "tensorboard"))


def test_unknown_config_field_lists_the_valid_ones(tmp_path):
  out = run_main("--config=configs/default.py", f"--workdir={tmp_path}", "--config.train.epochs=3")
  assert out.returncode == 2
  assert "config.train has no field 'epochs'" in out.stderr and "num_epochs" in out.stderr


def test_ill_typed_field_is_refused(tmp_path):
  out = run_main("--config=configs/default.py", f"--workdir={tmp_path}",
                 "--config.train.num_epochs=three")
  assert out.returncode != 0 and "num_epochs" in out.stderr
  assert not os.path.exists(tmp_path / "checkpoints")  # Nothing started.


def _one_paragraph(out):
  """The stderr of a refused command: exit 2, one paragraph, no traceback."""
  assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
  assert "Traceback" not in out.stderr and "FATAL Flags parsing error" not in out.stderr
  message = out.stderr.strip()
  assert message.startswith("Error: ") and "\n" not in message, message
  return message


@pytest.mark.parametrize("spec, parts", [
    ("configs/baselines.py:nosuch,cpu",
     ["unknown method 'nosuch'", "augmix", "prime", "fourier_basis", "natural",
      "python configs/baselines.py"]),
    ("configs/paper.py:table9,nat", ["unknown table 'table9'", "table1, table2, table3, table4"]),
    ("configs/paper.py:table3,bogus", ["unknown argument 'bogus'", "both_att", "seed=N"]),
])
def test_a_bad_config_argument_is_one_paragraph(tmp_path, spec, parts):
  message = _one_paragraph(run_main(f"--config={spec}", f"--workdir={tmp_path}/w"))
  assert f"--config={spec}" in message
  for part in parts:
    assert part in message, part
  assert not os.path.exists(tmp_path / "w")


def test_a_missing_config_file_is_one_paragraph(tmp_path):
  for extra in ([], ["--config.train.num_epochs=2"]):
    message = _one_paragraph(run_main("--config=configs/nosuch.py", f"--workdir={tmp_path}/w",
                                      *extra))
    assert "no config file 'configs/nosuch.py'" in message
    assert "configs/quickstart.py" in message and "configs/baselines.py" in message
  message = _one_paragraph(run_main("--config=configs", f"--workdir={tmp_path}/w"))
  assert "could not be loaded" in message
  assert not os.path.exists(tmp_path / "w")
  # --debug still shows the traceback.
  out = run_main("--config=configs/baselines.py:nosuch", f"--workdir={tmp_path}/w", "--debug")
  assert out.returncode != 0 and "Traceback" in out.stderr
