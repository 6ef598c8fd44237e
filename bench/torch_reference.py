"""PyTorch reference train step for bench/bench_train.py: the same networks, the same step.

The models mirror freqrobust.models.resnet (CIFAR-style: 3x3 stem conv + BN + ReLU, no max-pool,
basic blocks with a 1x1 conv + BN projection where the shape changes, global average pool,
linear head), without attention (compare with --attention=none). The step is what freqrobust's
train step does without augmentation: uint8 batch -> float in [0, 1] -> (x - 0.5) / 0.25 ->
forward -> cross-entropy -> backward -> SGD (momentum 0.9, weight decay 5e-4).

PyTorch is a benchmark dependency only (requirements-bench.txt), never a project dependency.
"""
import time
from typing import Sequence

import numpy as np


def _modules():
  import torch
  from torch import nn

  class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
      super().__init__()
      self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
      self.bn1 = nn.BatchNorm2d(cout, momentum=0.1, eps=1e-5)
      self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
      self.bn2 = nn.BatchNorm2d(cout, momentum=0.1, eps=1e-5)
      self.proj = None
      if stride != 1 or cin != cout:
        self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
      y = torch.relu(self.bn1(self.conv1(x)))
      y = self.bn2(self.conv2(y))
      r = x if self.proj is None else self.proj(x)
      return torch.relu(r + y)

  class ResNet(nn.Module):
    def __init__(self, channels, stage_sizes, widths, num_classes):
      super().__init__()
      self.stem = nn.Sequential(nn.Conv2d(channels, widths[0], 3, 1, 1, bias=False),
                                nn.BatchNorm2d(widths[0]), nn.ReLU())
      blocks, cin = [], widths[0]
      for i, (n, w) in enumerate(zip(stage_sizes, widths)):
        for j in range(n):
          blocks.append(BasicBlock(cin, w, 2 if i > 0 and j == 0 else 1))
          cin = w
      self.blocks = nn.Sequential(*blocks)
      self.head = nn.Linear(cin, num_classes)

    def forward(self, x):
      h = self.blocks(self.stem(x))
      return self.head(h.mean(dim=(2, 3)))

  return torch, ResNet


def architecture(model: str, widths=None):
  """(stage_sizes, widths) of freqrobust's `model` (resnet18 or small_resnet)."""
  if model == "resnet18":
    return (2, 2, 2, 2), (64, 128, 256, 512)
  if model == "small_resnet":
    w = tuple(widths) if widths else (16, 32, 64)
    return (1,) * len(w), w
  raise ValueError(f"no PyTorch reference for model {model!r}; use resnet18 or small_resnet")


def measure(model: str, *, batch: int = 128, size: int = 32, channels: int = 3,
            steps: int = 5, repeats: int = 3, channels_last: bool = False, threads: int = 0,
            widths: Sequence[int] = None, num_classes: int = 10) -> dict:
  """Median images/s and CPU s/step of a PyTorch CPU train step (eager, optional channels_last)."""
  torch, ResNet = _modules()
  if threads:
    torch.set_num_threads(threads)
  torch.manual_seed(0)
  stage_sizes, w = architecture(model, widths)
  net = ResNet(channels, stage_sizes, w, num_classes)
  fmt = torch.channels_last if channels_last else torch.contiguous_format
  net = net.to(memory_format=fmt).train()
  opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
  rng = np.random.default_rng(0)
  images = torch.from_numpy(rng.integers(0, 256, (batch, channels, size, size)).astype(np.uint8))
  labels = torch.from_numpy(rng.integers(0, num_classes, batch).astype(np.int64))
  loss_fn = torch.nn.CrossEntropyLoss()

  def step():
    x = ((images.float() / 255.0 - 0.5) / 0.25).contiguous(memory_format=fmt)
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(net(x), labels)
    loss.backward()
    opt.step()
    return loss

  step()  # Warm-up (allocations, oneDNN primitive creation).
  rates, cpu = [], []
  for _ in range(repeats):
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
      loss = step()
    float(loss.detach())
    rates.append(steps * batch / (time.perf_counter() - t0))
    cpu.append((time.process_time() - c0) / steps)
  return dict(model=model, framework=f"torch {torch.__version__}", threads=torch.get_num_threads(),
              channels_last=channels_last, images_per_s=float(np.median(rates)),
              cpu_s_per_step=float(np.median(cpu)))
