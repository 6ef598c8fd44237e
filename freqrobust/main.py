"""Command line: `python -m freqrobust.main --config=configs/resnet18_nfd.py --workdir=DIR`.

Fields are overridden with `--config.section.field=value`. Rerunning the same command resumes
from the newest intact checkpoint in DIR.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from freqrobust import cli, platform  # noqa: E402  (neither starts JAX)
from freqrobust.workdir import UserError  # noqa: E402

FLAGS = flags.FLAGS


def _config_files(folder: str) -> str:
  """The config files in `folder` (those defining get_config), for a message."""
  try:
    names = sorted(n for n in os.listdir(folder) if n.endswith(".py") and not n.startswith("_"))
  except OSError:
    return ""
  found = []
  for name in names:
    try:
      with open(os.path.join(folder, name)) as f:
        if "def get_config(" in f.read():
          found.append(os.path.join(folder, name))
    except OSError:
      continue
  return ", ".join(found)


def missing_config_message(spec: str) -> str:
  """The one paragraph for a --config whose file does not exist."""
  path = spec.split(":", 1)[0]
  folder = os.path.dirname(path) or "."
  if not os.path.isdir(folder):
    folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
  files = _config_files(folder)
  return (f"--config={spec}: there is no config file {path!r} (a relative path is read from "
          f"the current folder, {os.getcwd()})."
          + (f" Config files in {folder}: {files}." if files else "")
          + " The form is --config=FILE.py or --config=FILE.py:ARGS.")


class _ConfigFileParser(flags.ArgumentParser):
  """ml_collections' parser of --config (`inner`), whose mistakes are user errors (cli.run prints
  them as one paragraph, exit 2): a missing file (ml_collections defers that error to the first
  use of the config, an OSError with its traceback), a file without get_config, and a file that
  cannot be loaded. A UserError of get_config itself (a bad argument string) passes through."""

  def __init__(self, inner: flags.ArgumentParser):
    self._inner = inner

  def flag_type(self):
    return self._inner.flag_type()

  def parse(self, path):
    file = path.split(":", 1)[0]
    if not os.path.exists(file):
      raise UserError(missing_config_message(path))
    try:
      config = self._inner.parse(path)
    except AttributeError as error:
      if "get_config" not in str(error):
        raise
      raise UserError(f"--config={path}: {file} defines no get_config(); a config file is a "
                      "Python file whose get_config() returns the configuration (see "
                      "configs/default.py).") from error
    try:  # ml_collections' stand-in for a config that failed to load (an OSError)
      cause = object.__getattribute__(config, "_error")
    except AttributeError:
      return config
    raise UserError(f"--config={path}: {file} could not be loaded "
                    f"({' '.join(str(cause).split())}).") from cause


config_flags.DEFINE_config_file("config", None,
                                "Training configuration file (configs/*.py[:args]).",
                                lock_config=True)
FLAGS["config"].parser = _ConfigFileParser(FLAGS["config"].parser)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and results.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  from absl import logging
  # Orbax logs every save at INFO; the progress line is ours.
  logging.set_verbosity(logging.WARNING)
  platform.configure_xla_for_cpu()  # Before the JAX backend starts; a user's XLA_FLAGS wins.
  import jax
  from freqrobust import train
  config = FLAGS.config
  if config.get("coordinator_address", ""):  # An explicit cluster (tests, hand-started jobs).
    jax.distributed.initialize(config.coordinator_address, int(config.num_processes),
                               int(config.process_id))
  elif config.get("distributed", False):  # Slurm, Cloud TPU, ...: found from the environment.
    jax.distributed.initialize()
  # Launch settings, not the run's: one config.json (and one config check) for all processes.
  for field, default in (("coordinator_address", ""), ("num_processes", 0), ("process_id", -1)):
    if field in config:
      config[field] = default
  results = train.train_and_evaluate(config, FLAGS.workdir)
  if results["status"] == "preempted":
    sys.exit(0)


def unknown_field_message(argv) -> str:
  """Names the first `--config.a.b=v` override that the config file does not define, and what is
  valid at that level (ml_collections only says KeyError: 'b')."""
  import importlib.util
  spec_arg = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  if spec_arg is None:
    return ""
  path, _, args = spec_arg.partition(":")
  spec = importlib.util.spec_from_file_location("_freqrobust_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(args) if args else module.get_config()
  for arg in argv:
    if not arg.startswith("--config."):
      continue
    parts = arg[len("--config."):].split("=", 1)[0].split(".")
    node = config
    for i, part in enumerate(parts):
      if not hasattr(node, "keys") or part not in node:
        where = "config" + "".join("." + p for p in parts[:i])
        valid = ", ".join(sorted(node.keys())) if hasattr(node, "keys") else "(not a section)"
        return (f"Unknown config field --config.{'.'.join(parts)}: {where} has no field "
                f"{part!r}. Valid: {valid}.")
      node = node[part]
  return ""


def run():
  try:
    cli.run(main)
  except (KeyError, AttributeError):
    # ml_collections reports an unknown --config.x=y override as a bare KeyError.
    message = unknown_field_message(sys.argv)
    if not message or "--debug" in sys.argv:
      raise
    print(message, file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  run()
