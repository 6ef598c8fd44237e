"""The deterministic pieces of APGD-T, FAB-T and Square against the official PyTorch code
(bench/autoattack_crosscheck.py); skipped without PyTorch or the official code
($AUTOATTACK_OFFICIAL, default /tmp/auto-attack)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))

import autoattack_crosscheck as crosscheck  # noqa: E402


def test_deterministic_pieces_equal_the_official_code():
  loaded, why = crosscheck.load_official()
  if loaded is None:
    pytest.skip(why)
  torch, _ = loaded
  out = crosscheck.deterministic(torch)
  assert out["p_selection_equal"] and out["side_equal"]
  for name in ("proj_linf", "proj_l2", "eta", "dlr_targeted"):
    assert out[name] < 1e-4, (name, out[name])


def test_the_crosscheck_skips_cleanly_without_the_official_code(tmp_path, capsys):
  assert crosscheck.main([f"--official={tmp_path}", "--skip_ensemble"]) == 0
  out = capsys.readouterr().out
  assert out.startswith("skipped:") and str(tmp_path) in out or "PyTorch" in out
