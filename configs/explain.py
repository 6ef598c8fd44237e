"""The related work's frequency explanations at CPU scale (docs/ANALYSIS.md): HFC's training runs.

  --config=configs/explain.py:natural,seed=1
  --config=configs/explain.py:shuffled_nobn,seed=2

HFC (Wang, Wu, Huang, Xing, CVPR 2020) follows the accuracy on low- and high-pass versions of the
training and test images during training, for natural and shuffled labels, with and without
BatchNorm. A network fits random labels only by memorising its training images, so these runs
train on a subset small enough to memorise in a CPU minute: the small ResNet on the first 2000
Fashion-MNIST training images, 40 epochs, no augmentation, label smoothing or weight decay (each
would keep it from memorising random labels), one checkpoint kept every 4 epochs for
`python -m freqrobust.analyze hfc --curves` and `analyze fprinciple`. The four rows differ only in
the labels (`config.data.shuffle_labels`) and in BatchNorm (`config.model.batch_norm`).

`python configs/explain.py` lists every run; `python launch/sweep.py --config_file=explain
--table=hfc --seeds=0,1,2 --root=runs/explain_hfc` trains them.
"""
import os
import sys

import ml_collections

if __name__ == "__main__":  # `python configs/explain.py`: make the repository importable.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import args  # noqa: E402
from configs import default  # noqa: E402
from configs import quickstart  # noqa: E402

_FILE = "configs/explain.py"
_LISTING = "`python configs/explain.py` lists every run"
# row -> (shuffled labels, BatchNorm, what it is)
ROWS = {
    "natural": (False, True, "natural labels, with BatchNorm"),
    "shuffled": (True, True, "shuffled training labels, with BatchNorm"),
    "natural_nobn": (False, False, "natural labels, no BatchNorm"),
    "shuffled_nobn": (True, False, "shuffled training labels, no BatchNorm"),
}
TABLES = {"hfc": tuple(ROWS)}
TRAIN_EXAMPLES = 2000
NUM_EPOCHS = 40
KEEP_EVERY_EPOCHS = 4.0


def get_config(arg: str = "natural") -> ml_collections.ConfigDict:
  # `cpu` is accepted (and changes nothing) so that `launch/sweep.py --cpu` works: these runs are
  # CPU-scale by construction.
  parsed = args.parse(arg, _FILE, head="row", heads=tuple(ROWS), flags=("cpu",),
                      options={"seed": int}, listing=_LISTING)
  if parsed.words:
    raise args.unknown_word(_FILE, arg, parsed.words[0], "nothing", ("cpu",), {"seed": int},
                            _LISTING)
  shuffled, batch_norm, _ = ROWS[parsed.head]
  config = quickstart.cpu_budget(default.get_config())
  config.seed = parsed.options.get("seed", 0)
  config.data.train_examples = TRAIN_EXAMPLES
  config.data.shuffle_labels = shuffled
  config.model.batch_norm = batch_norm
  config.augment.crop = False
  config.augment.flip = False
  config.train.label_smoothing = 0.0
  config.train.weight_decay = 0.0
  config.train.num_epochs = NUM_EPOCHS
  config.train.keep_every_epochs = KEEP_EVERY_EPOCHS
  config.evals.corruptions.at_end = False  # The tools measure what these runs are for.
  return config


def runs(table: str = "hfc", cpu: bool = False, seeds=(0,)):
  """The config argument strings of every run (for launch/sweep.py), seed-major."""
  return args.table_runs(_FILE, TABLES, table, cpu, seeds)


if __name__ == "__main__":
  for table in TABLES:
    print(f"# --table={table}")
    for arg in runs(table):
      print(f"{arg:24s} # {ROWS[arg.split(',')[0]][2]}")
