"""Every experiment of the paper's Tables 1-4 as one parameterised config (big_vision style).

  --config=configs/paper.py:table1,vgg16,aug_att
  --config=configs/paper.py:table2,vgg16_bn,lmh=011
  --config=configs/paper.py:table3,both_att
  --config=configs/paper.py:table4,learnable,lambda=50
  --config=configs/paper.py:table3,nfd,cpu        # CPU-scale: small ResNet on Fashion-MNIST(-C)

Arguments are comma-separated: the table, then its column(s), then optional `seed=N` and `cpu`.
`python configs/paper.py table3` lists the argument strings of every run of a table.

Readings of the paper where it is silent (docs/RESULTS.md discusses them):
- Table 1 "att." and "aug.+att." and Table 3 "both+att." add the attention module without a stated
  APS configuration; they are run with the attention and no auxiliary loss (aux_weight = 0): with
  a label, they would coincide with a Table 2 / Table 4 column, whose numbers differ.
- Table 3 "both+att." (`table3,both_att`): power suppression (p = 1/3) + NFD (sigma = 1) + the
  EXTENDED attention (section 3.3: 3x3 conv + BN + ReLU before the global average pool, then
  Dense(512) -> ReLU -> Dense(C) -> sigmoid, gating the first conv + BN), aux_weight = 0: no
  auxiliary loss, so no LMH configuration acts (the config's LMH=000 is unused) and the
  attention is trained by the cross-entropy alone.
- Its variant WITH the auxiliary loss, `table3,both_att_aux` (an extra column, not in the paper):
  the same plus L_aux with LMH=000 and lambda = 100 (section 4.1's lambda, "all the rest settings
  are the same as Section 4.1"; `lambda=X` overrides it). It is the setting of Table 4's
  `fixed,lambda=100`, run again in Table 3's sweep so that both readings of "both+att." sit
  against the same baseline.
- Table 2 uses the basic attention (hidden 512) with power suppression and lambda = 100.
- Tables 3-4 (ResNet-18) use the extended attention with suppression + NFD (section 4.2).
"""
import os
import sys

import ml_collections

if __name__ == "__main__":  # `python configs/paper.py TABLE`: make the repository importable.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import args  # noqa: E402
from configs import default  # noqa: E402
from freqrobust.workdir import UserError  # noqa: E402

TABLES = {
    "table1": {"models": ("vgg16", "vgg16_bn"), "columns": ("nat", "aug", "att", "aug_att")},
    "table2": {"models": ("vgg16", "vgg16_bn"),
               "columns": ("nat",) + tuple(
                   f"lmh={c}" for c in ("111", "011", "101", "110", "001", "010", "100", "000"))},
    "table3": {"models": ("resnet18",),
               "columns": ("nat", "sup", "nfd", "both", "both_att", "both_att_aux")},
    "table4": {"models": ("resnet18",),
               "columns": tuple(f"{c},lambda={lam}" for c in ("fixed", "learnable")
                                for lam in (100, 50, 10, 2))},
}


_FILE = "configs/paper.py"
_OPTIONS = {"seed": int, "lambda": float}


def _listing(table: str = "") -> str:
  return f"`python configs/paper.py {table or 'TABLE'}` lists its runs"


def _parse(arg: str):
  """(options, the other words) of an argument string (configs/args.py); UserError naming what is
  valid."""
  parsed = args.parse(arg, _FILE, head="table", heads=TABLES, flags=("cpu",), options=_OPTIONS,
                      word_keys=("lmh",),
                      listing=_listing() + " (e.g. configs/paper.py:table3,nfd)")
  opts = {"table": parsed.head, "cpu": "cpu" in parsed.flags,
          "seed": parsed.options.get("seed", 0), "lambda": parsed.options.get("lambda")}
  return opts, list(parsed.words)


def _paper_base(table: str, model: str) -> ml_collections.ConfigDict:
  config = default.get_config()
  config.data.dataset = "cifar10"
  config.model.name = model
  config.train.num_epochs = 90
  config.train.batch_size = 128
  config.train.schedule = "step"
  config.train.decay_epochs = 30
  config.train.decay_factor = 0.1
  config.train.learning_rate = 0.01 if model.startswith("vgg") else 0.1  # Sections 4.1 and 4.2.
  config.evals.corruptions.at_end = True
  return config


def _cpu_scale(config: ml_collections.ConfigDict) -> None:
  """The same experiment at CPU scale: small ResNet, Fashion-MNIST and generated Fashion-MNIST-C."""
  config.data.dataset = "fashion_mnist"
  config.model.name = "small_resnet"
  config.model.attention_hidden = 64
  config.data.train_examples = 20000  # A third of the training set: ten runs in a few CPU hours.
  config.train.num_epochs = 2
  config.train.learning_rate = 0.1
  config.train.schedule = "cosine"
  config.train.warmup_epochs = 0.2
  config.evals.clean.every_epochs = 2
  config.train.checkpoint_every_steps = 500
  config.evals.corruptions.at_end = True
  config.corruptions.num_examples = 1000  # Per corrupted set, to keep the CPU evaluation short.


def get_config(arg: str = "table3,nat") -> ml_collections.ConfigDict:
  opts, rest = _parse(arg)
  table = opts["table"]
  spec = TABLES[table]
  models = [r for r in rest if r in spec["models"]]
  columns = [r for r in rest if r not in spec["models"]]
  model = models[0] if models else spec["models"][0]
  column = columns[0] if columns else "nat"
  valid_columns = {c.split(",")[0] for c in spec["columns"]}
  what = (f"{table}'s columns {', '.join(sorted(valid_columns))}; models "
          f"{', '.join(spec['models'])}")
  if len(columns) > 1 or len(models) > 1:
    raise args.error(_FILE, arg, f"give one column and at most one model; valid: {what}.",
                     _listing(table))
  if column not in valid_columns:
    raise args.unknown_word(_FILE, arg, column, what, ("cpu",), _OPTIONS, _listing(table))
  config = _paper_base(table, model)
  config.seed = opts["seed"]
  suppress = attention = nfd = False
  aux_weight = 100.0
  configuration = "LMH=000"
  if table == "table1":
    suppress = column in ("aug", "aug_att")
    attention = column in ("att", "aug_att")
    aux_weight = 0.0
  elif table == "table2":
    if column != "nat":
      suppress = attention = True
      configuration = "LMH=" + column.split("=")[1]
  elif table == "table3":
    suppress = column in ("sup", "both", "both_att", "both_att_aux")
    nfd = column in ("nfd", "both", "both_att", "both_att_aux")
    attention = column in ("both_att", "both_att_aux")
    # both_att: extended attention without auxiliary loss (the LMH configuration is unused);
    # both_att_aux: with it, LMH=000 and lambda = 100 (module docstring).
    aux_weight = 0.0
    if column == "both_att_aux":
      aux_weight = opts["lambda"] if opts["lambda"] is not None else 100.0
  else:  # table4: suppression + NFD + extended attention, fixed LMH=000 or learnable.
    suppress = nfd = attention = True
    configuration = "learnable" if column == "learnable" else "LMH=000"
    aux_weight = opts["lambda"] if opts["lambda"] is not None else 100.0
  config.augment.suppress_prob = 1.0 / 3.0 if suppress else 0.0
  config.augment.nfd = nfd
  config.model.attention = ("extended" if table in ("table3", "table4") else "basic") if attention \
      else "none"
  config.aps.configuration = configuration
  config.aps.aux_weight = aux_weight
  if opts["cpu"]:
    _cpu_scale(config)
  return config


# What each Table 3 column runs (printed by `python configs/paper.py table3`).
COLUMN_NOTES = {
    "table3": {
        "nat": "natural training",
        "sup": "power suppression (p = 1/3)",
        "nfd": "NFD (sigma = 1)",
        "both": "suppression + NFD",
        "both_att": "suppression + NFD + extended attention (conv + BN + ReLU before the pool, "
                    "hidden 512), no auxiliary loss (aux_weight 0, LMH unused)",
        "both_att_aux": "as both_att plus the auxiliary loss, LMH=000, lambda 100 (= table4 "
                        "fixed,lambda=100)",
    },
}


def describe(arg: str) -> str:
  """A one-line description of a run argument ('' when the table has no notes)."""
  opts, rest = _parse(arg)
  notes = COLUMN_NOTES.get(opts["table"], {})
  return next((notes[r] for r in rest if r in notes), "")


def runs(table: str, cpu: bool = False, seeds=(0,)):
  """The config argument strings of every run of a table (for launch/sweep.py)."""
  if table not in TABLES:
    raise UserError(f"{_FILE} has no table {table!r}; its tables: {', '.join(TABLES)}.")
  spec = TABLES[table]
  out = []
  for seed in seeds:  # Seed-major: an interrupted sweep still has every column of the first seeds.
    for model in spec["models"]:
      for column in spec["columns"]:
        parts = [table] + ([model] if len(spec["models"]) > 1 else []) + [column, f"seed={seed}"]
        out.append(",".join(parts + (["cpu"] if cpu else [])))
  if table == "table4":  # Its baseline is Table 3's natural model.
    out = [f"table3,nat,seed={s}" + (",cpu" if cpu else "") for s in seeds] + out
  return out


if __name__ == "__main__":
  for t in (sys.argv[1:] or list(TABLES)):
    for arg in runs(t):
      print(f"{arg}  # {describe(arg)}" if describe(arg) else arg)
