"""Every `python -m freqrobust.main` command the documentation shows names a config that loads and
overrides only fields that exist (a README example once overrode a field APR does not have)."""
import pathlib
import re

import pytest

from freqrobust import main as cli_main

ROOT = pathlib.Path(__file__).resolve().parent.parent
_SPEC = re.compile(r"--config=(configs/[\w./]+\.py(?::[\w,=.]+)?)")
_OVERRIDE = re.compile(r"--config\.([\w.]+)=([^\s`'\"]+)")


def documented_commands():
  """(file, line number, argv) for each line (continuations joined) that names a config."""
  files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")),
           *sorted((ROOT / "configs").glob("*.py"))]
  found = []
  for path in files:
    text = path.read_text()
    for logical in re.finditer(r"(?:.*\\\n)*.*", text):  # a line with its continuations
      line = logical.group().replace("\\\n", " ")
      number = text.count("\n", 0, logical.start()) + 1
      for spec in _SPEC.findall(line):
        argv = [f"--config={spec}"] + [f"--config.{k}={v}" for k, v in _OVERRIDE.findall(line)]
        found.append((path.relative_to(ROOT).as_posix(), number, argv))
  return found


def test_the_documentation_has_commands_to_check():
  files = {f for f, _, _ in documented_commands()}
  assert "README.md" in files and "configs/baselines.py" in files
  assert any(len(argv) > 1 for _, _, argv in documented_commands())  # with overrides


@pytest.mark.parametrize("where,number,argv", documented_commands(),
                         ids=lambda v: v if isinstance(v, str) else None)
def test_documented_config_loads_and_overrides_exist(where, number, argv, monkeypatch):
  monkeypatch.chdir(ROOT)
  message = cli_main.unknown_field_message(argv)
  assert message == "", f"{where}:{number}: {message}"


def test_a_wrong_override_is_caught(monkeypatch):
  monkeypatch.chdir(ROOT)
  message = cli_main.unknown_field_message(
      ["--config=configs/baselines.py:apr_p,cpu", "--config.method_args.prob=0.6"])
  assert "has no field 'prob'" in message and "pair_prob" in message


def test_ci_runs_the_readmes_test_command():
  """CI (`.ci/run`) runs the test command the README gives users, not another one."""
  ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if "pytest" in line and not line.lstrip().startswith("#")]
  readme = [line.strip() for line in (ROOT / "README.md").read_text().splitlines()
            if line.startswith("python -m pytest")]
  assert len(ci) == 1 and readme == ci, (ci, readme)
