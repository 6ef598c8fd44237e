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

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None,
                                "Training configuration file (configs/*.py[:args]).",
                                lock_config=True)
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
  if config.get("distributed", False):
    jax.distributed.initialize()
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
