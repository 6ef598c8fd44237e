"""Where the small ResNet's CPU step goes: each 3x3 convolution of the network, XLA vs PyTorch.

  python bench/profile_convs.py            # freqrobust's XLA flags (freqrobust.platform)
  XLA_FLAGS=... python bench/profile_convs.py

For each convolution shape of the small ResNet (batch 128, Fashion-MNIST's 28x28, widths
16-32-64) it times, in milliseconds per call after a warm-up: JAX's forward, input gradient and
weight gradient (each jitted alone), and PyTorch's channels_last forward and forward + both
gradients, back to back in the same process with 2 threads each. Needs PyTorch
(requirements-bench.txt).
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from freqrobust import platform  # noqa: E402

platform.configure_xla_for_cpu()
import jax  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

SHAPES = [  # (input size, in channels, out channels, stride)
    (28, 1, 16, 1), (28, 16, 16, 1), (28, 16, 32, 2), (14, 32, 32, 1), (14, 32, 64, 2),
    (7, 64, 64, 1)]


def time_jax(f, *args, n=20):
  f = jax.jit(f)
  jax.block_until_ready(f(*args))
  t = time.perf_counter()
  for _ in range(n):
    r = f(*args)
  jax.block_until_ready(r)
  return (time.perf_counter() - t) / n * 1e3


def time_torch(f, n=20):
  f()
  t = time.perf_counter()
  for _ in range(n):
    f()
  return (time.perf_counter() - t) / n * 1e3


def main(batch=128):
  torch.set_num_threads(2)
  print(f"# XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, torch {torch.__version__}, "
        f"batch {batch}, load {os.getloadavg()[0]:.1f}")
  print("| input | channels | stride | JAX fwd | JAX dx | JAX dw | JAX total | torch fwd | "
        "torch fwd+bwd | JAX/torch |")
  print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
  rng = np.random.default_rng(0)
  for size, cin, cout, stride in SHAPES:
    x = jax.numpy.asarray(rng.standard_normal((batch, size, size, cin), np.float32))
    w = jax.numpy.asarray(rng.standard_normal((3, 3, cin, cout), np.float32))

    def conv(x, w):
      return jax.lax.conv_general_dilated(x, w, (stride, stride), ((1, 1), (1, 1)),
                                          dimension_numbers=("NHWC", "HWIO", "NHWC"))
    g = jax.numpy.ones_like(conv(x, w))
    fwd = time_jax(conv, x, w)
    dx = time_jax(lambda x, w, g: jax.vjp(lambda x: conv(x, w), x)[1](g)[0], x, w, g)
    dw = time_jax(lambda x, w, g: jax.vjp(lambda w: conv(x, w), w)[1](g)[0], x, w, g)
    tx = torch.randn(batch, cin, size, size).contiguous(memory_format=torch.channels_last)
    tx.requires_grad_()
    tw = torch.randn(cout, cin, 3, 3, requires_grad=True)
    tg = torch.ones_like(torch.nn.functional.conv2d(tx, tw, stride=stride, padding=1))
    tf = time_torch(lambda: torch.nn.functional.conv2d(tx, tw, stride=stride, padding=1))

    def both():
      y = torch.nn.functional.conv2d(tx, tw, stride=stride, padding=1)
      torch.autograd.grad(y, (tx, tw), tg)
    tb = time_torch(both)
    total = fwd + dx + dw
    print(f"| {size}x{size} | {cin}->{cout} | {stride} | {fwd:.1f} | {dx:.1f} | {dw:.1f} | "
          f"{total:.1f} | {tf:.1f} | {tb:.1f} | {total / tb:.2f} |", flush=True)


if __name__ == "__main__":
  main()
