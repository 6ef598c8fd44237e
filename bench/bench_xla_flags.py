"""CPU XLA flag settings against each other on the train steps people run (images/s).

  python bench/bench_xla_flags.py                                   # the CPU-budget methods
  python bench/bench_xla_flags.py --workloads=natural,prime,resnet18 --steps=4 --rounds=2

XLA reads XLA_FLAGS once per process, so every (setting, workload) pair runs in its own child
process, and the settings are interleaved (round 1: every setting, round 2: every setting ...) so
that a change in the machine's load hits all of them alike. Each child times the training loop's
own step function (`bench_train.measure_config`: device-resident synthetic data, jitted step)
after one warm-up call and prints one JSON line; the parent prints, per workload, the median
images/s over rounds of each setting and its ratio to jaxlib's defaults (no XLA_FLAGS).

Workloads: a method name of `configs/baselines.py` (its `<method>,cpu` config: the small ResNet
on 28x28x1, batch 128, with the method's views and losses; `paper_both_att` is the quickstart's
step but for the quickstart's second block at 7x7), or `resnet18` / `resnet18_paper` (ResNet-18,
32x32x3, batch 128, without / with the paper's augmentation and extended APS, as
`bench_train.py`).

Settings (`--settings`, comma-separated names): defaults (XLA_FLAGS empty: jaxlib's own choice),
platform (`freqrobust.platform.CPU_XLA_FLAGS`, what the CLI sets), and the named alternatives in
SETTINGS below; each under glibc's malloc, or with the suffix `@tcmalloc` (`platform@tcmalloc`)
with tcmalloc preloaded, as the CLI runs when it is installed.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

from freqrobust import platform  # noqa: E402  (imports no JAX)

YNN = "--xla_cpu_experimental_ynn_fusion_type="
SETTINGS = {
    "defaults": "",
    "platform": " ".join(platform.CPU_XLA_FLAGS),  # what the CLI sets (-individual_convolution)
    # The platform flags until 2026-11-29 (docs/BENCHMARKS.md, "XLA flags per workload").
    "no_conv_eltwise": YNN + "-individual_convolution,+eltwise",
    "eltwise": YNN + "+eltwise",  # YNNPACK convolutions kept, elementwise fusions added.
}


RESNET18_WORKLOADS = ("resnet18", "resnet18_paper")


def workload_names() -> tuple:
  """Every valid workload: the ResNet-18 steps and configs/baselines.py's method names."""
  from configs import baselines
  from freqrobust.augment import registry
  return RESNET18_WORKLOADS + baselines.REFERENCES + tuple(registry.BASELINES)


def workload_config(name: str):
  """A resolved config of the workload, on synthetic data of its shape."""
  import bench_train
  from freqrobust import experiment
  if name in RESNET18_WORKLOADS:
    paper = name == "resnet18_paper"
    return bench_train.bench_config("resnet18", paper, "float32", 32, 3,
                                    "extended" if paper else "none", 128)
  from configs import baselines
  config = baselines.get_config(f"{name},cpu")
  config.data.dataset = "synthetic"
  config.data.synthetic_size, config.data.synthetic_channels = 28, 1
  return experiment.resolve_config(config)


def child(args) -> None:
  import bench_train
  config = workload_config(args.workload)
  r = bench_train.measure_config(config, steps=args.steps, repeats=args.repeats)
  r.update(workload=args.workload, setting=args.setting,
           xla_flags=os.environ.get("XLA_FLAGS", ""), load=os.getloadavg()[0])
  print("RESULT " + json.dumps(r), flush=True)


def setting_environment(setting: str) -> dict:
  """The child's environment for a setting name: SETTINGS' XLA_FLAGS, and with the suffix
  `@tcmalloc` tcmalloc preloaded as the CLI does (freqrobust.platform); glibc's malloc without."""
  flags_name, _, malloc = setting.partition("@")
  env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
  env.update(XLA_FLAGS=SETTINGS[flags_name], JAX_PLATFORMS="cpu")
  if malloc:
    env = platform.tcmalloc_environment(env, library=platform.find_tcmalloc())
  return env


def check_setting(setting: str) -> str:
  """An error message for a setting name that cannot run here, or ''."""
  flags_name, _, malloc = setting.partition("@")
  if flags_name not in SETTINGS:
    return f"unknown flags {flags_name!r}; valid: {', '.join(SETTINGS)}"
  if malloc and malloc != "tcmalloc":
    return f"{setting!r}: the only allocator suffix is @tcmalloc"
  if malloc and platform.find_tcmalloc() is None:
    return f"{setting!r}: tcmalloc is not installed (apt-get install libtcmalloc-minimal4)"
  return ""


def run_child(setting: str, workload: str, args) -> dict:
  env = setting_environment(setting)
  cmd = [sys.executable, os.path.abspath(__file__), "--child", f"--setting={setting}",
         f"--workload={workload}", f"--steps={args.steps}", f"--repeats={args.repeats}"]
  out = subprocess.run(cmd, env=env, capture_output=True, text=True)
  lines = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
  if out.returncode or not lines:
    raise SystemExit(f"{workload} with {setting} failed (exit {out.returncode}):\n"
                     f"{out.stderr[-3000:]}")
  return json.loads(lines[-1][len("RESULT "):])


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--workloads", default="natural,paper_both_att,augmix,prime,afa")
  p.add_argument("--settings", default="defaults,no_conv_eltwise,platform")
  p.add_argument("--steps", type=int, default=5, help="steps per timing")
  p.add_argument("--repeats", type=int, default=3, help="timings per child (median)")
  p.add_argument("--rounds", type=int, default=1, help="interleaved rounds over the settings")
  p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  p.add_argument("--setting", default="", help=argparse.SUPPRESS)
  p.add_argument("--workload", default="", help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.child:
    return child(args)
  settings = [s.strip() for s in args.settings.split(",") if s.strip()]
  for s in settings:
    problem = check_setting(s)
    if problem:
      p.error(f"--settings: {problem}")
  workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
  valid = workload_names()
  for w in workloads:  # Fail on a bad name before any timing.
    if w not in valid:
      p.error(f"--workloads: unknown {w!r}; valid: {', '.join(valid)}")
  cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
              if l.startswith("model name")), "?") if os.path.exists("/proc/cpuinfo") else "?"
  print(f"# {cpu}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; settings:")
  for s in settings:
    env = setting_environment(s)
    print(f"#   {s}: XLA_FLAGS={env['XLA_FLAGS']!r}"
          + (f" LD_PRELOAD={env['LD_PRELOAD']}" if "LD_PRELOAD" in env else ""))
  header = f"{'workload':16s}" + "".join(f"{s:>24s}" for s in settings)
  print(header)
  for w in workloads:
    rates = {s: [] for s in settings}
    for _ in range(args.rounds):
      for s in settings:
        rates[s].append(run_child(s, w, args)["images_per_s"])
    med = {s: statistics.median(v) for s, v in rates.items()}
    ref = med.get("defaults")
    cells = "".join(f"{med[s]:12.1f} img/s" + (f" {med[s] / ref:4.2f}x" if ref else "")
                    for s in settings)
    print(f"{w:16s}{cells}", flush=True)
  print(f"# (ratio: to jaxlib's defaults; load at the end {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
  main()
