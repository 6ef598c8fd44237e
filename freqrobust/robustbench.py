"""A run's results in RobustBench's submission format (github.com/RobustBench/robustbench,
model_info/<dataset>/<threat model>/<name>.json and model_info/<dataset>/corruptions/
unaggregated_results.csv), as pure functions of the run's config.json, results.json and
corruption results: `model_info`, `unaggregated_rows`, `unaggregated_csv`, `export`.

model_info's fields, as RobustBench's own files hold them: link, name, authors, venue and
reported (strings, "" when unknown), additional_data (bool), number_forward_passes (int: 2 with
the test-time flip), dataset, architecture, eps (a string such as "8/255" or "0.5"; null for
corruptions), clean_acc (a string, percent with two decimals), autoattack_acc (threat models
"Linf", "L2") or corruptions_acc (threat model "corruptions", the mean over the 15 corruptions
and 5 severities), and optionally footnote and unreliable.

autoattack_acc is AutoAttack's standard ensemble (`autoattack_main`) when the adversarial
evaluation ran `version="standard"`; otherwise its `worst_main` (the worst case over PGD, APGD-CE
and APGD-DLR), which the footnote names, as it names a subset of the test images. The unaggregated CSV has RobustBench's two header rows (corruption, then
severity 1-5) and one row per model, accuracies as fractions in [0, 1].
"""
from __future__ import annotations

import csv
import io
import json
from typing import Any, Dict, List, Mapping, Optional, Sequence

# RobustBench's column order (model_info/cifar10/corruptions/unaggregated_results.csv).
CSV_CORRUPTIONS = ("shot_noise", "motion_blur", "snow", "pixelate", "gaussian_noise",
                   "defocus_blur", "brightness", "fog", "zoom_blur", "frost", "glass_blur",
                   "impulse_noise", "contrast", "jpeg_compression", "elastic_transform")
SEVERITIES = (1, 2, 3, 4, 5)
THREAT_MODELS = {"linf": "Linf", "l2": "L2"}
ARCHITECTURES = {"resnet18": "ResNet-18", "preact_resnet18": "PreActResNet-18",
                 "vgg16": "VGG-16", "vgg16_bn": "VGG-16-BN", "small_resnet": "SmallResNet"}
TEST_SET_SIZE = {"cifar10": 10000, "cifar100": 10000, "fashion_mnist": 10000}


def format_eps(eps: float, dataset: str) -> str:
  """"8/255" for a CIFAR radius on the 255 grid, else the number ("0.5")."""
  scaled = float(eps) * 255.0
  if dataset.startswith("cifar") and scaled > 0 and abs(scaled - round(scaled)) < 1e-6:
    return f"{int(round(scaled))}/255"
  return f"{float(eps):g}"


def architecture(config: Mapping[str, Any]) -> str:
  model = config.get("model", {})
  name = model.get("name", "")
  if name == "wrn":
    return f"WideResNet-{model.get('wrn_depth', 28)}-{model.get('wrn_width', 10)}"
  return ARCHITECTURES.get(name, name)


def _base(name: str, config: Mapping[str, Any], clean_acc: float,
          meta: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
  meta = dict(meta or {})
  train = config.get("train", {})
  out = {"link": meta.pop("link", ""), "name": name, "authors": meta.pop("authors", ""),
         "additional_data": bool(meta.pop("additional_data", False)),
         "number_forward_passes": 2 if train.get("test_time_flip") else 1,
         "dataset": config.get("data", {}).get("dataset", ""),
         "venue": meta.pop("venue", ""), "architecture": architecture(config), "eps": None,
         "clean_acc": f"{float(clean_acc):.2f}", "reported": meta.pop("reported", "")}
  out.update(meta)  # footnote, unreliable, ...
  return out


def _adversarial_record(results: Mapping[str, Any], norm: str) -> Optional[tuple]:
  """(name, record) of the run's adversarial evaluation of that norm, AutoAttack's standard
  version first (RobustBench's number) when the run has several."""
  found = [(name, record) for name, record in (results.get("evals") or {}).items()
           if record.get("type") == "adversarial"
           and record.get("settings", {}).get("norm", "linf") == norm]
  found.sort(key=lambda item: item[1].get("settings", {}).get("version", "fast") != "standard")
  return found[0] if found else None


def _robust_accuracy(settings: Mapping[str, Any], metrics: Mapping[str, Any]) -> tuple:
  """(the robust accuracy RobustBench would quote, or the closest this evaluation has; notes).
  Standard version: the AutoAttack chain's `autoattack_main` (not `worst_main`, which also
  counts this project's extra attacks: FGSM, the noise draw, a restart, transfer images)."""
  if settings.get("version", "fast") == "standard" and "autoattack_main" in metrics:
    return float(metrics["autoattack_main"]), []
  return float(metrics["worst_main"]), [
      "Not AutoAttack's standard version: the worst case per example over this evaluation's "
      "attacks (PGD, APGD-CE, APGD-DLR), usually above AutoAttack's robust accuracy"]


def model_info(name: str, config: Mapping[str, Any], results: Mapping[str, Any], *,
               threat_model: str, corruption: Optional[Mapping[str, Any]] = None,
               meta: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
  """RobustBench's model_info entry of one run. threat_model "Linf", "L2" (from the run's
  adversarial evaluation of that norm) or "corruptions" (from `corruption`, its corruption
  results.json). meta: link, authors, venue, reported, additional_data, footnote, ..."""
  clean = (results.get("clean") or {}).get("accuracy")
  if clean is None:
    raise ValueError(f"{name}: results.json has no clean accuracy (results['clean']).")
  out = _base(name, config, clean, meta)
  dataset = out["dataset"]
  if threat_model == "corruptions":
    if corruption is None:
      raise ValueError(f"{name}: no corruption results to export for threat model corruptions.")
    rows = unaggregated_rows(corruption)
    out["corruptions_acc"] = f"{100.0 * sum(rows) / len(rows):.2f}"
    return out
  norms = {v: k for k, v in THREAT_MODELS.items()}
  if threat_model not in norms:
    raise ValueError(f"threat_model={threat_model!r}; valid: Linf, L2, corruptions.")
  found = _adversarial_record(results, norms[threat_model])
  if found is None:
    raise ValueError(f"{name}: no {threat_model} adversarial evaluation in results.json.")
  eval_name, record = found
  settings, metrics = record["settings"], record["metrics"]
  out["eps"] = format_eps(settings["main_eps"], dataset)
  robust, notes = _robust_accuracy(settings, metrics)
  out["autoattack_acc"] = f"{robust:.2f}"
  n, full = int(metrics.get("examples", 0)), TEST_SET_SIZE.get(dataset)
  if full and n and n < full:
    notes.append(f"evaluated on the first {n} of the {full} test images")
  if notes and "footnote" not in out:
    out["footnote"] = "; ".join(notes) + "."
  return out


def unaggregated_rows(corruption: Mapping[str, Any]) -> List[float]:
  """The 75 accuracies (fractions) of a corruption results.json in RobustBench's column order."""
  table = corruption["accuracy"]
  missing = [c for c in CSV_CORRUPTIONS if c not in table]
  if missing:
    raise ValueError(f"corruption results lack {missing}: RobustBench's table needs all 15.")
  return [float(table[c][str(s)] if str(s) in table[c] else table[c][s]) / 100.0
          for c in CSV_CORRUPTIONS for s in SEVERITIES]


def unaggregated_csv(rows: Mapping[str, Sequence[float]]) -> str:
  """RobustBench's unaggregated_results.csv: model name -> its 75 fractions."""
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator="\n")
  writer.writerow([""] + [c for c in CSV_CORRUPTIONS for _ in SEVERITIES])
  writer.writerow([""] + [s for _ in CSV_CORRUPTIONS for s in SEVERITIES])
  for name, values in rows.items():
    if len(values) != len(CSV_CORRUPTIONS) * len(SEVERITIES):
      raise ValueError(f"{name}: {len(values)} accuracies, want 75.")
    writer.writerow([name] + [f"{v:.4f}" for v in values])
  return buffer.getvalue()


def export(runs: Sequence[Mapping[str, Any]]) -> Dict[str, str]:
  """{relative path: file text} for runs given as dicts with name, config, results and
  optionally corruption and meta: each adversarial norm evaluated and the corruptions (when
  present) as model_info JSONs, and one unaggregated CSV per dataset."""
  files, csv_rows = {}, {}
  for run in runs:
    name, config, results = run["name"], run["config"], run["results"]
    dataset = config.get("data", {}).get("dataset", "")
    for norm, threat in THREAT_MODELS.items():
      if _adversarial_record(results, norm) is not None:
        info = model_info(name, config, results, threat_model=threat, meta=run.get("meta"))
        files[f"{dataset}/{threat}/{name}.json"] = json.dumps(info, indent=2) + "\n"
    if run.get("corruption") is not None:
      info = model_info(name, config, results, threat_model="corruptions",
                        corruption=run["corruption"], meta=run.get("meta"))
      files[f"{dataset}/corruptions/{name}.json"] = json.dumps(info, indent=2) + "\n"
      csv_rows.setdefault(dataset, {})[name] = unaggregated_rows(run["corruption"])
  for dataset, rows in csv_rows.items():
    files[f"{dataset}/corruptions/unaggregated_results.csv"] = unaggregated_csv(rows)
  return files
