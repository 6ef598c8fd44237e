"""The command line: a real run on tiny synthetic data, and configuration errors that teach."""
import json
import os
import subprocess
import sys

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
          "--config.corruptions.evaluate=false", "--config.train.summary_figure=false"]
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
