"""RobustBench's submission files of a report's runs (`--robustbench=DIR`): per run, its
model_info JSON for each threat model it was evaluated on (Linf and L2 from its adversarial
evaluations, corruptions from its corruption evaluation) and, per dataset, the unaggregated
corruption CSV, as `freqrobust.robustbench.export` writes them (DIR/<dataset>/<threat model>/
<run>.json, DIR/<dataset>/corruptions/unaggregated_results.csv).

Only figures the report itself would show are exported: the run's clean accuracy, corruption
table and adversarial evaluations of its final model, recorded with the settings the current code
runs (`records`); a run without them is listed with why instead.
"""
import os
from typing import Dict, List, Mapping, Optional, Tuple

from freqrobust import robustbench
from freqrobust import workdir as workdir_lib
from freqrobust.report import records as records_lib
from freqrobust.runs import RunRecord


def check_dir(directory: str) -> str:
  """`directory` created if missing; a UserError naming --robustbench when it cannot hold the
  files (a file, a URL, a folder that cannot be made or written)."""
  flag = f"--robustbench={directory}"
  if workdir_lib.is_remote(directory):
    raise workdir_lib.UserError(f"{flag}: a local folder, please (the RobustBench files are "
                                "written locally; copy them to the object store after).")
  if os.path.exists(directory) and not os.path.isdir(directory):
    raise workdir_lib.UserError(f"{flag} is a file, not a folder: name a folder for the "
                                "RobustBench files (created if missing).")
  try:
    os.makedirs(directory, exist_ok=True)
  except OSError as error:
    raise workdir_lib.UserError(f"{flag}: the folder cannot be created ({error.strerror}); name "
                                "a folder under a writable one.") from None
  if not os.access(directory, os.W_OK | os.X_OK):
    raise workdir_lib.UserError(f"{flag}: the folder is not writable; name a writable folder.")
  return directory


def _adversarial_evals(record: RunRecord, results: Mapping, config: Mapping) -> Dict[str, Dict]:
  """The run's adversarial evaluation records that the report shows (of its final model, with
  the current code's settings) and that hold the robust accuracy RobustBench quotes."""
  cfg, built = records_lib.built_evaluators(dict(config))
  excluded = (set(records_lib.stale_evaluations(cfg, built, results))
              | set(records_lib.other_model_evaluations(results)))
  return {name: r for name, r in (results.get("evals") or {}).items()
          if isinstance(r, Mapping) and r.get("type") == "adversarial" and name not in excluded
          and "worst_main" in (r.get("metrics") or {}) and "main_eps" in (r.get("settings") or {})}


def robustbench_run(record: RunRecord) -> Tuple[Optional[Dict], str]:
  """(the run as `robustbench.export` takes it, or None; why not, or "")."""
  from freqrobust import evaluators
  name = record.name.name
  if record.clean is None:
    return None, f"{name}: no clean accuracy of its final model"
  results = evaluators.normalize_results(workdir_lib.read_finished_results(record.workdir)) or {}
  config_path = workdir_lib.path(record.workdir, workdir_lib.CONFIG)
  config = workdir_lib.read_json(config_path) if os.path.exists(config_path) else {}
  adversarial = _adversarial_evals(record, results, config)
  if not adversarial and not record.table:
    return None, (f"{name}: neither an adversarial evaluation (with worst_main) nor a corruption "
                  "table of its final model, recorded as the current code records them")
  run = {"name": name, "config": config,
         "results": {"clean": {"accuracy": record.clean}, "evals": adversarial}}
  if record.table:
    run["corruption"] = {"accuracy": record.table}
  return run, ""


def write_robustbench(records: List[RunRecord], directory: str) -> Tuple[List[str], List[str]]:
  """Writes the RobustBench files of `records` under `directory` (`check_dir`); returns (the
  files written, relative to it; the runs not exported, with why)."""
  check_dir(directory)
  runs, skipped = [], []
  for record in records:
    run, why = robustbench_run(record)
    if run is None:
      skipped.append(why)
    else:
      runs.append(run)
  files = robustbench.export(runs)
  for relative, text in sorted(files.items()):
    target = os.path.join(directory, relative)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    workdir_lib.atomic_write(target, lambda f, text=text: f.write(text))
  return sorted(files), skipped
