"""Command line: `python -m freqrobust.convert --arch=ARCH --checkpoint=FILE --workdir=DIR`.

Imports a published PyTorch CIFAR-10 model (RobustBench's zoo and the papers' releases;
docs/MODELS.md) into a workdir of this project's own format, so that every evaluation and analysis
runs on it unchanged: `config.json` (a resolved config whose model section names the backbone and
its variant), one orbax checkpoint that `trained.load_trained(DIR)` restores, and `results.json`
with status "trained" and the provenance (source file, its sha256, the arch, the date, the keys
ignored). config.json is written last, after the checkpoint: a convert stopped before it leaves a
marker (`IMPORTING`) with which the same command redoes the import; a folder holding a run, or
another run's files, is refused before the checkpoint is read. The architectures and their key
maps: `freqrobust.convert_archs`.

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
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from freqrobust import workdir as workdir_lib
# The architectures and their key maps (re-exported: `convert.ARCHS`).
from freqrobust.convert_archs import (ARCHS, IGNORED_SUFFIXES, LAYOUTS, NESTING_KEYS,
                                     NORMALISATION_KEYS, STRIPPED_PREFIXES, Rule)
from freqrobust.workdir import UserError


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


def build_config(arch: str, model_fields: Dict[str, Any], mean: Sequence[float],
                 std: Sequence[float]):
  """The resolved config of an imported CIFAR-10 model."""
  from freqrobust import cli, experiment
  config = cli.default_config()
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
  """The checkpoint (a fresh train state of `config` with the imported parameters and BatchNorm
  statistics), results.json, then config.json."""
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
  # The marker first and config.json last: a convert stopped anywhere leaves no config.json (no
  # reader takes the folder for a run) and a marker that lets the next convert redo it.
  workdir_lib.write_json(workdir_lib.path(workdir, IMPORTING), provenance)
  manager = checkpoint.make_manager(workdir, config.train.keep_checkpoints)
  # Step 1: load_trained reads a latest step of 0 as "not saved yet".
  checkpoint.save(manager, 1, state)
  manager.wait_until_finished()
  manager.close()
  workdir_lib.write_results(workdir, {"status": "trained", "step": 1, "imported": provenance})
  workdir_lib.write_config(workdir, config)
  os.remove(workdir_lib.path(workdir, IMPORTING))


# Written before anything else of an import, removed once config.json (written last) is there.
IMPORTING = ".importing.json"


def check_target(workdir: str) -> bool:
  """Whether `workdir` can take an import (before the file is read); True when an earlier convert
  into it did not finish (its marker, IMPORTING, is there): `clear_unfinished` then redoes it. A
  run, or files of a run without config.json (not this command's), are refused, never replaced."""
  if os.path.exists(workdir_lib.path(workdir, IMPORTING)):
    return True
  if os.path.exists(workdir_lib.path(workdir, workdir_lib.CONFIG)):
    hint = ("" if os.path.exists(workdir_lib.path(workdir, workdir_lib.RESULTS)) else
            " (It has no results.json: if it is a convert stopped before it finished, delete the "
            "folder and convert again.)")
    raise UserError(f"--workdir={workdir} already holds a run (config.json); convert into a new "
                    f"folder.{hint}")
  found = [name for name in (workdir_lib.CHECKPOINTS, workdir_lib.RESULTS, workdir_lib.METRICS)
           if os.path.exists(workdir_lib.path(workdir, name))]
  if found:
    raise UserError(f"--workdir={workdir} holds {', '.join(found)} but no config.json: the remains "
                    "of another run, not an import this command started (it records one in "
                    f"{IMPORTING}). Convert into a new folder, or delete them first.")
  return False


def clear_unfinished(workdir: str) -> None:
  """Removes what an unfinished convert into `workdir` wrote (its marker stays until the redo
  has written config.json)."""
  import shutil
  shutil.rmtree(workdir_lib.path(workdir, workdir_lib.CHECKPOINTS), ignore_errors=True)
  for name in (workdir_lib.CONFIG, workdir_lib.RESULTS):
    if os.path.exists(workdir_lib.path(workdir, name)):
      os.remove(workdir_lib.path(workdir, name))


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
  unfinished = check_target(workdir)
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
  if unfinished:
    clear_unfinished(workdir)
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
