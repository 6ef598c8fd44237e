"""The paper's experiments as configs, the sweep runner's bookkeeping and the table aggregator."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from configs import baselines, paper
from freqrobust import experiment, report, runs
from freqrobust import workdir as workdir_lib
from freqrobust.augment import registry
from freqrobust.corruptions import CORRUPTIONS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "launch"))
import sweep  # noqa: E402
import workdirs  # noqa: E402
from report_fixture import fake_run  # noqa: E402


def test_every_paper_run_resolves_and_is_distinct():
  seen = set()
  for table in paper.TABLES:
    for arg in paper.runs(table, seeds=(0, 1)):
      config = experiment.resolve_config(paper.get_config(arg))
      key = config.to_json(sort_keys=True)
      # Table 4 reuses Table 3's nat; its fixed,lambda=100 is Table 3's both_att_aux.
      assert (key not in seen or arg.startswith("table3,nat")
              or arg.startswith("table4,fixed,lambda=100")), arg
      seen.add(key)
  # Tables 1 (2 x 4), 2 (2 x 9), 3 (6), 4 (8 + nat, one of them = both_att_aux): 8 + 18 + 6 + 7
  # distinct settings x 2 seeds.
  assert len(seen) == (8 + 18 + 6 + 7) * 2


@pytest.mark.parametrize("arg,expect", [
    ("table1,vgg16,nat", dict(name="vgg16", attention="none", p=0.0, nfd=False, lr=0.01)),
    ("table1,vgg16_bn,aug_att", dict(name="vgg16_bn", attention="basic", p=1 / 3, nfd=False)),
    ("table2,vgg16,lmh=100", dict(attention="basic", configuration="LMH=100", aux=100.0)),
    ("table3,nfd", dict(name="resnet18", attention="none", p=0.0, nfd=True, lr=0.1)),
    ("table3,both_att", dict(attention="extended", p=1 / 3, nfd=True, aux=0.0)),
    ("table3,both_att_aux", dict(attention="extended", p=1 / 3, nfd=True,
                                 configuration="LMH=000", aux=100.0)),
    ("table3,both_att_aux,lambda=10", dict(attention="extended", aux=10.0)),
    ("table4,learnable,lambda=50", dict(attention="extended", configuration="learnable", aux=50.0)),
    ("table4,fixed,lambda=2", dict(configuration="LMH=000", aux=2.0, nfd=True)),
])
def test_paper_columns_mean_what_the_paper_says(arg, expect):
  c = paper.get_config(arg)
  got = dict(name=c.model.name, attention=c.model.attention, p=c.augment.suppress_prob,
             nfd=c.augment.nfd, lr=c.train.learning_rate, configuration=c.aps.configuration,
             aux=c.aps.aux_weight)
  for k, v in expect.items():
    assert got[k] == pytest.approx(v) if isinstance(v, float) else got[k] == v, (k, got[k])
  assert c.train.num_epochs == 90 and c.train.batch_size == 128 and c.data.dataset == "cifar10"
  # Section 4.1: the auxiliary term is per sample, averaged over the batch like the rest.
  assert c.aps.aux_average == "batch" and c.model.attention_hidden == 512


def test_both_att_aux_is_table4_fixed_lambda_100_and_the_listing_says_what_runs():
  assert (paper.get_config("table3,both_att_aux,seed=2").to_json(sort_keys=True)
          == paper.get_config("table4,fixed,lambda=100,seed=2").to_json(sort_keys=True))
  assert "table3,both_att_aux,seed=0" in paper.runs("table3")
  assert "no auxiliary loss" in paper.describe("table3,both_att,seed=0")
  assert "LMH=000, lambda 100" in paper.describe("table3,both_att_aux,seed=0,cpu")


def test_cpu_variant_and_bad_arguments():
  c = paper.get_config("table3,both,seed=3,cpu")
  assert (c.data.dataset, c.model.name, c.seed) == ("fashion_mnist", "small_resnet", 3)
  with pytest.raises(ValueError, match="table1, table2, table3, table4"):
    paper.get_config("table9,nat")
  with pytest.raises(ValueError, match="both_att"):
    paper.get_config("table3,everything")


def test_report_mce_is_the_mean_of_per_corruption_ratios(tmp_path):
  root = str(tmp_path)
  fake_run(root, "table3_nat_seed-0", 90.0, 60.0, first_corruption_acc=95.0)  # CE 40, one CE 5
  fake_run(root, "table3_sup_seed-0", 90.0, 70.0, first_corruption_acc=90.0)  # CE 30, one CE 10
  rows = {r.name: r for r in report.report_root(root, "nat")}
  n = len(CORRUPTIONS)
  per_corruption = 100 * ((n - 1) * 30 / 40 + 10 / 5) / n  # 83.3 (Hendrycks & Dietterich)
  pooled = 100 * ((n - 1) * 30 + 10) / ((n - 1) * 40 + 5)  # 76.1, the old form
  assert rows["table3_sup"].stats["mce"].mean == pytest.approx(per_corruption)
  assert abs(per_corruption - pooled) > 5
  report.write(list(rows.values()), str(tmp_path / "out"))
  assert "per-corruption error ratios" in (tmp_path / "out" / "table.md").read_text()


def test_report_shows_baseline_absolute_and_the_rest_as_differences(tmp_path):
  root = str(tmp_path)
  fake_run(root, "table3_nat_seed-0", 90.0, 60.0)
  fake_run(root, "table3_nat_seed-1", 92.0, 60.0)
  fake_run(root, "table3_nfd_seed-0", 89.0, 70.0)
  fake_run(root, "table3_nfd_seed-1", 90.0, 80.0)
  fake_run(root, "table3_sup_seed-0", 95.0, 99.0, status="preempted")  # Unfinished: left out.
  summary = report.report_root(root, "nat")
  rows = {r.name: r for r in summary}
  assert set(rows) == {"table3_nat", "table3_nfd"} and summary[0].name == "table3_nat"
  nat, nfd = rows["table3_nat"], rows["table3_nfd"]
  assert nat.stats["clean"].mean == pytest.approx(91.0) and nat.stats["clean"].std == pytest.approx(2 ** 0.5)
  assert nfd.stats["clean"].delta == pytest.approx(89.5 - 91.0)
  assert nfd.stats["robust"].delta == pytest.approx(75.0 - 60.0)
  assert nfd.stats["robust"].std == pytest.approx(50 ** 0.5)  # Sample std of 70 and 80.
  # mCE relative to the baseline: CE 30 and 20 against the baseline's 40 -> 75 and 50, mean 62.5.
  assert nfd.stats["mce"].mean == pytest.approx(62.5) and nat.stats["mce"].mean == pytest.approx(100.0)
  report.write(summary, str(tmp_path / "out"))
  table = (tmp_path / "out" / "table.md").read_text()
  assert "(91.00 ± 1.41)" in table and "-1.50 ± 0.71" in table and "+15.00 ± 7.07" in table
  assert (tmp_path / "out" / "robustness.png").stat().st_size > 1000


def test_report_relative_mce_of_hendrycks_and_dietterich(tmp_path):
  root = str(tmp_path)
  fake_run(root, "table3_nat_seed-0", 90.0, 60.0, corrupted_clean=90.0)  # degradation 30
  fake_run(root, "table3_nfd_seed-0", 88.0, 70.0, corrupted_clean=85.0)  # degradation 15
  fake_run(root, "table3_sup_seed-0", 88.0, 70.0)  # no clean accuracy recorded: not computed
  rows = {r.name: r for r in report.report_root(root, "nat")}
  assert rows["table3_nfd"].stats["relative_mce_hd"].mean == pytest.approx(50.0)
  assert rows["table3_nfd"].stats["mce"].mean == pytest.approx(75.0)  # 30 / 40: clean error ignored
  assert rows["table3_nat"].stats["relative_mce_hd"].mean == pytest.approx(100.0)
  assert "relative_mce_hd" not in rows["table3_sup"].stats
  out = str(tmp_path / "out")
  report.write(report.report_root(root, "nat"), out)
  table = open(os.path.join(out, "table.md")).read()
  assert "Rel. mCE (H&D, %)" in table and "| table3_nfd | 30.00 | 50 |" in table
  assert "mCE (vs base, %)" in table and "not their Relative mCE" in table


def test_report_keeps_runs_evaluated_on_other_corrupted_sets_apart(tmp_path):
  """Differences and mCE need the baseline's corrupted sets: a run evaluated on others (here
  another recipe version) forms a row of its own, compared on clean accuracy only."""
  root = str(tmp_path)
  v3 = {"dataset": "fashion_mnist", "source": "generated", "num_examples": 1000, "seed": 0,
        "recipe_version": 3, "frost": "procedural", "clean_sha256": "abc"}
  v4 = dict(v3, recipe_version=4)
  fake_run(root, "natural_cpu_seed-0", 90.0, 60.0, sets=v3)
  fake_run(root, "natural_cpu_seed-1", 90.0, 62.0, sets=v3)
  fake_run(root, "gaussian_cpu_seed-0", 89.0, 70.0, sets=v3)
  fake_run(root, "gaussian_cpu_seed-1", 89.0, 72.0, sets=v4)
  fake_run(root, "augmix_cpu_seed-0", 89.0, 72.0)  # written before the fields: comparable
  summary = report.report_root(root, "natural")
  rows = {r.name: r for r in summary}
  assert rows["gaussian_cpu"].seeds == 1
  assert rows["gaussian_cpu"].stats["robust"].delta == pytest.approx(70.0 - 61.0)
  other = rows["gaussian_cpu (other sets)"]
  assert other.seeds == 1 and "robust" not in other.stats and "mce" not in other.stats
  assert other.stats["clean"].delta == pytest.approx(-1.0)
  assert other.other_sets == ["recipe_version: 4 (baseline 3)"]
  assert "robust" in rows["augmix_cpu"].stats
  out = str(tmp_path / "out")
  report.write(summary, out)
  table = open(os.path.join(out, "table.md")).read()
  assert "| gaussian_cpu (other sets) | 1 | -1.00 | n/a | n/a |" in table
  assert "recipe version 3" in table and "re-evaluate" in table
  # The baseline's own seeds on different sets: refused, naming both, even when a seed without
  # the fields sits between them.
  fake_run(root, "natural_cpu_seed-2", 90.0, 60.0, sets=v4)
  with pytest.raises(ValueError, match="different corrupted sets.*natural_cpu_seed-2"):
    report.report_root(root, "natural")
  bare = str(tmp_path / "bare")
  fake_run(bare, "natural_cpu_seed-0", 90.0, 60.0)
  fake_run(bare, "natural_cpu_seed-1", 90.0, 60.0, sets=v3)
  fake_run(bare, "gaussian_cpu_seed-0", 89.0, 70.0, sets=v4)
  # The baseline's known sets come from every seed, not only the first.
  assert "gaussian_cpu (other sets)" in {r.name for r in report.report_root(bare, "natural")}
  fake_run(bare, "natural_cpu_seed-2", 90.0, 60.0, sets=v4)
  with pytest.raises(ValueError, match="different corrupted sets"):
    report.report_root(bare, "natural")
  # TFDS's CIFAR-10-C is the published images whatever the code's recipe version: comparable.
  tfds = str(tmp_path / "tfds")
  t3 = dict(v3, dataset="cifar10", source="tfds", frost="photographs (published CIFAR-10-C)")
  fake_run(tfds, "natural_cpu_seed-0", 90.0, 60.0, sets=t3)
  fake_run(tfds, "gaussian_cpu_seed-0", 89.0, 70.0, sets=dict(t3, recipe_version=4, seed=1))
  rows = {r.name: r for r in report.report_root(tfds, "natural")}
  assert set(rows) == {"natural_cpu", "gaussian_cpu"}
  assert rows["gaussian_cpu"].stats["robust"].delta == pytest.approx(10.0)


def test_report_compares_each_backbone_with_its_own_baseline(tmp_path):
  root = str(tmp_path)
  fake_run(root, "table2_vgg16_nat_seed-0", 90.0, 60.0, model="vgg16")
  fake_run(root, "table2_vgg16_bn_nat_seed-0", 92.0, 70.0, model="vgg16_bn")
  fake_run(root, "table2_vgg16_lmh-011_seed-0", 89.0, 65.0, model="vgg16")
  fake_run(root, "table2_vgg16_bn_lmh-011_seed-0", 91.0, 72.0, model="vgg16_bn")
  rows = {r.name: r for r in report.report_root(root, "nat")}
  assert rows["table2_vgg16_nat"].baseline and rows["table2_vgg16_bn_nat"].baseline
  assert rows["table2_vgg16_lmh-011"].stats["clean"].delta == pytest.approx(-1.0)
  assert rows["table2_vgg16_lmh-011"].stats["robust"].delta == pytest.approx(5.0)
  assert rows["table2_vgg16_bn_lmh-011"].stats["clean"].delta == pytest.approx(-1.0)
  assert rows["table2_vgg16_bn_lmh-011"].stats["robust"].delta == pytest.approx(2.0)


def test_report_finds_the_baseline_in_the_configs_not_the_run_names(tmp_path):
  """Without --baseline the natural-training group of each backbone is the baseline, whatever
  the runs are called; a second natural group of one backbone is an error naming both."""
  root = str(tmp_path)
  fake_run(root, "plain_seed-0", 90.0, 60.0, natural=True)
  fake_run(root, "plain_seed-1", 92.0, 60.0, natural=True)
  fake_run(root, "mine_seed-0", 89.0, 70.0, natural=False)
  fake_run(root, "big_plain_seed-0", 93.0, 65.0, natural=True, model="resnet18")
  fake_run(root, "big_mine_seed-0", 92.0, 75.0, natural=False, model="resnet18")
  summary = report.report_root(root)
  rows = {r.name: r for r in summary}
  assert rows["plain"].baseline and rows["big_plain"].baseline
  assert rows["mine"].stats["clean"].delta == pytest.approx(89.0 - 91.0)
  assert rows["big_mine"].stats["clean"].delta == pytest.approx(-1.0)
  fake_run(root, "other_plain_seed-0", 91.0, 60.0, natural=True)
  with pytest.raises(workdir_lib.UserError, match="--baseline"):
    report.report_root(root)
  with pytest.raises(workdir_lib.UserError, match=r"No baseline for big_mine \(resnet18"):
    report.report_root(root, "other")  # No baseline of that name for the ResNet-18 runs.


def test_report_leaves_out_a_corruption_evaluation_of_another_model(tmp_path):
  """A run extended (or retrained) whose corruption evaluation is of an earlier model: its
  Robust. is not the final model's, so it is not reported as such."""
  root = str(tmp_path)
  fake_run(root, "natural_seed-0", 90.0, 60.0)
  fake_run(root, "gaussian_seed-0", 89.0, 70.0, corrupted_meta={"step": 50})
  fake_run(root, "augmix_seed-0", 89.0, 72.0, corrupted_meta={"model": "aaaa"})
  results = json.load(open(os.path.join(root, "augmix_seed-0", "results.json")))
  json.dump(dict(results, model="bbbb"), open(os.path.join(root, "augmix_seed-0",
                                                           "results.json"), "w"))
  rows = {r.name: r for r in report.report_root(root)}
  for name in ("gaussian (stale)", "augmix (stale)"):
    assert "robust" not in rows[name].stats and "mce" not in rows[name].stats, name
    assert any("re-evaluate" in note for note in rows[name].stale), name
  assert "not of the final step 100" in " ".join(rows["gaussian (stale)"].stale)


def test_robustness_figure_draws_a_missing_figure_as_missing_and_evaluations_get_columns(
    tmp_path):
  root = str(tmp_path)
  fake_run(root, "natural_seed-0", 90.0, 60.0, metrics={"bandpass/low_r4": 40.0,
                                                        "adversarial/pgd_main": 2.0})
  fake_run(root, "gaussian_seed-0", 89.0, 70.0, metrics={"bandpass/low_r4": 55.0,
                                                         "adversarial/pgd_main": 9.0})
  os.remove(os.path.join(root, "gaussian_seed-0", "corruption_eval", "results.json"))
  summary = report.report_root(root)
  rows = {r.name: r for r in summary}
  assert "robust" not in rows["gaussian"].stats
  assert np.isnan(report.robust_bar_heights(summary)[
      [r.name for r in summary].index("gaussian")])
  assert rows["gaussian"].metrics["bandpass/low_r4"].delta == pytest.approx(15.0)
  out = str(tmp_path / "out")
  report.write(summary, out)
  table = open(os.path.join(out, "table.md")).read()
  assert "| gaussian | +7.00 | +15.00 |" in table and "| natural | (2.00) | (40.00) |" in table
  # No evaluator of these runs' configs declares adversarial/pgd_main a robust accuracy (their
  # config.json lists no evaluation): nothing to plot against Robust.
  assert report.adversarial_keys(summary) == []
  assert not os.path.exists(os.path.join(out, "corruption_vs_adversarial.png"))
  header = open(os.path.join(out, "table.csv")).readline()
  assert "adversarial/pgd_main_mean" in header and "bandpass/low_r4_delta" in header


def test_report_leaves_out_evaluations_recorded_with_other_settings(tmp_path):
  """An adversarial evaluation recorded before a setting was added (APGD-DLR, the unbounded
  check) is not shown under the current columns' labels, the report says how to re-evaluate it,
  and the run's other figures stand; one recorded with the current settings is shown."""
  root = str(tmp_path)
  for name, acc in (("natural_seed-0", 2.0), ("pgd_at_seed-0", 60.0)):
    fake_run(root, name, 90.0, 60.0, metrics={"adversarial/pgd_main": acc})
    path = os.path.join(root, name, "config.json")  # An entry as configs/default.py writes it.
    config = dict(json.load(open(path)), evals={"adversarial": {
        "type": "adversarial", "at_end": True, "every_epochs": 0.0, "norm": "linf"}})
    json.dump(config, open(path, "w"))
  cfg, built = report.built_evaluators(config)
  current = workdir_lib.to_jsonable([e for e in built if e.name == "adversarial"][0].key(cfg))
  assert current["apgd_losses"] == ["ce", "dlr"] and current["main_eps"] == 0.1
  old = {k: v for k, v in current.items() if k not in ("apgd_losses", "large_eps")}
  for name, settings in (("natural_seed-0", current), ("pgd_at_seed-0", old)):
    path = os.path.join(root, name, "results.json")
    results = json.load(open(path))
    results["evals"] = {"adversarial": {"type": "adversarial", "settings": settings,
                                        "metrics": {"pgd_main": 1.0}}}
    json.dump(results, open(path, "w"))
  summary = report.report_root(root)
  rows = {r.name: r for r in summary}
  assert rows["natural"].metrics["adversarial/pgd_main"].mean == 2.0
  assert not rows["natural"].left_out and not rows["pgd_at"].stale
  assert "adversarial/pgd_main" not in rows["pgd_at"].metrics
  assert rows["pgd_at"].stats["robust"].mean == pytest.approx(60.0)  # Its other figures stand.
  assert "--evals=adversarial" in rows["pgd_at"].left_out[0]
  out = str(tmp_path / "out")
  report.write(summary, out)
  table = open(os.path.join(out, "table.md")).read()
  assert "Evaluations left out" in table and "- pgd_at: adversarial (python -m" in table


def test_report_and_sweep_flag_runs_trained_before_a_method_change(tmp_path):
  """Nothing silently stale: a run recorded without a field added since (whose legacy value is
  not the default) or at an older method revision that matters for its config is flagged by the
  report, in a row of its own, and by the sweep; runs recorded by the current code are not."""
  root = str(tmp_path)
  fake_run(root, "natural_cpu_seed-0", 90.0, 60.0,
           method_choices={"method": "paper", "method_args": {}}, label_smoothing=0.1)
  old = {"method": "apr_sp", "method_args": {"pad": 4}}  # before uint8_wrap and revision 1
  fake_run(root, "apr_sp_cpu_seed-0", 89.0, 70.0, method_choices=old, label_smoothing=0.1)
  config = baselines.get_config("apr_sp,cpu,seed=1")
  current = experiment.method_choices(config, registry.BASELINES["apr_sp"]())
  assert current["method_revision"] == 1 and current["method_fields"]["uint8_wrap"] is True
  fake_run(root, "apr_sp_cpu_seed-1", 89.0, 74.0, method_choices=current, label_smoothing=0.1)
  # Before revision 1 but without label smoothing: the change makes no difference.
  fake_run(root, "apr_p_cpu_seed-0", 89.0, 70.0, label_smoothing=0.0,
           method_choices={"method": "apr_p", "method_args": {"pad": 4}})
  fake_run(root, "prime_cpu_seed-0", 89.0, 70.0,
           method_choices={"method": "prime", "method_args": {"shared_draws": False}})
  # A PRIME run of the current code from a config that sets no method_args: not stale.
  plain = workdirs.tiny_config()
  plain.method, plain.model.attention = "prime", "none"
  fresh = experiment.method_choices(plain, registry.BASELINES["prime"]())
  assert fresh["method_args"] == {} and fresh["method_fields"]["shared_draws"] is True
  fake_run(root, "prime_plain_cpu_seed-0", 89.0, 70.0, method_choices=fresh)
  rows = {r.name: r for r in report.report_root(root, "natural")}
  assert rows["apr_sp_cpu (stale)"].seeds == rows["apr_sp_cpu"].seeds == 1  # kept apart
  assert rows["apr_sp_cpu"].stats["robust"].delta == pytest.approx(14.0)
  notes = rows["apr_sp_cpu (stale)"].stale
  assert len(notes) == 2 and set(notes.values()) == {1}
  assert any("uint8_wrap=False" in n for n in notes)
  assert any("label smoothing" in n for n in notes)
  for fresh_row in ("apr_sp_cpu", "apr_p_cpu", "prime_cpu", "prime_plain_cpu", "natural_cpu"):
    assert not rows[fresh_row].stale, fresh_row
  out = str(tmp_path / "out")
  report.write(report.report_root(root, "natural"), out)
  table = open(os.path.join(out, "table.md")).read()
  assert "| apr_sp_cpu (stale) | 1 |" in table and "| apr_sp_cpu | 1 |" in table
  assert "Stale rows" in table and "prime_cpu (stale)" not in table
  listed = subprocess.run([sys.executable, os.path.join(REPO, "launch", "sweep.py"),
                           "--config_file=baselines", "--runs=apr_sp,cpu", "--seeds=0,1",
                           f"--root={root}", "--dry_run"], capture_output=True, text=True,
                          timeout=120)
  assert listed.returncode == 0, listed.stderr
  first, second = listed.stdout.split("[2/2]")
  assert "finished, skipped" in first and first.count("STALE:") == 2
  assert "finished, skipped" in second and "STALE" not in second


def test_declared_revisions_survive_the_paired_structure():
  import dataclasses
  from typing import ClassVar
  from freqrobust.augment import apr, base

  @dataclasses.dataclass(frozen=True)
  class Later(apr._APRFields):
    name: ClassVar[str] = "later"
    num_views: ClassVar[int] = 2
    structure: ClassVar[str] = "pair"
    revisions: ClassVar[tuple] = (base.PAIRED_CE_REVISION, base.Revision("a later change"))

  assert len(Later.revisions) == 2 and Later.ce_paired_views == (1,)
  notes = base.stale_notes(Later, {"method_revision": 1}, {"train": {"label_smoothing": 0.0}})
  assert notes == ["trained before this change: a later change"]


def test_sweep_skips_finished_runs_and_reruns_unfinished(tmp_path):
  root = str(tmp_path)
  fake_run(root, runs.name_of("table3,nat,seed=0,cpu"), 90.0, 60.0)
  fake_run(root, runs.name_of("table3,sup,seed=0,cpu"), 90.0, 60.0, status="preempted")
  out = subprocess.run([sys.executable, os.path.join(REPO, "launch", "sweep.py"), "--table=table3",
                        "--seeds=0", "--cpu", f"--root={root}", "--dry_run"],
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr
  lines = [l for l in out.stdout.splitlines() if l.startswith("[")]
  assert len(lines) == len(paper.TABLES["table3"]["columns"]) == 6
  assert "finished, skipped" in lines[0] and "freqrobust.main" in lines[1]
  assert all("freqrobust.main" in l for l in lines[1:])


def test_sweep_names_a_run_alike_whatever_the_argument_order(tmp_path):
  # --runs="natural,cpu" writes natural,cpu,seed=0; --table=all --cpu writes natural,seed=0,cpu.
  assert runs.name_of("natural,cpu,seed=0") == runs.name_of("natural,seed=0,cpu") \
      == "natural_cpu_seed-0"
  assert runs.name_of("table3,nat,seed=1,cpu") == "table3_nat_cpu_seed-1"
  assert runs.name_of("augmix,vgg16_bn,seed=2") == "augmix_vgg16_bn_seed-2"
  # A run of the older naming (seed before cpu) is found, skipped when finished, resumed when not.
  root = str(tmp_path)
  assert runs.legacy_name_of("natural,cpu,seed=0") == "natural_seed-0_cpu"
  fake_run(root, "natural_seed-0_cpu", 90.0, 60.0)
  fake_run(root, "gaussian_seed-0_cpu", 89.0, 60.0, status="preempted")
  assert sweep.workdir_for(root, "natural,cpu,seed=0") == os.path.join(root, "natural_seed-0_cpu")
  assert sweep.workdir_for(root, "gaussian,seed=0,cpu") == os.path.join(root, "gaussian_seed-0_cpu")
  assert sweep.workdir_for(root, "augmix,cpu,seed=0") == os.path.join(root, "augmix_cpu_seed-0")
  out = subprocess.run([sys.executable, os.path.join(REPO, "launch", "sweep.py"),
                        "--config_file=baselines", "--runs=natural,cpu;gaussian,cpu;augmix,cpu",
                        "--seeds=0", f"--root={root}", "--dry_run"],
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr
  lines = [l for l in out.stdout.splitlines() if l.startswith("[")]
  assert "finished, skipped" in lines[0]
  assert "gaussian_seed-0_cpu" in lines[1] and "augmix_cpu_seed-0" in lines[2]


CHILD = """
import signal, sys, time
def stop(signum, frame):
  open(sys.argv[1], "w").write("saved")  # What the training does on SIGTERM: save, then exit 0.
  print("saved the checkpoint", flush=True)
  sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("step 1/9 | training", flush=True)
time.sleep(60)
"""


def test_sweep_passes_sigterm_to_the_training_and_stops(tmp_path):
  # Killing the sweep used to leave the training writing into a broken pipe: it died at its next
  # progress line, before the checkpoint that SIGTERM promises. Now the sweep forwards the signal,
  # reads the training's last words into train.log, and reports that it was stopped.
  import signal
  marker, log = str(tmp_path / "saved"), str(tmp_path / "train.log")
  cmd = [sys.executable, "-c", CHILD, marker]

  def kill_the_sweep(line):  # Once the training runs (its handler is in place), as `kill` would.
    if line.startswith("step 1/9"):
      os.kill(os.getpid(), signal.SIGTERM)
    return False

  previous = signal.getsignal(signal.SIGTERM)
  returncode, stopped = sweep.run_child(cmd, log, kill_the_sweep)
  assert signal.getsignal(signal.SIGTERM) == previous  # The sweep's handler is gone again.
  assert stopped and returncode == 0
  assert open(marker).read() == "saved"
  text = open(log).read()
  assert "step 1/9" in text and "saved the checkpoint" in text
  # Without a signal: the exit status and no stop.
  returncode, stopped = sweep.run_child([sys.executable, "-c", "import sys; sys.exit(3)"], log,
                                        lambda line: False)
  assert (returncode, stopped) == (3, False)


def test_report_details_per_family_severity_and_without_background(tmp_path):
  root = str(tmp_path)
  # The first corruption is gaussian_noise (a "noise" family member, not background-lifting).
  fake_run(root, "natural_seed-0", 90.0, 60.0, first_corruption_acc=30.0)
  fake_run(root, "gaussian_seed-0", 89.0, 60.0, first_corruption_acc=75.0)
  fake_run(root, "gaussian_seed-1", 88.0, 62.0, first_corruption_acc=75.0)
  rows = {r.name: r for r in report.report_root(root, "natural")}
  g = rows["gaussian"]
  assert g.seeds == 2
  # noise family: (gaussian_noise + 2 others) / 3 per seed (65 and 66.33), against 50.
  assert g.stats["noise"].delta == pytest.approx(((75 + 120) / 3 + (75 + 124) / 3) / 2 - 50)
  assert g.stats["blur"].delta == pytest.approx(1.0)  # 60 and 62 against 60.
  assert g.stats["mce_unnorm"].mean == pytest.approx(100 - g.stats["robust"].mean)
  n_no_bg = len(CORRUPTIONS) - 5
  assert g.stats["robust_no_bg"].delta == pytest.approx((45 + (n_no_bg - 1) * 1) / n_no_bg)
  report.write(report.report_root(root, "natural"), str(tmp_path / "out"))
  table = (tmp_path / "out" / "table.md").read_text()
  assert "mCE (unnorm., %)" in table and "noise (%)" in table and "s5 (%)" in table
  assert (tmp_path / "out" / "category_gains.png").stat().st_size > 0


def write_timed_metrics(workdir, batch, steps_and_times, test_at=None):
  """A config.json with the batch size and train lines of metrics.jsonl at the given times."""
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump({"corruptions": {"evaluate": True}, "train": {"batch_size": batch}}, f)
  with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
    for step, t in steps_and_times:
      f.write(json.dumps({"step": step, "time": t, "loss": 1.0}) + "\n")
    if test_at is not None:
      f.write(json.dumps({"step": test_at, "time": 1e9, "test_accuracy": 0.9}) + "\n")


def test_report_cost_is_the_median_training_rate_relative_to_the_baseline(tmp_path):
  root = str(tmp_path)
  nat = fake_run(root, "natural_cpu_seed-0", 90.0, 60.0)
  aug = fake_run(root, "augmix_cpu_seed-0", 90.0, 70.0)
  # natural: 50 steps of 128 images every 1 s (6400 images/s); one interval holds a 30 s pause
  # (an evaluation or a resume), which the median leaves out; a test line is not a train line.
  write_timed_metrics(nat, 128, [(0, 0.0), (50, 1.0), (100, 2.0), (150, 32.0), (200, 33.0)],
                      test_at=200)
  # augmix: three views, a third of the speed: 50 steps every 3 s.
  write_timed_metrics(aug, 128, [(0, 0.0), (50, 3.0), (100, 6.0), (150, 9.0)])
  assert report.training_rate(nat) == pytest.approx(6400.0)
  rows = {r.name: r for r in report.report_root(root, "natural")}
  assert rows["augmix_cpu"].stats["images_per_s"].mean == pytest.approx(6400.0 / 3)
  assert rows["augmix_cpu"].stats["relative_speed"].mean == pytest.approx(1 / 3)
  assert rows["natural_cpu"].stats["relative_speed"].mean == pytest.approx(1.0)
  report.write(report.report_root(root, "natural"), str(tmp_path / "out"))
  assert "2133 (0.33x)" in (tmp_path / "out" / "table.md").read_text()
  # A run without timed metrics has no cost, and the table says n/a rather than guessing.
  os.remove(os.path.join(aug, "metrics.jsonl"))
  assert report.training_rate(aug) is None
  assert "relative_speed" not in {r.name: r for r in report.report_root(
      root, "natural")}["augmix_cpu"].stats


def test_report_gives_no_spread_for_a_single_seed(tmp_path):
  """One seed has an unknown spread, not a zero one: no "± 0.00" in the tables, an empty std in
  the CSV; rows with several seeds keep theirs."""
  root = str(tmp_path)
  fake_run(root, "natural_seed-0", 90.0, 60.0)
  fake_run(root, "natural_seed-1", 92.0, 60.0)
  fake_run(root, "augmix_seed-0", 89.0, 70.0)
  report.write(report.report_root(root, "natural"), str(tmp_path / "out"))
  table = (tmp_path / "out" / "table.md").read_text()
  augmix = [l for l in table.splitlines() if l.startswith("| augmix |")]
  assert augmix and "±" not in augmix[0] and "| -2.00 | +10.00 |" in augmix[0]
  assert "(91.00 ± 1.41)" in table
  with open(tmp_path / "out" / "table.csv") as f:
    rows = {r["name"]: r for r in csv.DictReader(f)}
  assert rows["augmix"]["clean_std"] == "" and float(rows["natural"]["clean_std"]) > 1
