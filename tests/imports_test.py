"""The import graph of freqrobust runs one way: no cycle, deferred (function-level) imports
included, so every module can be read and tested without the ones above it."""
import ast
import os

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "freqrobust")


def module_name(path: str) -> str:
  rel = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
  return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def import_graph() -> dict[str, set[str]]:
  modules = {}
  for root, _, files in os.walk(PACKAGE):
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(root, name)
        modules[module_name(path)] = path
  graph = {}
  for mod, path in modules.items():
    with open(path) as f:
      tree = ast.parse(f.read())
    package = mod if path.endswith("__init__.py") else mod.rsplit(".", 1)[0]
    targets = set()
    for node in ast.walk(tree):  # Every import, at any depth.
      if isinstance(node, ast.Import):
        targets.update(a.name for a in node.names)
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
          base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] +
                          ([base] if base else []))
        submodules = {f"{base}.{a.name}" for a in node.names} & set(modules)
        targets.update(submodules)
        if len(submodules) < len(node.names):  # Names defined in `base` itself.
          targets.add(base)
    # A submodule reaching into its own package (`from freqrobust.analysis import _batching`
    # inside freqrobust.analysis.bandpass) is not an edge upwards.
    graph[mod] = {t for t in targets if t in modules and t != mod
                  and not mod.startswith(t + ".")}
  return graph


def find_cycle(graph):
  state, stack = {}, []

  def visit(node):
    state[node] = 1
    stack.append(node)
    for nxt in sorted(graph[node]):
      if state.get(nxt) == 1:
        return stack[stack.index(nxt):] + [nxt]
      if nxt not in state:
        found = visit(nxt)
        if found:
          return found
    stack.pop()
    state[node] = 2
    return None

  for node in sorted(graph):
    if node not in state:
      found = visit(node)
      if found:
        return found
  return None


def test_no_import_cycle_in_the_package():
  graph = import_graph()
  assert "freqrobust.train" in graph and "freqrobust.experiment" in graph["freqrobust.train"]
  cycle = find_cycle(graph)
  assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
  assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
  assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_low_layers_import_nothing_above_them():
  graph = import_graph()
  for low in ("freqrobust.frequency", "freqrobust.metrics", "freqrobust.platform",
              "freqrobust.workdir"):
    for mod in (m for m in graph if m == low or m.startswith(low + ".")):  # A package: its own.
      outside = {t for t in graph[mod] if not t.startswith(low + ".")}
      assert not outside, (mod, outside)
  upper = {"freqrobust.train", "freqrobust.trained", "freqrobust.experiment",
           "freqrobust.evaluate", "freqrobust.checkpoint", "freqrobust.main"}
  for mod, targets in graph.items():
    if mod.startswith(("freqrobust.models", "freqrobust.augment", "freqrobust.corruptions",
                       "freqrobust.data")):
      assert not targets & upper, (mod, targets & upper)


# What the building blocks of analysis/ may import: the core and the other building blocks,
# never a run's set-up, evaluations, the report, the tools or the command lines.
ANALYSIS_MAY_IMPORT = ("freqrobust.analysis", "freqrobust.frequency", "freqrobust.platform",
                       "freqrobust.workdir", "freqrobust.runs", "freqrobust.metrics",
                       "freqrobust.corruptions", "freqrobust.data", "freqrobust.models",
                       "freqrobust.augment", "freqrobust.attacks")


def _allowed(target: str, prefixes) -> bool:
  return any(target == p or target.startswith(p + ".") for p in prefixes)


def test_analysis_imports_nothing_above_it():
  graph = import_graph()
  checked = [mod for mod in graph if mod.startswith("freqrobust.analysis")]
  assert "freqrobust.analysis.seeds" in checked and "freqrobust.analysis.examples" in checked
  for mod in checked:
    upward = {t for t in graph[mod] if not _allowed(t, ANALYSIS_MAY_IMPORT)}
    assert not upward, (mod, upward)


def test_the_run_record_sits_on_the_workdir_layer():
  assert import_graph()["freqrobust.runs"] <= {"freqrobust.workdir"}


def test_the_allow_list_catches_an_upward_import():
  assert not _allowed("freqrobust.report", ANALYSIS_MAY_IMPORT)
  assert not _allowed("freqrobust.tools.pdm", ANALYSIS_MAY_IMPORT)
  assert not _allowed("freqrobust.cli", ANALYSIS_MAY_IMPORT)
  assert not _allowed("freqrobust.runsx", ANALYSIS_MAY_IMPORT)
  assert _allowed("freqrobust.frequency", ANALYSIS_MAY_IMPORT)
