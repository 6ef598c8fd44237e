"""RobustBench export (freqrobust/robustbench.py) against a schema written from RobustBench's own
model_info files (github.com/RobustBench/robustbench, model_info/cifar10/{Linf,L2,corruptions});
the schema is first checked on copies of three of those files."""
import csv
import io
import json

import pytest

from freqrobust import robustbench

# Three of RobustBench's files, verbatim (Linf/Wong2020Fast.json, L2/Standard.json,
# corruptions/Hendrycks2020AugMixWRN.json).
OFFICIAL = {
    "Linf": '{"link": "https://arxiv.org/abs/2001.03994", "name": "Fast is better than free: '
            'Revisiting adversarial training", "authors": "Eric Wong, Leslie Rice, J. Zico '
            'Kolter", "additional_data": false, "number_forward_passes": 1, "dataset": '
            '"cifar10", "venue": "ICLR 2020", "architecture": "ResNet-18", "eps": "8/255", '
            '"clean_acc": "83.34", "reported": "46.06", "autoattack_acc": "43.21"}',
    "L2": '{"link": "https://github.com/RobustBench/robustbench/", "name": "Standardly trained '
          'model", "authors": "", "additional_data": false, "number_forward_passes": 1, '
          '"dataset": "cifar10", "venue": "N/A", "architecture": "WideResNet-28-10", "eps": '
          '"0.5", "clean_acc": "94.78", "reported": "0.0", "autoattack_acc": "0.0"}',
    "corruptions": '{"link": "https://arxiv.org/abs/1912.02781", "name": "AugMix: A Simple Data '
                   'Processing Method to Improve Robustness and Uncertainty", "authors": "Dan '
                   'Hendrycks, Norman Mu, Ekin D. Cubuk, Barret Zoph, Justin Gilmer, Balaji '
                   'Lakshminarayanan", "additional_data": false, "number_forward_passes": 1, '
                   '"dataset": "cifar10", "venue": "ICLR 2020", "architecture": "WideResNet", '
                   '"eps": null, "clean_acc": "91.15", "reported": "", "corruptions_acc": '
                   '"77.19"}',
}
# RobustBench's corruptions/unaggregated_results.csv: its first two rows.
OFFICIAL_CSV_HEADER = [
    [""] + [c for c in ("shot_noise", "motion_blur", "snow", "pixelate", "gaussian_noise",
                        "defocus_blur", "brightness", "fog", "zoom_blur", "frost", "glass_blur",
                        "impulse_noise", "contrast", "jpeg_compression", "elastic_transform")
            for _ in range(5)],
    [""] + [str(s) for _ in range(15) for s in range(1, 6)]]

# The schema: field -> type(s); the accuracy field by threat model; optional fields.
COMMON = {"link": str, "name": str, "authors": str, "additional_data": bool,
          "number_forward_passes": int, "dataset": str, "venue": str, "architecture": str,
          "clean_acc": str, "reported": str}
ACCURACY = {"Linf": "autoattack_acc", "L2": "autoattack_acc", "corruptions": "corruptions_acc"}
OPTIONAL = {"footnote": str, "unreliable": bool}


def check_schema(info: dict, threat: str) -> None:
  required = dict(COMMON, eps=type(None) if threat == "corruptions" else str,
                  **{ACCURACY[threat]: str})
  assert set(required) <= set(info), set(required) - set(info)
  assert set(info) <= set(required) | set(OPTIONAL), set(info) - set(required) - set(OPTIONAL)
  for field, kind in {**required, **OPTIONAL}.items():
    if field in info:
      assert type(info[field]) is kind, (field, info[field])
  for field in ("clean_acc", ACCURACY[threat]):
    assert 0.0 <= float(info[field]) <= 100.0
  if threat != "corruptions":
    num, _, den = info["eps"].partition("/")
    assert float(num) / float(den or 1) > 0


@pytest.mark.parametrize("threat", list(OFFICIAL))
def test_the_schema_accepts_robustbenchs_own_files(threat):
  check_schema(json.loads(OFFICIAL[threat]), threat)


def _table(offset=0.0):
  return {c: {str(s): 90.0 - 5 * s - offset for s in range(1, 6)}
          for c in robustbench.CSV_CORRUPTIONS + ("speckle_noise",)}


def _run(name="pgd_at-0", norm="linf", version="fast", examples=1000, eps=8 / 255, flip=False):
  config = {"data": {"dataset": "cifar10"}, "model": {"name": "wrn", "wrn_depth": 28,
                                                      "wrn_width": 10},
            "train": {"test_time_flip": flip}}
  results = {"clean": {"accuracy": 84.567},
             "evals": {"adversarial": {"type": "adversarial", "settings": {
                 "norm": norm, "main_eps": eps, "version": version},
                 "metrics": {"worst_main": 47.1, "autoattack_main": 48.3,
                             "examples": examples}}}}
  return {"name": name, "config": config, "results": results, "corruption":
          {"accuracy": _table()}}


def test_export_matches_the_schema_and_the_numbers():
  files = robustbench.export([_run(), _run("augmix-0", norm="l2", eps=0.5, flip=True)])
  assert set(files) == {"cifar10/Linf/pgd_at-0.json", "cifar10/L2/augmix-0.json",
                        "cifar10/corruptions/pgd_at-0.json", "cifar10/corruptions/augmix-0.json",
                        "cifar10/corruptions/unaggregated_results.csv"}
  linf = json.loads(files["cifar10/Linf/pgd_at-0.json"])
  check_schema(linf, "Linf")
  assert linf["eps"] == "8/255" and linf["clean_acc"] == "84.57"
  assert linf["autoattack_acc"] == "47.10" and linf["architecture"] == "WideResNet-28-10"
  # Not AutoAttack's standard ensemble, on 1000 of 10000 images: the footnote says so.
  assert "Not AutoAttack" in linf["footnote"] and "1000 of the 10000" in linf["footnote"]
  l2 = json.loads(files["cifar10/L2/augmix-0.json"])
  check_schema(l2, "L2")
  assert l2["eps"] == "0.5" and l2["number_forward_passes"] == 2  # The test-time flip.
  corr = json.loads(files["cifar10/corruptions/pgd_at-0.json"])
  check_schema(corr, "corruptions")
  assert corr["eps"] is None and corr["corruptions_acc"] == "75.00"  # mean(85, ..., 65).
  standard = robustbench.model_info("r", _run(version="standard", examples=10000)["config"],
                                    _run(version="standard", examples=10000)["results"],
                                    threat_model="Linf")
  assert "footnote" not in standard
  # The standard version exports the AutoAttack chain's figure, not the worst case over every
  # attack of the evaluation (which adds FGSM, noise, a restart: not RobustBench's number).
  assert standard["autoattack_acc"] == "48.30"
  # Of two evaluations of the norm, the standard one is exported whatever their order.
  both = _run()["results"]
  both["evals"]["aa"] = _run(version="standard", examples=10000)["results"]["evals"]["adversarial"]
  assert robustbench.model_info("r", _run()["config"], both,
                                threat_model="Linf")["autoattack_acc"] == "48.30"


def test_unaggregated_csv_has_robustbenchs_layout():
  text = robustbench.export([_run()])["cifar10/corruptions/unaggregated_results.csv"]
  rows = list(csv.reader(io.StringIO(text)))
  assert rows[:2] == OFFICIAL_CSV_HEADER
  assert rows[2][0] == "pgd_at-0" and len(rows[2]) == 76
  # shot_noise severity 1 first, as fractions.
  assert float(rows[2][1]) == pytest.approx(0.85) and float(rows[2][5]) == pytest.approx(0.65)


def test_missing_results_are_refused():
  run = _run()
  with pytest.raises(ValueError, match="no L2 adversarial"):
    robustbench.model_info("x", run["config"], run["results"], threat_model="L2")
  with pytest.raises(ValueError, match="lack"):
    robustbench.unaggregated_rows({"accuracy": {"gaussian_noise": {}}})
  with pytest.raises(ValueError, match="threat_model"):
    robustbench.model_info("x", run["config"], run["results"], threat_model="L1")
