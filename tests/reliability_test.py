"""Nothing silently wrong, nothing lost: the probes of docs/RELIABILITY.md as laws.

Each test reproduces one way a run used to go wrong (a degenerate config reported as finished, two
runs on one workdir, a damaged checkpoint, a refused resume that overwrote config.json, repeated
metrics after a resume, a full disk, a bad corruption config found only after training) and states
what must happen instead.
"""
import errno
import glob
import json
import os
import shutil
import subprocess
import sys

import pytest

from freqrobust import checkpoint, experiment, train, trained
from freqrobust import workdir as workdir_lib

import workdirs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config(**train_fields):
  c = workdirs.tiny_config()
  c.train.max_steps = 4
  c.train.checkpoint_every_steps = 2
  c.train.log_every_steps = 2
  c.evals.clean.every_epochs = 0
  for k, v in train_fields.items():
    c.train[k] = v
  return c


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  """A run trained to step 4 with checkpoints at steps 2 and 4 (copied by each test)."""
  workdir = str(tmp_path_factory.mktemp("base") / "run")
  train.train_and_evaluate(config(), workdir)
  return workdir


def copy_of(finished, tmp_path) -> str:
  target = str(tmp_path / "run")
  shutil.copytree(finished, target)
  return target


@pytest.mark.parametrize("section,field,value", [
    ("train", "num_epochs", 0), ("train", "num_epochs", -1), ("train", "max_steps", -5),
    ("train", "learning_rate", -0.1), ("train", "learning_rate", float("nan")),
    ("train", "momentum", -0.9), ("train", "weight_decay", -1e-4),
    ("train", "warmup_epochs", -1.0), ("data", "train_examples", -100),
    ("aps", "aux_weight", -1.0), ("aps", "theta_init", (0.0, 0.0)),
    ("model", "attention_hidden", 0), ("model", "small_stage_sizes", (1, 1)),
    ("model", "small_stage_sizes", (1, 0, 1)), ("model", "small_stage_sizes", (-1, 1, 1)),
])
def test_invalid_field_fails_before_any_work_naming_the_field(tmp_path, section, field, value):
  c = config()
  c[section][field] = value
  with pytest.raises(workdir_lib.UserError, match=rf"config\.{section}\.{field}"):
    train.train_and_evaluate(c, str(tmp_path / "run"))
  assert not os.path.exists(tmp_path / "run")  # Nothing written, nothing reported finished.


def test_learnable_configuration_without_attention_is_refused():
  c = config()
  c.aps.configuration = "learnable"
  c.model.attention = "none"
  with pytest.raises(workdir_lib.UserError, match="attention"):
    experiment.resolve_config(c)


def test_bad_corruption_settings_fail_at_start_up(tmp_path):
  c = config()
  c.evals.corruptions.at_end = True
  c.corruptions.names = ("gaussian_noise", "gausian_blur")
  with pytest.raises(workdir_lib.UserError, match="gausian_blur"):
    train.train_and_evaluate(c, str(tmp_path / "a"))
  c.corruptions.names = ()
  c.corruptions.baseline_workdir = str(tmp_path / "no_such_run")
  with pytest.raises(workdir_lib.UserError, match="no_such_run"):
    train.train_and_evaluate(c, str(tmp_path / "b"))
  assert not os.path.exists(tmp_path / "a") and not os.path.exists(tmp_path / "b")
  # A baseline evaluated on sets of an older recipe: refused before training, with the fix.
  from freqrobust import corruptions
  from freqrobust.data import corrupted
  settings = corrupted.CorruptionSettings.from_config(c)
  old = tmp_path / "old_baseline"
  os.makedirs(old / "corruption_eval")
  sets = {"dataset": settings.dataset, "source": settings.source, "seed": settings.seed,
          "frost": settings.frost_source, "num_examples": settings.num_examples or 1000,
          "recipe_version": corruptions.RECIPE_VERSION - 1, "accuracy": {}}
  (old / "corruption_eval" / "results.json").write_text(json.dumps(sets))
  c.corruptions.baseline_workdir = str(old)
  with pytest.raises(workdir_lib.UserError, match=r"recipe_version.*freqrobust\.evaluate"):
    train.train_and_evaluate(c, str(tmp_path / "c"))
  assert not os.path.exists(tmp_path / "c")
  sets["recipe_version"] = corruptions.RECIPE_VERSION  # the same sets: accepted at start-up
  (old / "corruption_eval" / "results.json").write_text(json.dumps(sets))
  experiment.resolve_config(c)


def test_a_second_run_on_a_busy_workdir_is_refused_and_a_stale_lock_is_not(tmp_path):
  workdir = str(tmp_path / "run")
  with workdir_lib.locked(workdir):  # Another run holds the workdir.
    with pytest.raises(workdir_lib.WorkdirBusy, match=rf"pid {os.getpid()} on host"):
      train.train_and_evaluate(config(max_steps=2), workdir)
  assert not os.path.exists(os.path.join(workdir, "checkpoints"))
  # The holder died (its flock went with it); its lock file, with its pid, stays behind.
  with open(os.path.join(workdir, workdir_lib.LOCK), "w") as f:
    f.write("pid 999999 on host elsewhere")
  assert train.train_and_evaluate(config(max_steps=2), workdir)["status"] == "finished"


@pytest.mark.parametrize("damage", ["truncated", "no_metadata", "no_item"])
def test_damaged_newest_checkpoint_falls_back_and_is_kept_aside(finished, tmp_path, damage):
  workdir = copy_of(finished, tmp_path)
  newest = os.path.join(workdir, "checkpoints", "4")
  if damage == "truncated":
    for f in glob.glob(newest + "/**/*", recursive=True):
      if os.path.isfile(f) and os.path.getsize(f) > 1000:
        with open(f, "r+b") as handle:
          handle.truncate(os.path.getsize(f) // 2)
  elif damage == "no_metadata":
    for f in glob.glob(newest + "/**/_METADATA", recursive=True):
      os.remove(f)
  else:
    shutil.rmtree(os.path.join(newest, "default"))
  run = trained.load_trained(workdir)
  assert run.step == 2
  assert os.path.isdir(os.path.join(workdir, workdir_lib.DAMAGED_CHECKPOINTS, "4"))  # Not deleted.
  # Training resumes from the intact step 2 and finishes.
  assert train.train_and_evaluate(config(), workdir)["step"] == 4


def test_incompatible_config_is_refused_without_touching_config_json(finished, tmp_path):
  workdir = copy_of(finished, tmp_path)
  before = open(os.path.join(workdir, "config.json")).read()
  c = config(max_steps=6)
  c.model.attention = "none"
  with pytest.raises(workdir_lib.UserError, match=r"model\.attention: 'extended' -> 'none'"):
    train.train_and_evaluate(c, workdir)
  assert open(os.path.join(workdir, "config.json")).read() == before
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4"]
  assert trained.load_trained(workdir).step == 4  # evaluate and analyze still work on it.


def test_resume_does_not_repeat_logged_steps(finished, tmp_path):
  workdir = copy_of(finished, tmp_path)
  shutil.rmtree(os.path.join(workdir, "checkpoints", "4"))  # Killed after logging step 4.
  train.train_and_evaluate(config(), workdir)
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    lines = [json.loads(line) for line in f]
  train_lines = [l["step"] for l in lines if "loss" in l]
  assert train_lines == [2, 4]  # Step 4 logged once, by the run that reached it last.
  # The reader takes the last line of each step even for a file written before the fix.
  with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
    f.write(json.dumps({"step": 4, "time": 0, "loss": -1.0, "ce": 0, "accuracy": 0}) + "\n")
  latest = [l for l in workdir_lib.read_metrics(workdir) if "loss" in l]
  assert [l["step"] for l in latest] == [2, 4] and latest[-1]["loss"] == -1.0


def test_full_disk_names_the_workdir_and_the_intact_checkpoint(tmp_path, monkeypatch):
  workdir = str(tmp_path / "run")
  real_save, calls = checkpoint.save, {"n": 0}

  def save(manager, step, state):
    calls["n"] += 1
    if calls["n"] == 2:
      raise OSError(errno.ENOSPC, "No space left on device")
    real_save(manager, step, state)

  monkeypatch.setattr(checkpoint, "save", save)
  with pytest.raises(workdir_lib.UserError,
                     match=r"No space left on device at .*run; the last checkpoint \(step 2\)"):
    train.train_and_evaluate(config(), workdir)


def test_cli_user_error_is_one_paragraph_unless_debug(tmp_path):
  args = [sys.executable, "-m", "freqrobust.main", "--config=configs/quickstart.py",
          f"--workdir={tmp_path / 'run'}", "--config.train.learning_rate=-0.1"]
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  out = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  assert out.returncode == 2
  assert out.stderr.strip().startswith("Error: config.train.learning_rate=-0.1 is invalid")
  assert "Traceback" not in out.stderr
  debug = subprocess.run(args + ["--debug"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)
  assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_console_output_survives_a_reader_that_is_gone():
  # A sweep (or `| tee`) killed before its training: the training's next progress line hit a
  # broken pipe and ended the run before it could save the checkpoint SIGTERM asked for.
  from freqrobust import progress
  read_end, write_end = os.pipe()
  stream = os.fdopen(write_end, "w")
  progress.say("first line", stream)
  assert os.read(read_end, 100) == b"first line\n"
  os.close(read_end)  # The reader is gone.
  with pytest.raises(BrokenPipeError):  # What a bare print does ...
    print("x" * 10, file=stream, flush=True)
  progress.say("second line", stream)  # ... and what the training's output does instead.
  progress.say("third line", stream)
  stream.close()  # The descriptor now points at /dev/null: closing flushes without error.
