"""Size limits of the package's code, so that a module or function stays readable on its own: no
module of `freqrobust/` over 500 lines, no function over 80 (docs/ARCHITECTURE.md)."""
import ast
import os

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "freqrobust")
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 500, 80


def oversized(root: str = PACKAGE):
  """[(path, name or None, lines)] of the modules and functions over the limits under `root`."""
  found = []
  for folder, _, files in os.walk(root):
    for name in sorted(f for f in files if f.endswith(".py")):
      path = os.path.join(folder, name)
      with open(path) as f:
        source = f.read()
      if source.count("\n") > MAX_MODULE_LINES:
        found.append((path, None, source.count("\n")))
      for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
          lines = node.end_lineno - node.lineno + 1
          if lines > MAX_FUNCTION_LINES:
            found.append((path, node.name, lines))
  return found


def test_no_module_or_function_over_the_limits():
  assert oversized() == []


def test_the_check_finds_an_oversized_module_and_function(tmp_path):
  body = "\n".join(f"  x{i} = {i}" for i in range(81))
  (tmp_path / "big.py").write_text("def long():\n" + body + "\n" + "#\n" * 420)
  found = {(os.path.basename(p), n) for p, n, _ in oversized(str(tmp_path))}
  assert found == {("big.py", None), ("big.py", "long")}
