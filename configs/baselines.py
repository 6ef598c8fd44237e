"""The common-corruption baselines under one protocol, one config per method and backbone.

  --config=configs/baselines.py:augmix                       # ResNet-18, CIFAR-10, 90 epochs
  --config=configs/baselines.py:augmix,vgg16_bn
  --config=configs/baselines.py:gaussian,cpu,seed=1          # CPU scale (quickstart budget)
  --config=configs/baselines.py:apr_p,cpu --config.method_args.pair_prob=0.5

Arguments: the method, then optionally either a backbone (resnet18, vgg16, vgg16_bn,
small_resnet) or `cpu` (small ResNet on Fashion-MNIST with the quickstart's budget, evaluated on
1000 images per generated Fashion-MNIST-C set; a backbone beside it is an error), and `seed=N`.
Every method keeps its original hyperparameters (`config.method_args`, defaults from
`freqrobust/augment/<method>.py`, sources in docs/METHOD.md); any of them can be overridden with
`--config.method_args.FIELD=VALUE`.
The paper's own methods are `configs/paper.py`; `natural` and `paper_both_att` here are the
same protocol's reference rows (natural training; suppression + NFD + extended APS, learnable).

`python configs/baselines.py` lists every run; `python launch/sweep.py --config_file=baselines
--table=all --cpu --seeds=0,1,2 --root=runs/baselines_cpu` trains them.
"""
import dataclasses
import os
import sys

import ml_collections

if __name__ == "__main__":  # `python configs/baselines.py`: make the repository importable.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import default  # noqa: E402
from configs import quickstart  # noqa: E402
from freqrobust.augment import registry  # noqa: E402

MODELS = ("resnet18", "vgg16", "vgg16_bn", "small_resnet")
# The protocol's reference rows, then every baseline of the registry.
REFERENCES = ("natural", "paper_both_att")
TABLES = {"all": REFERENCES + tuple(registry.METHODS)}


def _defaults(cls) -> ml_collections.ConfigDict:
  """The method's fields with their original defaults (tuples stay tuples)."""
  values = {}
  for field in dataclasses.fields(cls):
    if field.default is not dataclasses.MISSING:
      values[field.name] = field.default
    elif field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
      values[field.name] = field.default_factory()  # type: ignore[misc]
  return ml_collections.ConfigDict(values)


def _parse(arg: str):
  parts = [p.strip() for p in arg.split(",") if p.strip()]
  valid = REFERENCES + tuple(registry.METHODS)
  if not parts or parts[0] not in valid:
    raise ValueError(f"configs/baselines.py needs a method first; valid: {', '.join(valid)}. "
                     f"Got {arg!r}.")
  opts = {"method": parts[0], "model": "resnet18", "cpu": False, "seed": 0}
  backbone = None
  for p in parts[1:]:
    if p == "cpu":
      opts["cpu"] = True
    elif p.startswith("seed="):
      opts["seed"] = int(p[5:])
    elif p in MODELS:
      opts["model"] = backbone = p
    else:
      raise ValueError(f"configs/baselines.py: unknown option {p!r} in {arg!r}; options: a "
                       f"backbone ({', '.join(MODELS)}), cpu, seed=N.")
  if opts["cpu"] and backbone is not None:
    # `cpu` is the quickstart's budget, small ResNet included: a backbone beside it would name a
    # model the run does not train.
    raise ValueError(f"configs/baselines.py: {arg!r} names the backbone {backbone!r} and `cpu`, "
                     "whose budget trains the small ResNet; drop one of them (to change the CPU "
                     "run's model, override --config.model.name=...).")
  return opts


def get_config(arg: str = "natural") -> ml_collections.ConfigDict:
  opts = _parse(arg)
  config = default.get_config()
  config.seed = opts["seed"]
  config.model.name = opts["model"]
  if opts["cpu"]:
    # The quickstart's budget for every method (configs/quickstart.py: cpu_budget).
    config = quickstart.cpu_budget(config)
  else:  # The paper's CIFAR-10 protocol (section 4).
    config.data.dataset = "cifar10"
    config.train.num_epochs = 90
    config.train.schedule = "step"
    config.train.decay_epochs = 30
    config.train.learning_rate = 0.01 if opts["model"].startswith("vgg") else 0.1
  config.corruptions.evaluate = True
  method = opts["method"]
  if method == "paper_both_att":  # Suppression + NFD + extended APS, learnable (Table 4).
    config.augment.suppress_prob = 1.0 / 3.0
    config.augment.nfd = True
    config.model.attention = "extended"
    config.aps.configuration = "learnable"
    config.aps.aux_weight = 50.0 if opts["cpu"] else 100.0
  elif method != "natural":
    config.method = method
    config.method_args = _defaults(registry.METHODS[method])
  return config


def runs(table: str = "all", cpu: bool = False, seeds=(0,)):
  """The config argument strings of every run (for launch/sweep.py), seed-major."""
  if table not in TABLES:
    raise ValueError(f"configs/baselines.py tables: {', '.join(TABLES)}; got {table!r}.")
  return [",".join([m, f"seed={s}"] + (["cpu"] if cpu else [])) for s in seeds
          for m in TABLES[table]]


if __name__ == "__main__":
  for arg in runs("all"):
    method = arg.split(",")[0]
    doc = (registry.METHODS[method].__doc__ or "").strip().splitlines()[0] \
        if method in registry.METHODS else {
            "natural": "natural training (reference)",
            "paper_both_att": "the paper's method (reference)"}[method]
    print(f"{arg:28s} # {doc}")
