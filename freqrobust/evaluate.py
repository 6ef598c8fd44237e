"""Command line: run any evaluation of `freqrobust.evaluators` on a trained run.

  python -m freqrobust.evaluate --workdir=DIR [--evals=corruptions,bandpass] [--step=N]
      [--baseline=OTHER_WORKDIR] [--config.<...> overrides of the evaluations' settings]

Without --evals it runs every entry of the run's `config.evals` with at_end (what training runs
at its end), so rerunning it finishes a run whose evaluations were interrupted (results.json
"trained" -> "finished"). With --evals, the named entries of config.evals (whether or not at_end).
Each evaluation is resumable: one already recorded for this model and settings is not rerun.

--step=N evaluates a kept checkpoint (config.train.keep_every_epochs) instead of the newest one:
its outputs and records go to DIR/steps/<N>/ (`workdir.step_dir`) and results.json is left as it
is.
Corruption settings (`config.corruptions`: num_examples, names, source, ...) can be overridden
with the flags below.
"""
from __future__ import annotations

import os
from typing import Optional

from freqrobust import workdir as workdir_lib


def evaluate_run(workdir: str, names: Optional[list] = None, step: Optional[int] = None,
                 overrides: Optional[dict] = None, baseline: Optional[str] = None,
                 progress: bool = True) -> dict:
  """Runs the evaluations `names` (default: config.evals' at_end entries) on the run in
  `workdir` (its newest checkpoint, or `step`); returns the flat `<name>/<metric>` scalars and
  updates results.json (the newest checkpoint) or DIR/steps/<step>/results.json."""
  from freqrobust import evaluators, trained as trained_lib
  config = workdir_lib.read_config(workdir)
  # Which evaluations, checked before the checkpoint is loaded.
  from freqrobust import experiment
  config = experiment.resolve_config(config, for_training=False)
  for field, value in (overrides or {}).items():
    if value is not None:
      config.corruptions[field] = value
  if baseline:
    for entry in config.evals.values():
      if entry.get("type") == "corruptions":
        entry["baseline_workdir"] = baseline
  chosen = (evaluators.at_end(config) if names is None
            else [e for e, _ in evaluators.build(config, list(names))])
  for evaluator in chosen:
    evaluator.check(config)
  run = trained_lib.load_trained(workdir, step)
  run.config = config  # The overridden settings.
  own = workdir_lib.read_results(workdir) or {}
  newest = step is None or own.get("step") in (None, run.step)
  out_root = workdir if newest else workdir_lib.step_dir(workdir, run.step)
  results = (own if newest else workdir_lib.read_results(out_root)) or {"step": run.step}
  # A run trained before results.json named its model, or imported (`freqrobust.convert`): the
  # newest checkpoint is the run's model.
  results.setdefault("model", run.fingerprint)
  records = dict(results.get("evals") or {})

  def save(records):
    workdir_lib.write_results(out_root, dict(results, **evaluators.results_fields(records)))

  context = evaluators.Context(run, workdir, progress=progress, out_root=out_root)
  flat = evaluators.run_evals(context, chosen, records, save)
  if newest and results.get("status") == "trained" and results.get("model") == \
      run.fingerprint and all(e.name in records for e in evaluators.at_end(config)):
    results["status"] = "finished"
    save(records)
  return flat


def main(argv, flag_values=None):
  del argv
  if flag_values is None:
    from absl import flags
    flag_values = flags.FLAGS
  overrides = {"num_examples": flag_values.num_examples, "source": flag_values.source,
               "cache_dir": flag_values.cache_dir, "frost_dir": flag_values.frost_dir,
               "include_extra": flag_values.include_extra,
               "names": tuple(flag_values.names) if flag_values.names else None}
  flat = evaluate_run(flag_values.workdir, list(flag_values.evals) or None, flag_values.step,
                      overrides, flag_values.baseline, flag_values.progress)
  width = max((len(k) for k in flat), default=0)
  for k, v in flat.items():
    print(f"{k:<{width}}  {v:.4g}" if isinstance(v, float) else f"{k:<{width}}  {v}")


def define_flags(flag_values=None) -> None:
  """Defines the CLI flags (on absl's global FLAGS unless `flag_values` is given)."""
  from absl import flags
  from freqrobust.data import corrupted
  fv = flags.FLAGS if flag_values is None else flag_values
  flags.DEFINE_string("workdir", None, "Workdir of a trained run (config.json, checkpoints).",
                      flag_values=fv)
  flags.DEFINE_list("evals", [], "Entries of the run's config.evals to run (default: those "
                    "with at_end). Types: see freqrobust/evaluators.", flag_values=fv)
  flags.DEFINE_integer("step", None, "Evaluate this kept checkpoint instead of the newest "
                       "(outputs under DIR/steps/<step>/).", flag_values=fv)
  flags.DEFINE_string("baseline", None, "corruptions: workdir of an evaluated baseline run, for "
                      "the mCE against it and H&D's Relative mCE.", flag_values=fv)
  flags.DEFINE_integer("num_examples", None, "corruptions: override config.corruptions."
                       "num_examples (0 = whole test set).", flag_values=fv)
  flags.DEFINE_enum("source", None, list(corrupted.SOURCES),
                    "corruptions: override config.corruptions.source.", flag_values=fv)
  flags.DEFINE_string("cache_dir", None, "corruptions: override config.corruptions.cache_dir.",
                      flag_values=fv)
  flags.DEFINE_string("frost_dir", None, "corruptions: override config.corruptions.frost_dir.",
                      flag_values=fv)
  flags.DEFINE_bool("include_extra", None, "corruptions: override config.corruptions."
                    "include_extra.", flag_values=fv)
  flags.DEFINE_list("names", None, "corruptions: override config.corruptions.names.",
                    flag_values=fv)
  flags.DEFINE_bool("progress", True, "Show progress bars.", flag_values=fv)
  flags.mark_flag_as_required("workdir", flag_values=fv)


if __name__ == "__main__":
  from freqrobust import cli
  define_flags()
  cli.run(main)
