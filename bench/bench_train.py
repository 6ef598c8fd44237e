"""Train-step throughput (images/s) and compile time, with and without the augmentation.

  python bench/bench_train.py --models=small_resnet,resnet18 --steps=10
  python bench/bench_train.py --models=resnet18 --xla_flags=none   # jaxlib's own CPU defaults
  python bench/bench_train.py --models=resnet18 --dtype=bfloat16   # on a GPU

Each row: model, input, augmentation on/off, compile seconds, steady-state images/s (median of
--repeats timings of --steps steps each, after one warm-up call), and the process CPU seconds per
step (all threads; on a busy shared machine CPU time is steadier than wall time, and on an idle
machine with N cores the best wall time is about CPU time / N).

--xla_flags=auto (default) applies freqrobust.platform.configure_xla_for_cpu() as the CLI does;
none leaves XLA_FLAGS alone; anything else is used as XLA_FLAGS. An XLA_FLAGS already in the
environment always wins over auto.
"""
import argparse
import functools
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from freqrobust import platform  # noqa: E402  (imports no JAX)


def bench_config(model: str, augment_on: bool, dtype: str, size: int, channels: int, attention: str):
  from configs import default
  from freqrobust import train
  config = default.get_config()
  config.data.dataset = "synthetic"
  config.data.synthetic_size, config.data.synthetic_channels = size, channels
  config.model.name = model
  config.model.dtype = dtype
  config.model.attention = attention
  if not augment_on:
    config.augment.pad = 0
    config.augment.crop = config.augment.flip = False
  else:  # The paper's full pipeline: pad, suppression (p = 1/3), NFD, crop, flip.
    config.augment.suppress_prob = 1.0 / 3.0
    config.augment.nfd = True
  return train.resolve_config(config)


def run(model: str, augment_on: bool, args) -> dict:
  import jax
  import numpy as np
  from freqrobust import train
  config = bench_config(model, augment_on, args.dtype, args.size, args.channels, args.attention)
  m, tx, schedule, aug_params, _ = train.build(config, 50000)
  sharder = train.Sharder()
  shape = (args.size, args.size, args.channels)
  state = jax.jit(functools.partial(train.create_train_state, model=m, tx=tx, config=config,
                                    image_shape=shape), out_shardings=sharder.replicated)(
                                        jax.random.key(0))
  step = jax.jit(functools.partial(train.train_step, model=m, tx=tx, schedule=schedule,
                                   aug_params=aug_params, config=config),
                 in_shardings=(sharder.replicated, sharder.data, sharder.replicated),
                 out_shardings=(sharder.replicated, sharder.replicated), donate_argnums=(0,))
  rng = np.random.default_rng(0)
  batch = sharder.put({"image": rng.integers(0, 256, (args.batch,) + shape).astype(np.uint8),
                       "label": rng.integers(0, 10, args.batch).astype(np.int32)})
  key = jax.random.key(1)
  t0 = time.perf_counter()
  compiled = step.lower(state, batch, key).compile()
  compile_s = time.perf_counter() - t0
  state, metrics = compiled(state, batch, key)
  jax.block_until_ready(metrics)
  rates, cpu = [], []
  for _ in range(args.repeats):
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
      state, metrics = compiled(state, batch, key)
    jax.block_until_ready((state, metrics))
    rates.append(args.steps * args.batch / (time.perf_counter() - t0))
    cpu.append((time.process_time() - c0) / args.steps)
  return dict(model=model, augment=augment_on, compile_s=compile_s, images_per_s=float(np.median(rates)),
              cpu_s_per_step=float(np.median(cpu)))


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--models", default="small_resnet,resnet18")
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--size", type=int, default=32)
  p.add_argument("--channels", type=int, default=3)
  p.add_argument("--attention", default="none", help="none, basic or extended")
  p.add_argument("--dtype", default="float32")
  p.add_argument("--steps", type=int, default=5)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--augment", default="off,on", help="off, on or off,on")
  p.add_argument("--xla_flags", default="auto", help="auto, none, or an XLA_FLAGS string")
  args = p.parse_args()
  if args.xla_flags == "auto":
    platform.configure_xla_for_cpu()
  elif args.xla_flags != "none":
    os.environ["XLA_FLAGS"] = args.xla_flags
  import jax  # After XLA_FLAGS is final.
  print(f"# {jax.devices()[0].device_kind} x{jax.device_count()}, jax {jax.__version__}, "
        f"batch {args.batch}, {args.size}x{args.size}x{args.channels}, dtype {args.dtype}, "
        f"attention {args.attention}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, "
        f"load {os.getloadavg()[0]:.1f}")
  print(f"{'model':14s} {'augment':8s} {'compile s':>10s} {'images/s':>10s} {'cpu s/step':>11s}")
  for model in args.models.split(","):
    base = None
    for mode in args.augment.split(","):
      r = run(model, mode == "on", args)
      extra = ""
      if mode == "off":
        base = r
      elif base:
        wall = 100 * (base["images_per_s"] / r["images_per_s"] - 1)
        cpu = 100 * (r["cpu_s_per_step"] / base["cpu_s_per_step"] - 1)
        extra = f"  (augmentation costs {wall:.1f}% of the step in wall time, {cpu:.1f}% in CPU time)"
      print(f"{model:14s} {mode:8s} {r['compile_s']:10.1f} {r['images_per_s']:10.1f} "
            f"{r['cpu_s_per_step']:11.2f}{extra}", flush=True)


if __name__ == "__main__":
  main()
