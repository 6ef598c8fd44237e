"""Command line: run any evaluation of `freqrobust.evaluators` on a trained run.

  python -m freqrobust.evaluate --workdir=DIR [--evals=corruptions,hfc_split] [--step=N]
      [--baseline=OTHER_WORKDIR] [--config.<...> overrides of the evaluations' settings]

Without --evals it runs every entry of the run's `config.evals` with at_end (what training runs
at its end), so rerunning it finishes a run whose evaluations were interrupted (results.json
"trained" -> "finished"). With --evals, the named entries of config.evals (whether or not at_end).
Each evaluation is resumable: one already recorded for this model and settings is not rerun.

Without --step it evaluates the model results.json records (its step and fingerprint): when the
newest checkpoint is another (a finished run trained on and stopped before its new end), it
refuses, saying how to finish the run or evaluate that checkpoint apart; results.json's numbers
are always those of the model it names. It holds the workdir's lock, as training does.

--step=N evaluates a kept checkpoint (config.train.keep_every_epochs) instead of the newest one:
its outputs and records go to DIR/steps/<N>/ (`workdir.step_dir`) and results.json is left as it
is.
`--config.evals.<name>.<field>=V`, `--config.corruptions.<field>=V` and `--config.eval.<field>=V`
override the run's evaluation settings for this evaluation (typed as configs/default.py's);
corruption settings also have the flags below.
"""
from __future__ import annotations

import os
from typing import Optional

from freqrobust import workdir as workdir_lib


def evaluate_run(workdir: str, names: Optional[list] = None, step: Optional[int] = None,
                 overrides: Optional[dict] = None, baseline: Optional[str] = None,
                 progress: bool = True, config_overrides: Optional[dict] = None) -> dict:
  """Runs the evaluations `names` (default: config.evals' at_end entries) on the run in
  `workdir` (its newest checkpoint, or `step`); returns the flat `<name>/<metric>` scalars and
  updates results.json (the newest checkpoint) or DIR/steps/<step>/results.json.

  `overrides`: config.corruptions fields (None = the run's); `config_overrides`: dotted paths
  under config.evals, config.corruptions or config.eval -> values (`--config.<...>`). Holds the
  workdir's lock (as training does), so an evaluation never interleaves its writes of
  results.json with a training's; a busy workdir is refused before anything is loaded."""
  from freqrobust import distributed
  if not workdir_lib.exists(workdir_lib.path(workdir, workdir_lib.CONFIG)):
    workdir_lib.read_config(workdir)  # Its error names the file; no lock file is created.
  with distributed.held_by_writer(lambda: workdir_lib.locked(workdir)):
    return _evaluate_locked(workdir, names, step, overrides, baseline, progress,
                            config_overrides)


def _evaluate_locked(workdir, names, step, overrides, baseline, progress, config_overrides):
  from freqrobust import evaluators, experiment, trained as trained_lib
  config = workdir_lib.read_config(workdir)
  evaluators.normalize_config(config)  # A config written before config.evals: filled first.
  add_missing_evaluations(config, names)
  config = apply_config_overrides(config, config_overrides or {})
  # Which evaluations, checked before the checkpoint is loaded.
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
  # An evaluation renamed since (bandpass -> hfc_split) is read and rewritten under its new name.
  own = evaluators.normalize_results(workdir_lib.read_results(workdir)) or {}
  # results.json's numbers are those of the model it names: only that model's evaluations go
  # there (a run recorded before results.json named its model: the same step).
  newest = own.get("step") in (None, run.step) and own.get("model") in (None, run.fingerprint)
  if step is None and not newest:
    raise workdir_lib.UserError(_not_the_recorded_model(workdir, own, run))
  out_root = workdir if newest else workdir_lib.step_dir(workdir, run.step)
  results = (own if newest
             else evaluators.normalize_results(workdir_lib.read_results(out_root))) or {
                 "step": run.step}
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


def _not_the_recorded_model(workdir: str, own: dict, run) -> str:
  """Why the newest checkpoint's evaluation cannot go into results.json, and what to do."""
  recorded = own.get("step")
  return (f"The newest checkpoint of {workdir} is step {run.step} (model {run.fingerprint}), but "
          f"its results.json records step {recorded} (model {own.get('model')}, status "
          f"{own.get('status')!r}): the run was trained on past its recorded end and stopped "
          "before finishing, so its newest model is not the one results.json reports. Rerun its "
          "training command (the same --config and --workdir) to resume and finish it, or "
          f"evaluate that checkpoint apart with --step={run.step} (outputs under "
          f"{workdir_lib.step_dir(workdir, run.step)}; --step={recorded} evaluates the recorded "
          "model if that checkpoint is kept).")


def add_missing_evaluations(config, names: Optional[list]) -> None:
  """Each evaluation named in `names` that the run's config lacks (an evaluator added after the
  run was trained) is added with configs/default.py's entry, and one line says so; a name the
  default config does not have either is left for `evaluators.build` to refuse."""
  from freqrobust import cli
  default = cli.default_config().evals
  for name in names or ():
    if name not in config.evals and name in default:
      config.evals[name] = default[name]
      print(f"config.evals.{name}: not in the run's config (added after it was trained); "
            f"configs/default.py's settings are used (--config.evals.{name}.<field>=V changes "
            "them).", flush=True)


# The sections of a run's config that `--config.<...>` may override: the evaluations' settings.
OVERRIDABLE = ("evals", "corruptions", "eval")


def apply_config_overrides(config, overrides: dict):
  """A copy of the run's `config` with each dotted path (under OVERRIDABLE) set to its value (as
  a plain dict, so a value typed as configs/default.py's replaces one config.json wrote as
  another type); a path outside them, or whose parent the run's config lacks, is a UserError
  naming the flag."""
  import ml_collections
  tree = config.to_dict()
  for dotted, value in overrides.items():
    parts = dotted.split(".")
    if parts[0] not in OVERRIDABLE or len(parts) < 2:
      raise workdir_lib.UserError(
          f"--config.{dotted}: only the evaluations' settings can be overridden here "
          f"({', '.join('config.' + s for s in OVERRIDABLE)}); the model and its training are "
          "the run's.")
    parent = tree
    for k, part in enumerate(parts[:-1]):
      if not isinstance(parent.get(part), dict):
        raise workdir_lib.UserError(
            f"--config.{dotted}: the run's config has no config.{'.'.join(parts[:k + 1])} "
            f"(config.{'.'.join(parts[:k]) or 'root'} holds: {', '.join(parent)}).")
      parent = parent[part]
    parent[parts[-1]] = value
  return ml_collections.ConfigDict(tree)


def main(argv, flag_values=None):
  del argv
  if flag_values is None:
    from absl import flags
    flag_values = flags.FLAGS
  overrides = {"num_examples": flag_values.num_examples, "source": flag_values.source,
               "cache_dir": flag_values.cache_dir, "frost_dir": flag_values.frost_dir,
               "include_extra": flag_values.include_extra,
               "names": tuple(flag_values.names) if flag_values.names else None}
  from ml_collections import config_flags
  flat = evaluate_run(flag_values.workdir, list(flag_values.evals) or None, flag_values.step,
                      overrides, flag_values.baseline, flag_values.progress,
                      config_flags.get_override_values(flag_values["config"]))
  width = max((len(k) for k in flat), default=0)
  for k, v in flat.items():
    print(f"{k:<{width}}  {v:.4g}" if isinstance(v, float) else f"{k:<{width}}  {v}")


def define_flags(flag_values=None, sys_argv: Optional[list] = None) -> None:
  """Defines the CLI flags (on absl's global FLAGS unless `flag_values` is given; `sys_argv`: the
  command line the `--config.<...>` overrides are read from, sys.argv by default)."""
  from absl import flags
  from ml_collections import config_flags
  from freqrobust import cli
  from freqrobust.data import corrupted
  fv = flags.FLAGS if flag_values is None else flag_values
  default = cli.default_config()  # Each override is parsed with the type of its default.
  try:
    config_flags.DEFINE_config_dict(
        "config", default, "Overrides of the run's evaluation settings, applied to its "
        "config.json for this evaluation: --config.evals.<name>.<field>=V (e.g. "
        "--config.evals.adversarial.eps=0.01,0.03), --config.corruptions.<field>=V, "
        "--config.eval.batch_size=N.", flag_values=fv, sys_argv=sys_argv)
  except (KeyError, AttributeError) as error:  # ml_collections reads the overrides now.
    name = str(error).strip("\"'")
    raise workdir_lib.UserError(
        f"A --config.<...> override names {name!r}, which configs/default.py's config does not "
        f"have; the evaluations' settings: --config.evals.<{'|'.join(default.evals)}>.<field>, "
        "--config.corruptions.<field>, --config.eval.<field> (an evaluation named only in the "
        "run's config.json cannot be overridden here).") from None
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
  import sys
  from freqrobust import cli
  try:
    define_flags()
  except workdir_lib.UserError as user_error:
    cli.report_user_error(user_error)
    sys.exit(2)
  cli.run(main)
