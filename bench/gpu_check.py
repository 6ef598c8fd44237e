"""One GPU check (issue 13): training and corruption throughput and a short real run, as figures.

    python bench/gpu_check.py --out=DIR            # full: ResNet-18 on 32x32x3, under 5 min
                                                   # on a GPU
    python bench/gpu_check.py --out=DIR --reduced  # the same code paths, tiny sizes, for a CPU

(`bench/gpu_check.sh` wraps it with a time limit.) Sections, each written to DIR/gpu_check.json as
soon as it is done (a run cut short keeps the finished ones) and summarised in DIR/gpu_check.txt:

1. train: images/s of the training loop's step function (`bench_train.measure`: training set on
   the device, K steps per call) with the paper's augmentation (pad 4, power suppression p = 1/3,
   NFD sigma = 1, crop, flip) and the extended APS attention with its auxiliary term, in float32
   and in bfloat16 (float32 weights), and in float32 with one step per call (no lax.scan: the
   scan's gain or cost); ResNet-18, batch 128. Reduced: a one-block 4-channel
   small ResNet, 8x8x3, batch 16.
2. corruptions: images/s of `freqrobust.corruptions.corrupt` on a 32x32x3 batch already on the
   device, per corruption (severity 3), timed after a warm-up call (compilation apart).
3. main: `python -m freqrobust.main --config=configs/resnet18_nfd.py` on synthetic 32x32x3 data
   for a few hundred steps (bfloat16): exit status, wall time, steps/s between the first and the
   last logged step (compilation excluded), clean accuracy. Reduced: small ResNet, 8x8x3, 8 steps.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)

import bench_train  # noqa: E402  (imports no JAX)

FULL = dict(
    train=dict(model="resnet18", size=32, channels=3, attention="extended", batch=128,
               steps_per_call=20, steps=100, repeats=3, widths=None),
    corruptions=dict(names=("gaussian_noise", "defocus_blur", "fog", "contrast",
                            "elastic_transform"), num_images=2000, repeats=3),
    main=dict(steps=300, batch=128, size=32, examples=12800, overrides=(
        "--config.model.dtype=bfloat16", "--config.train.log_every_steps=50",
        "--config.train.steps_per_call=50", "--config.train.checkpoint_every_steps=300")),
)
REDUCED = dict(
    train=dict(model="small_resnet", size=8, channels=3, attention="extended", batch=16,
               steps_per_call=2, steps=4, repeats=1, widths=(4,)),
    corruptions=dict(names=("gaussian_noise", "contrast"), num_images=8, repeats=1),
    main=dict(steps=8, batch=16, size=8, examples=64, overrides=(
        "--config.model.name=small_resnet", "--config.model.small_widths=(4,)",
        "--config.model.small_stage_sizes=(1,)",
        "--config.model.attention_hidden=8", "--config.augment.pad=2",
        "--config.train.log_every_steps=4", "--config.train.steps_per_call=2",
        "--config.train.checkpoint_every_steps=8", "--config.eval.batch_size=16")),
)
DTYPES = ("float32", "bfloat16")
# Reduced mode only: XLA's optimisations off, which halves compile times on a CPU (the programs
# run slower: reduced figures are checks of the code paths, not speeds).
FAST_COMPILE_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"


class Report:
  """DIR/gpu_check.json, rewritten after every section."""

  def __init__(self, out: str, mode: str):
    self.path = os.path.join(out, "gpu_check.json")
    self.figures = {"mode": mode, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                    "finished": False}

  def set(self, name: str, value) -> None:
    self.figures[name] = value
    tmp = self.path + ".tmp"
    with open(tmp, "w") as f:
      json.dump(self.figures, f, indent=1)
    os.replace(tmp, self.path)


def environment() -> dict:
  import jax
  device = jax.devices()[0]
  return {"platform": device.platform, "device_kind": device.device_kind,
          "device_count": jax.device_count(), "jax": jax.__version__,
          "xla_flags": os.environ.get("XLA_FLAGS", ""), "load_average": os.getloadavg()[0],
          "cpu_count": os.cpu_count()}


def train_section(spec: dict) -> dict:
  out = {}
  for dtype in DTYPES:
    r = bench_train.measure(spec["model"], True, dtype=dtype, size=spec["size"],
                            channels=spec["channels"], attention=spec["attention"],
                            batch=spec["batch"], steps_per_call=spec["steps_per_call"],
                            steps=spec["steps"], repeats=spec["repeats"], widths=spec["widths"])
    out[dtype] = r
    print(f"train {spec['model']} {dtype}: {r['images_per_s']:.1f} images/s "
          f"(compile {r['compile_s']:.1f} s)", flush=True)
  out["bfloat16_speedup"] = out["bfloat16"]["images_per_s"] / out["float32"]["images_per_s"]
  # The same float32 step, one per call (no lax.scan): what the scan buys, or costs (XLA:CPU
  # runs scanned steps 10-20x slower; freqrobust.train's auto K assumes GPUs do not).
  r = bench_train.measure(spec["model"], True, dtype="float32", size=spec["size"],
                          channels=spec["channels"], attention=spec["attention"],
                          batch=spec["batch"], steps_per_call=1, steps=spec["steps"],
                          repeats=spec["repeats"], widths=spec["widths"])
  out["float32_one_step_per_call"] = r
  out["scan_speedup"] = out["float32"]["images_per_s"] / r["images_per_s"]
  print(f"train {spec['model']} float32, 1 step/call: {r['images_per_s']:.1f} images/s", flush=True)
  return out


def corruption_section(spec: dict) -> dict:
  import jax
  import jax.numpy as jnp
  import numpy as np
  from freqrobust import corruptions
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.integers(0, 256, (spec["num_images"], 32, 32, 3)).astype(np.uint8))
  key = jax.random.key(0)
  out = {"num_images": spec["num_images"], "image_shape": [32, 32, 3], "severity": 3,
         "images_per_s": {}, "warmup_s": {}}
  for name in spec["names"]:
    t0 = time.perf_counter()
    jax.block_until_ready(corruptions.corrupt(key, images, name, 3))  # Compiles.
    out["warmup_s"][name] = time.perf_counter() - t0
    times = []
    for k in jax.random.split(key, spec["repeats"]):  # Keys made before the clock starts.
      t0 = time.perf_counter()
      jax.block_until_ready(corruptions.corrupt(k, images, name, 3))
      times.append(time.perf_counter() - t0)
    out["images_per_s"][name] = spec["num_images"] / float(np.median(times))
    print(f"corrupt {name}: {out['images_per_s'][name]:.0f} images/s", flush=True)
  rates = list(out["images_per_s"].values())
  out["mean_images_per_s"] = float(np.mean(rates))
  return out


def main_section(spec: dict, out_dir: str, timeout_s: float) -> dict:
  workdir = os.path.join(out_dir, "main_run")
  epochs = -(-spec["steps"] * spec["batch"] // spec["examples"])
  cmd = [sys.executable, "-m", "freqrobust.main", "--config=configs/resnet18_nfd.py",
         f"--workdir={workdir}", "--config.data.dataset=synthetic",
         f"--config.data.synthetic_size={spec['size']}", "--config.data.synthetic_channels=3",
         f"--config.data.synthetic_examples={spec['examples']}",
         f"--config.train.batch_size={spec['batch']}", f"--config.train.num_epochs={epochs}",
         f"--config.train.max_steps={spec['steps']}", "--config.evals.clean.every_epochs=0",
         "--config.evals.corruptions.at_end=False", *spec["overrides"]]
  t0 = time.perf_counter()
  try:
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout_s)
    code, tail = done.returncode, (done.stdout + done.stderr)[-3000:]
  except subprocess.TimeoutExpired as err:
    code = "timeout"
    tail = ((err.stdout or b"").decode(errors="replace") if isinstance(err.stdout, bytes)
            else (err.stdout or ""))[-3000:]
  out = {"command": " ".join(cmd[1:]), "exit_code": code, "wall_s": time.perf_counter() - t0,
         "steps": spec["steps"], "batch": spec["batch"],
         "image_shape": [spec["size"], spec["size"], 3]}
  lines = []
  metrics_path = os.path.join(workdir, "metrics.jsonl")
  if os.path.exists(metrics_path):
    with open(metrics_path) as f:
      lines = [json.loads(line) for line in f if '"loss"' in line]
  if len(lines) >= 2:
    steps = lines[-1]["step"] - lines[0]["step"]
    seconds = lines[-1]["time"] - lines[0]["time"]
    out["steps_per_s"] = steps / seconds if seconds > 0 else None
    out["images_per_s"] = out["steps_per_s"] * spec["batch"] if out["steps_per_s"] else None
    out["rate_between_steps"] = [lines[0]["step"], lines[-1]["step"]]
  else:
    out["steps_per_s"] = out["images_per_s"] = None
  out["final_loss"] = lines[-1]["loss"] if lines else None
  results_path = os.path.join(workdir, "results.json")
  if os.path.exists(results_path):
    with open(results_path) as f:
      results = json.load(f)
    out["clean_accuracy"] = results.get("clean", {}).get("accuracy")
    out["peak_memory"] = results.get("peak_memory")
  else:
    out["clean_accuracy"] = out["peak_memory"] = None
  if code != 0:
    out["output_tail"] = tail
  print(f"main: exit {code}, {out['wall_s']:.1f} s wall, "
        f"{out['steps_per_s'] or float('nan'):.2f} steps/s", flush=True)
  return out


def _f(value, fmt="{:.1f}") -> str:
  return "n/a" if value is None else fmt.format(value)


def summary_text(figures: dict) -> str:
  env = figures.get("environment", {})
  lines = [f"freqrobust GPU check ({figures['mode']} mode), {figures['started']}",
           f"device: {env.get('device_kind')} x{env.get('device_count')} ({env.get('platform')}), "
           f"jax {env.get('jax')}, load average at start {_f(env.get('load_average'))}",
           ""]
  if figures["mode"] == "reduced":
    lines += ["REDUCED MODE: tiny sizes and XLA optimisations off, to exercise the code paths; "
              "the figures are not benchmarks.", ""]
  t = figures.get("train")
  if t:
    spec = t["float32"]
    lines.append(f"training, {spec['model']} with the paper's augmentation (suppression + NFD + "
                 f"{spec['attention']} APS), batch {spec['batch']}, "
                 f"{'x'.join(map(str, spec['image_shape']))}, {spec['steps_per_call']} "
                 "steps per call:")
    for dtype in DTYPES:
      r = t[dtype]
      lines.append(f"  {dtype:9s} {r['images_per_s']:10.1f} images/s   compile "
                   f"{r['compile_s']:.1f} s   loss {r['last_loss']:.3f}")
    lines.append(f"  bfloat16 / float32: {t['bfloat16_speedup']:.2f}x")
    one = t["float32_one_step_per_call"]
    lines.append(f"  float32, 1 step per call: {one['images_per_s']:.1f} images/s; "
                 f"{spec['steps_per_call']} steps per call (lax.scan) / 1: "
                 f"{t['scan_speedup']:.2f}x")
    lines.append("")
  c = figures.get("corruptions")
  if c:
    lines.append(f"corruption generation, {c['num_images']} images 32x32x3, severity "
                 f"{c['severity']} (after warm-up):")
    for name, rate in c["images_per_s"].items():
      lines.append(f"  {name:18s} {rate:12.0f} images/s   (warm-up {c['warmup_s'][name]:.1f} s)")
    lines.append(f"  mean {c['mean_images_per_s']:.0f} images/s")
    lines.append("")
  m = figures.get("main")
  if m:
    lines.append(f"python -m freqrobust.main, synthetic {'x'.join(map(str, m['image_shape']))}, "
                 f"{m['steps']} steps of batch {m['batch']}: exit {m['exit_code']}, wall "
                 f"{_f(m['wall_s'])} s, {_f(m['steps_per_s'], '{:.2f}')} steps/s "
                 f"({_f(m['images_per_s'])} images/s) after compilation, clean accuracy "
                 f"{_f(m['clean_accuracy'], '{:.2f}')}%")
    if m.get("peak_memory"):
      lines.append(f"  peak memory: host {_f(m['peak_memory'].get('host_rss_mib'), '{:.0f}')} MiB, "
                   f"device {_f(m['peak_memory'].get('device_peak_mib'), '{:.0f}')} MiB")
    lines.append("")
  lines.append(f"total {_f(figures.get('total_s'))} s; figures: gpu_check.json")
  return "\n".join(lines) + "\n"


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--out", required=True, help="output directory (created)")
  p.add_argument("--reduced", action="store_true",
                 help="tiny sizes and XLA optimisations off (CPU): the same code paths, fast "
                      "(also GPU_CHECK_REDUCED=1)")
  p.add_argument("--budget_s", type=float, default=290.0,
                 help="the main run gets what is left of this budget")
  p.add_argument("--xla_flags", default="auto", help="as bench_train.py")
  args = p.parse_args()
  reduced = args.reduced or os.environ.get("GPU_CHECK_REDUCED", "") not in ("", "0")
  spec = REDUCED if reduced else FULL
  os.makedirs(args.out, exist_ok=True)
  # The main run is a second JAX process on the same GPU: neither may take 75% of it up front.
  os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  if reduced:  # Appended to any XLA_FLAGS; the main run inherits them.
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE_FLAGS}".strip()
  bench_train.configure_xla(args.xla_flags)
  start = time.perf_counter()
  report = Report(args.out, "reduced" if reduced else "full")
  report.set("environment", environment())
  report.set("train", train_section(spec["train"]))
  report.set("corruptions", corruption_section(spec["corruptions"]))
  left = max(30.0, args.budget_s - (time.perf_counter() - start))
  report.set("main", main_section(spec["main"], args.out, left))
  report.set("total_s", time.perf_counter() - start)
  report.set("finished", True)
  text = summary_text(report.figures)
  with open(os.path.join(args.out, "gpu_check.txt"), "w") as f:
    f.write(text)
  print(text, end="")
  ok = report.figures["main"]["exit_code"] == 0 and all(
      report.figures["train"][d]["loss_finite"] for d in DTYPES)
  sys.exit(0 if ok else 1)


if __name__ == "__main__":
  main()
