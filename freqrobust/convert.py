"""Command line: `python -m freqrobust.convert --arch=ARCH --checkpoint=FILE --workdir=DIR`.

Imports a published PyTorch CIFAR-10 model (RobustBench's zoo and the papers' releases;
docs/MODELS.md) into a workdir of this project's own format, so that every evaluation and analysis
runs on it unchanged: `config.json` (a resolved config whose model section names the backbone and
its variant), one orbax checkpoint that `trained.load_trained(DIR)` restores, and `results.json`
with status "trained" and the provenance (source file, its sha256, the arch, the date, the keys
ignored).

Every key of the checkpoint is accounted for: mapped onto a Flax variable (conv OIHW -> HWIO,
linear (out, in) -> (in, out), BatchNorm weight/bias -> scale/bias, running mean/var ->
batch_stats), read as the input normalisation (`mu`/`sigma`, `mean`/`std` buffers), or on the
arch's explicit ignore list (`num_batches_tracked`; the TRADES WideResNet's unused `sub_block1`).
An unused key, a Flax variable left without a key or a shape that differs fails with the list.

PyTorch is needed only here (imported inside the functions that read the file).
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import os
import re
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from freqrobust import workdir as workdir_lib
from freqrobust.workdir import UserError

# The normalisation RobustBench's DeepMind models apply inside the model (buffers that are not
# saved in their checkpoints): CIFAR-10's per-channel mean and std.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)
IDENTITY_MEAN = (0.0, 0.0, 0.0)
IDENTITY_STD = (1.0, 1.0, 1.0)

# Key suffixes no arch has a Flax variable for (BatchNorm's step counter).
IGNORED_SUFFIXES = ("num_batches_tracked",)
# Buffers holding the input normalisation (RobustBench's wrappers: mu/sigma; some DeepMind
# checkpoints: mean/std), read into config.model.input_mean/input_std.
NORMALISATION_KEYS = (("mu", "sigma"), ("mean", "std"))
# Top-level containers a training script wraps the weights in, tried in this order.
NESTING_KEYS = ("state_dict", "last")
# Prefixes of DataParallel (`module.`) and of wrapper modules (`model.`), stripped only at the
# start of a key, repeatedly (`module.model.conv1.weight` -> `conv1.weight`).
STRIPPED_PREFIXES = ("module.", "model.")

# torch module name -> Flax module path, one rule list per key layout.
Rule = Tuple[str, Callable[[re.Match], Tuple[str, ...]]]
_WRN_TRADES_BLOCK = {"bn1": "bn0", "conv1": "conv0", "bn2": "bn1", "conv2": "conv1",
                     "convShortcut": "shortcut"}
_WRN_DM_BLOCK = {"batchnorm_0": "bn0", "conv_0": "conv0", "batchnorm_1": "bn1",
                 "conv_1": "conv1", "shortcut": "shortcut"}
_PREACT_BLOCK = {"bn1": "bn0", "conv1": "conv0", "bn2": "bn1", "conv2": "conv1",
                 "shortcut.0": "shortcut"}
_PREACT_DM_BLOCK = {"batchnorm_0": "bn0", "conv_2d_1": "conv0", "batchnorm_1": "bn1",
                    "conv_2d_2": "conv1", "shortcut": "shortcut"}
_RESNET_BLOCK = {"conv1": "Conv_0", "bn1": "BatchNorm_0", "conv2": "Conv_1", "bn2": "BatchNorm_1",
                 "shortcut.0": "proj_conv", "shortcut.1": "proj_bn"}
_STEM = ("stem", "semantic", "conv")


def _alternatives(names) -> str:
  return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))


LAYOUTS: Dict[str, List[Rule]] = {
    # RobustBench's wide_resnet.WideResNet (TRADES): conv1, block{1,2,3}.layer.{i}.*, bn1, fc.
    "wrn_trades": [
        (r"conv1", lambda m: _STEM),
        (rf"block([123])\.layer\.(\d+)\.({_alternatives(_WRN_TRADES_BLOCK)})",
         lambda m: (f"group{int(m[1]) - 1}_block{int(m[2])}", _WRN_TRADES_BLOCK[m[3]])),
        (r"bn1", lambda m: ("final_bn",)),
        (r"fc", lambda m: ("head",)),
    ],
    # DeepMind's DMWideResNet: init_conv, layer.{g}.block.{i}.*, batchnorm, logits.
    "wrn_dm": [
        (r"init_conv", lambda m: _STEM),
        (rf"layer\.([012])\.block\.(\d+)\.({_alternatives(_WRN_DM_BLOCK)})",
         lambda m: (f"group{int(m[1])}_block{int(m[2])}", _WRN_DM_BLOCK[m[3]])),
        (r"batchnorm", lambda m: ("final_bn",)),
        (r"logits", lambda m: ("head",)),
    ],
    # RobustBench's resnet.PreActResNet: conv1, layer{1..4}.{i}.*, bn (bn_before_fc), linear.
    "preact": [
        (r"conv1", lambda m: _STEM),
        (rf"layer([1234])\.(\d+)\.({_alternatives(_PREACT_BLOCK)})",
         lambda m: (f"stage{int(m[1]) - 1}_block{int(m[2])}", _PREACT_BLOCK[m[3]])),
        (r"bn", lambda m: ("final_bn",)),
        (r"linear", lambda m: ("head",)),
    ],
    # DeepMind's DMPreActResNet: conv_2d, layer_{0..3}.{i}.*, batchnorm, logits.
    "preact_dm": [
        (r"conv_2d", lambda m: _STEM),
        (rf"layer_([0123])\.(\d+)\.({_alternatives(_PREACT_DM_BLOCK)})",
         lambda m: (f"stage{int(m[1])}_block{int(m[2])}", _PREACT_DM_BLOCK[m[3]])),
        (r"batchnorm", lambda m: ("final_bn",)),
        (r"logits", lambda m: ("head",)),
    ],
    # RobustBench's resnet.ResNet18: conv1, bn1, layer{1..4}.{i}.*, linear. Flax numbers the
    # BasicBlocks across stages (two per stage).
    "resnet18": [
        (r"conv1", lambda m: _STEM),
        (r"bn1", lambda m: ("stem", "semantic", "bn")),
        (rf"layer([1234])\.([01])\.({_alternatives(_RESNET_BLOCK)})",
         lambda m: (f"BasicBlock_{2 * (int(m[1]) - 1) + int(m[2])}", _RESNET_BLOCK[m[3]])),
        (r"linear", lambda m: ("head",)),
    ],
}


@dataclasses.dataclass(frozen=True)
class Arch:
  """A published architecture: the Flax model it becomes and how its keys map."""
  model: Dict[str, Any]  # config.model fields (name and variant)
  layout: str  # a key of LAYOUTS
  mean: Tuple[float, ...]  # input normalisation when the checkpoint has none
  std: Tuple[float, ...]
  ignored_prefixes: Tuple[str, ...] = ()  # keys of modules the forward pass never uses
  description: str = ""


ARCHS: Dict[str, Arch] = {
    "wrn": Arch(dict(name="wrn", padding="pytorch", activation="relu"), "wrn_trades",
                IDENTITY_MEAN, IDENTITY_STD, ignored_prefixes=("sub_block1.",),
                description="TRADES-style WideResNet (robustbench wide_resnet.WideResNet): ReLU, "
                "PyTorch padding; --depth/--width; `sub_block1` (built, never called) ignored"),
    "dm_wrn": Arch(dict(name="wrn", padding="same", activation="swish"), "wrn_dm",
                   CIFAR10_MEAN, CIFAR10_STD,
                   description="DeepMind's WideResNet (robustbench dm_wide_resnet.DMWideResNet): "
                   "Swish (--activation=relu for the ReLU ones), SAME stride-2 padding, CIFAR-10 "
                   "mean/std inside; --depth/--width"),
    "preact_resnet18": Arch(dict(name="preact_resnet18", padding="pytorch", activation="relu",
                                 preact_shortcut="input", preact_final_bn=False), "preact",
                            IDENTITY_MEAN, IDENTITY_STD,
                            description="robustbench resnet.PreActResNet(PreActBlock): 1x1 "
                            "shortcut of the block's raw input, no final BN"),
    "preact_resnet18_v2": Arch(dict(name="preact_resnet18", padding="pytorch", activation="relu",
                                    preact_shortcut="activated", preact_final_bn=True), "preact",
                               IDENTITY_MEAN, IDENTITY_STD,
                               description="robustbench resnet.PreActResNet(PreActBlockV2, "
                               "bn_before_fc=True): 1x1 shortcut of the activated input, final "
                               "BN"),
    "dm_preact_resnet18": Arch(dict(name="preact_resnet18", padding="same", activation="swish",
                                    preact_shortcut="input_3x3", preact_final_bn=True),
                               "preact_dm", CIFAR10_MEAN, CIFAR10_STD,
                               description="DeepMind's PreActResNet-18 (robustbench "
                               "dm_wide_resnet.DMPreActResNet): 3x3 shortcut of the raw input, "
                               "Swish, SAME stride-2 padding, CIFAR-10 mean/std inside"),
    "resnet18": Arch(dict(name="resnet18", padding="pytorch"), "resnet18",
                     IDENTITY_MEAN, IDENTITY_STD,
                     description="robustbench resnet.ResNet18 (also torchvision-style CIFAR "
                     "ResNet-18): PyTorch padding"),
}


# ----------------------------------------------------------------------------- reading the file


def _require_torch():
  try:
    import torch
  except ImportError:
    raise UserError("Converting a PyTorch checkpoint needs PyTorch, which is not installed "
                    "(it is needed for conversion only). Install the CPU build: python -m pip "
                    "install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu "
                    "(or any torch >= 2.4), then run the command again.") from None
  return torch


def sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def _looks_like_text_page(head: bytes) -> Optional[str]:
  text = head.lstrip().lower()
  if text.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")) or \
      b"<html" in text[:2048]:
    return "an HTML page"
  if text.startswith((b"{", b"[")):
    return "a JSON document"
  return None


def load_state_dict(path: str, allow_pickle: bool = False) -> Dict[str, np.ndarray]:
  """The checkpoint's tensors as float32 NumPy arrays, unwrapped (`state_dict`, `last`) and with
  the `module.`/`model.` prefixes stripped. Raises `UserError` on a file that is not a checkpoint.
  """
  if not os.path.isfile(path):
    raise UserError(f"--checkpoint={path}: no such file.")
  with open(path, "rb") as f:
    head = f.read(4096)
  kind = _looks_like_text_page(head)
  if kind is not None:
    raise UserError(
        f"--checkpoint={path} is {kind}, not a PyTorch checkpoint: a download link (Google "
        "Drive's virus-scan page, a login or error page) was probably saved instead of the file. "
        "Download the weights again (RobustBench's `gdown` id or the paper's release), check "
        "that the file is a zip archive of several MB (`file FILE`), and run the command again.")
  torch = _require_torch()
  try:
    obj = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as error:  # pickle, zip and torch errors alike.
    message = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
    if not allow_pickle:
      hint = ("It may be an older checkpoint that pickles Python objects besides the weights: "
              "if you trust its source, run again with --allow_pickle (this executes code in the "
              "file)." if "weights_only" in str(error) or "Unsupported" in str(error) else
              "It is damaged, truncated or not a PyTorch checkpoint; download it again.")
      raise UserError(f"--checkpoint={path} could not be read as a PyTorch checkpoint with "
                      f"weights_only=True ({type(error).__name__}: {message}). {hint}") from None
    try:
      obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error2:
      raise UserError(f"--checkpoint={path} could not be read as a PyTorch checkpoint "
                      f"({type(error2).__name__}: {str(error2)[:300]}); it is damaged, "
                      "truncated or not a checkpoint: download it again.") from None
  return state_dict_arrays(obj, path)


def state_dict_arrays(obj: Any, source: str = "the checkpoint") -> Dict[str, np.ndarray]:
  """Unwraps `obj` (a state dict, possibly nested under `state_dict` or `last`), strips the key
  prefixes and converts the tensors to NumPy."""
  for key in NESTING_KEYS:
    if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
      obj = obj[key]
      break
  if not isinstance(obj, dict) or not obj:
    raise UserError(f"{source} holds {type(obj).__name__}, not a state dict of named tensors "
                    f"(also looked under {', '.join(NESTING_KEYS)}); save the model's "
                    "state_dict() and convert that.")
  arrays = {}
  for key, value in obj.items():
    name = strip_prefixes(str(key))
    if not hasattr(value, "detach") and not isinstance(value, np.ndarray):
      raise UserError(f"{source}: entry {key!r} is {type(value).__name__}, not a tensor; the "
                      "file is not a bare state dict (nest it under 'state_dict').")
    if name in arrays:
      raise UserError(f"{source}: two keys become {name!r} once the prefixes "
                      f"{', '.join(STRIPPED_PREFIXES)} are stripped.")
    array = value.detach().cpu() if hasattr(value, "detach") else value
    if hasattr(array, "is_floating_point") and array.is_floating_point():
      array = array.float()
    arrays[name] = np.asarray(array.numpy() if hasattr(array, "numpy") else array)
  return arrays


def strip_prefixes(key: str) -> str:
  """`module.`/`model.` removed from the start of `key` (repeatedly), nowhere else."""
  changed = True
  while changed:
    changed = False
    for prefix in STRIPPED_PREFIXES:
      if key.startswith(prefix) and len(key) > len(prefix):
        key, changed = key[len(prefix):], True
  return key


# ----------------------------------------------------------------------------- mapping


def model_config(arch: str, depth: Optional[int] = None, width: Optional[int] = None,
                 activation: Optional[str] = None) -> Dict[str, Any]:
  """The config.model fields of `arch` (with the WideResNet's depth and width)."""
  if arch not in ARCHS:
    raise UserError(f"--arch={arch!r}; valid: {', '.join(ARCHS)} (docs/MODELS.md).")
  fields = dict(ARCHS[arch].model)
  if fields["name"] == "wrn":
    fields["wrn_depth"] = 28 if depth is None else int(depth)
    fields["wrn_width"] = 10 if width is None else int(width)
  elif depth not in (None, 18) or width is not None:
    raise UserError(f"--depth/--width apply to the WideResNets (wrn, dm_wrn), not --arch={arch}.")
  if activation is not None:
    if "activation" not in fields:
      raise UserError(f"--activation applies to wrn, dm_wrn and the PreActResNets, not "
                      f"--arch={arch} (ReLU only).")
    fields["activation"] = activation
  return fields


def _module_path(rules: Sequence[Rule], module: str) -> Optional[Tuple[str, ...]]:
  for pattern, target in rules:
    match = re.fullmatch(pattern, module)
    if match:
      return target(match)
  return None


Leaf = Tuple[Tuple[str, ...], Optional[Tuple[int, ...]]]


def _leaf(path: Tuple[str, ...], suffix: str, ndim: int) -> Optional[Leaf]:
  """(Flax variable path, transpose axes or None) of a torch parameter `suffix` of module `path`."""
  if suffix == "weight":
    if ndim == 4:  # Conv OIHW -> HWIO.
      return ("params",) + path + ("kernel",), (2, 3, 1, 0)
    if ndim == 2:  # Linear (out, in) -> (in, out).
      return ("params",) + path + ("kernel",), (1, 0)
    if ndim == 1:  # BatchNorm's weight.
      return ("params",) + path + ("scale",), None
    return None
  if suffix == "bias":
    return ("params",) + path + ("bias",), None
  if suffix == "running_mean":
    return ("batch_stats",) + path + ("mean",), None
  if suffix == "running_var":
    return ("batch_stats",) + path + ("var",), None
  return None


@dataclasses.dataclass
class Conversion:
  variables: Dict[str, Any]  # {"params": ..., "batch_stats": ...} of the Flax model
  input_mean: Optional[Tuple[float, ...]]  # from the checkpoint's buffers, else None
  input_std: Optional[Tuple[float, ...]]
  ignored: List[str]  # keys on the ignore list
  mapping: Dict[str, str]  # torch key -> Flax variable path


def convert_state_dict(arrays: Dict[str, np.ndarray], arch: str,
                       abstract_variables: Any) -> Conversion:
  """Maps every key of `arrays` onto `abstract_variables` (the Flax model's shapes, e.g. from
  `jax.eval_shape(model.init, ...)`); raises `UserError` listing the unused keys, the Flax
  variables left without a key and the shape mismatches, if any."""
  from flax import traverse_util
  spec = ARCHS[arch]
  rules = LAYOUTS[spec.layout]
  targets = {k: v for k, v in traverse_util.flatten_dict(dict(abstract_variables)).items()}
  filled: Dict[Tuple[str, ...], np.ndarray] = {}
  mapping: Dict[str, str] = {}
  ignored, unused, mismatched = [], [], []
  normalisation: Dict[str, np.ndarray] = {}
  norm_names = {name for pair in NORMALISATION_KEYS for name in pair}
  for key in sorted(arrays):
    value = arrays[key]
    if key in norm_names:
      normalisation[key] = value.reshape(-1)
      continue
    if key.rsplit(".", 1)[-1] in IGNORED_SUFFIXES or key.startswith(spec.ignored_prefixes):
      ignored.append(key)
      continue
    module, _, suffix = key.rpartition(".")
    path = _module_path(rules, module) if module else None
    leaf = _leaf(path, suffix, value.ndim) if path is not None else None
    if leaf is None or leaf[0] not in targets:
      unused.append(f"{key} {tuple(value.shape)}")
      continue
    target, axes = leaf
    array = np.transpose(value, axes) if axes else value
    expected = tuple(targets[target].shape)
    if tuple(array.shape) != expected:
      mismatched.append(f"{key} {tuple(value.shape)} -> {'/'.join(target)} expects {expected}"
                        + (f" (HWIO/in-out of {tuple(value.shape)} is {tuple(array.shape)})"
                           if axes else ""))
      continue
    if target in filled:
      unused.append(f"{key} (a second key for {'/'.join(target)})")
      continue
    filled[target] = np.ascontiguousarray(array, dtype=np.float32)
    mapping[key] = "/".join(target)
  missing = ["/".join(t) + f" {tuple(targets[t].shape)}" for t in targets if t not in filled]
  mean = std = None
  pairs = [p for p in NORMALISATION_KEYS if p[0] in normalisation or p[1] in normalisation]
  if len(pairs) > 1 or (pairs and not all(n in normalisation for n in pairs[0])):
    unused.extend(f"{n} (normalisation buffers must come as one pair: mu/sigma or mean/std)"
                  for n in sorted(normalisation))
  elif pairs:
    mean = tuple(float(x) for x in normalisation[pairs[0][0]])
    std = tuple(float(x) for x in normalisation[pairs[0][1]])
  if unused or missing or mismatched:
    def listed(title, items):
      shown = "; ".join(items[:12]) + (f"; ... ({len(items) - 12} more)" if len(items) > 12
                                       else "")
      return f" {len(items)} {title}: {shown}." if items else ""
    raise UserError(
        f"The checkpoint does not match --arch={arch} ({spec.description}) with the model fields "
        "given:" + listed("keys unused", unused)
        + listed("Flax variables without a key", missing)
        + listed("shapes differ", mismatched)
        + " Check --arch (and --depth/--width for a WideResNet) against the model's definition "
        "in RobustBench's model zoo (docs/MODELS.md).")
  return Conversion(traverse_util.unflatten_dict(filled), mean, std, ignored, mapping)


# ----------------------------------------------------------------------------- the workdir


def default_config():
  """configs/default.py's config (the repository root on the path when run from elsewhere)."""
  try:
    from configs import default
  except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from configs import default
  return default.get_config()


def build_config(arch: str, model_fields: Dict[str, Any], mean: Sequence[float],
                 std: Sequence[float]):
  """The resolved config of an imported CIFAR-10 model."""
  from freqrobust import experiment
  config = default_config()
  config.data.dataset = "cifar10"
  for field, value in model_fields.items():
    config.model[field] = value
  config.model.attention = "none"
  config.model.input_mean = tuple(float(x) for x in mean)
  config.model.input_std = tuple(float(x) for x in std)
  # An imported model is never trained here: validate it as evaluation does, where
  # resolve_config knows the difference.
  import inspect
  kwargs = ({"for_training": False}
            if "for_training" in inspect.signature(experiment.resolve_config).parameters else {})
  return experiment.resolve_config(config, **kwargs)


def write_workdir(workdir: str, config, variables: Dict[str, Any],
                  provenance: Dict[str, Any]) -> None:
  """config.json, the checkpoint (a fresh train state of `config` with the imported parameters
  and BatchNorm statistics) and results.json."""
  import jax
  import jax.numpy as jnp
  from freqrobust import checkpoint, experiment, sharding
  exp = experiment.build(config, num_train=config.train.batch_size)
  state = exp.init_state(jax.random.key(0), sharding.Sharder())
  params = dict(state.params)
  params["model"] = jax.tree.map(jnp.asarray, variables["params"])
  batch_stats = jax.tree.map(jnp.asarray, variables.get("batch_stats", {}))
  expected = jax.tree.structure((state.params, state.batch_stats))
  if jax.tree.structure((params, batch_stats)) != expected:
    raise RuntimeError("The converted variables do not have the train state's structure.")
  state = state.replace(params=params, batch_stats=batch_stats,
                        opt_state=experiment.init_ema_batch_stats(exp.tx.init(params),
                                                                  batch_stats))
  workdir_lib.write_config(workdir, config)
  manager = checkpoint.make_manager(workdir, config.train.keep_checkpoints)
  # Step 1: load_trained reads a latest step of 0 as "not saved yet".
  checkpoint.save(manager, 1, state)
  manager.wait_until_finished()
  manager.close()
  workdir_lib.write_results(workdir, {"status": "trained", "step": 1, "imported": provenance})


def convert(arch: str, checkpoint_path: str, workdir: str, depth: Optional[int] = None,
            width: Optional[int] = None, activation: Optional[str] = None,
            input_mean: Optional[Sequence[float]] = None,
            input_std: Optional[Sequence[float]] = None, allow_pickle: bool = False,
            source: Optional[str] = None) -> Dict[str, Any]:
  """Converts `checkpoint_path` into `workdir` (see the module docstring); returns the
  provenance written to results.json."""
  import jax
  import jax.numpy as jnp
  from freqrobust import models
  fields = model_config(arch, depth, width, activation)
  if os.path.exists(workdir_lib.path(workdir, workdir_lib.CONFIG)):
    raise UserError(f"--workdir={workdir} already holds a run (config.json); convert into a new "
                    "folder.")
  arrays = load_state_dict(checkpoint_path, allow_pickle)
  spec = ARCHS[arch]
  # The model's shapes, from a config with placeholder statistics (they are not variables).
  config = build_config(arch, fields, spec.mean, spec.std)
  model = models.build_model(config.model, num_classes=10)
  abstract = jax.eval_shape(lambda: model.init(jax.random.key(0),
                                               jnp.zeros((1, 32, 32, 3), jnp.float32),
                                               train=False))
  result = convert_state_dict(arrays, arch, abstract)
  if (input_mean is None) != (input_std is None):
    raise UserError("Give both --input_mean and --input_std, or neither.")
  if input_mean is not None:
    mean, std, from_where = tuple(input_mean), tuple(input_std), "flags"
  elif result.input_mean is not None:
    mean, std, from_where = result.input_mean, result.input_std, "checkpoint"
  else:
    mean, std, from_where = spec.mean, spec.std, f"arch {arch}"
  config = build_config(arch, fields, mean, std)
  provenance = {
      "source": source or os.path.abspath(checkpoint_path),
      "sha256": sha256(checkpoint_path),
      "arch": arch,
      "arch_description": spec.description,
      "model": fields,
      "input_normalisation": {"mean": list(mean), "std": list(std), "from": from_where},
      "keys_mapped": len(result.mapping),
      "keys_ignored": result.ignored,
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "converter": "freqrobust.convert",
  }
  os.makedirs(workdir, exist_ok=True)
  write_workdir(workdir, config, result.variables, provenance)
  return provenance


# ----------------------------------------------------------------------------- command line


def main(argv, flag_values=None):
  """CLI entry (see `define_flags`)."""
  del argv
  if flag_values is None:
    from absl import flags
    flag_values = flags.FLAGS
  fv = flag_values
  floats = lambda values: None if values is None else [float(v) for v in values]
  try:
    mean, std = floats(fv.input_mean), floats(fv.input_std)
  except ValueError as error:
    raise UserError(f"--input_mean/--input_std: {error} (give comma-separated numbers).") from None
  provenance = convert(fv.arch, fv.checkpoint, fv.workdir, depth=fv.depth, width=fv.width,
                       activation=fv.activation, input_mean=mean, input_std=std,
                       allow_pickle=fv.allow_pickle, source=fv.source)
  print(f"Converted {fv.checkpoint} (sha256 {provenance['sha256'][:16]}..., "
        f"{provenance['keys_mapped']} tensors, {len(provenance['keys_ignored'])} ignored) as "
        f"{fv.arch} into {fv.workdir}; input normalisation from "
        f"{provenance['input_normalisation']['from']}. Next: python -m freqrobust.evaluate "
        f"--workdir={fv.workdir}")


def define_flags(flag_values=None) -> None:
  """Defines the CLI flags (on absl's global FLAGS unless `flag_values` is given)."""
  from absl import flags
  fv = flags.FLAGS if flag_values is None else flag_values
  flags.DEFINE_enum("arch", None, list(ARCHS), "The published architecture (docs/MODELS.md): "
                    + "; ".join(f"{k}: {v.description}" for k, v in ARCHS.items()),
                    flag_values=fv)
  flags.DEFINE_string("checkpoint", None, "The PyTorch checkpoint (.pt/.pth) to convert.",
                      flag_values=fv)
  flags.DEFINE_string("workdir", None, "A new workdir to write (config.json, checkpoints/, "
                      "results.json).", flag_values=fv)
  flags.DEFINE_integer("depth", None, "WideResNet depth (wrn, dm_wrn; default 28).",
                       flag_values=fv)
  flags.DEFINE_integer("width", None, "WideResNet widen factor (wrn, dm_wrn; default 10).",
                       flag_values=fv)
  flags.DEFINE_enum("activation", None, ["relu", "swish"], "Override the arch's activation "
                    "(dm_wrn and dm_preact_resnet18: swish; the others: relu).", flag_values=fv)
  flags.DEFINE_list("input_mean", None, "Per-channel mean the model subtracts (default: the "
                    "checkpoint's mu/mean buffer, else the arch's: identity, or CIFAR-10's for "
                    "DeepMind's models).", flag_values=fv)
  flags.DEFINE_list("input_std", None, "Per-channel std the model divides by (as --input_mean).",
                    flag_values=fv)
  flags.DEFINE_bool("allow_pickle", False, "Read a checkpoint that weights_only=True refuses "
                    "(executes code in the file: only for a trusted source).", flag_values=fv)
  flags.DEFINE_string("source", None, "Provenance recorded in results.json instead of the "
                      "file's path (e.g. the RobustBench model name or the download URL).",
                      flag_values=fv)
  for name in ("arch", "checkpoint", "workdir"):
    flags.mark_flag_as_required(name, flag_values=fv)


if __name__ == "__main__":
  from freqrobust import cli
  define_flags()
  cli.run(main)
