"""What every command line shares (`freqrobust.cli`): every error on the command line exits 2."""
import os
import subprocess
import sys

from absl import flags
import pytest

from freqrobust import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_absl_flag_errors_exit_2(capsys):
  """An unknown flag or a value absl's parser refuses exits 2, as a refused user error does."""
  values = flags.FlagValues()
  flags.DEFINE_integer("count", 1, "A number.", flag_values=values)
  parse = cli._parse_flags_reporting_user_errors(values)
  for argv in (["tool", "--no_such_flag=1"], ["tool", "--count=many"]):
    with pytest.raises(SystemExit) as exited:
      parse(argv)
    assert exited.value.code == 2
    assert "FATAL Flags parsing error" in capsys.readouterr().err


def test_an_unknown_analyze_tool_is_one_line_naming_it():
  out = subprocess.run([sys.executable, "-m", "freqrobust.analyze", "nonsense", "--workdir=x"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, FREQROBUST_MALLOC="system"))
  assert out.returncode == 2, out.stderr[-2000:]
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1 and "'nonsense'" in lines[0] and "fprinciple" in lines[0], lines[:5]
