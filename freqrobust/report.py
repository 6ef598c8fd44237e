"""Aggregates a sweep into the paper's table layout.

  python -m freqrobust.report --root=runs/table3_cpu [--baseline=NAME] [--out=DIR]

Runs are grouped by name without the seed (`table3_nfd_seed-1` -> `table3_nfd`); a run's backbone
and dataset come from its config.json. The baseline group of each backbone (Tables 1-2 have two) is
the one whose runs are natural training (no augmentation beyond crop and flip, no attention: read
from config.json), or with `--baseline` the group whose name contains that token; it is shown in
absolute values, every other group of that backbone as differences to it (as Tables 1-4 do), each
cell mean +- sample standard deviation (ddof = 1) over seeds. mCE is the paper's mCE against the
baseline (`metrics.mce_relative`: Hendrycks & Dietterich's mCE with the baseline in AlexNet's
place): per corruption CE_c^rel = sum_s E(c, s) / sum_s E_baseline(c, s), mCE = 100 * mean_c
CE_c^rel over the 15 benchmark corruptions, per seed against the baseline's seed-mean accuracy
table; the second table adds H&D's Relative mCE (`metrics.relative_mce_hd`). Runs evaluated on other
corrupted sets than their baseline (another dataset, source, number of images or clean images; for
generated sets also another recipe version, generation seed or frost source) form rows marked
"(other sets)", compared on clean accuracy only. A corruption evaluation of another model than the
run's final one (an older step, a retrained run) is left out, and the run's row says so. Every other
scalar the runs' evaluations recorded (results.json "metrics", `<evaluation>/<metric>`) forms a
third table, with the columns the evaluators declare. Writes table.md, table.csv, a Figure
1(e)-style bar chart (robustness), the gains per corruption family and, when the runs were
attacked, Robust. against adversarial accuracy.
"""
import csv
import os
import re
from typing import Dict, List, Optional

import numpy as np
from absl import app, flags

from freqrobust import metrics
from freqrobust import workdir as workdir_lib
from freqrobust.corruptions import CORRUPTIONS



def define_flags(flag_values: Optional[flags.FlagValues] = None) -> None:
  """Defines the CLI flags (on absl's global FLAGS unless `flag_values` is given)."""
  fv = flags.FLAGS if flag_values is None else flag_values
  flags.DEFINE_string("root", None, "Folder holding one workdir per run (a sweep's --root).",
                      flag_values=fv)
  flags.DEFINE_string("baseline", None, "Runs whose name contains this token are the baseline "
                      "of their backbone (default: the natural-training runs, from their "
                      "config.json).", flag_values=fv)
  flags.DEFINE_string("out", "", "Output folder (default ROOT/report).", flag_values=fv)
  flags.mark_flag_as_required("root", flag_values=fv)


def is_natural(config: Dict) -> bool:
  """Whether a run's config (config.json as a dict) is natural training: the paper's method with
  suppression, NFD and attention off (crop and flip only)."""
  augment = config.get("augment") or {}
  return (config.get("method", "paper") in ("paper", "none")
          and not augment.get("suppress_prob") and not augment.get("nfd")
          and (config.get("model") or {}).get("attention", "none") == "none")


def _not_final(results: Dict, corrupted: Dict) -> Optional[str]:
  """Why a corruption evaluation is not of the run's final model, or None when it is."""
  model, step = results.get("model"), results.get("step")
  if model and corrupted.get("model") and corrupted["model"] != model:
    return (f"its corruption evaluation is of another model (fingerprint {corrupted['model']}, "
            f"step {corrupted.get('step')}; the run's final model is {model}, step {step})")
  if step is not None and corrupted.get("step") is not None and corrupted["step"] != step:
    return (f"its corruption evaluation is of step {corrupted['step']}, not of the final step "
            f"{step}")
  return None


def load_run(workdir: str) -> Optional[Dict]:
  """Clean accuracy, the corruption -> severity -> accuracy table and the evaluations' scalars of
  a finished run, with its backbone, dataset and whether it is natural training (config.json)."""
  results = workdir_lib.read_finished_results(workdir)
  if results is None:
    return None
  config_path = workdir_lib.path(workdir, workdir_lib.CONFIG)
  config = workdir_lib.read_json(config_path) if os.path.exists(config_path) else {}
  table, sets, corrupted_clean, excluded = None, None, None, None
  corrupted = workdir_lib.read_corruption_results(workdir, required=False)
  if corrupted is not None:
    excluded = _not_final(results, corrupted)
  if corrupted is not None and excluded is None:
    table = workdir_lib.accuracy_table(corrupted)
    sets = {k: corrupted.get(k) for k in workdir_lib.CORRUPTED_SET_FIELDS}
    # The clean accuracy on the images the corrupted sets were made from (H&D's Relative mCE).
    corrupted_clean = corrupted.get("clean_accuracy")
    if not all(c in table for c in CORRUPTIONS):
      table = None  # Robust. and mCE are defined over the 15 benchmark corruptions only.
  stale = stale_notes(workdir, results, config)
  if excluded:
    stale = stale + [f"not compared under corruption: {excluded}; re-evaluate it (python -m "
                     f"freqrobust.evaluate --workdir={workdir} --evals=corruptions)"]
  # An evaluation recorded with other settings is left out (its figures would sit under labels
  # that describe another measurement); the run's other figures stand, so the row is not stale.
  cfg, built = _built_evaluators(config)
  old_evals = stale_evaluations(cfg, built, results)
  left_out = [f"{name} (python -m freqrobust.evaluate --workdir={workdir} --evals={name})"
              for name in old_evals]
  metrics = {k: v for k, v in _evaluator_metrics(results).items()
             if k.split("/", 1)[0] not in old_evals}
  return {"clean": results["clean"]["accuracy"], "table": table, "b(M)": results.get("b(M)"),
          "sets": sets, "corrupted_clean": corrupted_clean, "workdir": workdir,
          "images_per_s": training_rate(workdir), "stale": stale, "left_out": left_out,
          "model": (config.get("model") or {}).get("name", ""),
          "dataset": (config.get("data") or {}).get("dataset", ""),
          "natural": is_natural(config) if config else False,
          "metrics": metrics, "columns": _declared_columns(built)}


# The figures of the first two tables; the third holds every other evaluator scalar.
_MAIN_EVALS = ("clean", "corruptions")


def _evaluator_metrics(results: Dict) -> Dict[str, float]:
  return {k: v for k, v in (results.get("metrics") or {}).items()
          if isinstance(v, (int, float)) and not isinstance(v, bool)
          and k.split("/", 1)[0] not in _MAIN_EVALS}


def _built_evaluators(config: Dict):
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


def _declared_columns(built) -> Dict[str, Dict]:
  """`<name>/<metric>` -> {label, convention, higher_is_better} of the run's evaluations
  (`_built_evaluators`)."""
  return {f"{e.name}/{c.metric}": {"label": f"{e.name}: {c.label}", "convention": c.convention,
                                    "higher_is_better": c.higher_is_better}
          for e in built for c in e.metric_columns()}


def stale_evaluations(cfg, built, results: Dict) -> List[str]:
  """Names of the run's recorded evaluations (results.json "evals", beside clean and corruptions)
  whose settings differ from what the current code would run for the run's config
  (`_built_evaluators`; a setting added since, such as the adversarial evaluation's APGD-DLR and
  unbounded check of 2026-12-05): their figures answer another question than the columns' labels
  say."""
  from freqrobust import evaluators
  records = results.get("evals") or {}
  stale = []
  for e in built:
    stored = records.get(e.name)
    if e.name in _MAIN_EVALS or not isinstance(stored, dict) or "settings" not in stored:
      continue
    try:
      if not evaluators.same_settings(stored, e, cfg):
        stale.append(e.name)
    except (KeyError, AttributeError, TypeError, ValueError):
      continue
  return stale


def _describe_sets(sets: Optional[Dict]) -> str:
  if not sets:
    return "no corruption evaluation"
  known = lambda k: "?" if sets.get(k) is None else sets[k]
  return (f"{known('dataset')} ({known('source')}), {known('num_examples')} images per set, "
          f"generation seed {known('seed')}, recipe version {known('recipe_version')}, "
          f"frost: {known('frost')}")


def _merged_sets(name: str, runs: List[Dict]) -> Optional[Dict]:
  """The corrupted sets of a baseline group: every field's known value across its seeds. Seeds
  that saw different sets cannot be averaged into one reference: refused, naming them."""
  with_sets = [r for r in runs if r["sets"]]
  for i, a in enumerate(with_sets):
    for b in with_sets[i + 1:]:
      if workdir_lib.corrupted_set_differences(a["sets"], b["sets"]):
        raise ValueError(
            f"The baseline runs of {name} were evaluated on different corrupted sets "
            f"({a['workdir']}: {_describe_sets(a['sets'])}; {b['workdir']}: "
            f"{_describe_sets(b['sets'])}). {_reevaluate()}")
  if not with_sets:
    return None
  return {k: next((r["sets"][k] for r in with_sets if r["sets"].get(k) is not None), None)
          for k in workdir_lib.CORRUPTED_SET_FIELDS}


def _reevaluate() -> str:
  from freqrobust.corruptions import RECIPE_VERSION
  return ("Evaluate the baseline and the runs compared with it on the same sets: re-evaluate the "
          f"older side (the current code generates recipe version {RECIPE_VERSION}), every seed "
          "of it, with python -m freqrobust.evaluate --workdir=DIR.")


def stale_notes(workdir: str, results: Dict, config: Optional[Dict] = None) -> List[str]:
  """How a finished run's method trained differently from the current code at its recorded
  settings (fields added since, behaviour changes since: `augment.base.stale_notes`)."""
  from freqrobust.augment import aps, base, registry
  choices = results.get("method_choices") or {}
  name = choices.get("method")
  cls = aps.PaperMethod if name == "paper" else registry.METHODS.get(name)
  if cls is None:
    return []
  if config is None:
    config_path = workdir_lib.path(workdir, workdir_lib.CONFIG)
    config = workdir_lib.read_json(config_path) if os.path.exists(config_path) else {}
  return base.stale_notes(cls, choices, config)


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


def group_name(run: str) -> str:
  return re.sub(r"_seed-\d+", "", run)


def _std(values) -> float:
  """Sample standard deviation over seeds (ddof = 1); 0 for a single seed."""
  return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def backbone_of(runs: List[Dict]) -> str:
  """The backbone (and dataset) a group's runs trained: what its rows are compared within."""
  found = sorted({f"{r['model']} on {r['dataset']}" for r in runs})
  return found[0] if len(found) == 1 else " / ".join(found)


def aggregate(root: str, baseline: Optional[str] = None) -> Dict:
  """Rows of the table; each run is compared with the baseline group of its own backbone (the
  natural-training group, read from the runs' config.json, or the group named by `baseline`)."""
  groups: Dict[str, List[Dict]] = {}
  for run in sorted(os.listdir(root)):
    if not os.path.isdir(os.path.join(root, run)):
      continue
    loaded = load_run(os.path.join(root, run))
    if loaded is not None:  # Stale runs form a row of their own, never averaged with fresh ones.
      name = group_name(run) + (" (stale)" if loaded["stale"] else "")
      groups.setdefault(name, []).append(loaded)
  if not groups:
    raise FileNotFoundError(f"No finished runs under {root} (each needs results.json with status "
                            "\"finished\"; `python -m freqrobust.evaluate --workdir=DIR` finishes "
                            "a run whose evaluations were interrupted).")
  model_of = {g: backbone_of(runs) for g, runs in groups.items()}
  if baseline:
    candidates = [g for g in groups if re.search(rf"(^|_){re.escape(baseline)}($|_)", g)]
    what = f"whose name contains {baseline!r}"
  else:
    candidates = [g for g, runs in groups.items()
                  if all(r["natural"] for r in runs) and "(stale)" not in g]
    what = "of natural training (by their config.json)"
  base_of_model: Dict[str, str] = {}
  for g in candidates:
    if model_of[g] in base_of_model:
      raise workdir_lib.UserError(
          f"Two baseline groups {what} for {model_of[g]}: {base_of_model[model_of[g]]} and {g}; "
          "name one with --baseline=TOKEN.")
    base_of_model[model_of[g]] = g
  if not base_of_model:
    raise workdir_lib.UserError(
        f"No baseline group {what} under {root}; groups: {', '.join(groups)}. Pass "
        "--baseline=TOKEN (a token of the baseline's run name).")
  # Differences, mCE and Relative mCE compare a run with its baseline on the same corrupted sets.
  base_sets = {model: _merged_sets(name, groups[name]) for model, name in base_of_model.items()}
  for name in [g for g in groups if g not in base_of_model.values()]:
    model = model_of[name]
    if model not in base_sets:
      continue  # Refused below, naming the baselines there are.
    for r in groups[name]:
      r["other_sets"] = [
          f"{k}: {r['sets'].get(k)!r} (baseline {base_sets[model].get(k)!r})"
          for k in workdir_lib.corrupted_set_differences(base_sets[model], r["sets"])]
    other = [r for r in groups[name] if r["other_sets"]]
    if other:  # A row of their own, compared on clean accuracy only.
      groups[name] = [r for r in groups[name] if r not in other]
      if not groups[name]:
        del groups[name]
      groups.setdefault(name + " (other sets)", []).extend(other)
  stats = {}
  for model, name in base_of_model.items():
    base = groups[name]
    with_c = [r for r in base if r["table"]]
    rates = [r["images_per_s"] for r in base if r["images_per_s"]]
    stats[model] = dict(
        name=name, clean=float(np.mean([r["clean"] for r in base])), sets=base_sets[model],
        metrics=_metric_means(base),
        corrupted_clean=(float(np.mean([r["corrupted_clean"] for r in with_c]))
                         if with_c and all(r["corrupted_clean"] is not None for r in with_c)
                         else None),
        images_per_s=float(np.mean(rates)) if rates else None,
        robust=(float(np.mean([metrics.robust_accuracy(r["table"], CORRUPTIONS) for r in with_c]))
                if with_c else None),
        # The baseline's seed-mean accuracy table: each run's mCE is taken against it.
        table=({c: {s: float(np.mean([r["table"][c][s] for r in with_c]))
                    for s in metrics.SEVERITIES} for c in CORRUPTIONS} if with_c else None))
  rows = []
  for name, runs in groups.items():
    model = model_of.get(name.replace(" (other sets)", ""), model_of.get(name))
    if model not in stats:
      raise workdir_lib.UserError(
          f"No baseline for {name} ({model}): the baselines are "
          + ", ".join(f"{b['name']} ({m})" for m, b in stats.items())
          + ". Add natural-training runs of that backbone, or pass --baseline=TOKEN.")
    base = stats[model]
    clean = np.array([r["clean"] for r in runs])
    stale: Dict[str, int] = {}
    for r in runs:
      for note in r.get("stale", ()):
        stale[note] = stale.get(note, 0) + 1
    other_sets = sorted({d for r in runs for d in r.get("other_sets", ())})
    row = {"name": name, "seeds": len(runs), "baseline": name == base["name"], "stale": stale,
           "baseline_of": base["name"], "clean_mean": float(clean.mean()), "clean_std": _std(clean),
           "other_sets": other_sets, "left_out": [n for r in runs for n in r.get("left_out", ())]}
    row["clean_delta"] = row["clean_mean"] - base["clean"]
    rates = [r["images_per_s"] for r in runs if r["images_per_s"]]
    if rates:  # Cost: training speed, and as a fraction of the baseline's.
      row["images_per_s"] = float(np.mean(rates))
      if base["images_per_s"]:
        row["relative_speed"] = row["images_per_s"] / base["images_per_s"]
    tabled = [r for r in runs if r["table"]]
    if tabled and base["robust"] is not None and not other_sets:
      rob = np.array([metrics.robust_accuracy(r["table"], CORRUPTIONS) for r in tabled])
      row.update(robust_mean=float(rob.mean()), robust_std=_std(rob),
                 robust_delta=float(rob.mean()) - base["robust"])
      _detail(row, tabled, base)
      # Per-corruption ratios (metrics.mce_relative); undefined (n/a) where the baseline makes
      # no error on a corruption.
      if not metrics.baseline_without_error(base["table"], CORRUPTIONS):
        mce = np.array([metrics.mce_relative(r["table"], base["table"], CORRUPTIONS)
                        for r in tabled])
        row.update(mce_mean=float(mce.mean()), mce_std=_std(mce))
      # Hendrycks & Dietterich's Relative mCE (degradation from each model's own clean error).
      if (base["corrupted_clean"] is not None
          and all(r["corrupted_clean"] is not None for r in tabled)
          and not metrics.baseline_without_degradation(base["table"], base["corrupted_clean"],
                                                        CORRUPTIONS)):
        rel = np.array([metrics.relative_mce_hd(r["table"], r["corrupted_clean"], base["table"],
                                                base["corrupted_clean"], CORRUPTIONS)
                        for r in tabled])
        row.update(relative_mce_hd_mean=float(rel.mean()), relative_mce_hd_std=_std(rel))
    row["metrics"] = {}
    for key, values in _metric_values(runs).items():
      mean = float(np.mean(values))
      base_mean = base["metrics"].get(key)
      row["metrics"][key] = {"mean": mean, "std": _std(values), "seeds": len(values),
                             "delta": None if base_mean is None else mean - base_mean}
    rows.append(row)
  rows.sort(key=lambda r: (r["baseline_of"], not r["baseline"], r["name"]))
  columns: Dict[str, Dict] = {}
  for runs in groups.values():
    for r in runs:
      columns.update(r.get("columns", {}))
  return {"baselines": sorted(b["name"] for b in stats.values()), "rows": rows,
          "sets": {b["name"]: b["sets"] for b in stats.values()}, "columns": columns}


def _metric_values(runs: List[Dict]) -> Dict[str, List[float]]:
  values: Dict[str, List[float]] = {}
  for r in runs:
    for k, v in r.get("metrics", {}).items():
      values.setdefault(k, []).append(float(v))
  return values


def _metric_means(runs: List[Dict]) -> Dict[str, float]:
  return {k: float(np.mean(v)) for k, v in _metric_values(runs).items()}


def _detail(row: Dict, tabled: List[Dict], base: Dict) -> None:
  """Unnormalised mCE, Robust. without the background-lifting corruptions, and accuracy per
  corruption family and per severity (seed means; family and no-background figures also as
  differences to the baseline)."""
  without_bg = [c for c in CORRUPTIONS if c not in metrics.BACKGROUND_LIFTING]
  unnorm = np.array([metrics.mce_unnormalized(r["table"], CORRUPTIONS) for r in tabled])
  no_bg = np.array([metrics.robust_accuracy(r["table"], without_bg) for r in tabled])
  base_no_bg = metrics.robust_accuracy(base["table"], without_bg)
  row.update(mce_unnorm_mean=float(unnorm.mean()), mce_unnorm_std=_std(unnorm),
             robust_no_bg_mean=float(no_bg.mean()), robust_no_bg_std=_std(no_bg),
             robust_no_bg_delta=float(no_bg.mean()) - base_no_bg)
  base_cat = metrics.accuracy_by_category(base["table"])
  for cat in base_cat:
    values = [metrics.accuracy_by_category(r["table"])[cat] for r in tabled]
    row[f"{cat}_mean"] = float(np.mean(values))
    row[f"{cat}_delta"] = float(np.mean(values)) - base_cat[cat]
  for s in metrics.SEVERITIES:
    row[f"severity{s}_mean"] = float(np.mean(
        [metrics.accuracy_by_severity(r["table"], CORRUPTIONS)[s] for r in tabled]))


def _pm(std, seeds: int, digits: int = 2) -> str:
  """" ± std", or nothing for a single seed (its spread is unknown, not zero)."""
  return f" ± {std:.{digits}f}" if seeds > 1 else ""


def _cell(mean, std, delta, is_base, seeds):
  if mean is None:
    return "n/a"
  if is_base:
    return f"({mean:.2f}{_pm(std, seeds)})"
  return f"{delta:+.2f}{_pm(std, seeds)}"


def write(summary: Dict, out: str) -> None:
  os.makedirs(out, exist_ok=True)
  rows = summary["rows"]
  lines = ["| run | seeds | Acc. (%) | Robust. (%) | mCE (vs base, %) | "
           "train images/s (x baseline) |",
           "|---|---|---|---|---|---|"]
  for r in rows:
    n = r["seeds"]
    acc = _cell(r["clean_mean"], r["clean_std"], r["clean_delta"], r["baseline"], n)
    rob = _cell(r.get("robust_mean"), r.get("robust_std"), r.get("robust_delta"), r["baseline"],
                n)
    mce = f"{r['mce_mean']:.0f}{_pm(r['mce_std'], n, 0)}" if "mce_mean" in r else "n/a"
    speed = "n/a"
    if "images_per_s" in r:
      speed = f"{r['images_per_s']:.0f}" + (f" ({r['relative_speed']:.2f}x)"
                                             if "relative_speed" in r else "")
    lines.append(f"| {r['name']} | {r['seeds']} | {acc} | {rob} | {mce} | {speed} |")
  lines += ["", "Baseline in absolute values (parentheses), the rest as differences to it; "
            "mean ± sample standard deviation over seeds (no ± with one seed). Robust. = mean "
            f"accuracy over the {len(CORRUPTIONS)} benchmark corruptions x 5 severities; "
            "mCE (vs base) = 100 * mean_c [sum_s E(c, s) / sum_s E_baseline(c, s)], the mean over "
            f"the {len(CORRUPTIONS)} benchmark corruptions of per-corruption error ratios against "
            "the baseline of the same backbone (the paper's mCE: Hendrycks & Dietterich's mCE "
            "with the baseline in AlexNet's place; not their Relative mCE, which is in the "
            "second table). "
            f"{len(CORRUPTIONS)} corruptions averaged; the extras are not. Train images/s: the "
            "median logged training rate (metrics.jsonl) averaged over seeds, and its ratio to "
            "the baseline's (the cost of the method: 0.5x = twice the training time); measured "
            "wherever each run ran, so compare rows from one machine."]
  lines += _detail_lines(rows)
  lines += _evaluation_lines(rows, summary.get("columns", {}))
  lines += _sets_lines(summary)
  lines += _stale_lines(rows)
  lines += _left_out_lines(rows)
  workdir_lib.atomic_write(os.path.join(out, "table.md"),
                           lambda f: f.write("\n".join(lines) + "\n"))
  keys = ["name", "seeds", "baseline", "clean_mean", "clean_std", "clean_delta", "images_per_s",
          "relative_speed", "robust_mean",
          "robust_std", "robust_delta", "mce_mean", "mce_std", "mce_unnorm_mean",
          "mce_unnorm_std", "relative_mce_hd_mean", "relative_mce_hd_std", "robust_no_bg_mean",
          "robust_no_bg_std", "robust_no_bg_delta", "other_sets"]
  keys += [f"{c}_{k}" for c in metrics.CATEGORIES for k in ("mean", "delta")]
  keys += [f"severity{s}_mean" for s in metrics.SEVERITIES]
  # Every scalar the evaluations recorded: <evaluation>/<metric> mean, std and delta.
  evaluated = sorted({k for r in rows for k in r.get("metrics", {})})
  fields = keys + [f"{k}_{part}" for k in evaluated for part in ("mean", "std", "delta")]

  def value(r, k):
    for m in evaluated:
      for part in ("mean", "std", "delta"):
        if k == f"{m}_{part}":
          got = r.get("metrics", {}).get(m)
          return "" if got is None or got[part] is None or (
              part == "std" and got["seeds"] < 2) else got[part]
    if k.endswith("_std") and r["seeds"] < 2:  # A single seed's std is unknown: left empty.
      return ""
    return "; ".join(r.get(k) or ()) if k == "other_sets" else r.get(k, "")

  def write_csv(f):
    w = csv.DictWriter(f, fieldnames=fields)
    w.writeheader()
    for r in rows:
      w.writerow({k: value(r, k) for k in fields})
  workdir_lib.atomic_write(os.path.join(out, "table.csv"), write_csv)
  _plot_category_gains(rows, os.path.join(out, "category_gains.png"))
  _plot_corruption_vs_adversarial(rows, os.path.join(out, "corruption_vs_adversarial.png"))
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(rows), 3.4))
  names = [r["name"] for r in rows]
  x = np.arange(len(rows))
  ax.bar(x - 0.2, [r["clean_mean"] for r in rows], 0.4, yerr=[r["clean_std"] for r in rows],
         label="clean accuracy", color="#4c72b0")
  robust = robust_bar_heights(rows)
  ax.bar(x + 0.2, robust, 0.4, yerr=[r.get("robust_std", 0) for r in rows],
         label="Robust. (mean corrupted accuracy)", color="#dd8452")
  for xi, value in zip(x, robust):
    if np.isnan(value):
      ax.text(xi + 0.2, 0.02, "n/a", transform=ax.get_xaxis_transform(), ha="center",
              va="bottom", fontsize=7, rotation=90)
  ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
  ax.set_ylabel("%")
  lo = min([r["clean_mean"] for r in rows] + [r.get("robust_mean", 100) for r in rows])
  ax.set_ylim(max(0, lo - 10), 100)
  # Beside the axes, not over them: inside, it hid the last rows' bars.
  ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
  ax.set_title("Accuracy and robustness (mean ± std over seeds)", fontsize=9)
  fig.tight_layout()
  fig.savefig(os.path.join(out, "robustness.png"), dpi=120, bbox_inches="tight")
  plt.close(fig)


def robust_bar_heights(rows: List[Dict]) -> np.ndarray:
  """The robustness figure's Robust. bars: NaN (drawn as "n/a", no bar) for a row without the
  figure, never 0%."""
  return np.asarray([r.get("robust_mean", np.nan) for r in rows], np.float64)


def _evaluation_lines(rows: List[Dict], columns: Dict[str, Dict]) -> List[str]:
  """The third table: every other scalar the runs' evaluations recorded (`<evaluation>/<metric>`,
  labelled as the evaluator declares; undeclared ones under their key), baseline absolute."""
  present = {k for r in rows for k in r.get("metrics", {})}
  # The columns the evaluators declare (every recorded scalar is in table.csv).
  keys = sorted(present & set(columns)) if columns else sorted(present)
  if not keys:
    return []
  label = lambda k: columns.get(k, {}).get("label", k)
  lines = ["", "| run | " + " | ".join(label(k) for k in keys) + " |",
           "|---|" + "---|" * len(keys)]
  for r in rows:
    cells = []
    for k in keys:
      m = r.get("metrics", {}).get(k)
      cells.append("n/a" if m is None else _cell(m["mean"], m["std"], m["delta"],
                                                 r["baseline"] or m["delta"] is None,
                                                 m["seeds"]))
    lines.append(f"| {r['name']} | " + " | ".join(cells) + " |")
  notes = [f"{label(k)}: {columns[k]['convention']}"
           + ("" if columns[k]["higher_is_better"] else " (lower is better)")
           for k in keys if k in columns]
  lines += ["", "Other evaluations (results.json \"metrics\"), baseline absolute, the rest as "
            "differences to it. " + "; ".join(notes) + ("." if notes else "")]
  return lines


def _sets_lines(summary: Dict) -> List[str]:
  """Which corrupted sets the figures were measured on, and the rows measured on others."""
  from freqrobust.corruptions import RECIPE_VERSION
  lines = [""]
  for name, sets in summary.get("sets", {}).items():
    note = ""
    if (sets and sets.get("source") != "tfds"
        and sets.get("recipe_version") not in (None, RECIPE_VERSION)):
      note = (f" (the current code generates recipe version {RECIPE_VERSION}: new runs will "
              "be evaluated on other sets and form rows marked \"(other sets)\")")
    lines.append(f"Corrupted sets of {name}: {_describe_sets(sets)}{note}.")
  others = [r for r in summary["rows"] if r.get("other_sets")]
  for r in others:
    lines.append(f"- {r['name']}: evaluated on other corrupted sets than its baseline ("
                 + "; ".join(r["other_sets"]) + "): only its clean accuracy is compared.")
  if others:
    lines.append(_reevaluate())
  return lines


def _stale_lines(rows: List[Dict]) -> List[str]:
  """The runs that trained otherwise than the current code would at their settings."""
  stale = [r for r in rows if r.get("stale")]
  if not stale:
    return []
  lines = ["", "Stale rows: these runs trained differently from what the current code does at "
           "the same settings (kept apart from fresh seeds of the same run); rerun them in a "
           "fresh root to measure the method as it is now."]
  for r in stale:
    for note, count in r["stale"].items():
      lines.append(f"- {r['name']}: {count} of {r['seeds']} run(s) {note}.")
  return lines


def _left_out_lines(rows: List[Dict]) -> List[str]:
  """The evaluations recorded with other settings than the current code runs (not shown)."""
  rows = [r for r in rows if r.get("left_out")]
  if not rows:
    return []
  lines = ["", "Evaluations left out: recorded with other settings than the current code runs "
           "for these runs' configs, so their figures are not shown under the columns above "
           "(whose seed counts say how many runs each figure averages); re-evaluate with:"]
  for r in rows:
    lines += [f"- {r['name']}: {n}" for n in r["left_out"]]
  return lines


def _detail_lines(rows: List[Dict]) -> List[str]:
  """The second table: unnormalised mCE, Robust. without the background-lifting corruptions,
  per family (differences to the baseline) and per severity (absolute)."""
  if not any("mce_unnorm_mean" in r for r in rows):
    return []
  cats = [c for c in metrics.CATEGORIES if any(f"{c}_mean" in r for r in rows)]
  head = (["run", "mCE (unnorm., %)", "Rel. mCE (H&D, %)", "Robust. w/o bg (%)"] +
          [f"{c} (%)" for c in cats] +
          [f"s{s} (%)" for s in metrics.SEVERITIES])
  lines = ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in rows:
    if "mce_unnorm_mean" not in r:
      continue
    base = r["baseline"]
    n = r["seeds"]
    rel = (f"{r['relative_mce_hd_mean']:.0f}{_pm(r['relative_mce_hd_std'], n, 0)}"
           if "relative_mce_hd_mean" in r else "n/a")
    cells = [r["name"], f"{r['mce_unnorm_mean']:.2f}{_pm(r['mce_unnorm_std'], n)}", rel,
             _cell(r["robust_no_bg_mean"], r["robust_no_bg_std"], r["robust_no_bg_delta"], base,
                   n)]
    cells += [f"({r[c + '_mean']:.2f})" if base else f"{r[c + '_delta']:+.2f}" for c in cats]
    cells += [f"{r[f'severity{s}_mean']:.2f}" for s in metrics.SEVERITIES]
    lines.append("| " + " | ".join(cells) + " |")
  lines += ["", "mCE (unnorm.) = mean_c CE_c (AugMix / PRIME convention). Rel. mCE (H&D) = "
            "Hendrycks & Dietterich's Relative mCE, 100 * mean_c [sum_s (E(c, s) - E_clean) / "
            "sum_s (E_baseline(c, s) - E_baseline_clean)], with E_clean the clean error on the "
            "images the corrupted sets were made from (baseline = 100; below 100: the model loses "
            "less under corruption than the baseline does). Robust. w/o bg leaves "
            f"out {', '.join(metrics.BACKGROUND_LIFTING)} (they lift a black background). "
            "Families (Hendrycks & Dietterich): " + "; ".join(
                f"{c}: {', '.join(n)}" for c, n in metrics.CATEGORIES.items()) +
            ". s1..s5: mean accuracy over the benchmark corruptions at each severity."]
  return lines


def adversarial_keys(rows: List[Dict]) -> List[str]:
  """The adversarial evaluations' main-radius accuracies the rows recorded (`<name>/pgd_main`,
  `<name>/apgd_main`, `<name>/worst_main`: the worst case over every attack, the literature's
  robust accuracy)."""
  return sorted({k for r in rows for k in r.get("metrics", {})
                 if k.endswith(("/pgd_main", "/apgd_main", "/worst_main"))})


def _plot_corruption_vs_adversarial(rows: List[Dict], path: str) -> None:
  """Robust. (corruptions) against adversarial accuracy, one point per row with its seed spread
  as error bars, one panel per adversarial figure (shared axes)."""
  keys = adversarial_keys(rows)
  points = [r for r in rows if "robust_mean" in r]
  if not keys or not points:
    return
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys), 3.8), sharex=True,
                           sharey=True, squeeze=False)
  for ax, key in zip(axes[0], keys):
    for r in points:
      m = r.get("metrics", {}).get(key)
      if m is None:
        continue
      ax.errorbar(r["robust_mean"], m["mean"], xerr=r.get("robust_std", 0), yerr=m["std"],
                  fmt="o", capsize=3)
      ax.annotate(r["name"], (r["robust_mean"], m["mean"]), fontsize=7,
                  xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("Robust. (%, mean corrupted accuracy)")
    ax.set_title(key, fontsize=9)
    ax.grid(alpha=0.3)
  axes[0][0].set_ylabel("adversarial accuracy (%)")
  fig.suptitle("Corruption against adversarial robustness (mean ± std over seeds)", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _plot_category_gains(rows: List[Dict], path: str) -> None:
  """Bar chart: accuracy gain per corruption family against the baseline, one group per run."""
  others = [r for r in rows if not r["baseline"] and any(f"{c}_delta" in r
                                                         for c in metrics.CATEGORIES)]
  if not others:
    return
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  cats = list(metrics.CATEGORIES)
  fig, ax = plt.subplots(figsize=(max(4.5, 1.5 + 0.9 * len(others) * len(cats) / 4), 3.4))
  width = 0.8 / len(cats)
  x = np.arange(len(others))
  for k, cat in enumerate(cats):
    ax.bar(x + (k - (len(cats) - 1) / 2) * width, [r.get(f"{cat}_delta", 0.0) for r in others],
           width, label=cat)
  ax.axhline(0, color="black", linewidth=0.6)
  ax.set_xticks(x, [r["name"] for r in others], rotation=30, ha="right", fontsize=8)
  ax.set_ylabel("accuracy gain vs baseline (points)")
  ax.legend(fontsize=8)
  ax.set_title("Gain per corruption family (mean over seeds)", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv, flag_values: Optional[flags.FlagValues] = None):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  values = flags.FLAGS if flag_values is None else flag_values
  summary = aggregate(values.root, values.baseline or None)
  out = values.out or os.path.join(values.root, "report")
  write(summary, out)
  with open(os.path.join(out, "table.md")) as f:
    print(f.read())
  print(f"Written to {out}/ (table.md, table.csv, robustness.png, category_gains.png)")


if __name__ == "__main__":
  from freqrobust import cli
  define_flags()
  cli.run(main)
