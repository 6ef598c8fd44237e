"""Standard AutoAttack, JAX (freqrobust.attacks.autoattack) vs the official PyTorch code, back to
back on the same network and images.

  git clone https://github.com/fra31/auto-attack /tmp/auto-attack      # never inside the repo
  python bench/bench_autoattack.py --models=small_resnet,resnet18 --n=1000 --n_resnet18=100
  python bench/bench_autoattack.py --workdir=RUN --n=1000     # a trained run (attention none)
  python bench/bench_autoattack.py --n=8 --steps=3 --queries=10   # smoke run

The network: freqrobust's ResNet (small_resnet at 28x28x1, resnet18 at 32x32x3, attention
none; a stride-2 convolution padded (0, 1) as Flax's SAME on even sizes in both), its weights
(random, or those of --workdir) copied into bench/torch_reference.py's ResNet in eval mode
(BatchNorm running statistics), the input standardisation applied in both. Images: random
(labels: the network's own predictions, every tenth changed), or with --workdir the run's first N
test images (pass the run's --eps: Fashion-MNIST's is 0.1). Each framework runs
AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square; --steps and --queries override 100 and 5000
in both) once after a warm-up: JAX on min(N, --batch) other images (the compilations of the batch
shape, printed apart), PyTorch on 2 (its first calls; the official run also does its model
checks each time); rows:
framework, model, N, robust accuracy, seconds, images/s, the largest logit difference of the two
networks; then the ratio JAX / PyTorch in images/s. The work depends on how many points stay
robust after each attack (each attack runs on those only), and a random network keeps few at
eps 8/255: pass a trained --workdir for the figure that matters.

PyTorch and the official code are benchmark dependencies only; without them only JAX runs.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

SHAPES = {"small_resnet": (28, 1), "resnet18": (32, 3)}


def jax_network(model: str, workdir=None):
  """(logits_fn, config, variables) of freqrobust's network, random or trained."""
  import jax
  import jax.numpy as jnp
  from freqrobust import experiment
  if workdir:
    from freqrobust import trained
    run = trained.load_trained(workdir)
    if run.config.model.attention != "none" or run.test_time_flip:
      raise SystemExit(f"{workdir}: only attention=none, no test-time flip is mirrored in torch.")
    variables, config, net = run.variables, run.config, run.model
  else:
    import bench_train
    size, channels = SHAPES[model]
    config = bench_train.bench_config(model, False, "float32", size, channels, "none", 32)
    net = experiment.build(config, 32).model
    variables = net.init(jax.random.key(0), jnp.zeros((2, size, size, channels)))

  def logits_fn(x):
    return net.apply(variables, x, train=False)[0]
  return logits_fn, config, variables


def torch_network(torch, config, variables):
  """bench/torch_reference.py's ResNet with the Flax variables; standardises its input."""
  from flax import traverse_util
  import torch_reference
  _, ResNet = torch_reference._modules()
  m = config.model
  flat = traverse_util.flatten_dict(jax_to_numpy(variables), sep="/")
  channels = flat["params/stem/semantic/conv/kernel"].shape[2]
  widths, stage_sizes, k = [], [], 0
  while f"params/BasicBlock_{k}/Conv_0/kernel" in flat:  # consecutive blocks of one width
    w = flat[f"params/BasicBlock_{k}/Conv_0/kernel"].shape[3]
    if widths and widths[-1] == w:
      stage_sizes[-1] += 1
    else:
      widths.append(w)
      stage_sizes.append(1)
    k += 1
  if m.name == "small_resnet":  # its config: a stage may have no blocks (Fashion-MNIST's 0, 1, 1)
    stage_sizes, widths = list(m.small_stage_sizes), list(m.small_widths)
  net = ResNet(channels, stage_sizes, widths, flat["params/head/kernel"].shape[1]).eval()
  names = {"stem.0": "stem/semantic/conv", "stem.1": "stem/semantic/bn", "head": "head"}
  for k in range(sum(stage_sizes)):
    for t, f in (("conv1", "Conv_0"), ("bn1", "BatchNorm_0"), ("conv2", "Conv_1"),
                 ("bn2", "BatchNorm_1"), ("proj.0", "proj_conv"), ("proj.1", "proj_bn")):
      names[f"blocks.{k}.{t}"] = f"BasicBlock_{k}/{f}"
  state = {}
  for key, value in net.state_dict().items():
    module, leaf = key.rsplit(".", 1)
    if leaf == "num_batches_tracked":
      state[key] = value
      continue
    base = names[module]
    src = {"weight": "kernel" if value.ndim != 1 else "scale", "bias": "bias",
           "running_mean": "mean", "running_var": "var"}[leaf]
    group = "batch_stats" if leaf.startswith("running") else "params"
    array = flat[f"{group}/{base}/{src}"]
    if array.ndim == 4:
      array = array.transpose(3, 2, 0, 1)  # HWIO -> OIHW
    elif array.ndim == 2:
      array = array.T  # (in, out) -> (out, in)
    assert tuple(array.shape) == tuple(value.shape), (key, array.shape, value.shape)
    state[key] = torch.from_numpy(np.array(array, np.float32))
  net.load_state_dict(state)
  if getattr(m, "padding", "same") == "same":  # Flax SAME on even sizes pads stride 2 by (0, 1)
    for block in net.blocks:
      if block.conv1.stride == (2, 2):
        block.conv1.padding = (0, 0)
        block.conv1 = torch.nn.Sequential(torch.nn.ZeroPad2d((0, 1, 0, 1)), block.conv1)
  mean = torch.tensor(m.input_mean, dtype=torch.float32).view(1, -1, 1, 1)
  std = torch.tensor(m.input_std, dtype=torch.float32).view(1, -1, 1, 1)

  class Standardised(torch.nn.Module):
    def __init__(self):
      super().__init__()
      self.net = net

    def forward(self, x):
      return self.net((x - mean) / std)
  model = Standardised().eval()
  for p in model.parameters():
    p.requires_grad_(False)
  return model


def jax_to_numpy(tree):
  import jax
  return jax.tree_util.tree_map(np.asarray, dict(tree))


def run(args, model: str, n: int) -> list:
  import jax
  from freqrobust import attacks
  f, config, variables = jax_network(model, args.workdir)
  size, channels = SHAPES.get(model, (args.size, 3))
  if args.workdir:
    channels = np.asarray(variables["params"]["stem"]["semantic"]["conv"]["kernel"]).shape[2]
  rng = np.random.default_rng(0)
  warm = min(n, args.batch)  # the warm-up compiles the timed run's batch shape
  if args.workdir:  # the run's own test images: the timed set, then the warm-up's
    from freqrobust.tools import base as tools_base
    x, y = tools_base.load_test_images(config, n + warm)
    y = np.asarray(y, np.int64)
  else:
    x = rng.uniform(0, 1, (n + warm, size, size, channels)).astype(np.float32)
    y = np.concatenate([np.asarray(np.argmax(f(x[i:i + 256]), -1))
                        for i in range(0, len(x), 256)])
    y[::10] = (y[::10] + 1) % 10
  kw = dict(eps=args.eps, norm=args.norm, steps=args.steps, queries=args.queries,
            batch_size=args.batch)
  t0 = time.perf_counter()
  attacks.autoattack(f, jax.random.key(1), x[n:], y[n:], **kw)  # warm-up: compilations
  print(f"jax warm-up (compilations + one run on {warm} images): "
        f"{time.perf_counter() - t0:.1f} s", flush=True)
  t0 = time.perf_counter()
  ours = attacks.autoattack(f, jax.random.key(0), x[:n], y[:n], **kw)
  wall = time.perf_counter() - t0
  rows = [dict(framework=f"jax {jax.__version__}", model=model, n=n,
               robust_accuracy=float(ours["robust"].mean()), accuracy=ours["accuracy"],
               seconds=wall, images_per_s=n / wall)]
  from autoattack_crosscheck import load_official, official_autoattack
  loaded, why = (None, "--skip_torch") if args.skip_torch else load_official(args.official)
  if loaded is None:
    print(f"PyTorch side skipped: {why}", flush=True)
    return rows
  torch, official = loaded
  net = torch_network(torch, config, variables)
  xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
  yt = torch.from_numpy(y.astype(np.int64))
  with torch.no_grad():
    gap = float(np.max(np.abs(net(xt[:64]).numpy() - np.asarray(f(x[:64])))))
  aa = official_autoattack(net, args.eps, args.norm, args.steps, args.queries)
  aa.run_standard_evaluation(xt[n:n + 2], yt[n:n + 2], bs=args.batch)  # warm-up (eager: no
  # compilation to take out, only the first calls' allocations)
  t0 = time.perf_counter()
  adv = aa.run_standard_evaluation(xt[:n], yt[:n], bs=args.batch)
  wall = time.perf_counter() - t0
  with torch.no_grad():
    robust = (net(adv).argmax(1) == yt[:n]).numpy()
  rows.append(dict(framework=f"torch {torch.__version__} (official AutoAttack)", model=model,
                   n=n, robust_accuracy=float(robust.mean()), seconds=wall, images_per_s=n / wall,
                   threads=torch.get_num_threads(), logits_max_abs_diff=gap))
  rows.append(dict(model=model, jax_over_torch=rows[0]["images_per_s"] / rows[1]["images_per_s"],
                   verdict_agreement=float(np.mean(robust == ours["robust"]))))
  return rows


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--models", default="small_resnet,resnet18")
  parser.add_argument("--workdir", default=None, help="a trained run (one model) instead")
  parser.add_argument("--size", type=int, default=32, help="--workdir's image size")
  parser.add_argument("--n", type=int, default=1000)
  parser.add_argument("--n_resnet18", type=int, default=100)
  parser.add_argument("--eps", type=float, default=8 / 255)
  parser.add_argument("--norm", default="linf", choices=("linf", "l2"))
  parser.add_argument("--steps", type=int, default=100)
  parser.add_argument("--queries", type=int, default=5000)
  parser.add_argument("--batch", type=int, default=250)
  parser.add_argument("--official", default=os.environ.get("AUTOATTACK_OFFICIAL",
                                                           "/tmp/auto-attack"))
  parser.add_argument("--skip_torch", action="store_true")
  args = parser.parse_args(argv)
  models = ["workdir"] if args.workdir else args.models.split(",")
  for model in models:
    n = args.n_resnet18 if model == "resnet18" else args.n
    for row in run(args, model, n):
      print(json.dumps(row), flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
