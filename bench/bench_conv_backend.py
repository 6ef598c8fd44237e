"""The oneDNN convolution backend (config.train.conv_backend) against XLA and PyTorch, back to back.

  python bench/bench_conv_backend.py                        # per-op table + both train steps
  python bench/bench_conv_backend.py --part=ops --models=resnet18 --batch=128
  python bench/bench_conv_backend.py --part=train --models=small_resnet --steps=10
  python bench/bench_conv_backend.py --competitor             # with a second busy process

Per operation (--part=ops): every distinct convolution of the network (ResNet-18 on 32x32x3,
the small ResNet on 28x28x1 with the quickstart's widths), in ms per call after a warm-up, each
jitted alone: XLA's forward, backward-data (dx) and backward-weights (dw); oneDNN's three handlers
(all on oneDNN, whatever `XLA_WINS` says, so the table can be measured again); PyTorch's
channels_last forward, dx and dw (aten.convolution_backward) where PyTorch is installed. Each
row ends with the passes XLA ran faster than oneDNN and those this CPU vendor's table leaves to
XLA under "auto" (freqrobust/native/conv.py: XLA_WINS): a case where XLA wins on every run
belongs in that table. PyTorch has no asymmetric padding: its rows use (1, 1)
where Flax's SAME gives (0, 1) at stride 2 (the same work, one more output row and column).

Train step (--part=train): bench/bench_train.py's measurement of the loop's step function
(images/s, CPU s/step) under conv_backend="xla" and "auto", then bench/torch_reference.py's
PyTorch step (eager NCHW and channels_last), in --rounds alternating rounds so that a drift in
the machine's load hits every column alike.

--competitor runs a second process that keeps one core busy (NumPy matrix products) during every
timing: OpenMP's static split of the work stalls behind it where XLA's scheduler degrades
gracefully. Each output starts with the CPU model, jax/torch versions, the 1-minute load average
and, when the load exceeds half the cores, "UNDER LOAD" (such figures are no benchmark).
"""
import argparse
import multiprocessing
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from freqrobust import platform  # noqa: E402  (imports no JAX)

# (input size, in channels, out channels, kernel, stride, padding as Flax gives it).
SHAPES = {
    "resnet18": [(32, 3, 64, 3, 1, "SAME"), (32, 64, 64, 3, 1, "SAME"),
                 (32, 64, 128, 3, 2, "SAME"), (32, 64, 128, 1, 2, "VALID"),
                 (16, 128, 128, 3, 1, "SAME"), (16, 128, 256, 3, 2, "SAME"),
                 (16, 128, 256, 1, 2, "VALID"), (8, 256, 256, 3, 1, "SAME"),
                 (8, 256, 512, 3, 2, "SAME"), (8, 256, 512, 1, 2, "VALID"),
                 (4, 512, 512, 3, 1, "SAME")],
    "small_resnet": [(28, 1, 16, 3, 1, "SAME"), (28, 16, 16, 3, 1, "SAME"),
                     (28, 16, 32, 3, 2, "SAME"), (28, 16, 32, 1, 2, "VALID"),
                     (14, 32, 32, 3, 1, "SAME"), (14, 32, 64, 3, 2, "SAME"),
                     (14, 32, 64, 1, 2, "VALID"), (7, 64, 64, 3, 1, "SAME")],
}
TRAIN_INPUT = {"resnet18": (32, 3, None), "small_resnet": (28, 1, (16, 32, 64))}


def cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return "unknown CPU"


def header(torch_version: str) -> str:
  import jax
  load, cores = os.getloadavg()[0], os.cpu_count() or 1
  flag = "  UNDER LOAD: not a benchmark" if load > 0.5 * cores else ""
  return (f"# {cpu_model()}, {cores} cores, jax {jax.__version__}, torch {torch_version}, "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, load {load:.1f}{flag}")


def _busy(stop):  # The competing process: one core of matrix products.
  import numpy as np
  os.environ["OMP_NUM_THREADS"] = "1"
  a = np.random.default_rng(0).standard_normal((256, 256))
  while not stop.is_set():
    a = np.tanh(a @ a)


def best_ms(fn, n: int) -> float:
  """Median ms per call of `fn()` (which blocks until done) over n calls, after a warm-up."""
  import numpy as np
  fn()
  times = []
  for _ in range(n):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return float(np.median(times)) * 1e3


def jax_ops(x, w, dy, strides, padding):
  """{name: callable} of XLA's and oneDNN's three operations on these arrays."""
  import jax
  from jax import lax
  from freqrobust.native import conv
  nhwc = ("NHWC", "HWIO", "NHWC")

  def xla(x, w):
    return lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=nhwc)
  g = conv.geometry(x, w, strides, padding, dimension_numbers=nhwc, use_table=False)
  fns = {"xla fwd": jax.jit(xla),
         "xla dx": jax.jit(lambda x, w, dy: jax.vjp(lambda x: xla(x, w), x)[1](dy)[0]),
         "xla dw": jax.jit(lambda x, w, dy: jax.vjp(lambda w: xla(x, w), w)[1](dy)[0])}
  if conv.available()[0]:
    fns.update({"onednn fwd": jax.jit(lambda x, w: conv.forward(x, w, g)),
                "onednn dx": jax.jit(lambda x, w, dy: conv.backward_data(dy, w, g, x.shape)),
                "onednn dw": jax.jit(lambda x, w, dy: conv.backward_weights(x, dy, g, w.shape))})
  args = {"fwd": (x, w), "dx": (x, w, dy), "dw": (x, w, dy)}
  return {k: (lambda f=f, a=args[k.split()[1]]: jax.block_until_ready(f(*a)))
          for k, f in fns.items()}


def torch_ops(torch, x, w, dy, stride, kernel):
  """PyTorch's channels_last forward, dx and dw (symmetric padding kernel // 2)."""
  xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).contiguous(
      memory_format=torch.channels_last)
  wt = torch.from_numpy(w.transpose(3, 2, 0, 1).copy()).contiguous(
      memory_format=torch.channels_last)
  pad = kernel // 2
  yt = torch.nn.functional.conv2d(xt, wt, stride=stride, padding=pad)
  gt = torch.from_numpy(dy.transpose(0, 3, 1, 2).copy())
  if gt.shape != yt.shape:  # Another output size than Flax's padding gives: same work.
    gt = torch.ones_like(yt)
  gt = gt.contiguous(memory_format=torch.channels_last)

  def backward(mask):
    return torch.ops.aten.convolution_backward(gt, xt, wt, None, [stride, stride], [pad, pad],
                                               [1, 1], False, [0, 0], 1, mask)
  with torch.no_grad():
    return {"torch fwd": lambda: torch.nn.functional.conv2d(xt, wt, stride=stride, padding=pad),
            "torch dx": lambda: backward([True, False, False]),
            "torch dw": lambda: backward([False, True, False])}


def per_op(models, batch: int, n: int, torch) -> None:
  import numpy as np
  from jax import lax
  rng = np.random.default_rng(0)
  cols = ["xla fwd", "onednn fwd", "torch fwd", "xla dx", "onednn dx", "torch dx", "xla dw",
          "onednn dw", "torch dw"]
  from freqrobust.native import conv
  table = conv.table_name()[0]
  print(f"# 'XLA faster': the passes XLA ran faster here; 'table {table}': the passes "
        "conv_backend='auto' leaves to XLA on this CPU (freqrobust/native/conv.py: XLA_WINS)")
  print("| model | input | c_in->c_out | kernel/stride | " + " | ".join(cols)
        + f" | XLA faster | table {table} |")
  print("|---|---|---|---|" + "---:|" * len(cols) + "---|---|")
  for model in models:
    for size, cin, cout, k, s, padding in SHAPES[model]:
      x = rng.standard_normal((batch, size, size, cin)).astype(np.float32)
      w = (rng.standard_normal((k, k, cin, cout)) * 0.1).astype(np.float32)
      pads = lax.padtype_to_pads((size, size), (k, k), (s, s), padding)
      out = (size + pads[0][0] + pads[0][1] - k) // s + 1
      dy = rng.standard_normal((batch, out, out, cout)).astype(np.float32)
      fns = jax_ops(x, w, dy, (s, s), padding)
      if torch is not None:
        fns.update(torch_ops(torch, x, w, dy, s, k))
      ms = {c: (best_ms(fns[c], n) if c in fns else float("nan")) for c in cols}
      faster = ",".join(p for p in ("fwd", "dx", "dw") if ms[f"xla {p}"] < ms[f"onednn {p}"])
      short = {"forward": "fwd", "backward_data": "dx", "backward_weights": "dw"}
      on_xla = ",".join(short[h] for h in conv.xla_handlers((k, k), s > 1, size, cin))
      print(f"| {model} | {size}x{size} | {cin}->{cout} | {k}x{k}/{s} {pads} | "
            + " | ".join(f"{ms[c]:.2f}" for c in cols) + f" | {faster or '-'} | "
            f"{on_xla or '-'} |", flush=True)


_USER_TABLE = os.environ.get("FREQROBUST_CONV_TABLE")  # A user's choice stands for "auto".


def _use_table(conv, table: str) -> None:
  """Makes "auto" trace with XLA_WINS[table] ("": the user's FREQROBUST_CONV_TABLE, else this
  CPU's own) from now on."""
  table = table or _USER_TABLE
  if table:
    os.environ[conv.TABLE_ENV] = table
  else:
    os.environ.pop(conv.TABLE_ENV, None)
  conv.table_name.cache_clear()
  conv.select.cache_clear()  # Its INFO line names the table.


def train_steps(models, batch: int, steps: int, repeats: int, rounds: int, torch,
                tables=("",)) -> None:
  import bench_train
  import torch_reference
  from freqrobust.native import conv
  autos = [f"auto[{t}]" if t else "auto" for t in tables]
  backends = ["xla"] + (autos if conv.available()[0] else [])
  print("| round | model | column | images/s | CPU s/step | compile s |")
  print("|---|---|---|---:|---:|---:|")
  for r in range(rounds):
    for model in models:
      size, channels, widths = TRAIN_INPUT[model]
      rates = {}
      # Each round starts from another column: a column's place in the sequence moved its
      # figure by ~10% here (two identical programs, measured one after the other).
      shift = r % len(backends)
      for backend in backends[shift:] + backends[:shift]:
        config = bench_train.bench_config(model, False, "float32", size, channels, "none",
                                          batch, widths)
        config.train.conv_backend = backend.split("[")[0]
        _use_table(conv, backend[5:-1] if "[" in backend else "")
        m = bench_train.measure_config(config, steps=steps, repeats=repeats)
        rates[backend] = m["images_per_s"]
        print(f"| {r} | {model} | jax conv_backend={backend} | {m['images_per_s']:.1f} | "
              f"{m['cpu_s_per_step']:.2f} | {m['compile_s']:.1f} |", flush=True)
      if torch is not None:
        for cl in ((False, True) if r % 2 == 0 else (True, False)):
          t = torch_reference.measure(model, batch=batch, size=size, channels=channels,
                                      steps=steps, repeats=repeats, channels_last=cl,
                                      **({"widths": widths} if widths else {}))
          rates["torch " + ("chlast" if cl else "eager")] = t["images_per_s"]
          print(f"| {r} | {model} | torch {'channels_last' if cl else 'eager'} | "
                f"{t['images_per_s']:.1f} | {t['cpu_s_per_step']:.2f} | |", flush=True)
      ratios = [f"{a}/{b} = {rates[a] / rates[b]:.2f}x" for a in backends[1:]
                for b in rates if b != a and b not in autos]
      if ratios:
        print(f"|   | {model} | {'; '.join(ratios)} | | | |", flush=True)


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--part", default="ops,train", help="ops, train or ops,train")
  p.add_argument("--models", default="resnet18,small_resnet")
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--n", type=int, default=10, help="timed calls per operation (median)")
  p.add_argument("--steps", type=int, default=5, help="train steps per timing")
  p.add_argument("--repeats", type=int, default=3, help="timings per train-step measurement")
  p.add_argument("--rounds", type=int, default=2, help="alternating rounds of the train steps")
  p.add_argument("--competitor", action="store_true",
                 help="a second process keeps one core busy during the timings")
  p.add_argument("--xla_flags", default="auto", help="auto, none, or an XLA_FLAGS string")
  p.add_argument("--tables", default="",
                 help="train part: one conv_backend='auto' column per XLA_WINS table named "
                      "(e.g. intel,amd,none; empty: this CPU's own)")
  args = p.parse_args()
  models = args.models.split(",")
  for m in models:
    if m not in SHAPES:
      p.error(f"--models: {m!r} is none of {', '.join(SHAPES)}")
  if args.xla_flags == "auto":
    platform.configure_xla_for_cpu()
  elif args.xla_flags != "none":
    os.environ["XLA_FLAGS"] = args.xla_flags
  try:
    import torch
    torch.set_num_threads(os.cpu_count() or 1)
  except ImportError:
    torch = None
  from freqrobust.native import conv
  valid = (*conv.XLA_WINS, "none")
  for t in filter(None, args.tables.split(",")):
    if t not in valid:
      p.error(f"--tables: {t!r} is none of {', '.join(valid)}")
  print(header(torch.__version__ if torch else "not installed"))
  ok, reason = conv.available()
  print(f"# oneDNN: {reason}" + ("" if ok else " (XLA and PyTorch columns only)"))
  context = multiprocessing.get_context("spawn")
  stop = context.Event()
  competitor = None
  if args.competitor:
    competitor = context.Process(target=_busy, args=(stop,))
    competitor.start()
    print("# with a competing process keeping one core busy")
  try:
    if "ops" in args.part:
      per_op(models, args.batch, args.n, torch)
    if "train" in args.part:
      train_steps(models, args.batch, args.steps, args.repeats, args.rounds, torch,
                  tuple(args.tables.split(",")))
  finally:
    if competitor is not None:
      stop.set()
      competitor.join(10)


if __name__ == "__main__":
  main()
