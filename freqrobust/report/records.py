"""A finished run's record for the report (`runs.RunRecord`), read from its workdir: only the
figures of the run's final model, with why the others are left out and whether its method trained
as the current code would."""
import os
from typing import Dict, List, Mapping, Optional

import numpy as np

from freqrobust import runs
from freqrobust import workdir as workdir_lib
from freqrobust.corruptions import CORRUPTIONS

# The figures of the first two tables; the third holds every other evaluator scalar.
MAIN_EVALS = ("clean", "corruptions")


def load_runs(root: str) -> List[runs.RunRecord]:
  """The records of the finished runs under `root` (`runs.find`), in name order."""
  records = [r for r in (load_run(w, name) for name, w in runs.find(root)) if r is not None]
  if not records:
    raise FileNotFoundError(f"No finished runs under {root} (each needs results.json with status "
                            "\"finished\"; `python -m freqrobust.evaluate --workdir=DIR` finishes "
                            "a run whose evaluations were interrupted).")
  return records


def load_run(workdir: str, name: Optional[runs.RunName] = None) -> Optional[runs.RunRecord]:
  """The record of a finished run (None for an unfinished one): clean accuracy, the corruption
  table and the evaluations' scalars of its final model, its backbone, dataset and whether it is
  natural training (config.json)."""
  from freqrobust import evaluators
  # An evaluation renamed since (bandpass -> hfc_split) reads under its current name.
  results = evaluators.normalize_results(workdir_lib.read_finished_results(workdir))
  if results is None:
    return None
  config = _read_config(workdir)
  record = runs.RunRecord(
      workdir=workdir, name=name or runs.parse_name(os.path.basename(os.path.normpath(workdir))),
      clean=None, model=(config.get("model") or {}).get("name", ""),
      dataset=(config.get("data") or {}).get("dataset", ""),
      natural=is_natural(config) if config else False, images_per_s=training_rate(workdir),
      stale=stale_notes(workdir, results, config))
  _read_corruptions(record, results)
  # An evaluation recorded with other settings, or of another model or step than the final one,
  # is left out (its figures would sit under labels that describe another measurement); the
  # run's other figures stand, so the row is not stale.
  cfg, built = built_evaluators(config)
  record.columns = declared_columns(built)
  old_settings = stale_evaluations(cfg, built, results)
  record.left_out = [f"{n} ({_reevaluate(workdir, n)})" for n in old_settings]
  other_model = other_model_evaluations(results)
  record.other_model = [f"{n}: {why} ({_reevaluate(workdir, n)})" for n, why in other_model.items()]
  records = results.get("evals") or {}
  if not any((records.get(n) or {}).get("type") == "clean" for n in other_model):
    record.clean = (results.get("clean") or {}).get("accuracy")
  excluded = set(old_settings) | set(other_model)
  record.metrics = {k: v for k, v in evaluator_metrics(results).items()
                    if k.split("/", 1)[0] not in excluded}
  return record


def _reevaluate(workdir: str, name: str) -> str:
  return f"python -m freqrobust.evaluate --workdir={workdir} --evals={name}"


def _read_config(workdir: str) -> Dict:
  config_path = workdir_lib.path(workdir, workdir_lib.CONFIG)
  return workdir_lib.read_json(config_path) if os.path.exists(config_path) else {}


def _read_corruptions(record: runs.RunRecord, results: Dict) -> None:
  """The corruption table, sets and clean accuracy on those sets' images, when the corruption
  evaluation is of the final model (else a stale note naming the command that redoes it)."""
  corrupted = workdir_lib.read_corruption_results(record.workdir, required=False)
  if corrupted is None:
    return
  excluded = not_final(results, corrupted, "its corruption evaluation")
  if excluded:
    record.stale = record.stale + [
        f"not compared under corruption: {excluded}; re-evaluate it "
        f"({_reevaluate(record.workdir, 'corruptions')})"]
    return
  table = workdir_lib.accuracy_table(corrupted)
  record.sets = {k: corrupted.get(k) for k in workdir_lib.CORRUPTED_SET_FIELDS}
  # The clean accuracy on the images the corrupted sets were made from (H&D's Relative mCE).
  record.corrupted_clean = corrupted.get("clean_accuracy")
  # Robust. and mCE are defined over the 15 benchmark corruptions only.
  record.table = table if all(c in table for c in CORRUPTIONS) else None


def not_final(results: Mapping, record: Mapping, what: str) -> Optional[str]:
  """Why an evaluation record (its "model" fingerprint and "step") is not of the run's final
  model (results.json's "model" and "step"), or None when it is or cannot be told."""
  model, step = results.get("model"), results.get("step")
  if model and record.get("model") and record["model"] != model:
    return (f"{what} is of another model (fingerprint {record['model']}, step "
            f"{record.get('step')}; the run's final model is {model}, step {step})")
  if step is not None and record.get("step") is not None and record["step"] != step:
    return f"{what} is of step {record['step']}, not of the final step {step}"
  return None


def other_model_evaluations(results: Mapping) -> Dict[str, str]:
  """{name: why} of the evaluations in results.json "evals" with figures whose record is of
  another model or step than the run's final one (the corruption evaluation is judged on its own
  results file)."""
  out = {}
  for name, record in (results.get("evals") or {}).items():
    if (not isinstance(record, Mapping) or record.get("type") == "corruptions"
        or not record.get("metrics")):
      continue
    why = not_final(results, record, "its record")
    if why:
      out[name] = why
  return out


def is_natural(config: Dict) -> bool:
  """Whether a run's config (config.json as a dict) is natural training: the paper's method with
  suppression, NFD and attention off (crop and flip only)."""
  augment = config.get("augment") or {}
  return (config.get("method", "paper") in ("paper", "none")
          and not augment.get("suppress_prob") and not augment.get("nfd")
          and (config.get("model") or {}).get("attention", "none") == "none")


def evaluator_metrics(results: Dict) -> Dict[str, float]:
  """The scalars of results.json "metrics" beside the clean and corruption evaluations'."""
  return {k: v for k, v in (results.get("metrics") or {}).items()
          if isinstance(v, (int, float)) and not isinstance(v, bool)
          and k.split("/", 1)[0] not in MAIN_EVALS}


def built_evaluators(config: Dict):
  """(config as a ConfigDict, [evaluator]) of a run's config.json under the current code's
  defaults; (None, []) for a partial or foreign config.json."""
  if not config:
    return None, []
  import ml_collections
  from freqrobust import evaluators
  try:
    cfg = ml_collections.ConfigDict(config)
    evaluators.normalize_config(cfg)
    return cfg, [e for e, _ in evaluators.build(cfg)]
  except (KeyError, AttributeError, workdir_lib.UserError):
    return None, []


def declared_columns(built) -> Dict[str, Dict]:
  """`<name>/<metric>` -> {label, convention, higher_is_better, interval, role} of the run's
  evaluations (`built_evaluators`; `evaluators.base.Column`)."""
  return {f"{e.name}/{c.metric}": {"label": f"{e.name}: {c.label}", "convention": c.convention,
                                    "higher_is_better": c.higher_is_better,
                                    "interval": c.interval, "role": c.role}
          for e in built for c in e.metric_columns()}


def stale_evaluations(cfg, built, results: Dict) -> List[str]:
  """Names of the run's recorded evaluations (results.json "evals", beside clean and corruptions)
  whose settings differ from what the current code would run for the run's config
  (`built_evaluators`; a setting added since, such as the adversarial evaluation's APGD-DLR and
  unbounded check of 2026-12-05): their figures answer another question than the columns' labels
  say."""
  from freqrobust import evaluators
  records = results.get("evals") or {}
  stale = []
  for e in built:
    stored = records.get(e.name)
    if e.name in MAIN_EVALS or not isinstance(stored, dict) or "settings" not in stored:
      continue
    try:
      if not evaluators.same_settings(stored, e, cfg):
        stale.append(e.name)
    except (KeyError, AttributeError, TypeError, ValueError):
      continue
  return stale


def method_class(name: Optional[str]) -> Optional[type]:
  """The augmentation method class a run recorded by name (results.json "method_choices"), or
  None for one the code no longer knows."""
  from freqrobust.augment import registry
  return registry.METHODS.get(name)


def stale_notes(workdir: str, results: Dict, config: Optional[Dict] = None) -> List[str]:
  """How a finished run's method trained differently from the current code at its recorded
  settings (fields added since, behaviour changes since: `augment.base.stale_notes`), the
  adversarial training composed with it (`config.adversarial`) included: its revisions are
  judged against the run's adversarial_args."""
  from freqrobust.augment import base
  choices = results.get("method_choices") or {}
  cls = method_class(choices.get("method"))
  if cls is None:
    return []
  config = _read_config(workdir) if config is None else config
  notes = base.stale_notes(cls, choices, config)
  adversarial = choices.get("adversarial")
  if adversarial:
    from freqrobust.augment import registry
    if adversarial in registry.ADVERSARIAL_TRAINING:
      notes += base.stale_notes(registry.ADVERSARIAL_TRAINING[adversarial], choices, config,
                                part="adversarial")
    if choices.get("method") != "paper" and "adversarial_views" not in choices:
      notes.append(f"trained without the adversarial training config.adversarial={adversarial!r} "
                   "names (before 2026-12-07 it was ignored for every method but the paper's)")
  return notes


def training_rate(workdir: str) -> Optional[float]:
  """Training images/s of a run, read from its metrics.jsonl: the median over consecutive train
  log lines of (steps between them) x batch size / (seconds between them). The median leaves out
  the intervals that hold a compilation, an evaluation, a checkpoint or a resume; None without at
  least two timed train lines."""
  try:
    batch = int(workdir_lib.read_config(workdir)["train"]["batch_size"])
  except (OSError, KeyError, TypeError, ValueError):
    return None
  lines = [m for m in workdir_lib.read_metrics(workdir)
           if "time" in m and workdir_lib.line_kind(m) == "train"]
  rates = [(b["step"] - a["step"]) * batch / (b["time"] - a["time"])
           for a, b in zip(lines, lines[1:]) if b["time"] > a["time"] and b["step"] > a["step"]]
  return float(np.median(rates)) if rates else None
