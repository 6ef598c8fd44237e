"""Runs a list of configs x seeds: sequentially here, or as separate cluster jobs.

  python launch/sweep.py --table=table3 --seeds=0,1 --cpu --root=runs/table3_cpu
  python launch/sweep.py --table=table2 --seeds=0,1,2,3 --root=/shared/runs/t2 --submit=slurm
  python launch/sweep.py --runs="table3,nat;table3,nfd" --seeds=0 --root=runs/x --dry-run
  python launch/sweep.py --table=table3 --root=runs/short --config.train.num_epochs=10

Each run trains into ROOT/<run name>. A run whose results.json says "finished" (and, when the config
asks for it, holds corruption results) is skipped; an unfinished one is started again with the same
command, which resumes from its newest checkpoint. Aggregate afterwards with
`python -m freqrobust.report --root=ROOT`.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from configs import paper  # noqa: E402
from freqrobust import workdir as workdir_lib  # noqa: E402


def run_name(arg: str) -> str:
  return arg.replace(",", "_").replace("=", "-")


def is_finished(workdir: str) -> bool:
  results = workdir_lib.read_finished_results(workdir)
  if results is None:
    return False
  config_path = os.path.join(workdir, "config.json")
  if os.path.exists(config_path):
    with open(config_path) as f:
      config = json.load(f)
    if config.get("corruptions", {}).get("evaluate") and "corruptions" not in results:
      return False
  return True


def command(arg: str, workdir: str, overrides) -> list:
  return [sys.executable, "-m", "freqrobust.main", f"--config=configs/paper.py:{arg}",
          f"--workdir={workdir}"] + list(overrides)


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--table", default="", help="table1..table4: every run of that table")
  p.add_argument("--runs", default="", help="explicit config arguments separated by ';' (no seed)")
  p.add_argument("--seeds", default="0", help="comma-separated seeds")
  p.add_argument("--cpu", action="store_true", help="CPU-scale variant (small ResNet, Fashion-MNIST)")
  p.add_argument("--root", required=True, help="folder holding one workdir per run")
  p.add_argument("--submit", default="", choices=["", "slurm"], help="submit jobs instead of running")
  p.add_argument("--dry-run", action="store_true", help="print what would run")
  args, overrides = p.parse_known_args()
  unknown = [o for o in overrides if not o.startswith("--config.")]
  if unknown:
    p.error(f"unrecognized arguments: {' '.join(unknown)} (extra flags must be --config.x=y)")
  args.overrides = overrides  # Extra --config.x=y flags, passed to every run.
  args.root = os.path.abspath(args.root)  # Runs execute in the repository root.
  seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
  if args.table:
    runs = paper.runs(args.table, cpu=args.cpu, seeds=seeds)
  elif args.runs:
    runs = [f"{r},seed={s}" + (",cpu" if args.cpu else "")
            for r in args.runs.split(";") if r.strip() for s in seeds]
  else:
    p.error("give --table or --runs")
  for arg in runs:  # Fail on a bad argument before anything runs.
    paper.get_config(arg)
  os.makedirs(args.root, exist_ok=True)
  todo = [(a, os.path.join(args.root, run_name(a))) for a in runs]
  print(f"{len(todo)} runs under {args.root}", flush=True)
  failures = []
  for k, (arg, workdir) in enumerate(todo, 1):
    if is_finished(workdir):
      print(f"[{k}/{len(todo)}] {arg}: finished, skipped", flush=True)
      continue
    cmd = command(arg, workdir, args.overrides)
    if args.submit == "slurm":
      cmd = ["sbatch", os.path.join(HERE, "slurm_gpu.sh"), f"configs/paper.py:{arg}", workdir] + \
          list(args.overrides)
    print(f"[{k}/{len(todo)}] {arg}: {' '.join(shlex.quote(c) for c in cmd)}", flush=True)
    if args.dry_run:
      continue
    os.makedirs(workdir, exist_ok=True)
    start = time.time()
    with open(os.path.join(workdir, "train.log"), "a") as log:
      proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
      for line in proc.stdout:
        log.write(line)
        log.flush()
        if args.submit or "|" in line or "accuracy" in line or "Error" in line:
          print(f"  {line.rstrip()}", flush=True)
      proc.wait()
    if proc.returncode:
      failures.append(arg)
      print(f"  FAILED ({proc.returncode}); see {workdir}/train.log", flush=True)
    else:
      print(f"  done in {time.time() - start:.0f}s", flush=True)
  if failures:
    print(f"{len(failures)} run(s) failed: {', '.join(failures)}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  main()
