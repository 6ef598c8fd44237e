"""Corruption-robustness evaluation (docs/METHOD.md §6) and its report: the `corruptions`
evaluator.

`run_corruption_eval(predict_fn, config, workdir, baseline_workdir=None)` evaluates a
`predict_fn(images float32 NHWC in [0, 1]) -> logits` on the clean test set and on every
(corruption, severity) set of `config.corruptions`, and writes into DIR/corruption_eval/:
results.json, accuracy.csv, report.md, heatmap.png and per_corruption.png.
Finished sets are kept in partial.json, so an interrupted evaluation continues where it stopped.
The evaluator `Corruptions` runs it on a loaded model (`python -m freqrobust.evaluate
--workdir=DIR --evals=corruptions [--baseline=OTHER_WORKDIR]`).

Resuming is keyed on the model's identity (a content hash of its variables) and every evaluation
setting, so results of another model (a retrained run at the same step) are never reused.
"""
import concurrent.futures
import csv
import os
import sys
from typing import Any, Callable, Optional

import numpy as np

from freqrobust import corruptions, distributed
from freqrobust import metrics
from freqrobust import progress as progress_lib
from freqrobust import workdir as workdir_lib
from freqrobust.data import corrupted
from freqrobust.evaluators import base

OUT_DIR = workdir_lib.CORRUPTION_EVAL
PredictFn = Callable[[np.ndarray], Any]


def accuracy(predict_fn: PredictFn, images: np.ndarray, labels: np.ndarray) -> float:
  """Top-1 accuracy (%) of `predict_fn` (float32 [0, 1] -> logits, batching itself: see
  `freqrobust.sharding.BatchedPredict`) on uint8 `images`."""
  if len(images) == 0:
    raise ValueError("Cannot evaluate on an empty set; check config.corruptions.num_examples.")
  logits = np.asarray(predict_fn(np.asarray(images, np.float32) / 255.))
  return 100. * float(np.mean(logits.argmax(-1) == np.asarray(labels)))


def _write_json(path: str, content: Any) -> None:
  workdir_lib.write_json(path, content, indent=1)


def _set_name(name: str, severity: int) -> str:
  return f"{name}/{severity}"


def _load_partial(path: str, meta: dict) -> dict:
  """The finished sets of an interrupted evaluation of the same model with the same settings."""
  if workdir_lib.exists(path):
    try:
      partial = workdir_lib.read_json(path)
      if partial.get("meta") == meta:
        return partial
      print(f"{path}: an evaluation of another model or with other settings; starting over.",
            flush=True)
    except (OSError, ValueError):
      print(f"{path} is unreadable; starting the evaluation over.", flush=True)
  return {"meta": meta, "clean_accuracy": None, "sets": {}}


def _baseline_table(baseline_results: Optional[dict], baseline_workdir: Optional[str],
                    meta: dict) -> Optional[dict]:
  """The baseline run's accuracy table, refused when it saw other corrupted sets than `meta`'s
  (the mCEs against a baseline only mean something on the same sets)."""
  if baseline_results is None:
    return None
  differ = workdir_lib.corrupted_set_differences(baseline_results, meta, missing_differs=True)
  if differ:
    raise ValueError(
        f"The baseline {baseline_workdir} was evaluated on other corrupted sets ("
        + ", ".join(f"{k}: {baseline_results.get(k)!r} vs {meta[k]!r}" for k in differ)
        + "); re-evaluate it with these settings (python -m freqrobust.evaluate "
        f"--workdir={baseline_workdir}, same corruption fields).")
  return workdir_lib.accuracy_table(baseline_results)


def _evaluate_sets(predict_fn: PredictFn, names, load: Callable, partial: dict,
                   save: Optional[Callable[[], None]], progress: bool) -> None:
  """Accuracy on every (corruption, severity) set not yet in `partial["sets"]`, each recorded
  there (and `save()`d) as it finishes; the next set is read (or generated) on a worker thread
  while the current one is predicted."""
  todo = [(n, s) for n in names for s in corruptions.SEVERITIES
          if _set_name(n, s) not in partial["sets"]]
  bar = None
  if progress:
    import tqdm  # only for the interactive bar
    total = len(names) * len(corruptions.SEVERITIES)
    bar = tqdm.tqdm(total=total, initial=total - len(todo), desc="corrupted sets", unit="set",
                    file=progress_lib.ConsoleStream(sys.stderr))
  with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
    upcoming = pool.submit(load, *todo[0]) if todo else None
    for i, (name, severity) in enumerate(todo):
      images, labels = upcoming.result()
      upcoming = pool.submit(load, *todo[i + 1]) if i + 1 < len(todo) else None
      partial["sets"][_set_name(name, severity)] = {
          "accuracy": accuracy(predict_fn, images, labels), "examples": int(len(images))}
      if save is not None:
        save()
      if bar is not None:
        bar.set_postfix_str(_set_name(name, severity))
        bar.update()
  if bar is not None:
    bar.close()


def run_corruption_eval(predict_fn: PredictFn, config: Any, workdir: str,
                        baseline_workdir: Optional[str] = None, *,
                        load_split: Optional[Callable] = None, progress: bool = True,
                        step: Optional[int] = None,
                        model_fingerprint: Optional[str] = None,
                        write: Optional[bool] = None) -> dict:
  """Evaluates `predict_fn` on the clean and corrupted test sets; writes and returns the report.

  Args:
    predict_fn: float32 NHWC images in [0, 1] -> logits (N, classes).
    config: the run's config (fields: see `freqrobust.data.corrupted`; eval.batch_size).
    workdir: the report goes to workdir/corruption_eval/.
    baseline_workdir: a run evaluated before: gives the paper's mCE against it and H&D's
      Relative mCE.
    load_split: replaces `freqrobust.data.load_split` (tests).
    progress: a tqdm bar over the sets.
    step: the checkpoint step evaluated (recorded; part of the resume key).
    model_fingerprint: a content hash of the model's variables (`trained.fingerprint`): the
      resume key, so results of another model are never reused. None: the step alone keys it.
    write: write partial.json and the report (default: on process 0 only); False for an
      evaluation during training (scalars only).

  Returns:
    The contents of results.json.
  """
  settings = corrupted.CorruptionSettings.from_config(config)
  baseline_results = None
  if baseline_workdir:  # fail before the long evaluation, not after it
    baseline_results = workdir_lib.read_corruption_results(baseline_workdir)
  out_dir = workdir_lib.path(workdir, OUT_DIR)
  resumable = True if write is None else bool(write)  # False: scalars only, nothing kept.
  write = resumable and distributed.is_writer()
  if write:
    workdir_lib.make_dir(out_dir)
  clean = corrupted.clean_test_set(config, load_split)
  meta = dict(settings.set_fields(int(len(clean[0]))), step=step, model=model_fingerprint,
              clean_sha256=corrupted.content_digest(*clean))
  baseline = _baseline_table(baseline_results, baseline_workdir, meta)
  baseline_clean = baseline_results.get("clean_accuracy") if baseline_results else None
  partial_path = workdir_lib.path(out_dir, "partial.json")
  # Process 0 reads what is done and tells the others: every process must predict the same sets
  # (the predictions are collectives), and only process 0 writes.
  partial = (distributed.decide(lambda: _load_partial(partial_path, meta)) if resumable
             else {"meta": meta, "clean_accuracy": None, "sets": {}})
  if partial["clean_accuracy"] is None:
    partial["clean_accuracy"] = accuracy(predict_fn, *clean)
    if write:
      _write_json(partial_path, partial)
  load = lambda name, severity: corrupted.load_corrupted(config, name, severity, clean=clean,
                                                         load_split=load_split)
  _evaluate_sets(predict_fn, settings.names, load, partial,
                 (lambda: _write_json(partial_path, partial)) if write else None,
                 progress and write)
  table = {n: {s: partial["sets"][_set_name(n, s)]["accuracy"] for s in corruptions.SEVERITIES}
           for n in settings.names}
  results = build_results(table, partial["clean_accuracy"], settings, meta, baseline,
                          baseline_workdir, baseline_clean)
  if write:
    write_report(results, out_dir)
  return results


def build_results(table: dict[str, dict[int, float]], clean_accuracy: float,
                  settings: corrupted.CorruptionSettings, meta: dict,
                  baseline: Optional[dict] = None,
                  baseline_workdir: Optional[str] = None,
                  baseline_clean_accuracy: Optional[float] = None) -> dict:
  """The report's figures, each named with its convention."""
  benchmark = [n for n in corruptions.CORRUPTIONS if n in table]
  summary = {"robust_accuracy": None, "mce_unnormalized": None, "mce_relative": None,
             "relative_mce_hd": None, "accuracy_by_severity": None}
  if benchmark:
    summary = metrics.summarize(table, clean_accuracy, benchmark, baseline,
                                baseline_clean_accuracy)
  extras = [n for n in table if n not in corruptions.CORRUPTIONS]
  return {
      "conventions": dict(metrics.CONVENTIONS, note=(
          f"all figures in percent; {metrics.averaged_note(len(benchmark))}"
          + (f"; the extras ({', '.join(extras)}) are reported per corruption, not averaged"
             if extras else ""))),
      "corruptions_averaged": len(benchmark),
      "dataset": settings.dataset,
      "source": settings.source,
      "frost": settings.frost_source,
      "frost_note": ("frost uses a procedural frost texture, not the benchmark's photographs"
                     if settings.frost_source == "procedural" and "frost" in table else ""),
      "num_examples": meta["num_examples"],
      "clean_sha256": meta.get("clean_sha256"),
      "model": meta.get("model"),
      "step": meta.get("step"),
      "seed": settings.seed,
      "recipe_version": corruptions.RECIPE_VERSION,
      "benchmark_corruptions": benchmark,
      "extra_corruptions": extras,
      "clean_accuracy": clean_accuracy,
      "robust_accuracy": summary["robust_accuracy"],
      "mce_unnormalized": summary["mce_unnormalized"],
      "mce_relative": summary["mce_relative"],
      "mce_relative_undefined_on": (metrics.baseline_without_error(baseline, benchmark)
                                    if baseline is not None and benchmark else []),
      "relative_mce_hd": summary["relative_mce_hd"],
      "relative_mce_hd_undefined_on": (
          metrics.baseline_without_degradation(baseline, baseline_clean_accuracy, benchmark)
          if baseline is not None and baseline_clean_accuracy is not None and benchmark else []),
      "baseline_clean_accuracy": baseline_clean_accuracy,
      "baseline_workdir": baseline_workdir or None,
      "accuracy_by_severity": ({str(s): a for s, a in summary["accuracy_by_severity"].items()}
                               if summary["accuracy_by_severity"] else None),
      "corruption_error": metrics.corruption_errors(table, list(table)),
      "baseline_corruption_error": (metrics.corruption_errors(baseline, benchmark)
                                    if baseline is not None else None),
      "accuracy": {n: {str(s): a for s, a in row.items()} for n, row in table.items()},
  }


def format_value(value: Optional[float]) -> str:
  """Two decimals, or "n/a" for a figure that is undefined."""
  return "n/a" if value is None else f"{value:.2f}"


def _against_baseline(results: dict, label: str, key: str, undefined_why: str,
                      averaged: str) -> str:
  """The report line of a figure taken against the baseline run: value, convention, baseline and
  the corruptions on which it is undefined."""
  undefined = results.get(f"{key}_undefined_on")
  return (f"- {label}: **{format_value(results[key])}** ({results['conventions'][key]}; "
          f"{averaged}; "
          f"baseline: {results['baseline_workdir'] or 'none given'}"
          + (f"; undefined: the baseline {undefined_why} {', '.join(undefined)}"
             if undefined else "") + ")")


def markdown_report(results: dict) -> str:
  lines = [f"# Corruption robustness ({results['dataset']}, source: {results['source']})", ""]
  conv = results["conventions"]
  # results.json files written before the field: count the benchmark corruptions.
  averaged = (f"{results.get('corruptions_averaged', len(results['benchmark_corruptions']))} "
              "corruptions averaged")
  lines += [
      f"- Clean accuracy: **{format_value(results['clean_accuracy'])}** ({conv['clean_accuracy']})",
      f"- Robust.: **{format_value(results['robust_accuracy'])}** ({conv['robust_accuracy']}; "
      f"{averaged})",
      f"- Unnormalised mCE: **{format_value(results['mce_unnormalized'])}** "
      f"({conv['mce_unnormalized']}; {averaged})",
      _against_baseline(results, "mCE vs baseline", "mce_relative", "makes no error on",
                        averaged),
      (_against_baseline(results, "Relative mCE (H&D)", "relative_mce_hd", "loses nothing on",
                         averaged)
       if "relative_mce_hd" in results else  # results.json written before the field
       "- Relative mCE (H&D): not recorded (evaluated before 2026-11-29; re-evaluate for it)"),
      f"- Examples per set: {results['num_examples']}; generation seed {results['seed']}; "
      f"recipe version {results['recipe_version']}; frost: {results['frost']}",
      f"- {conv['note']}.", ""]
  if results["frost_note"]:
    lines += [f"Frost (marked *) {results['frost_note']}.", ""]
  lines += ["Accuracy (%) per corruption and severity; CE = 100 - mean accuracy.", "",
            "| corruption | s1 | s2 | s3 | s4 | s5 | mean | CE |",
            "|---|---|---|---|---|---|---|---|"]
  for name, row in results["accuracy"].items():
    accs = [row[str(s)] for s in corruptions.SEVERITIES]
    label = name + (" *" if name == "frost" and results["frost_note"] else "")
    label += "" if name in corruptions.CORRUPTIONS else " (extra)"
    lines.append(f"| {label} | " + " | ".join(f"{a:.2f}" for a in accs) +
                 f" | {np.mean(accs):.2f} | {results['corruption_error'][name]:.2f} |")
  if results["accuracy_by_severity"]:
    by_sev = results["accuracy_by_severity"]
    lines.append("| **mean (benchmark)** | " + " | ".join(
        f"{by_sev[str(s)]:.2f}" for s in corruptions.SEVERITIES) +
                 f" | {results['robust_accuracy']:.2f} | {results['mce_unnormalized']:.2f} |")
  return "\n".join(lines) + "\n"


def write_report(results: dict, out_dir: str) -> None:
  """results.json, accuracy.csv, report.md, heatmap.png and per_corruption.png in `out_dir`."""
  _write_json(workdir_lib.path(out_dir, "results.json"), results)

  def write_csv(f):
    writer = csv.writer(f)
    writer.writerow(["corruption", "severity", "accuracy_percent", "error_percent", "benchmark"])
    writer.writerow(["clean", 0, f"{results['clean_accuracy']:.4f}",
                     f"{100 - results['clean_accuracy']:.4f}", ""])
    for name, row in results["accuracy"].items():
      for s in corruptions.SEVERITIES:
        writer.writerow([name, s, f"{row[str(s)]:.4f}", f"{100 - row[str(s)]:.4f}",
                         int(name in corruptions.CORRUPTIONS)])
  workdir_lib.atomic_write(workdir_lib.path(out_dir, "accuracy.csv"), write_csv)
  workdir_lib.atomic_write(workdir_lib.path(out_dir, "report.md"),
                           lambda f: f.write(markdown_report(results)))
  plot_heatmap(results, workdir_lib.path(out_dir, "heatmap.png"))
  plot_corruption_errors(results, workdir_lib.path(out_dir, "per_corruption.png"))


def _pyplot():
  from freqrobust.analysis import plots  # Sets matplotlib's Agg backend.
  return plots.plt


def _plots():
  from freqrobust.analysis import plots
  return plots


def _labels(results: dict) -> list[str]:
  return [n + (" *" if n == "frost" and results["frost_note"] else "")
          for n in results["accuracy"]]


def plot_heatmap(results: dict, path: str) -> None:
  """Corruption x severity accuracy heat map."""
  plt = _pyplot()
  names = list(results["accuracy"])
  grid = np.array([[results["accuracy"][n][str(s)] for s in corruptions.SEVERITIES]
                   for n in names])
  fig, ax = plt.subplots(figsize=(5.5, 0.32 * len(names) + 1.6))
  im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=100, aspect="auto")
  ax.set_xticks(range(len(corruptions.SEVERITIES)), [str(s) for s in corruptions.SEVERITIES])
  ax.set_yticks(range(len(names)), _labels(results), fontsize=8)
  ax.set_xlabel("severity")
  for i in range(grid.shape[0]):
    for j in range(grid.shape[1]):
      ax.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", fontsize=7,
              color="white" if grid[i, j] < 60 else "black")
  fig.colorbar(im, ax=ax, label="accuracy (%)")
  ax.set_title(f"Accuracy (%), clean {results['clean_accuracy']:.1f}", fontsize=9)
  fig.tight_layout()
  _plots().save_figure(fig, path, dpi=120, bbox_inches=None)


def plot_corruption_errors(results: dict, path: str) -> None:
  """Per-corruption error CE_c (and the baseline's, when given) as bars."""
  plt = _pyplot()
  names = list(results["corruption_error"])
  errors = [results["corruption_error"][n] for n in names]
  fig, ax = plt.subplots(figsize=(max(5., 0.45 * len(names) + 2), 3.8))
  positions = np.arange(len(names))
  baseline = results.get("baseline_corruption_error")
  width = 0.4 if baseline else 0.8
  ax.bar(positions - (width / 2 if baseline else 0), errors, width, label="model")
  if baseline:
    ax.bar(positions + width / 2, [baseline.get(n, np.nan) for n in names], width,
           label="baseline")
    ax.legend(fontsize=8)
  ax.set_xticks(positions, _labels(results), rotation=60, ha="right", fontsize=8)
  ax.set_ylabel("CE = 100 - mean accuracy (%)")
  averaged = results.get("corruptions_averaged", len(results["benchmark_corruptions"]))
  ax.set_title(f"Corruption error CE_c ({averaged} corruptions averaged)\nunnormalised mCE "
               f"{format_value(results['mce_unnormalized'])}, mCE vs baseline (mean of "
               "per-corruption "
               f"ratios) {format_value(results['mce_relative'])}", fontsize=9)
  fig.tight_layout()
  _plots().save_figure(fig, path, dpi=120, bbox_inches=None)


class Corruptions(base.Evaluator):
  """The corruption report of `config.corruptions` (its settings live in that section, shared
  with the corrupted-set cache; this entry's own field is the baseline run)."""
  type = "corruptions"
  folder = OUT_DIR
  defaults = {"baseline_workdir": ""}  # "" = config.corruptions.baseline_workdir.
  columns = (
      base.Column("robust_accuracy", "Robust. (%)",
                  "mean accuracy over the 15 benchmark corruptions x 5 severities"),
      base.Column("mce_unnormalized", "mCE (unnorm., %)", "mean_c (100 - mean_s accuracy)",
                  higher_is_better=False),
      base.Column("mce_relative", "mCE vs baseline (%)",
                  "100 * mean_c sum_s E(c,s) / sum_s E_baseline(c,s)", higher_is_better=False),
      base.Column("relative_mce_hd", "Rel. mCE (H&D, %)",
                  "Hendrycks & Dietterich's Relative mCE against the baseline",
                  higher_is_better=False))

  def baseline(self, config) -> Optional[str]:
    return (self.settings.get("baseline_workdir")
            or config.corruptions.get("baseline_workdir", "") or None)

  def key(self, config):
    fields = {k: v for k, v in config.corruptions.to_dict().items()
              if k not in ("evaluate", "baseline_workdir")}
    return dict(fields, baseline_workdir=self.baseline(config) or "")

  def check(self, config) -> None:
    try:
      settings = corrupted.CorruptionSettings.from_config(config)
    except ValueError as err:
      raise workdir_lib.UserError(str(err)) from None
    baseline = self.baseline(config)
    if not baseline:
      return
    # The baseline must exist and have seen the sets this run will make, before any training
    # (0 examples = the whole test set: its size is known only once it is loaded).
    baseline_results = workdir_lib.read_corruption_results(baseline)
    planned = settings.set_fields(settings.num_examples or None)
    differ = workdir_lib.corrupted_set_differences(baseline_results, planned,
                                                   missing_differs=True)
    if differ:
      raise workdir_lib.UserError(
          f"The baseline {baseline} was evaluated on other corrupted sets than this run's "
          "settings would make ("
          + ", ".join(f"{k}: {baseline_results.get(k)!r} vs {planned[k]!r}" for k in differ)
          + f"). Re-evaluate the baseline first: python -m freqrobust.evaluate "
          f"--workdir={baseline} --evals=corruptions (with the same corruption fields), or "
          "change the fields.")

  def run(self, context: base.Context):
    results = run_corruption_eval(
        context.model.predict, context.config, context.out_root, self.baseline(
            context.config), progress=context.progress, step=context.step,
        model_fingerprint=context.model.fingerprint, write=context.write_files)
    self.details = results  # The whole report, for the summary figure.
    return {k: results[k] for k in ("clean_accuracy", "robust_accuracy", "mce_unnormalized",
                                    "mce_relative", "relative_mce_hd")}
