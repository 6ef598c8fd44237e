"""The paper's experiments as configs, the sweep runner's bookkeeping and the table aggregator."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from configs import paper
from freqrobust import experiment, report
from freqrobust.corruptions import CORRUPTIONS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "launch"))
import sweep  # noqa: E402


def test_every_paper_run_resolves_and_is_distinct():
  seen = set()
  for table in paper.TABLES:
    for arg in paper.runs(table, seeds=(0, 1)):
      config = experiment.resolve_config(paper.get_config(arg))
      key = config.to_json(sort_keys=True)
      assert key not in seen or arg.startswith("table3,nat"), arg  # Table 4 reuses Table 3's nat.
      seen.add(key)
  # Tables 1 (2 x 4), 2 (2 x 9), 3 (5), 4 (8 + nat): 8 + 18 + 5 + 8 distinct settings x 2 seeds.
  assert len(seen) == (8 + 18 + 5 + 8) * 2


@pytest.mark.parametrize("arg,expect", [
    ("table1,vgg16,nat", dict(name="vgg16", attention="none", p=0.0, nfd=False, lr=0.01)),
    ("table1,vgg16_bn,aug_att", dict(name="vgg16_bn", attention="basic", p=1 / 3, nfd=False)),
    ("table2,vgg16,lmh=100", dict(attention="basic", configuration="LMH=100", aux=100.0)),
    ("table3,nfd", dict(name="resnet18", attention="none", p=0.0, nfd=True, lr=0.1)),
    ("table3,both_att", dict(attention="extended", p=1 / 3, nfd=True)),
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


def test_cpu_variant_and_bad_arguments():
  c = paper.get_config("table3,both,seed=3,cpu")
  assert (c.data.dataset, c.model.name, c.seed) == ("fashion_mnist", "small_resnet", 3)
  with pytest.raises(ValueError, match="table1, table2, table3, table4"):
    paper.get_config("table9,nat")
  with pytest.raises(ValueError, match="both_att"):
    paper.get_config("table3,everything")


def fake_run(root, name, clean, corrupted_acc, status="finished"):
  workdir = os.path.join(root, name)
  os.makedirs(os.path.join(workdir, "corruption_eval"), exist_ok=True)
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump({"status": status, "clean": {"accuracy": clean}, "corruptions": {}}, f)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump({"corruptions": {"evaluate": True}}, f)
  with open(os.path.join(workdir, "corruption_eval", "results.json"), "w") as f:
    json.dump({"accuracy": {c: {str(s): corrupted_acc for s in range(1, 6)} for c in CORRUPTIONS}}, f)
  return workdir


def test_report_shows_baseline_absolute_and_the_rest_as_differences(tmp_path):
  root = str(tmp_path)
  fake_run(root, "table3_nat_seed-0", 90.0, 60.0)
  fake_run(root, "table3_nat_seed-1", 92.0, 60.0)
  fake_run(root, "table3_nfd_seed-0", 89.0, 70.0)
  fake_run(root, "table3_nfd_seed-1", 90.0, 80.0)
  fake_run(root, "table3_sup_seed-0", 95.0, 99.0, status="preempted")  # Unfinished: left out.
  summary = report.aggregate(root, "nat")
  rows = {r["name"]: r for r in summary["rows"]}
  assert set(rows) == {"table3_nat", "table3_nfd"} and summary["rows"][0]["name"] == "table3_nat"
  nat, nfd = rows["table3_nat"], rows["table3_nfd"]
  assert nat["clean_mean"] == pytest.approx(91.0) and nat["clean_std"] == pytest.approx(2 ** 0.5)
  assert nfd["clean_delta"] == pytest.approx(89.5 - 91.0)
  assert nfd["robust_delta"] == pytest.approx(75.0 - 60.0)
  assert nfd["robust_std"] == pytest.approx(50 ** 0.5)  # Sample std of 70 and 80.
  # mCE relative to the baseline: CE 30 and 20 against the baseline's 40 -> 75 and 50, mean 62.5.
  assert nfd["mce_mean"] == pytest.approx(62.5) and nat["mce_mean"] == pytest.approx(100.0)
  report.write(summary, str(tmp_path / "out"))
  table = (tmp_path / "out" / "table.md").read_text()
  assert "(91.00 ± 1.41)" in table and "-1.50 ± 0.71" in table and "+15.00 ± 7.07" in table
  assert (tmp_path / "out" / "robustness.png").stat().st_size > 1000


def test_report_compares_each_backbone_with_its_own_baseline(tmp_path):
  root = str(tmp_path)
  fake_run(root, "table2_vgg16_nat_seed-0", 90.0, 60.0)
  fake_run(root, "table2_vgg16_bn_nat_seed-0", 92.0, 70.0)
  fake_run(root, "table2_vgg16_lmh-011_seed-0", 89.0, 65.0)
  fake_run(root, "table2_vgg16_bn_lmh-011_seed-0", 91.0, 72.0)
  rows = {r["name"]: r for r in report.aggregate(root, "nat")["rows"]}
  assert rows["table2_vgg16_nat"]["baseline"] and rows["table2_vgg16_bn_nat"]["baseline"]
  assert rows["table2_vgg16_lmh-011"]["clean_delta"] == pytest.approx(-1.0)
  assert rows["table2_vgg16_lmh-011"]["robust_delta"] == pytest.approx(5.0)
  assert rows["table2_vgg16_bn_lmh-011"]["clean_delta"] == pytest.approx(-1.0)
  assert rows["table2_vgg16_bn_lmh-011"]["robust_delta"] == pytest.approx(2.0)


def test_sweep_skips_finished_runs_and_reruns_unfinished(tmp_path):
  root = str(tmp_path)
  fake_run(root, sweep.run_name("table3,nat,seed=0,cpu"), 90.0, 60.0)
  fake_run(root, sweep.run_name("table3,sup,seed=0,cpu"), 90.0, 60.0, status="preempted")
  out = subprocess.run([sys.executable, os.path.join(REPO, "launch", "sweep.py"), "--table=table3",
                        "--seeds=0", "--cpu", f"--root={root}", "--dry_run"],
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr
  lines = [l for l in out.stdout.splitlines() if l.startswith("[")]
  assert len(lines) == 5
  assert "finished, skipped" in lines[0] and "freqrobust.main" in lines[1]
  assert all("freqrobust.main" in l for l in lines[1:])
