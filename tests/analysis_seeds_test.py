"""freqrobust.analysis.seeds and its command line freqrobust.seeds: an analysis tool's outputs over seeds (fake runs, known arrays)."""
import json
import os

import subprocess
import sys

import numpy as np
import pytest
from absl import flags

from freqrobust import seeds as cli_seeds
from freqrobust.analysis import seeds
from freqrobust.workdir import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fake_run(root, name, tool_arrays):
  """A run folder with results.json and the given {relative npz path: arrays}."""
  workdir = os.path.join(root, name)
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump({"status": "finished"}, f)
  for rel, arrays in tool_arrays.items():
    path = os.path.join(workdir, "analysis", rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez(path, **arrays)
  return workdir


def hfc_arrays(epochs, level):
  e = np.asarray(epochs, float)
  radii = np.asarray([3.5, 7.0])
  low = np.full((len(e), 2), level)
  return {"epochs": e, "radii": radii, "low_accuracy": low, "high_accuracy": low / 2,
          "clean_accuracy": np.full(len(e), level)}


def test_hfc_mean_and_sample_std_over_seeds_per_group(tmp_path):
  root = str(tmp_path)
  for seed, level in enumerate((0.2, 0.4, 0.6)):
    arrays = hfc_arrays([4, 8, 12], level)
    fake_run(root, f"natural_seed-{seed}", {"hfc/train/hfc_curves.npz": arrays,
                                             "hfc/test/hfc_curves.npz": arrays})
  arrays = hfc_arrays([4, 8, 12], 0.9)
  fake_run(root, "shuffled_seed-0", {"hfc/train/hfc_curves.npz": arrays,
                                      "hfc/test/hfc_curves.npz": arrays})
  fake_run(root, "shuffled_seed-1", {})  # Trained, not analysed.
  out = str(tmp_path / "out")
  summary = seeds.run([root], "hfc", out, groups=["shuffled", "natural"])
  assert list(summary["groups"]) == ["shuffled", "natural"]  # The order asked for.
  nat = summary["groups"]["natural"]["test"]
  assert summary["groups"]["natural"]["seeds"] == [0, 1, 2]
  np.testing.assert_allclose(nat["low_accuracy"]["mean"], 0.4)
  np.testing.assert_allclose(nat["low_accuracy"]["std"], 0.2)  # ddof = 1: std of .2, .4, .6.
  np.testing.assert_allclose(nat["high_accuracy"]["mean"], 0.2)
  np.testing.assert_allclose(summary["groups"]["shuffled"]["train"]["clean_accuracy"]["std"], 0.0)
  # The analysed-less run is named with the command that makes its output.
  assert any("shuffled_seed-1" in n and "analyze hfc" in n and "--curves" in n
             for n in summary["notes"])
  assert os.path.exists(os.path.join(out, "seeds_hfc.png"))
  saved = json.load(open(os.path.join(out, "seeds_hfc.json")))
  assert saved["groups"]["natural"]["test"]["low_accuracy"]["mean"][0] == pytest.approx([0.4, 0.4])
  assert any("natural (seeds 0, 1, 2) test at epoch 12: full 40.0%" in line
             for line in seeds.describe(summary))


def test_checkpoints_missing_in_a_seed_are_left_out_with_a_note(tmp_path):
  root = str(tmp_path)
  a = hfc_arrays([4, 8, 12], 0.2)
  b = hfc_arrays([4, 6, 8, 12], 0.4)
  fake_run(root, "r_seed-0", {"hfc/train/hfc_curves.npz": a, "hfc/test/hfc_curves.npz": a})
  fake_run(root, "r_seed-1", {"hfc/train/hfc_curves.npz": b, "hfc/test/hfc_curves.npz": b})
  summary = seeds.aggregate(seeds.find_runs([root], "hfc"), "hfc")
  part = summary["groups"]["r"]["train"]
  np.testing.assert_array_equal(part["epochs"], [4, 8, 12])
  np.testing.assert_allclose(part["clean_accuracy"]["mean"], 0.3)
  assert any("[6.0] are not in every seed" in n for n in summary["notes"])


def test_seeds_with_another_grid_are_refused(tmp_path):
  root = str(tmp_path)
  a = hfc_arrays([4, 8], 0.2)
  b = dict(hfc_arrays([4, 8], 0.4), radii=np.asarray([4.0, 8.0]))
  fake_run(root, "r_seed-0", {"hfc/train/hfc_curves.npz": a, "hfc/test/hfc_curves.npz": a})
  fake_run(root, "r_seed-1", {"hfc/train/hfc_curves.npz": b, "hfc/test/hfc_curves.npz": b})
  with pytest.raises(ValueError, match="radii differ.*same settings"):
    seeds.aggregate(seeds.find_runs([root], "hfc"), "hfc")


def test_perturbation_dct_and_fprinciple_figures_share_one_scale(tmp_path):
  root = str(tmp_path)
  for seed in range(2):
    spectrum = np.zeros((8, 8))
    spectrum[4, 4 + seed] = 1.0 + seed
    fake_run(root, f"nat_seed-{seed}", {
        "perturbation/perturbation.npz": {
            "mean_abs_spectrum_shifted": spectrum, "radii": np.arange(5.0),
            "radial_profile": np.arange(5.0) + seed, "half_power_radius": np.float64(1 + seed),
            "rct": np.linspace(0, 1, 4), "band_diagonals": np.asarray([[0, 1], [2, 3]] * 2)},
        "dct/dct_attribution.npz": {"attribution": np.asarray([1.0, 0.0, seed]),
                                    "band_diagonals": np.asarray([[0, 0], [1, 1], [2, 14]])},
        "fprinciple/fprinciple.npz": {"epochs": np.asarray([1.0, 2.0]),
                                      "deltas": np.asarray([2.0, 4.0]),
                                      "e_low": np.full((2, 2), 0.1 * (seed + 1)),
                                      "e_high": np.full((2, 2), 0.5),
                                      "accuracy": np.asarray([0.5, 0.6])}})
  out = str(tmp_path / "out")
  p = seeds.run([root], "perturbation", out)["groups"]["nat"]["main"]
  assert float(p["half_power_radius"]["mean"]) == pytest.approx(1.5)
  np.testing.assert_allclose(p["mean_abs_spectrum_shifted"]["mean"][4, 4:6], [0.5, 1.0])
  d = seeds.run([root], "dct", out)["groups"]["nat"]["main"]
  np.testing.assert_allclose(d["attribution"]["mean"], [1.0, 0.0, 0.5])
  f = seeds.run([root], "fprinciple", out)["groups"]["nat"]["main"]
  np.testing.assert_allclose(f["e_low"]["mean"], 0.15)
  for tool in ("perturbation", "dct", "fprinciple"):
    assert os.path.exists(os.path.join(out, f"seeds_{tool}.png"))


def test_bad_input_is_a_clear_error_before_any_work(tmp_path):
  with pytest.raises(FileNotFoundError, match="not a folder of runs"):
    seeds.find_runs([str(tmp_path / "nope")], "hfc")
  fake_run(str(tmp_path), "a_seed-0", {})
  with pytest.raises(FileNotFoundError, match="no run of b under.*groups there: a"):
    seeds.find_runs([str(tmp_path)], "hfc", groups=["b"])
  with pytest.raises(ValueError, match="--tool='x'"):
    seeds.find_runs([str(tmp_path)], "x")
  with pytest.raises(FileNotFoundError, match="no run has hfc outputs.*a_seed-0"):
    seeds.aggregate(seeds.find_runs([str(tmp_path)], "hfc"), "hfc")
  with pytest.raises(UserError, match="--tool='x'"):
    seeds.find_runs([str(tmp_path)], "x")


def run_cli(*args):
  return subprocess.run([sys.executable, "-m", "freqrobust.seeds", *args], capture_output=True,
                        text=True, cwd=REPO, timeout=300)


def test_the_command_line_says_what_is_wrong_and_exits_2(tmp_path):
  """The defects: `--roots=` (empty) ended in an IndexError, and a root without runs printed
  "no run has hfc outputs: " cut off after the colon. Both are now a full message, exit 2."""
  done = run_cli("--tool=hfc", "--roots=")
  assert done.returncode == 2 and "--roots is empty" in done.stderr, done.stderr
  assert "Traceback" not in done.stderr
  empty = tmp_path / "empty"
  empty.mkdir()
  # FileNotFoundError and UserError are the user errors cli.run prints as one paragraph (exit 2).
  with pytest.raises(FileNotFoundError,
                     match=r"outputs: no run \(a folder with a results.json\) under the roots"):
    main_with("--tool=hfc", f"--roots={empty}")
  fake_run(str(tmp_path), "a_seed-0", {})
  with pytest.raises(UserError, match="--labels has 2 entries for 1 --groups"):
    main_with("--tool=hfc", f"--roots={tmp_path}", "--groups=a", "--labels=x,y")


def main_with(*args):
  flag_values = flags.FlagValues()
  cli_seeds.define_flags(flag_values)
  flag_values(["seeds", *args])
  cli_seeds.main(["seeds"], flag_values)


def test_the_command_line_writes_the_figure(tmp_path):
  root = str(tmp_path)
  for seed in range(2):
    arrays = hfc_arrays([4, 8], 0.2 + 0.2 * seed)
    fake_run(root, f"natural_seed-{seed}_cpu", {"hfc/train/hfc_curves.npz": arrays,
                                                 "hfc/test/hfc_curves.npz": arrays})
  main_with("--tool=hfc", f"--roots={root}", f"--out={tmp_path / 'out'}")
  saved = json.load(open(tmp_path / "out" / "seeds_hfc.json"))
  # The older naming (seed before cpu) keeps its seed.
  assert saved["groups"]["natural_cpu"]["seeds"] == [0, 1]
