"""freqrobust.report as stages (records -> aggregate -> render, figures) and freqrobust.runs: the
report of a fixture root unchanged by the refactoring, rows from records built in memory, and
every printed figure of the run's final model."""
import json
import os
import subprocess
import sys

import pytest

from freqrobust import report, runs
from freqrobust.corruptions import CORRUPTIONS
from freqrobust.runs import RunRecord

import report_fixture  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPECTED = os.path.join(REPO, "tests", "data", "report_fixture")


def test_the_report_of_a_fixture_root_is_unchanged(tmp_path):
  """tests/data/report_fixture/ holds table.md and table.csv as `python -m freqrobust.report`
  wrote them for `report_fixture.fixture_root` before the report became a package (the single
  module of 2026-12-07), with the root's path written <ROOT>: the command line, its flags and
  its outputs are the same, byte for byte. A deliberate change to the tables regenerates them
  (run the command below on a fixture root and replace the root's path with <ROOT>): last when
  the fixture's adversarial records gained the worst case and the 95% intervals (the third
  table's new column and brackets, table.csv's `_lo`/`_hi` and `adversarial/examples`)."""
  root = report_fixture.fixture_root(str(tmp_path / "root"))
  out = str(tmp_path / "out")
  done = subprocess.run([sys.executable, "-m", "freqrobust.report", f"--root={root}",
                         f"--out={out}"], capture_output=True, text=True, cwd=REPO, timeout=300)
  assert done.returncode == 0, done.stderr
  for name in ("table.md", "table.csv"):
    with open(os.path.join(out, name), newline="") as f:
      got = f.read().replace(root, "<ROOT>")
    with open(os.path.join(EXPECTED, name), newline="") as f:
      assert got == f.read(), name
  for name in ("robustness.png", "category_gains.png", "corruption_vs_adversarial.png"):
    assert os.path.getsize(os.path.join(out, name)) > 1000, name
  assert "| natural_cpu | 3 | (91.00 ± 1.00) |" in done.stdout


def record(name, clean, robust=None, natural=False, metrics=None, **fields):
  table = None if robust is None else {c: {s: robust for s in range(1, 6)} for c in CORRUPTIONS}
  return RunRecord(workdir=f"/runs/{name}", name=runs.parse_name(name), clean=clean,
                   model="small_resnet", dataset="fashion_mnist", natural=natural, table=table,
                   metrics=dict(metrics or {}), **fields)


def test_aggregate_is_pure_over_records_built_in_memory():
  records = [record("nat_seed-0", 90.0, 60.0, natural=True, metrics={"a/x": 1.0}),
             record("nat_seed-1", 92.0, 62.0, natural=True, metrics={"a/x": 3.0}),
             record("mine_seed-0", 89.0, 70.0, metrics={"a/x": 5.0}),
             record("mine_seed-1", 88.0, None, metrics={"a/x": 7.0})]
  rows = {r.name: r for r in report.aggregate(records)}
  assert [r.name for r in report.aggregate(records)] == ["nat", "mine"]  # The baseline first.
  nat, mine = rows["nat"], rows["mine"]
  assert nat.baseline and nat.stats["clean"] == report.Stat(91.0, 2 ** 0.5, 2, 0.0)
  assert mine.stats["clean"].delta == pytest.approx(-2.5)
  # Robust. of the one seed with a corruption table: one seed, no spread shown.
  assert mine.stats["robust"].seeds == 1 and mine.stats["robust"].delta == pytest.approx(9.0)
  assert mine.metrics["a/x"].mean == 6.0 and mine.metrics["a/x"].delta == 4.0
  robust = next(c for c in report.COLUMNS if c.key == "robust")
  assert report.render.cell(robust, mine) == "+9.00" and report.render.cell(robust, nat) == \
      "(61.00 ± 1.41)"


def test_a_column_is_one_declaration(tmp_path, monkeypatch):
  """A new figure of the report: one `Column`, and table.md and table.csv show it."""
  rows = report.aggregate([record("nat_seed-0", 90.0, 60.0, natural=True)])
  rows[0].stats["speedup"] = report.Stat(2.5)
  extra = report.Column("speedup", ("mean",), table=1, order=9, label="Speed-up (x)",
                        cell="absolute")
  monkeypatch.setattr(report.render, "COLUMNS", report.render.COLUMNS + (extra,))
  lines = report.render.markdown(rows)
  assert lines[0].endswith("| Speed-up (x) |") and lines[2].endswith("| 2.50 |")
  path = str(tmp_path / "table.csv")
  report.render.write_csv(rows, path)
  header, values = open(path).read().splitlines()
  assert header.split(",")[-1] == "speedup_mean" and values.split(",")[-1] == "2.5"


@pytest.mark.parametrize("name,group,seed", [
    ("natural_cpu_seed-0", "natural_cpu", 0), ("natural_seed-0_cpu", "natural_cpu", 0),
    ("table3_nat_cpu_seed-12", "table3_nat_cpu", 12), ("plain", "plain", None),
    ("a_seed-x_seed-3", "a_seed-x", 3)])
def test_a_run_name_parses_to_its_group_and_seed_in_either_scheme(name, group, seed):
  got = runs.parse_name(name)
  assert (got.group, got.seed) == (group, seed)


def test_the_run_name_is_written_once_and_reads_back():
  for arg in ("natural,cpu,seed=0", "natural,seed=0,cpu"):
    assert runs.name_of(arg) == "natural_cpu_seed-0"
    legacy = runs.legacy_name_of(arg)
    assert legacy == "natural_seed-0_cpu"
    assert runs.parse_name(legacy).group == runs.parse_name(runs.name_of(arg)).group
  assert runs.parse_name(runs.name_of("augmix,vgg16_bn,seed=2")).seed == 2


def test_every_printed_figure_is_of_the_final_model(tmp_path):
  """The defect: a finished run (step 4, model A) evaluated again after its checkpoints went on
  to step 12 kept results.json's "finished, step 4, model A" but its clean record (and "clean")
  became the step-12 model's, and the report printed that as the run's accuracy. Now a record of
  another model or step is left out of the columns and listed with its re-evaluate command."""
  root = str(tmp_path)
  report_fixture.fake_run(root, "natural_seed-0", 20.0, 10.0)
  w = report_fixture.fake_run(root, "mine_seed-0", 45.85, 30.0)
  path = os.path.join(w, "results.json")
  results = json.load(open(path))
  results.update(step=4, model="aaaa", clean={"accuracy": 45.85},
                 evals={"clean": {"type": "clean", "step": 12, "model": "bbbb",
                                  "metrics": {"accuracy": 45.85}},
                        "bandpass": {"type": "bandpass", "step": 12, "model": "bbbb",
                                     "metrics": {"low_r4": 33.0}}},
                 metrics={"clean/accuracy": 45.85, "bandpass/low_r4": 33.0})
  json.dump(results, open(path, "w"))
  report_fixture.edit_json(os.path.join(w, "corruption_eval", "results.json"), step=4,
                           model="aaaa")
  loaded = report.load_run(w)
  assert loaded.clean is None and loaded.metrics == {} and loaded.table is not None
  assert len(loaded.other_model) == 2 and "--evals=clean" in loaded.other_model[0]
  rows = {r.name: r for r in report.report_root(root)}
  assert "clean" not in rows["mine"].stats and "robust" in rows["mine"].stats
  out = str(tmp_path / "out")
  report.write(list(rows.values()), out)
  table = open(os.path.join(out, "table.md")).read()
  assert "45.85" not in table and "+25.85" not in table and "33.00" not in table
  assert "| mine | 1 | n/a | +20.00 |" in table
  assert "Evaluations of another model left out" in table
  assert (f"- mine: clean: its record is of another model (fingerprint bbbb, step 12; the run's "
          f"final model is aaaa, step 4) (python -m freqrobust.evaluate --workdir={w} "
          "--evals=clean)") in table
  assert "45.85" not in open(os.path.join(out, "table.csv")).read()


def test_stale_judgement_goes_through_one_method_lookup():
  from freqrobust.augment import aps, registry
  assert report.records.method_class("paper") is aps.PaperMethod
  assert report.records.method_class("augmix") is registry.METHODS["augmix"]
  assert report.records.method_class("gone") is None
  assert report.stale_notes("/nowhere", {"method_choices": {"method": "gone"}}, {}) == []


def test_a_root_without_runs_is_a_user_error(tmp_path):
  from freqrobust.workdir import UserError
  with pytest.raises(UserError, match="not a folder of runs"):
    report.load_runs(str(tmp_path / "nope"))
  with pytest.raises(FileNotFoundError, match="No finished runs under"):
    report.load_runs(str(tmp_path))


def _adversarial_columns(**settings):
  """The report's declared columns of an adversarial evaluation with `settings`."""
  from freqrobust.evaluators.adversarial import Adversarial
  evaluator = Adversarial("adversarial", dict(Adversarial.defaults, **settings))
  return report.records.declared_columns([evaluator])


def test_each_robust_accuracy_gets_its_95_percent_interval(tmp_path):
  """The evaluation records X_lo and X_hi (Wilson, percent) for each accuracy X; the column that
  declares an interval shows it: a single seed's own, several seeds' range (lowest lower bound to
  highest upper bound), and table.csv gets `<key>_lo` and `<key>_hi` instead of averaging the
  bounds as figures of their own."""
  columns = _adversarial_columns()  # version "standard": AutoAttack and the worst case.
  assert columns["adversarial/autoattack_main"]["interval"]
  assert not columns["adversarial/failed_checks"]["interval"]
  key = "adversarial/autoattack_main"
  figure = lambda acc, lo, hi: {key: acc, f"{key}_lo": lo, f"{key}_hi": hi,
                                "adversarial/failed_checks": 0}
  records = [record("nat_seed-0", 90.0, natural=True, metrics=figure(10.0, 8.3, 12.0),
                    columns=columns),
             record("mine_seed-0", 89.0, metrics=figure(40.0, 37.0, 43.1), columns=columns),
             record("mine_seed-1", 88.0, metrics=figure(44.0, 40.9, 47.2), columns=columns),
             # Recorded without its bounds: no interval can be told for its row.
             record("old_seed-0", 88.0, metrics={key: 30.0}, columns=columns)]
  rows = {r.name: r for r in report.aggregate(records)}
  assert (rows["nat"].metrics[key].lo, rows["nat"].metrics[key].hi) == (8.3, 12.0)
  assert (rows["mine"].metrics[key].lo, rows["mine"].metrics[key].hi) == (37.0, 47.2)
  assert rows["mine"].metrics[key].mean == 42.0 and rows["old"].metrics[key].lo is None
  assert f"{key}_lo" not in rows["mine"].metrics  # A bound is no figure of its own.
  lines = report.render.markdown(list(rows.values()))
  table = "\n".join(lines)
  assert "| nat | (10.00) [8.30, 12.00] | (0.00) |" in table
  assert "| mine | +32.00 ± 2.83 [37.00, 47.20] | +0.00 ± 0.00 |" in table
  assert "| old | +20.00 | n/a |" in table
  assert report.render.INTERVAL_NOTE in table
  path = str(tmp_path / "table.csv")
  report.render.write_csv(list(rows.values()), path)
  import csv
  got = {r["name"]: r for r in csv.DictReader(open(path))}
  assert float(got["mine"][f"{key}_lo"]) == 37.0 and float(got["mine"][f"{key}_hi"]) == 47.2
  assert got["old"][f"{key}_lo"] == "" and f"{key}_lo_mean" not in got["mine"]
  # A row without any interval: no note.
  plain = report.aggregate([record("nat_seed-0", 90.0, natural=True, metrics={key: 10.0},
                                   columns=columns)])
  assert report.render.INTERVAL_NOTE not in "\n".join(report.render.markdown(plain))


def test_the_adversarial_figure_plots_the_declared_robust_accuracies():
  """figures.adversarial_keys reads the evaluators' declared columns (role "robust_accuracy"),
  not metric-name suffixes: the standard version's AutoAttack figure is plotted, the clean
  accuracy, the check count and an undeclared `/pgd_main` are not."""
  columns = dict(_adversarial_columns(), **{
      k.replace("adversarial/", "adv_fast/"): v
      for k, v in _adversarial_columns(version="fast").items()})
  metrics = {"adversarial/autoattack_main": 40.0, "adversarial/worst_main": 39.0,
             "adversarial/clean": 90.0, "adversarial/failed_checks": 0,
             "adv_fast/pgd_main": 45.0, "adv_fast/apgd_main": 42.0, "other/pgd_main": 5.0}
  rows = report.aggregate([record("nat_seed-0", 90.0, 60.0, natural=True, metrics=metrics,
                                  columns=columns)])
  assert report.adversarial_keys(rows) == [
      "adv_fast/apgd_main", "adv_fast/pgd_main", "adversarial/autoattack_main",
      "adversarial/worst_main"]


def _composition_run(adversarial, args, **recorded):
  """results.json and config.json (dicts) of a run of the paper's method under `adversarial`."""
  from freqrobust.augment import aps
  config = {"method": "paper", "adversarial": adversarial, "adversarial_args": args}
  choices = {"method": "paper", "method_args": {}, "adversarial": adversarial,
             "adversarial_args": args, "adversarial_views": [0],
             "method_revision": len(aps.PaperMethod.revisions), **recorded}
  return {"method_choices": choices}, config


def test_stale_notes_check_the_composed_adversarial_trainings_revisions():
  """A composition run (the paper's method, or a baseline, with config.adversarial) trained
  before PGD-AT's step and FGSM-RS's alpha derived from eps: stale when its adversarial_args set
  eps but not the step (it trained with 0.025 / 0.125); runs that recorded the revision are
  not."""
  results, config = _composition_run("pgd_at", {"eps": 0.2})
  notes = report.stale_notes("/nowhere", results, config)
  assert len(notes) == 1 and "of its pgd_at training" in notes[0] and "step_size" in notes[0]
  results, config = _composition_run("fgsm_rs", {"eps": 0.05})
  assert "alpha derives from eps" in report.stale_notes("/nowhere", results, config)[0]
  for args in ({"eps": 0.1}, {"eps": 0.2, "step_size": 0.05}):  # Same training either way.
    assert report.stale_notes("/nowhere", *_composition_run("pgd_at", args)) == []
  assert report.stale_notes("/nowhere", *_composition_run("pgd_at", {"eps": 0.2},
                                                          adversarial_revision=1)) == []


def test_a_composition_run_of_the_current_code_is_not_stale():
  """What training records now (provenance.method_choices: the attack's revision count) reads
  back as fresh; a baseline that recorded config.adversarial before it composed (no attacked
  views recorded) trained without it, and says so."""
  from configs import baselines
  from freqrobust import experiment
  config = baselines.get_config("augmix,cpu")
  config.adversarial = "pgd_at"
  config.adversarial_args = {"eps": 0.2}
  config = experiment.resolve_config(config)
  choices = experiment.method_choices(config, experiment.build_method(config))
  assert choices["adversarial_revision"] == 1
  results = {"method_choices": choices}
  assert report.stale_notes("/nowhere", results, config.to_dict()) == []
  before = {k: v for k, v in choices.items() if not k.startswith("adversarial_")}
  notes = report.stale_notes("/nowhere", {"method_choices": before}, config.to_dict())
  assert any("trained without the adversarial training" in n for n in notes)
  assert any("of its pgd_at training" in n for n in notes)


def test_the_cli_writes_robustbench_files_per_run(tmp_path):
  """`--robustbench=DIR` writes each run's model_info JSON per threat model it was evaluated on
  and the unaggregated corruption CSV (freqrobust.robustbench.export), from the figures the report
  shows: not the adversarial evaluation recorded with older settings (pgd_at), not the corruption
  evaluation of an older step (augmix). A DIR that is a file is refused before any run is read."""
  from robustbench_test import check_schema
  root = report_fixture.fixture_root(str(tmp_path / "root"))
  command = [sys.executable, "-m", "freqrobust.report", f"--root={root}",
             f"--out={tmp_path / 'out'}"]
  afile = tmp_path / "afile"
  afile.write_text("")
  done = subprocess.run(command + [f"--robustbench={afile}"], capture_output=True, text=True,
                        cwd=REPO, timeout=300)
  assert done.returncode == 2 and f"--robustbench={afile} is a file" in done.stderr
  assert not (tmp_path / "out").exists()
  out = tmp_path / "rb"
  done = subprocess.run(command + [f"--robustbench={out}"], capture_output=True, text=True,
                        cwd=REPO, timeout=300)
  assert done.returncode == 0, done.stderr
  linf = sorted(p.name for p in (out / "fashion_mnist" / "Linf").iterdir())
  assert linf == ["gaussian_cpu_seed-0.json", "gaussian_cpu_seed-1.json",
                  "natural_cpu_seed-0.json", "natural_cpu_seed-1.json",
                  "natural_seed-2_cpu.json"]
  info = json.loads((out / "fashion_mnist" / "Linf" / "natural_cpu_seed-0.json").read_text())
  check_schema(info, "Linf")
  # The worst case over the fixture's attacks (PGD 2.90 - 0.5), a bound on AutoAttack's figure.
  assert info["autoattack_acc"] == "2.40" and info["clean_acc"] == "90.00"
  assert info["eps"] == "0.1" and "Not AutoAttack" in info["footnote"]
  corruptions = out / "fashion_mnist" / "corruptions"
  names = sorted(p.name for p in corruptions.iterdir())
  assert "pgd_at_cpu_seed-0.json" in names and "augmix_cpu_seed-0.json" not in names
  check_schema(json.loads((corruptions / "pgd_at_cpu_seed-0.json").read_text()), "corruptions")
  rows = (corruptions / "unaggregated_results.csv").read_text().splitlines()
  assert len(rows) == 2 + len(names) - 1  # Two header rows, one row per exported model.
  assert "Not exported to RobustBench: augmix_cpu_seed-0" in done.stdout


def test_the_report_gives_the_rank_agreement_of_random_and_adversarial_corruptions():
  """Issue 38's question, asked of any report: Spearman's rho between the rows' rankings by
  Robust. (random corruptions) and by the UA mean (adversarial corruptions), over the rows with
  both (at least 3), on the seeds' means."""
  ua = "adversarial_corruptions/ua_mean"
  records = [record("nat_seed-0", 90.0, 60.0, natural=True, metrics={ua: 20.0}),
             record("a_seed-0", 89.0, 70.0, metrics={ua: 10.0}),
             record("a_seed-1", 89.0, 72.0, metrics={ua: 14.0}),
             record("b_seed-0", 80.0, 65.0, metrics={ua: 50.0}),
             record("c_seed-0", 80.0, 64.0)]  # No UA mean: not counted.
  lines = report.render._rank_lines(report.aggregate(records))
  # Robust. ranks nat < b < a, the UA mean a < nat < b: rho = -0.5.
  assert len(lines) == 2 and "Robust. against" in lines[1] and "-0.50 over 3 rows" in lines[1]
  assert report.render._rank_lines(report.aggregate(records[:2])) == []  # Fewer than 3 rows.


def test_spearman_is_scipys_with_ties():
  import numpy as np
  from scipy import stats
  from freqrobust import metrics
  rng = np.random.default_rng(0)
  for _ in range(5):
    a, b = rng.integers(0, 4, 9).astype(float), rng.normal(size=9)
    assert metrics.spearman(a, b) == pytest.approx(stats.spearmanr(a, b)[0], abs=1e-12)
  assert metrics.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
  assert np.isnan(metrics.spearman([1, 1, 1], [1, 2, 3]))
  with pytest.raises(ValueError, match="equal length"):
    metrics.spearman([1, 2], [1, 2, 3])
  with pytest.raises(ValueError, match="finite"):
    metrics.spearman([1, 2, float("nan")], [1, 2, 3])
