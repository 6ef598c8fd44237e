"""Attack throughput (images/s of PGD-k, L-inf) and adversarial training's cost per step.

  python bench/bench_attacks.py --models=small_resnet,resnet18 --pgd_steps=10 --reference=torch
  python bench/bench_attacks.py --models=small_resnet --train   # + pgd_at / fgsm_rs vs natural
  python bench/bench_attacks.py --models=resnet18 --conv_backends=xla,onednn --reference=torch

Rows: model, input, batch, compile seconds, images/s (median of --repeats calls of one PGD-k
attack on the batch, after a warm-up call) and CPU s per call. The JAX attack is
freqrobust.attacks.pgd on the model in inference mode (BatchNorm running statistics), one jit
(random start + k signed-gradient steps + the keep-best bookkeeping; the steps unrolled on the CPU,
freqrobust.attacks.fgsm_pgd.unroll_steps). --reference=torch times the
same attack on the same architecture in PyTorch (bench/torch_reference.py's networks, eval mode,
eager): random start, k steps of loss.backward() + sign + clamp. --train times the training loop's
step (bench/bench_train.py) for natural training, pgd_at (--pgd_steps steps) and fgsm_rs.

Shapes: small_resnet at 28x28x1 (Fashion-MNIST; one block per stage, widths --small_widths),
resnet18 at 32x32x3. PyTorch comes from requirements-bench.txt, never the project's requirements.
"""
import argparse
import functools
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

SHAPES = {"small_resnet": (28, 1), "resnet18": (32, 3)}


def _timed(fn, repeats):
  import numpy as np
  rates, cpu = [], []
  for _ in range(repeats):
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    rates.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
  return float(np.median(rates)), float(np.median(cpu))


def measure_jax(model: str, *, batch: int, pgd_steps: int, repeats: int, widths,
                conv_backend: str = "auto") -> dict:
  import jax
  import jax.numpy as jnp
  import numpy as np
  import bench_train
  from freqrobust import attacks, experiment
  size, channels = SHAPES[model]
  config = bench_train.bench_config(model, False, "float32", size, channels, "none", batch,
                                    widths if model == "small_resnet" else None)
  config.train.conv_backend = conv_backend
  exp = experiment.build(config, batch)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.random((batch, size, size, channels), np.float32))
  y = jnp.asarray(rng.integers(0, exp.num_classes, batch).astype(np.int32))
  variables = exp.model.init(jax.random.key(0), x[:2])

  def logits_fn(z):
    return exp.model.apply(variables, z, train=False)[0]

  eps = 8 / 255
  run = functools.partial(attacks.pgd, logits_fn, jax.random.key(1), x, y, eps=eps,
                          steps=pgd_steps)
  t0 = time.perf_counter()
  jax.block_until_ready(run())  # Compile + warm-up.
  first = time.perf_counter() - t0
  wall, cpu = _timed(lambda: jax.block_until_ready(run()), repeats)
  return dict(framework=f"jax {jax.__version__}", conv_backend=conv_backend, model=model,
              shape=[size, size, channels],
              batch=batch, pgd_steps=pgd_steps, first_call_s=first,
              images_per_s=batch / wall, cpu_s_per_call=cpu)


def measure_torch(model: str, *, batch: int, pgd_steps: int, repeats: int, widths) -> dict:
  import numpy as np
  import torch_reference
  torch, ResNet = torch_reference._modules()
  torch.manual_seed(0)
  size, channels = SHAPES[model]
  stage_sizes, w = torch_reference.architecture(model, widths)
  net = ResNet(channels, stage_sizes, w, 10).eval()
  for p in net.parameters():
    p.requires_grad_(False)
  rng = np.random.default_rng(0)
  x = torch.from_numpy(rng.random((batch, channels, size, size), np.float32))
  y = torch.from_numpy(rng.integers(0, 10, batch).astype(np.int64))
  eps, alpha = 8 / 255, 2.5 * (8 / 255) / pgd_steps

  def attack():
    delta = torch.empty_like(x).uniform_(-eps, eps)
    delta = (x + delta).clamp(0, 1) - x
    for _ in range(pgd_steps):
      delta.requires_grad_(True)
      loss = torch.nn.functional.cross_entropy(net((x + delta - 0.5) / 0.25), y)
      grad, = torch.autograd.grad(loss, delta)
      delta = (delta.detach() + alpha * grad.sign()).clamp(-eps, eps)
      delta = (x + delta).clamp(0, 1) - x
    return x + delta

  t0 = time.perf_counter()
  attack()
  first = time.perf_counter() - t0
  wall, cpu = _timed(attack, repeats)
  return dict(framework=f"torch {torch.__version__}", threads=torch.get_num_threads(),
              model=model, shape=[size, size, channels], batch=batch, pgd_steps=pgd_steps,
              first_call_s=first, images_per_s=batch / wall, cpu_s_per_call=cpu)


def measure_training(model: str, *, batch: int, pgd_steps: int, widths, steps: int) -> list:
  import bench_train
  from configs import baselines
  from freqrobust import experiment
  from freqrobust.augment import registry
  size, channels = SHAPES[model]
  rows = []
  for method in ("natural", "fgsm_rs", "pgd_at"):
    config = bench_train.bench_config(model, False, "float32", size, channels, "none", batch,
                                      widths if model == "small_resnet" else None)
    if method != "natural":
      config.method = method
      config.method_args = baselines._defaults(registry.BASELINES[method])
      config.method_args.pad, config.method_args.flip = 0, False
      if method == "pgd_at":
        config.method_args.steps = pgd_steps
    config = experiment.resolve_config(config)
    r = bench_train.measure_config(config, steps=steps, repeats=1)
    rows.append(dict(model=model, method=method, **r))
  base = rows[0]["images_per_s"]
  for r in rows:
    r["cost_vs_natural"] = base / r["images_per_s"]
  return rows


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--models", default="small_resnet,resnet18")
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--pgd_steps", type=int, default=10)
  p.add_argument("--repeats", type=int, default=2)
  p.add_argument("--small_widths", default="16,32,64")
  p.add_argument("--reference", default="none", choices=["none", "torch"])
  p.add_argument("--train", action="store_true")
  p.add_argument("--train_steps", type=int, default=2)
  p.add_argument("--xla_flags", default="auto")
  p.add_argument("--conv_backends", default="auto",
                 help="config.train.conv_backend values timed in turn, e.g. xla,onednn")
  args = p.parse_args()
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import bench_train
  bench_train.configure_xla(args.xla_flags)
  widths = tuple(int(w) for w in args.small_widths.split(","))
  print(f"# uptime: {os.popen('uptime').read().strip()}", flush=True)
  for model in args.models.split(","):
    kw = dict(batch=args.batch, pgd_steps=args.pgd_steps, widths=widths)
    rows = []
    for backend in args.conv_backends.split(","):
      rows.append(measure_jax(model, repeats=args.repeats, conv_backend=backend, **kw))
      print(json.dumps(rows[-1]), flush=True)
    if args.reference == "torch":
      ref = measure_torch(model, repeats=args.repeats, **kw)
      for row in rows:
        ref[f"jax_{row['conv_backend']}_over_torch"] = row["images_per_s"] / ref["images_per_s"]
      print(json.dumps(ref), flush=True)
    if args.train:
      for r in measure_training(model, batch=args.batch, pgd_steps=args.pgd_steps,
                                widths=widths, steps=args.train_steps):
        print(json.dumps(r), flush=True)
  print(f"# uptime: {os.popen('uptime').read().strip()}", flush=True)


if __name__ == "__main__":
  main()
