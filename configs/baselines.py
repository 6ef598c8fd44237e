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

from configs import args  # noqa: E402
from configs import default  # noqa: E402
from configs import quickstart  # noqa: E402
from freqrobust.augment import registry  # noqa: E402

MODELS = ("resnet18", "vgg16", "vgg16_bn", "small_resnet")
# The protocol's reference rows, then every baseline of the registry. paper_pgd_at: the paper's
# method (as paper_both_att) with PGD-AT on its view (config.adversarial).
REFERENCES = ("natural", "paper_both_att", "paper_pgd_at")
# Adversarial training: 5.6x (PGD-AT) and 1.5x (FGSM-RS) a natural step's cost on the CPU, so a
# table of its own (issue #29's comparison), not part of `all`.
ADVERSARIAL = ("pgd_at", "fgsm_rs")
TABLES = {"all": ("natural", "paper_both_att")
                 + tuple(m for m in registry.BASELINES if m not in ADVERSARIAL),
          "adversarial": ("natural", "paper_both_att", "gaussian", "augmix", "apr_sp")
                         + ADVERSARIAL + ("paper_pgd_at",)}


def _defaults(cls) -> ml_collections.ConfigDict:
  """The method's fields with their original defaults (tuples stay tuples)."""
  values = {}
  for field in dataclasses.fields(cls):
    if field.default is not dataclasses.MISSING:
      values[field.name] = field.default
    elif field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
      values[field.name] = field.default_factory()  # type: ignore[misc]
  return ml_collections.ConfigDict(values)


_FILE = "configs/baselines.py"
_LISTING = "`python configs/baselines.py` lists every run"


def _parse(arg: str):
  """(options) of an argument string (configs/args.py); UserError naming what is valid."""
  valid = REFERENCES + tuple(registry.BASELINES)
  options = {"seed": int}
  parsed = args.parse(arg, _FILE, head="method", heads=valid, flags=("cpu",), options=options,
                      listing=_LISTING)
  opts = {"method": parsed.head, "model": "resnet18", "cpu": "cpu" in parsed.flags,
          "seed": parsed.options.get("seed", 0)}
  backbone = None
  for p in parsed.words:
    if p not in MODELS:
      raise args.unknown_word(_FILE, arg, p, f"a backbone ({', '.join(MODELS)})", ("cpu",),
                              options, _LISTING)
    if backbone is not None:
      raise args.error(_FILE, arg, f"two backbones, {backbone!r} and {p!r}; give one.", _LISTING)
    opts["model"] = backbone = p
  if opts["cpu"] and backbone is not None:
    # `cpu` is the quickstart's budget, small ResNet included: a backbone beside it would name a
    # model the run does not train.
    raise args.error(_FILE, arg, f"names the backbone {backbone!r} and `cpu`, whose budget "
                     "trains the small ResNet; drop one of them (to change the CPU run's model, "
                     "override --config.model.name=...).")
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
  config.evals.corruptions.at_end = True
  method = opts["method"]
  if method in ("paper_both_att", "paper_pgd_at"):  # Suppression + NFD + extended APS,
    # learnable (Table 4); paper_pgd_at adds PGD-AT (defaults of augment/adversarial.py).
    config.augment.suppress_prob = 1.0 / 3.0
    config.augment.nfd = True
    config.model.attention = "extended"
    config.aps.configuration = "learnable"
    config.aps.aux_weight = 50.0 if opts["cpu"] else 100.0
    if method == "paper_pgd_at":
      config.adversarial = "pgd_at"
      if not opts["cpu"]:  # Madry's CIFAR-10 threat model (augment/adversarial.py).
        config.adversarial_args = ml_collections.ConfigDict(dict(eps=8 / 255, step_size=2 / 255))
  elif method in ADVERSARIAL and not opts["cpu"]:
    config.method = method
    config.method_args = _defaults(registry.BASELINES[method])
    config.method_args.eps = 8 / 255  # Madry's / Wong et al.'s CIFAR-10 radius.
    if method == "pgd_at":
      config.method_args.step_size = 2 / 255
    else:
      config.method_args.alpha = 10 / 255
  elif method != "natural":
    config.method = method
    config.method_args = _defaults(registry.BASELINES[method])
  return config


def runs(table: str = "all", cpu: bool = False, seeds=(0,)):
  """The config argument strings of every run (for launch/sweep.py), seed-major."""
  return args.table_runs(_FILE, TABLES, table, cpu, seeds,
                         f" (`all`: {', '.join(TABLES['all'])})")


if __name__ == "__main__":
  for table in TABLES:
    print(f"# --table={table}")
    for arg in runs(table):
      method = arg.split(",")[0]
      doc = (registry.BASELINES[method].__doc__ or "").strip().splitlines()[0] \
          if method in registry.BASELINES else {
              "natural": "natural training (reference)",
              "paper_both_att": "the paper's method (reference)",
              "paper_pgd_at": "the paper's method with PGD-AT on its view"}[method]
      print(f"{arg:28s} # {doc}")
