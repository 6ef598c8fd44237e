"""Train-step throughput (images/s) and compile time, with and without the augmentation.

  python bench/bench_train.py --models=small_resnet,resnet18 --steps=10
  python bench/bench_train.py --models=resnet18 --xla_flags=none   # jaxlib's own CPU defaults
  python bench/bench_train.py --models=resnet18 --dtype=bfloat16 --steps_per_call=20   # on a GPU
  python bench/bench_train.py --models=resnet18 --augment=on --attention=extended   # the paper's
  python bench/bench_train.py --models=small_resnet,resnet18 --augment=off --reference=torch

It times the loop's own step function (`freqrobust.train.StepRunner`: the training set on the
devices, K = --steps_per_call steps per jitted call with lax.scan, donated state) on synthetic
uint8 data. Each row: model, input, augmentation on/off, compile seconds, steady-state images/s
(median of --repeats timings of --steps steps each, after one warm-up call), and the process CPU
seconds per step (all threads; on a busy shared machine CPU time is steadier than wall time, and
on an idle machine with N cores the best wall time is about CPU time / N).

"augmentation on" is the paper's pipeline: pad 4, power suppression (p = 1/3), NFD (sigma = 1),
random crop and flip; with --attention=basic/extended also APS's auxiliary term (learnable
configuration, lambda = 50, as configs/resnet18_nfd.py).

--reference=torch also times a PyTorch CPU train step of the same network (bench/torch_reference.py:
eager NCHW and channels_last, same batch, SGD with momentum and weight decay) in the same process,
right after the JAX rows, and prints freqrobust's images/s as a ratio of each. Compare it with
--augment=off --attention=none: the reference has neither. PyTorch comes from
requirements-bench.txt, never from the project's requirements.

--xla_flags=auto (default) applies freqrobust.platform.configure_xla_for_cpu() as the CLI does;
none leaves XLA_FLAGS alone; anything else is used as XLA_FLAGS. An XLA_FLAGS already in the
environment always wins over auto.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from freqrobust import platform  # noqa: E402  (imports no JAX)


def bench_config(model: str, augment_on: bool, dtype: str, size: int, channels: int,
                 attention: str, batch: int, widths=None):
  """A resolved config of `model` on synthetic size x size x channels data."""
  from configs import default
  from freqrobust import experiment
  config = default.get_config()
  config.data.dataset = "synthetic"
  config.data.synthetic_size, config.data.synthetic_channels = size, channels
  config.model.name = model
  config.model.dtype = dtype
  config.model.attention = attention
  if widths:  # small_resnet: one block per stage width.
    config.model.small_widths = tuple(widths)
    config.model.small_stage_sizes = (1,) * len(widths)
  config.train.batch_size = config.eval.batch_size = batch
  if not augment_on:
    config.augment.pad = 0
    config.augment.crop = config.augment.flip = False
  else:  # The paper's full pipeline: pad, suppression (p = 1/3), NFD, crop, flip.
    config.augment.suppress_prob = 1.0 / 3.0
    config.augment.nfd = True
    if attention != "none":  # APS: configs/resnet18_nfd.py's setting.
      config.aps.configuration = "learnable"
      config.aps.aux_weight = 50.0
  return experiment.resolve_config(config)


def measure(model: str, augment_on: bool, *, dtype: str = "float32", size: int = 32,
            channels: int = 3, attention: str = "none", batch: int = 128,
            steps_per_call: int = 1, steps: int = 5, repeats: int = 3, device_data: bool = True,
            widths=None) -> dict:
  """Compile seconds, median images/s and CPU s/step of the training loop's step function.

  `steps` is rounded up to a multiple of `steps_per_call`; the indices of every call are made
  by the loop's own `EpochOrder` (its host work is inside the timing, as in training).
  """
  config = bench_config(model, augment_on, dtype, size, channels, attention, batch, widths)
  r = measure_config(config, steps_per_call=steps_per_call, steps=steps, repeats=repeats,
                     device_data=device_data)
  return dict(model=model, augment=augment_on, dtype=dtype, attention=attention, **r)


def measure_config(config, *, steps_per_call: int = 1, steps: int = 5, repeats: int = 3,
                   device_data: bool = True) -> dict:
  """`measure` of any resolved config (synthetic data of its shape): compile seconds, median
  images/s and CPU s/step of the training loop's step function."""
  import jax
  import numpy as np
  from freqrobust import experiment, sharding, train
  batch = config.train.batch_size
  size, channels = config.data.synthetic_size, config.data.synthetic_channels
  k = max(1, int(steps_per_call))
  calls = max(1, -(-int(steps) // k))
  num_train = batch * k * (calls + 1)
  exp = experiment.build(config, num_train)
  sharder = sharding.Sharder()
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (num_train, size, size, channels)).astype(np.uint8)
  labels = rng.integers(0, exp.num_classes, num_train).astype(np.int32)
  order = train.EpochOrder(num_train, batch, seed=0)
  runner = train.StepRunner(exp, sharder, images, labels, order, k, device_data)
  state = exp.init_state(jax.random.key(0), sharder)
  key = jax.random.key(1)
  data, xs = runner.inputs(0)
  t0 = time.perf_counter()
  compiled = runner.fn.lower(state, data, xs, key).compile()
  compile_s = time.perf_counter() - t0
  state, metrics = compiled(state, data, xs, key)  # Warm-up.
  jax.block_until_ready((state, metrics))
  rates, cpu = [], []
  for _ in range(repeats):
    t0, c0 = time.perf_counter(), time.process_time()
    for c in range(calls):
      data, xs = runner.inputs(c * k)
      state, metrics = compiled(state, data, xs, key)
    jax.block_until_ready((state, metrics))
    rates.append(calls * k * batch / (time.perf_counter() - t0))
    cpu.append((time.process_time() - c0) / (calls * k))
  loss = float(np.mean(jax.device_get(metrics["loss"])))
  return dict(batch=batch, image_shape=[size, size, channels], steps_per_call=k,
              device_data=device_data,
              steps_timed=calls * k, repeats=repeats, compile_s=compile_s,
              images_per_s=float(np.median(rates)), cpu_s_per_step=float(np.median(cpu)),
              last_loss=loss, loss_finite=bool(np.isfinite(loss)))


def configure_xla(mode: str) -> None:
  """--xla_flags: auto (the CLI's CPU flags), none, or an XLA_FLAGS string. Before JAX starts."""
  if mode == "auto":
    platform.configure_xla_for_cpu()
  elif mode != "none":
    os.environ["XLA_FLAGS"] = mode


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--models", default="small_resnet,resnet18")
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--size", type=int, default=32)
  p.add_argument("--channels", type=int, default=3)
  p.add_argument("--attention", default="none", help="none, basic or extended")
  p.add_argument("--dtype", default="float32", help="float32 or bfloat16 (compute dtype)")
  p.add_argument("--steps", type=int, default=5, help="steps per timing")
  p.add_argument("--steps_per_call", type=int, default=1, help="K steps per jitted call")
  p.add_argument("--host_data", action="store_true",
                 help="feed each call's batches from the host instead of the device-resident set")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--augment", default="off,on", help="off, on or off,on")
  p.add_argument("--xla_flags", default="auto", help="auto, none, or an XLA_FLAGS string")
  p.add_argument("--reference", default="none",
                 help="none or torch: also time PyTorch's CPU step of the same network")
  args = p.parse_args()
  if args.reference not in ("none", "torch"):
    p.error(f"--reference={args.reference!r}: use none or torch")
  if args.reference == "torch":
    try:
      import torch  # noqa: F401  (checked before any JAX work)
    except ImportError:
      p.error("--reference=torch needs PyTorch: pip install -r requirements-bench.txt")
  configure_xla(args.xla_flags)
  import jax  # After XLA_FLAGS is final.
  print(f"# {jax.devices()[0].device_kind} x{jax.device_count()}, jax {jax.__version__}, "
        f"batch {args.batch}, {args.size}x{args.size}x{args.channels}, dtype {args.dtype}, "
        f"attention {args.attention}, {args.steps_per_call} step(s)/call, data on "
        f"{'host' if args.host_data else 'device'}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, "
        f"load {os.getloadavg()[0]:.1f}")
  print(f"{'model':14s} {'augment':8s} {'compile s':>10s} {'images/s':>10s} {'cpu s/step':>11s}")
  for model in args.models.split(","):
    base = None
    for mode in args.augment.split(","):
      r = measure(model, mode == "on", dtype=args.dtype, size=args.size, channels=args.channels,
                  attention=args.attention, batch=args.batch, steps_per_call=args.steps_per_call,
                  steps=args.steps, repeats=args.repeats, device_data=not args.host_data)
      extra = ""
      if mode == "off":
        base = r
      elif base:
        wall = 100 * (base["images_per_s"] / r["images_per_s"] - 1)
        cpu = 100 * (r["cpu_s_per_step"] / base["cpu_s_per_step"] - 1)
        extra = (f"  (augmentation costs {wall:.1f}% of the step in wall time, "
                 f"{cpu:.1f}% in CPU time)")
      print(f"{model:14s} {mode:8s} {r['compile_s']:10.1f} {r['images_per_s']:10.1f} "
            f"{r['cpu_s_per_step']:11.2f}{extra}", flush=True)
      if mode == "off":
        jax_rate = r["images_per_s"]
    if args.reference == "torch":
      import torch_reference
      if args.attention != "none" or "off" not in args.augment.split(","):
        print("  (PyTorch reference: no attention, no augmentation; compare with the 'off' row)")
      for cl in (False, True):
        t = torch_reference.measure(model, batch=args.batch, size=args.size,
                                    channels=args.channels, steps=args.steps,
                                    repeats=args.repeats, channels_last=cl)
        ratio = (f"  freqrobust/PyTorch = {jax_rate / t['images_per_s']:.2f}x"
                 if "off" in args.augment.split(",") else "")
        name = "torch " + ("chlast" if cl else "eager")
        print(f"{model:14s} {name:14s} {'':4s} {t['images_per_s']:10.1f} "
              f"{t['cpu_s_per_step']:11.2f}{ratio}   [{t['framework']}, {t['threads']} threads]",
              flush=True)


if __name__ == "__main__":
  main()
