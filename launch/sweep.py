"""Runs a list of configs x seeds: sequentially here, or as separate cluster jobs.

  python launch/sweep.py --table=table3 --seeds=0,1 --cpu --root=runs/table3_cpu
  python launch/sweep.py --table=table2 --seeds=0,1,2,3 --root=/shared/runs/t2 --submit=slurm
  python launch/sweep.py --runs="table3,nat;table3,nfd" --seeds=0 --root=runs/x --dry_run
  python launch/sweep.py --table=table3 --root=runs/short --config.train.num_epochs=10

Each run trains into ROOT/<run name>. A run whose results.json says "finished" (and, when the config
asks for it, holds corruption results) is skipped; an unfinished one is started again with the same
command, which resumes from its newest checkpoint. Aggregate afterwards with
`python -m freqrobust.report --root=ROOT`.

Stopping a local sweep: SIGTERM or Ctrl-C (SIGINT) to this process is passed on to the running
training as SIGTERM, which saves a checkpoint of its current step and exits; the sweep then stops
without starting the next run. Rerunning the same command resumes.
"""
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from typing import Callable, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from absl import app, flags  # noqa: E402

import importlib  # noqa: E402

from freqrobust import runs as runs_lib  # noqa: E402
from freqrobust import workdir as workdir_lib  # noqa: E402


def run_child(cmd, log_path: str, echo: Callable[[str], bool]) -> Tuple[int, bool]:
  """Runs one training, its output appended to `log_path` (lines for which `echo` is true also
  printed here); returns (exit status, whether this sweep was told to stop meanwhile).

  SIGTERM or SIGINT to the sweep is forwarded to the training as SIGTERM (it saves its step and
  exits), and the sweep keeps reading its output until it has exited: killing the sweep first
  would break the pipe the training writes to."""
  stop = []
  proc = None

  def forward(signum, frame):
    del frame
    stop.append(signum)
    if proc is not None and proc.poll() is None:
      proc.send_signal(signal.SIGTERM)

  previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
  try:
    with open(log_path, "a") as log:
      # start_new_session: a Ctrl-C in the terminal reaches the training only through `forward`
      # (as SIGTERM), never twice.
      proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True)
      if stop:  # A signal arrived while the training was starting.
        proc.send_signal(signal.SIGTERM)
      for line in proc.stdout:
        log.write(line)
        log.flush()
        if echo(line):
          print(f"  {line.rstrip()}", flush=True)
      proc.wait()
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
  return proc.returncode, bool(stop)


def workdir_for(root: str, arg: str) -> str:
  """The run's workdir under root: the one of the older naming when only that one exists (its
  results and checkpoints are kept and resumed), else the current name."""
  current = os.path.join(root, runs_lib.name_of(arg))
  legacy = os.path.join(root, runs_lib.legacy_name_of(arg))
  return legacy if not os.path.exists(current) and os.path.isdir(legacy) else current


def is_finished(workdir: str) -> bool:
  """Whether a run is "finished": trained, and every evaluation its config lists at the end done
  (results.json says so since evaluations are modules; before, "finished" was written before the
  corruption evaluation, whose results then had to be present too)."""
  results = workdir_lib.read_finished_results(workdir)
  if results is None:
    return False
  if "evals" in results:
    return True
  config_path = os.path.join(workdir, "config.json")
  if os.path.exists(config_path):
    with open(config_path) as f:
      config = json.load(f)
    if config.get("corruptions", {}).get("evaluate") and "corruptions" not in results:
      return False
  return True


def command(arg: str, workdir: str, overrides, config_file: str = "paper") -> list:
  return [sys.executable, "-m", "freqrobust.main", f"--config=configs/{config_file}.py:{arg}",
          f"--workdir={workdir}"] + list(overrides)


CONFIG_FILES = ("paper", "baselines", "explain")  # configs/<name>.py, each with TABLES, runs()

FLAGS = flags.FLAGS
flags.DEFINE_enum("config_file", "paper", list(CONFIG_FILES),
                  "configs/<name>.py whose runs to train: the paper's tables, the baselines, or "
                  "the frequency explanations' runs.")
flags.DEFINE_string("table", "", "paper: table1..table4; baselines: all, adversarial; explain: "
                    "hfc. Every run of that table.")
flags.DEFINE_string("runs", "", "Explicit config arguments separated by ';' (no seed).")
flags.DEFINE_list("seeds", ["0"], "Comma-separated seeds.")
flags.DEFINE_bool("cpu", False, "CPU-scale variant (small ResNet, Fashion-MNIST).")
flags.DEFINE_string("root", None, "Folder holding one workdir per run.")
flags.DEFINE_enum("submit", "", ["", "slurm"], "Submit cluster jobs instead of running here.")
flags.DEFINE_bool("dry_run", False, "Print what would run.")
flags.mark_flag_as_required("root")


def check_table(config_file: str, table: str) -> None:
  """A UserError naming the valid tables of every config file when `table` is not one of
  configs/<config_file>.py's (and the --config_file that has it, if another one does)."""
  tables = {name: tuple(importlib.import_module(f"configs.{name}").TABLES)
            for name in CONFIG_FILES}
  if table in tables[config_file]:
    return
  owner = [name for name in CONFIG_FILES if table in tables[name]]
  hint = (f" It is a table of configs/{owner[0]}.py: add --config_file={owner[0]}."
          if owner else "")
  valid = "; ".join(f"--config_file={name} (configs/{name}.py): {', '.join(names)}"
                    for name, names in tables.items())
  raise workdir_lib.UserError(
      f"--table={table}: configs/{config_file}.py (--config_file={config_file}) has no table "
      f"{table!r}.{hint} Valid tables: {valid}. `python configs/paper.py TABLE` and `python "
      f"configs/baselines.py` list their runs.")


def split_overrides(argv):
  """absl parses the sweep's own flags; `--config.x=y` flags are passed to every run as they are."""
  overrides = [a for a in argv[1:] if a.startswith("--config.")]
  rest = [argv[0]] + [a for a in argv[1:] if not a.startswith("--config.")]
  _OVERRIDES[:] = overrides
  return FLAGS(rest)


_OVERRIDES: list = []  # The --config.x=y flags of this invocation.


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unrecognized arguments: {' '.join(argv[1:])} (extra flags must be "
                         "--config.x=y)")
  overrides = list(_OVERRIDES)
  root = os.path.abspath(FLAGS.root)  # Runs execute in the repository root.
  seeds = [int(s) for s in FLAGS.seeds if s.strip()]
  configs = importlib.import_module(f"configs.{FLAGS.config_file}")
  if FLAGS.table:
    check_table(FLAGS.config_file, FLAGS.table)
    runs = configs.runs(FLAGS.table, cpu=FLAGS.cpu, seeds=seeds)
  elif FLAGS.runs:
    runs = [f"{r},seed={s}" + (",cpu" if FLAGS.cpu else "")
            for r in FLAGS.runs.split(";") if r.strip() for s in seeds]
  else:
    raise app.UsageError("give --table or --runs")
  for arg in runs:  # Fail on a bad argument before anything runs.
    configs.get_config(arg)
  if FLAGS.submit == "slurm" and not FLAGS.dry_run and shutil.which("sbatch") is None:
    raise workdir_lib.UserError(
        "--submit=slurm: sbatch is not on this machine's PATH (nothing was created). Run the "
        "sweep on a Slurm login node (or load its Slurm module), or leave --submit out to train "
        "here; --dry_run lists the jobs without it.")
  os.makedirs(root, exist_ok=True)
  todo = [(a, workdir_for(root, a)) for a in runs]
  print(f"{len(todo)} runs under {root}", flush=True)
  failures = []
  for k, (arg, workdir) in enumerate(todo, 1):
    if is_finished(workdir):
      from freqrobust import report  # Light; the method registry for the stale check.
      stale = report.stale_notes(workdir, workdir_lib.read_finished_results(workdir))
      print(f"[{k}/{len(todo)}] {arg}: finished, skipped" + "".join(
          f"\n    STALE: {note}; rerun it in a fresh --root to measure the current method"
          for note in stale), flush=True)
      continue
    cmd = command(arg, workdir, overrides, FLAGS.config_file)
    if FLAGS.submit == "slurm":
      cmd = ["sbatch", os.path.join(HERE, "slurm_gpu.sh"), f"configs/{FLAGS.config_file}.py:{arg}",
             workdir] + list(overrides)
    print(f"[{k}/{len(todo)}] {arg}: {' '.join(shlex.quote(c) for c in cmd)}", flush=True)
    if FLAGS.dry_run:
      continue
    os.makedirs(workdir, exist_ok=True)
    start = time.time()
    echo = lambda line: bool(FLAGS.submit) or "|" in line or "accuracy" in line or "Error" in line
    returncode, stopped = run_child(cmd, os.path.join(workdir, "train.log"), echo)
    if stopped:
      print(f"  stopped by a signal after {time.time() - start:.0f}s (exit {returncode}); the "
            "run saved a checkpoint if it could; rerun the same command to resume.", flush=True)
      sys.exit(128 + signal.SIGTERM)
    if returncode:
      failures.append(arg)
      print(f"  FAILED ({returncode}); see {workdir}/train.log", flush=True)
    else:
      print(f"  done in {time.time() - start:.0f}s", flush=True)
  if failures:
    print(f"{len(failures)} run(s) failed: {', '.join(failures)}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  from freqrobust import cli
  cli.run(main, flags_parser=split_overrides)
