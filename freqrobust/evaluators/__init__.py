"""Every evaluation a run makes, by type: `EVALUATORS` maps a type to its `base.Evaluator`.

The config lists what a run evaluates (`config.evals.<name> = dict(type=..., at_end=...,
every_epochs=..., <its own settings>)`); the train loop and `python -m freqrobust.evaluate` call
`run_evals` and never name a particular evaluation. Adding one: a module here with an
`Evaluator` subclass (its settings' defaults in `defaults`, its checks in `check`, its report
columns in `columns`), one entry in `EVALUATORS`, one line in configs/default.py's `evals`
(`_evaluation(type, at_end, every_epochs)`: the settings come from `defaults`).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from absl import logging as absl_logging

from freqrobust import workdir as workdir_lib
from freqrobust.evaluators import adversarial, base, clean, corruptions, hfc_split, summary
from freqrobust.evaluators import adversarial_bands, adversarial_corruptions
from freqrobust.evaluators import adversarial_fourier
from freqrobust.evaluators.base import Column, Context, Evaluator
from freqrobust.workdir import UserError

EVALUATORS: Dict[str, type] = {cls.type: cls for cls in (
    clean.Clean, corruptions.Corruptions, hfc_split.HfcSplit, summary.Summary,
    adversarial.Adversarial, adversarial_bands.AdversarialBands,
    adversarial_corruptions.AdversarialCorruptions, adversarial_fourier.AdversarialFourier)}


def register(cls: type) -> type:
  """Adds an evaluator class to `EVALUATORS` (for evaluators that live outside this package)."""
  EVALUATORS[cls.type] = cls
  return cls


def _legacy_entries(config) -> Dict[str, Dict[str, Any]]:
  """The evaluations of a config written before `config.evals` (an older run's config.json)."""
  every = float(config.train.get("eval_every_epochs", 0) or 0)
  entries = {"clean": {"type": "clean", "at_end": True, "every_epochs": every}}
  entries["corruptions"] = {"type": "corruptions",
                            "at_end": bool(config.corruptions.get("evaluate", False))}
  entries["summary"] = {"type": "summary",
                        "at_end": bool(config.train.get("summary_figure", False))}
  return entries


# Evaluation types renamed since runs of them exist: old type -> its current name. An entry of
# an old type in a config.json (and, when the entry was named after its type, its name and its
# records and metrics in results.json) load under the current name, with a note.
LEGACY_TYPES = {"bandpass": "hfc_split"}  # HFC's radial split; `bandpass` is Yin's (analyze).


def _rename_note(old: str, new: str) -> str:
  return (f"config.evals: the evaluation type {old!r} is now {new!r} (an entry or record of the "
          f"old name was loaded under the new one; `analyze {old}` is another measurement).")


def _legacy_name(name: str, entry_type: Any, names) -> str:
  """The current name of an entry `name` of type `entry_type` (renamed with its type when it was
  named after it and the new name is free)."""
  new = LEGACY_TYPES.get(entry_type)
  return new if new and name == entry_type and new not in names else name


def normalize_config(config) -> None:
  """Fills `config.evals` of a config written before it existed (from train.eval_every_epochs,
  corruptions.evaluate and train.summary_figure), in place, and drops those fields; entries of a
  renamed type (`LEGACY_TYPES`) get the current type (and name), with a logged note."""
  import ml_collections
  if "evals" in config:
    entries = config.evals.to_dict()
    if not any(isinstance(e, Mapping) and e.get("type") in LEGACY_TYPES
               for e in entries.values()):
      return
    renamed = {}
    for name, entry in entries.items():
      if isinstance(entry, Mapping) and entry.get("type") in LEGACY_TYPES:
        old = entry["type"]
        absl_logging.warning(_rename_note(old, LEGACY_TYPES[old]))
        name = _legacy_name(name, old, entries)
        entry = dict(entry, type=LEGACY_TYPES[old])
      renamed[name] = entry
    config.evals = ml_collections.ConfigDict(renamed)
    return
  config.evals = ml_collections.ConfigDict(_legacy_entries(config))
  if "eval_every_epochs" in config.train:
    del config.train["eval_every_epochs"]
  if "evaluate" in config.corruptions:
    del config.corruptions["evaluate"]
  if "summary_figure" in config.train:
    del config.train["summary_figure"]


def normalize_results(results: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
  """results.json's content with the records (and `<name>/<metric>` metrics) of a renamed type
  (`LEGACY_TYPES`) under the current type and name, as `normalize_config` names their entries;
  a copy (None stays None)."""
  if not results or not any(isinstance(r, Mapping) and r.get("type") in LEGACY_TYPES
                            for r in (results.get("evals") or {}).values()):
    return results
  records, metrics, renames = {}, dict(results.get("metrics") or {}), {}
  for name, r in results["evals"].items():
    if isinstance(r, Mapping) and r.get("type") in LEGACY_TYPES:
      absl_logging.warning(_rename_note(r["type"], LEGACY_TYPES[r["type"]]))
      renames[name] = _legacy_name(name, r["type"], results["evals"])
      r = dict(r, type=LEGACY_TYPES[r["type"]])
    records[renames.get(name, name)] = r
  for old, new in renames.items():
    for key in [k for k in metrics if k.startswith(f"{old}/")]:
      metrics[f"{new}/{key[len(old) + 1:]}"] = metrics.pop(key)
  return dict(results, evals=records, metrics=metrics)


def build(config, names: Optional[List[str]] = None) -> List[Tuple[Evaluator, Dict[str, Any]]]:
  """(evaluator, common fields) for every entry of `config.evals` (or the `names` given, in that
  order); unknown names, types or fields raise `UserError` naming them."""
  entries = dict(config.evals.to_dict() if hasattr(config.evals, "to_dict") else config.evals)
  if names is None:
    names = list(entries)
  out = []
  for name in names:
    if name not in entries:
      raise UserError(f"No evaluation named {name!r} in config.evals; listed: "
                      f"{', '.join(entries) or 'none'}.")
    entry = entries[name]
    if not isinstance(entry, Mapping) or entry.get("type") not in EVALUATORS:
      got = entry.get("type") if isinstance(entry, Mapping) else entry
      raise UserError(f"config.evals.{name}.type={got!r} is invalid: one of "
                      f"{', '.join(EVALUATORS)}.")
    cls = EVALUATORS[entry["type"]]
    common, settings = base.entry_settings(name, entry, cls)
    out.append((cls(name, settings), common))
  return out


def check(config) -> None:
  """Every entry of config.evals, checked against the run's config before training."""
  for evaluator, _ in build(config):
    evaluator.check(config)


def at_end(config) -> List[Evaluator]:
  return [e for e, common in build(config) if common["at_end"]]


def in_loop(config, steps_per_epoch: int) -> List[Tuple[Evaluator, int]]:
  """(evaluator, every how many steps) of the entries evaluated during training."""
  return [(e, max(1, int(round(common["every_epochs"] * steps_per_epoch))))
          for e, common in build(config) if common["every_epochs"]]


def record(evaluator: Evaluator, context: Context, metrics: Mapping[str, Any]) -> Dict[str, Any]:
  return {"type": evaluator.type, "step": context.step, "model": context.model.fingerprint,
          "settings": workdir_lib.to_jsonable(evaluator.key(context.config)),
          "dir": evaluator.out_dir(context), "time": time.time(),
          "metrics": workdir_lib.to_jsonable(dict(metrics))}


def same_settings(stored: Mapping[str, Any], evaluator: Evaluator, config) -> bool:
  """Whether a stored record was made with the settings `evaluator` runs for `config` (the key
  of resuming, and of the report's test for evaluations recorded with other settings)."""
  return stored.get("settings") == workdir_lib.to_jsonable(evaluator.key(config))


def matches(stored: Optional[Mapping[str, Any]], evaluator: Evaluator, context: Context) -> bool:
  """Whether a stored record is this evaluation of this model (resumable)."""
  return bool(stored) and stored.get("type") == evaluator.type and \
      stored.get("model") == context.model.fingerprint and \
      stored.get("step") == context.step and same_settings(stored, evaluator, context.config)


def run_evals(context: Context, evaluators: List[Evaluator], records: Dict[str, Any],
              on_record: Optional[Callable[[Dict[str, Any]], None]] = None,
              say: Callable[[str], None] = print) -> Dict[str, float]:
  """Runs each evaluator whose record in `records` (name -> record, updated in place) does not
  match this model and settings; `on_record(records)` is called after each one (to save them), so
  an interrupted call keeps what it finished. Returns the flat `<name>/<metric>` scalars."""
  flat = {}
  for evaluator in evaluators:
    if matches(records.get(evaluator.name), evaluator, context):
      _reread(evaluator, context, records, on_record, say)
    else:
      started = time.time()
      metrics = evaluator.run(context)
      records[evaluator.name] = record(evaluator, context, metrics)
      if on_record is not None:
        on_record(records)
      say(f"Evaluation {evaluator.name!r} ({evaluator.type}) done in "
          f"{time.time() - started:.0f} s: " + ", ".join(
              f"{k} {v:.2f}" for k, v in metrics.items() if isinstance(v, float)))
    flat.update(prefixed(evaluator.name, records[evaluator.name]["metrics"]))
    context.metrics.update(flat)
  return flat


def _reread(evaluator, context, records, on_record, say) -> None:
  """A finished evaluation: its metrics summarised again from its per-example results where it
  keeps them (a corrected check or summary then reaches it), the record updated if they moved."""
  stored = records[evaluator.name]
  try:
    fresh = evaluator.reread(context)
  except Exception as err:  # pylint: disable=broad-except
    # A damaged file must not cost a finished evaluation (nor the end of a training): keep it.
    absl_logging.warning("Evaluation %r: its per-example results could not be read again (%s); "
                         "the stored record stands.", evaluator.name, err)
    fresh = None
  old = stored["metrics"]
  fresh = old if fresh is None else workdir_lib.to_jsonable(dict(fresh))
  changed = [k for k in sorted(set(old) | set(fresh)) if not _same(old.get(k), fresh.get(k))]
  if not changed:
    say(f"Evaluation {evaluator.name!r}: already done for this model (step {context.step}).")
    return
  records[evaluator.name] = dict(stored, metrics=fresh, reread=time.time())
  if on_record is not None:
    on_record(records)
  say(f"Evaluation {evaluator.name!r}: already done for this model (step {context.step}); "
      "summarised again from its per-example results, these metrics changed (the code that "
      "reads them changed since): " + ", ".join(
          f"{k} {old.get(k)!r} -> {fresh.get(k)!r}" for k in changed) + ".")


def _same(a, b) -> bool:
  """Equal metric values, NaN equal to NaN (JSON's null included)."""
  nan = lambda v: v is None or (isinstance(v, float) and v != v)  # noqa: E731
  return a == b or (nan(a) and nan(b))


def results_fields(records: Mapping[str, Any]) -> Dict[str, Any]:
  """What results.json holds beside "evals" and "metrics": the flat `<name>/<metric>` scalars,
  and each recorded evaluation's metrics under its type's `results_key` (e.g. "clean")."""
  out = {"evals": dict(records), "metrics": {}}
  for name, r in records.items():
    out["metrics"].update(prefixed(name, r["metrics"]))
    key = getattr(EVALUATORS.get(r.get("type")), "results_key", None)
    if key:
      out[key] = r["metrics"]
  return out


def prefixed(name: str, metrics: Mapping[str, Any]) -> Dict[str, Any]:
  return {f"{name}/{k}": v for k, v in metrics.items()}


__all__ = ["EVALUATORS", "LEGACY_TYPES", "Column", "Context", "Evaluator", "at_end", "build",
           "check", "in_loop", "matches", "normalize_config", "normalize_results", "prefixed",
           "record", "register", "run_evals"]
