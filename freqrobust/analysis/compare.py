"""Side-by-side comparison of several runs' PDM histograms (as Figure 6 sets models in a row)."""
from collections.abc import Callable, Sequence
import os

import numpy as np


def run_labels(workdirs: Sequence[str], labels: Sequence[str] | None = None) -> list[str]:
  """`labels` if given (one per workdir), else each workdir's base name."""
  if labels:
    if len(labels) != len(workdirs):
      raise ValueError(f"got {len(labels)} labels for {len(workdirs)} workdirs; pass one label "
                       "per workdir or none")
    return list(labels)
  return [os.path.basename(os.path.normpath(d)) or d for d in workdirs]


def collect_histograms(workdirs: Sequence[str], load_histogram: Callable[[str], np.ndarray],
                       labels: Sequence[str] | None = None) -> list[tuple[str, np.ndarray]]:
  """`(label, histogram)` for each workdir, in the order given.

  `load_histogram(workdir)` returns that run's `(H, W)` PDM histogram (the CLI reads
  `DIR/analysis/pdm/pdm.npz`, computing it first when missing).
  """
  if not workdirs:
    raise ValueError("compare needs at least one workdir (--workdirs=A,B,C)")
  names = run_labels(workdirs, labels)
  return [(name, np.asarray(load_histogram(d))) for name, d in zip(names, workdirs)]
