"""Cross-check of freqrobust.attacks' AutoAttack against the official PyTorch code.

  git clone https://github.com/fra31/auto-attack /tmp/auto-attack      # never inside the repo
  python bench/autoattack_crosscheck.py --official=/tmp/auto-attack [--n=100] [--norm=linf]

Two parts, each printed as one JSON line:
1. "deterministic": the pieces without randomness, on random inputs, official vs this code: FAB's
   projections onto the box-constrained hyperplane (L-inf, L2), Square's p schedule, square side
   and L2 pattern eta(s), and the targeted DLR loss of APGD-T. Expected: equal up to float32
   rounding (max abs differences ~1e-6).
2. "ensemble": one small conv net (weights drawn here in numpy, loaded into both frameworks),
   N random images at 16x16x3, labels its own predictions with every tenth changed (so some are
   wrong when clean); the official `AutoAttack(version='standard', seed=0)`
   `run_standard_evaluation` and `freqrobust.attacks.autoattack` with the same eps; the
   accuracy after each attack in both and the per-example agreement of the final verdicts.
   The random streams differ (torch's vs JAX's: starting points, Square's squares and signs,
   per-batch seeds), so examples near the decision boundary of an attack may differ; each
   disagreement is listed with the attack that broke it on the side that did.

Skips (exit 0, one line saying why) when PyTorch or the official code is missing. PyTorch and the
official code are benchmark dependencies only, never the project's.
"""
import argparse
import importlib
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

DEFAULT_OFFICIAL = os.environ.get("AUTOATTACK_OFFICIAL", "/tmp/auto-attack")


def load_official(path: str = DEFAULT_OFFICIAL):
  """(torch, the official `autoattack` package) or None with the reason."""
  try:
    import torch
  except ImportError:
    return None, "PyTorch is not installed (pip install torch, CPU is enough)"
  if not os.path.isfile(os.path.join(path, "autoattack", "autoattack.py")):
    return None, (f"the official code is not at {path} (git clone "
                  "https://github.com/fra31/auto-attack there, or pass --official)")
  if path not in sys.path:
    sys.path.insert(0, path)
  return (torch, importlib.import_module("autoattack")), None


def deterministic(torch, seed: int = 0) -> dict:
  """Max abs differences, official vs this code, of the deterministic pieces."""
  import jax.numpy as jnp
  from autoattack import fab_projections, square as official_square
  from autoattack.autopgd_base import APGDAttack_targeted
  from freqrobust.attacks import losses
  from freqrobust.attacks.fab import _proj_l2, _proj_linf
  from freqrobust.attacks.square import eta, p_selection, side
  rng = np.random.default_rng(seed)
  out = {}
  t = rng.uniform(0, 1, (64, 48)).astype(np.float32)
  w = rng.normal(size=(64, 48)).astype(np.float32)
  w[:8, :5] = 0.0  # Zero weights, as a flat region of the model gives.
  b = (np.sum(w * t, 1) + rng.normal(size=64)).astype(np.float32)
  for name, ours, theirs in (("proj_linf", _proj_linf, fab_projections.projection_linf),
                             ("proj_l2", _proj_l2, fab_projections.projection_l2)):
    mine = np.asarray(ours(jnp.asarray(t), jnp.asarray(w), jnp.asarray(b)))
    ref = theirs(torch.from_numpy(t), torch.from_numpy(w), torch.from_numpy(b)).numpy()
    out[name] = float(np.max(np.abs(mine - ref)))
  attack = official_square.SquareAttack(lambda x: x, eps=0.1, n_queries=5000, p_init=0.8,
                                        resc_schedule=False, device="cpu")
  out["p_selection_equal"] = all(
      abs(attack.p_selection(i) - p_selection(0.8, i, 5000)) < 1e-12 for i in range(10000))
  attack.norm = "L2"
  worst = 0.0
  for s in range(1, 33):
    ref = attack.eta(s).numpy()  # randomly transposed: compare with both orientations
    worst = max(worst, min(np.max(np.abs(ref - eta(s))), np.max(np.abs(ref - eta(s).T))))
  out["eta"] = float(worst)
  n_feat, c = 32 * 32 * 3, 3
  sides_ok = True
  for norm, official_norm in (("linf", "Linf"), ("l2", "L2")):
    for i in range(0, 10000, 7):
      p = attack.p_selection(i)
      s = max(int(round(np.sqrt(p * n_feat / c))), 1 if norm == "linf" else 3)
      if norm == "l2" and s % 2 == 0:
        s += 1
      sides_ok &= min(s, 32) == side(p, 32, 32, norm)
  out["side_equal"] = bool(sides_ok)
  z = rng.normal(size=(32, 10)).astype(np.float32)
  y = rng.integers(0, 10, 32)
  target = rng.integers(0, 10, 32)
  apgd_t = APGDAttack_targeted(lambda x: x, eps=0.1, device="cpu")
  apgd_t.y_target = torch.from_numpy(target)
  ref = apgd_t.dlr_loss_targeted(torch.from_numpy(z), torch.from_numpy(y)).numpy()
  mine = np.asarray(losses.dlr_targeted(jnp.asarray(z), jnp.asarray(y), jnp.asarray(target)))
  out["dlr_targeted"] = float(np.max(np.abs(mine - ref)))
  return out


def weights(seed: int = 0, width: int = 16, classes: int = 10) -> dict:
  """A small conv net's weights (HWIO convs, (in, out) dense): conv 3x3 3->width, ReLU,
  conv 3x3 width->width stride 2, ReLU, dense (8 * 8 * width) -> classes, on 16x16x3."""
  rng = np.random.default_rng(seed)
  def he(shape, fan_in):
    return (rng.normal(size=shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
  return dict(c1=he((3, 3, 3, width), 27), b1=np.zeros(width, np.float32),
              c2=he((3, 3, width, width), 9 * width), b2=np.zeros(width, np.float32),
              d=he((8 * 8 * width, classes), 64 * width), bd=np.zeros(classes, np.float32))


def jax_model(p: dict):
  import jax
  import jax.numpy as jnp
  q = {k: jnp.asarray(v) for k, v in p.items()}
  def conv(x, w, stride):
    # Explicit (1, 1) padding: torch's padding=1 (XLA's "SAME" pads stride-2 convs (0, 1)).
    return jax.lax.conv_general_dilated(x, w, (stride, stride), ((1, 1), (1, 1)),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
  def logits_fn(x):
    h = jax.nn.relu(conv(x, q["c1"], 1) + q["b1"])
    h = jax.nn.relu(conv(h, q["c2"], 2) + q["b2"])
    return h.reshape(h.shape[0], -1) @ q["d"] + q["bd"]
  return logits_fn


def torch_model(torch, p: dict):
  """The same net in PyTorch on NCHW images (flattened in NHWC order, as the JAX net)."""
  nn = torch.nn
  class Net(nn.Module):
    def __init__(self):
      super().__init__()
      width = p["b1"].shape[0]
      self.c1 = nn.Conv2d(3, width, 3, 1, 1)
      self.c2 = nn.Conv2d(width, width, 3, 2, 1)
      self.d = nn.Linear(p["d"].shape[0], p["d"].shape[1])
      with torch.no_grad():
        self.c1.weight.copy_(torch.from_numpy(p["c1"].transpose(3, 2, 0, 1)))
        self.c1.bias.copy_(torch.from_numpy(p["b1"]))
        self.c2.weight.copy_(torch.from_numpy(p["c2"].transpose(3, 2, 0, 1)))
        self.c2.bias.copy_(torch.from_numpy(p["b2"]))
        self.d.weight.copy_(torch.from_numpy(p["d"].T.copy()))
        self.d.bias.copy_(torch.from_numpy(p["bd"]))

    def forward(self, x):
      h = torch.relu(self.c1(x))
      h = torch.relu(self.c2(h))
      return self.d(h.permute(0, 2, 3, 1).reshape(h.shape[0], -1))
  return Net().eval()


def data(n: int, logits_fn, seed: int = 1):
  """Random 16x16x3 images and the net's own labels, every tenth changed (wrong when clean)."""
  rng = np.random.default_rng(seed)
  x = rng.uniform(0, 1, (n, 16, 16, 3)).astype(np.float32)
  y = np.asarray(np.argmax(np.asarray(logits_fn(x)), -1)).astype(np.int64)
  y[::10] = (y[::10] + 1) % 10
  return x, y


def official_autoattack(net, eps, norm, steps, queries):
  """The official standard AutoAttack, with --steps/--queries when given."""
  from autoattack import AutoAttack
  from autoattack.autopgd_base import APGDAttack, APGDAttack_targeted
  aa = AutoAttack(net, norm={"linf": "Linf", "l2": "L2"}[norm], eps=eps, version="standard",
                  seed=0, device="cpu", verbose=False)
  if steps != 100:  # The checkpoints are set in the constructors: rebuild.
    aa.apgd = APGDAttack(net, n_restarts=1, n_iter=steps, eps=eps, norm=aa.norm, seed=0,
                         device="cpu")
    aa.apgd_targeted = APGDAttack_targeted(net, n_restarts=1, n_iter=steps, eps=eps,
                                           norm=aa.norm, seed=0, device="cpu")
    aa.fab.n_iter = steps
  aa.square.n_queries = queries
  return aa


def ensemble(torch, n: int, eps: float, norm: str, seed: int = 0, steps: int = 100,
             queries: int = 5000) -> dict:
  """Official and JAX standard AutoAttack on the same net and images."""
  import time
  import jax
  from freqrobust import attacks
  p = weights(seed)
  f = jax_model(p)
  net = torch_model(torch, p)
  x, y = data(n, f, seed + 1)
  xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
  yt = torch.from_numpy(y)
  with torch.no_grad():
    gap = float(np.max(np.abs(net(xt).numpy() - np.asarray(f(x)))))
  official = official_autoattack(net, eps, norm, steps, queries)
  t0 = time.perf_counter()
  adv = official.run_standard_evaluation(xt, yt, bs=250)
  their_s = time.perf_counter() - t0
  with torch.no_grad():
    their_robust = (net(adv).argmax(1) == yt).numpy()
  t0 = time.perf_counter()
  ours = attacks.autoattack(f, jax.random.key(seed), x, y, eps=eps, norm=norm, steps=steps,
                            queries=queries)
  our_s = time.perf_counter() - t0
  mine = ours["robust"]
  differ = np.flatnonzero(mine != their_robust)
  broke = {int(i): ("jax: " + next(k for k, v in ours["per_attack"].items() if not v[i])
                    if not mine[i] else "official") for i in differ}
  return dict(n=n, eps=eps, norm=norm, steps=steps, queries=queries, logits_max_abs_diff=gap,
              seconds_under_load=dict(official=their_s, jax_with_compilation=our_s),
              clean_accuracy=float(ours["clean"].mean()),
              jax_accuracy=ours["accuracy"], official_robust_accuracy=float(their_robust.mean()),
              jax_robust_accuracy=float(mine.mean()),
              agreement=float(np.mean(mine == their_robust)), disagreements=broke,
              jax_square_flag=ours["square_flag"])


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--official", default=DEFAULT_OFFICIAL)
  parser.add_argument("--n", type=int, default=100)
  parser.add_argument("--eps", type=float, default=None,
                      help="default: 1/255 (linf), 0.1 (l2)")
  parser.add_argument("--norm", default="linf", choices=("linf", "l2"))
  parser.add_argument("--steps", type=int, default=100, help="APGD / FAB iterations (both)")
  parser.add_argument("--queries", type=int, default=5000, help="Square's queries (both)")
  parser.add_argument("--skip_ensemble", action="store_true")
  parser.add_argument("--skip_deterministic", action="store_true")
  args = parser.parse_args(argv)
  loaded, why = load_official(args.official)
  if loaded is None:
    print(f"skipped: {why}")
    return 0
  torch, _ = loaded
  torch.manual_seed(0)
  if not args.skip_deterministic:
    print(json.dumps(dict(deterministic=deterministic(torch))), flush=True)
  if not args.skip_ensemble:
    eps = args.eps if args.eps is not None else {"linf": 1 / 255, "l2": 0.1}[args.norm]
    print(json.dumps(dict(ensemble=ensemble(torch, args.n, eps, args.norm, steps=args.steps,
                                             queries=args.queries))), flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
