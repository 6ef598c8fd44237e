"""Weak scaling on this machine: 1 and N JAX processes (one CPU device each, joined over localhost
like hosts of a cluster), the quickstart's small ResNet and method, a fixed batch per process.

  python bench/bench_scaling.py                         # 1 and 2 processes, 64 images each
  python bench/bench_scaling.py --processes=1,2,4 --per_process_batch=128 --steps=30

For each process count it reports the train step's time, images/s per process and in all, and
the share of the step spent in the cross-process collective (the gradient all-reduce, timed alone
on the same mesh with the model's parameter count: `collective_ms / step_ms`). Weak scaling is
perfect when images/s per process stays at the one-process figure. On one machine the processes
share its cores and memory bandwidth, so this measures the protocol's overhead (gloo over
loopback), not a cluster's network: note the machine's load (`uptime`) beside any figure.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker(args) -> None:
  import functools
  import jax
  import numpy as np
  if args.num_processes > 1:
    jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
  sys.path.insert(0, REPO)
  from configs import quickstart
  from freqrobust import experiment, sharding, train
  config = quickstart.get_config()
  config.data.dataset = "synthetic"  # The quickstart's 28x28x1 shapes, no data loading.
  config.data.synthetic_size, config.data.synthetic_channels = 28, 1
  config.train.batch_size = args.per_process_batch * jax.process_count()
  config = experiment.resolve_config(config)
  exp = experiment.build(config, 60000)
  sharder = sharding.Sharder()
  state = exp.init_state(jax.random.key(0), sharder)
  step = jax.jit(functools.partial(train.train_step, method=exp.method, schedule=exp.schedule),
                 in_shardings=(sharder.replicated, sharder.data, sharder.replicated),
                 out_shardings=(sharder.replicated, sharder.replicated), donate_argnums=(0,))
  rng = np.random.default_rng(jax.process_index())
  local = {"image": rng.integers(0, 256, (args.per_process_batch, 28, 28, 1)).astype(np.uint8),
           "label": rng.integers(0, 10, args.per_process_batch).astype(np.int32)}
  batch = sharder.put(local)
  key = jax.random.key(1)
  for _ in range(args.warmup):
    state, metrics = step(state, batch, key)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(args.steps):
    state, metrics = step(state, batch, key)
  jax.block_until_ready(metrics)
  step_s = (time.perf_counter() - start) / args.steps
  # The gradient all-reduce alone: one row per device of the parameter count, summed.
  n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state.params))
  from jax.sharding import NamedSharding, PartitionSpec as P
  rows = sharder.put_global(np.ones((sharder.num_devices, n_params), np.float32))
  reduce = jax.jit(lambda g: g.sum(0), out_shardings=NamedSharding(sharder.mesh, P()))
  for _ in range(args.warmup):
    jax.block_until_ready(reduce(rows))
  start = time.perf_counter()
  for _ in range(args.steps):
    out = reduce(rows)
  jax.block_until_ready(out)
  collective_s = (time.perf_counter() - start) / args.steps if jax.process_count() > 1 else 0.0
  if jax.process_index() == 0:
    print(json.dumps({"processes": jax.process_count(), "devices": sharder.num_devices,
                      "per_process_batch": args.per_process_batch, "params": n_params,
                      "step_ms": 1e3 * step_s, "collective_ms": 1e3 * collective_s,
                      "images_per_s_per_process": args.per_process_batch / step_s,
                      "images_per_s": config.train.batch_size / step_s,
                      "collective_share": collective_s / step_s}), flush=True)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def run(n: int, args) -> dict:
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1",
             PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  port = _free_port()
  procs = [subprocess.Popen(
      [sys.executable, __file__, "--worker", f"--coordinator=127.0.0.1:{port}",
       f"--num_processes={n}", f"--process_id={i}", f"--per_process_batch={args.per_process_batch}",
       f"--steps={args.steps}", f"--warmup={args.warmup}"],
      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(n)]
  outs = []
  try:
    outs = [p.communicate(timeout=args.timeout) for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  for p, (_, err) in zip(procs, outs):
    if p.returncode:
      raise SystemExit(f"a worker failed ({p.returncode}): {err[-2000:]}")
  return json.loads([l for l in outs[0][0].splitlines() if l.startswith("{")][-1])


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--processes", default="1,2")
  parser.add_argument("--per_process_batch", type=int, default=64)
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--warmup", type=int, default=3)
  parser.add_argument("--timeout", type=int, default=600)
  parser.add_argument("--worker", action="store_true")
  parser.add_argument("--coordinator", default="")
  parser.add_argument("--num_processes", type=int, default=1)
  parser.add_argument("--process_id", type=int, default=0)
  args = parser.parse_args()
  if args.worker:
    worker(args)
    return
  load = os.getloadavg()
  print(f"{os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start")
  print("| processes | step (ms) | images/s per process | images/s | all-reduce (ms) | share |")
  print("|---|---|---|---|---|---|")
  base = None
  for n in [int(x) for x in args.processes.split(",")]:
    r = run(n, args)
    base = base or r["images_per_s_per_process"]
    print(f"| {n} | {r['step_ms']:.1f} | {r['images_per_s_per_process']:.0f} "
          f"({100 * r['images_per_s_per_process'] / base:.0f}%) | {r['images_per_s']:.0f} | "
          f"{r['collective_ms']:.2f} | {100 * r['collective_share']:.1f}% |", flush=True)
  load = os.getloadavg()
  print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end")


if __name__ == "__main__":
  main()
