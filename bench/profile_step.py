"""Where a train step's time goes, JAX against PyTorch, phase by phase (issue 39 item 4).

  python bench/profile_step.py                                  # the small ResNet, batch 128
  python bench/profile_step.py --model=resnet18 --size=32 --channels=3 --batch=64

Each framework runs the same network (bench/torch_reference.py's ResNet is freqrobust's) in four
nested phases, each timed alone (median of --n calls after a warm-up, ms per call):

  forward, eval      the logits in inference mode (BatchNorm's running statistics)
  forward, train     the training loss (BatchNorm's batch statistics; PyTorch records the graph)
  + backward         the loss and its gradient
  full step          the training loop's step: freqrobust's `StepRunner` function (the batch
                     gathered on the device, the update of optax's SGD with momentum and weight
                     decay, the metrics) / PyTorch's zero_grad, forward, backward, SGD step

The differences between consecutive phases are the backward pass and "the rest of the step" (the
optimizer, the metrics, the input pipeline of the step). JAX runs under conv_backend "auto" (and
"xla" with --backends=xla,auto); PyTorch eager NCHW and channels_last. --torch_ops prints
PyTorch's profiler table of the full step (self CPU time per operator), where the time outside
the convolutions goes on that side. The header gives the CPU model and the load; figures taken
under load (above half the cores) are flagged and are no benchmark.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_conv_backend import best_ms, header  # noqa: E402  (imports no JAX)
from freqrobust import platform  # noqa: E402  (imports no JAX)


def jax_phases(model_name, backend, batch, size, channels, widths, n) -> dict:
  import jax
  import jax.numpy as jnp
  import numpy as np
  import bench_train
  from freqrobust import experiment, sharding
  config = bench_train.bench_config(model_name, False, "float32", size, channels, "none", batch,
                                    widths)
  config.train.conv_backend = backend
  exp = experiment.build(config, batch * 4)
  model = exp.model
  state = exp.init_state(jax.random.key(0), sharding.Sharder())
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.random((batch, size, size, channels), np.float32))
  y = jnp.asarray(rng.integers(0, exp.num_classes, batch).astype(np.int32))
  variables = experiment.evaluation_variables(config, state)
  predict = jax.jit(experiment.predict_apply(model, False))

  def loss(params, batch_stats, x, y):  # The data are arguments, as in the loop's step.
    (logits, _), _ = model.apply({"params": params, "batch_stats": batch_stats}, x, train=True,
                                 mutable=["batch_stats"])
    return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(batch), y])
  fwd = jax.jit(loss)
  grad = jax.jit(jax.value_and_grad(loss))
  params, stats = state.params["model"], state.batch_stats
  out = {"forward, eval": best_ms(lambda: predict(variables, x).block_until_ready(), n),
         "forward, train": best_ms(lambda: fwd(params, stats, x, y).block_until_ready(), n),
         "+ backward": best_ms(lambda: jax.block_until_ready(grad(params, stats, x, y)), n)}
  step = bench_train.measure_config(config, steps=max(2, n // 2), repeats=3)
  out["full step"] = 1e3 * batch / step["images_per_s"]
  return out


def torch_phases(model_name, batch, size, channels, widths, n, channels_last, ops) -> dict:
  import numpy as np
  import torch_reference
  torch, ResNet = torch_reference._modules()  # pylint: disable=protected-access
  torch.manual_seed(0)
  stage_sizes, w = torch_reference.architecture(model_name, widths)
  fmt = torch.channels_last if channels_last else torch.contiguous_format
  net = ResNet(channels, stage_sizes, w, 10).to(memory_format=fmt)  # bench_config: 10 classes
  opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
  rng = np.random.default_rng(0)
  x = torch.from_numpy(rng.random((batch, channels, size, size), np.float32)).contiguous(
      memory_format=fmt)
  y = torch.from_numpy(rng.integers(0, 10, batch).astype(np.int64))
  loss_fn = torch.nn.CrossEntropyLoss()

  def evaluate():
    net.eval()
    with torch.no_grad():
      net(x)

  def forward():
    net.train()
    return loss_fn(net(x), y)

  def backward():
    opt.zero_grad(set_to_none=True)
    forward().backward()

  def step():
    backward()
    opt.step()
  out = {"forward, eval": best_ms(evaluate, n), "forward, train": best_ms(forward, n),
         "+ backward": best_ms(backward, n), "full step": best_ms(step, n)}
  if ops:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
      for _ in range(3):
        step()
    print(f"# PyTorch {'channels_last' if channels_last else 'eager'}: the full step's operators "
          "(3 steps), by self CPU time")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--model", default="small_resnet", help="small_resnet or resnet18")
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--size", type=int, default=28)
  p.add_argument("--channels", type=int, default=1)
  p.add_argument("--widths", default="16,32,64", help="small_resnet's stage widths")
  p.add_argument("--n", type=int, default=10, help="timed calls per phase (median)")
  p.add_argument("--backends", default="auto", help="JAX conv_backend columns, e.g. xla,auto")
  p.add_argument("--torch_ops", action="store_true", help="PyTorch's profiler table too")
  args = p.parse_args()
  platform.configure_xla_for_cpu()
  widths = tuple(int(v) for v in args.widths.split(",")) if args.model == "small_resnet" else None
  try:
    import torch
    torch.set_num_threads(os.cpu_count() or 1)
  except ImportError:
    torch = None
  print(header(torch.__version__ if torch else "not installed"))
  print(f"# {args.model}, batch {args.batch}, {args.size}x{args.size}x{args.channels}, ms per call")
  columns = {}
  for backend in args.backends.split(","):
    columns[f"JAX {backend}"] = jax_phases(args.model, backend, args.batch, args.size,
                                           args.channels, widths, args.n)
  if torch is not None:
    for cl in (False, True):
      columns["PyTorch " + ("channels_last" if cl else "eager")] = torch_phases(
          args.model, args.batch, args.size, args.channels, widths, args.n, cl, args.torch_ops)
  names = list(columns)
  print("| phase | " + " | ".join(names) + " |")
  print("|---|" + "---:|" * len(names))
  phases = list(next(iter(columns.values())))
  for phase in phases:
    print(f"| {phase} | " + " | ".join(f"{columns[c][phase]:.1f}" for c in names) + " |")
  for label, (a, b) in (("backward (difference)", ("+ backward", "forward, train")),
                        ("rest of the step (difference)", ("full step", "+ backward"))):
    print(f"| {label} | " + " | ".join(f"{columns[c][a] - columns[c][b]:.1f}" for c in names)
          + " |")


if __name__ == "__main__":
  main()
