"""Command line: `python -m freqrobust.analyze TOOL --workdir=DIR [--step=N] [TOOL's flags]`.

The tools are the registry `freqrobust.tools.TOOLS` (one module each, with its own flags:
`python -m freqrobust.analyze TOOL --help` lists them); docs/ANALYSIS.md explains each figure.
Outputs go to DIR/analysis/TOOL/ (DIR/steps/<N>/analysis/TOOL/ with --step=N, a checkpoint kept by
config.train.keep_every_epochs): PNG figures, TOOL.npz (arrays, FFT layout) and TOOL.json.
With --workdirs (spectra, compare), DIR defaults to the first of them.
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

from freqrobust import tools as tools_lib  # noqa: E402
from freqrobust import workdir as workdir_lib  # noqa: E402
from freqrobust.tools import base  # noqa: E402


def _doc() -> str:
  lines = [__doc__, "Tools:"]
  for name, tool in tools_lib.TOOLS.items():
    lines.append(f"  {name:10s} {tool.summary}")
  return "\n".join(lines)


def define_flags(flag_values: flags.FlagValues | None = None, tool: str | None = None) -> None:
  """The flags every tool shares, and `tool`'s own (every tool's when None: tests, --helpfull)."""
  fv = flags.FLAGS if flag_values is None else flag_values
  flags.DEFINE_string("workdir", None, "Trained run to analyse; outputs go to DIR/analysis/TOOL/.",
                      flag_values=fv)
  flags.DEFINE_list("workdirs", [], "spectra/compare: several runs, in the order to show them.",
                    flag_values=fv)
  flags.DEFINE_list("labels", [], "compare/spectra: one display label per --workdirs entry.",
                    flag_values=fv)
  flags.DEFINE_integer("step", None, "Analyse this kept checkpoint instead of the newest "
                       "(outputs under DIR/steps/<step>/analysis/TOOL/).", flag_values=fv)
  flags.DEFINE_integer("num_images", 0, "Images used: the first N test images (hfc --curves: "
                       "also the first N training images; fprinciple: N training images only); "
                       "0 = the tool's default.", flag_values=fv)
  flags.DEFINE_integer("batch_size", 0, "Images per device call (0 = the run's eval.batch_size, "
                       "which its predict function is compiled for; 256 for pdm and spectra).",
                       flag_values=fv)
  flags.DEFINE_integer("seed", 0, "Seed of the tool's randomness.", flag_values=fv)
  flags.DEFINE_bool("progress", True, "Show progress bars.", flag_values=fv)
  chosen = [tools_lib.TOOLS[tool]] if tool in tools_lib.TOOLS else tools_lib.TOOLS.values()
  before = set(fv)
  for t in chosen:
    t.define_flags(fv)
  for name in sorted(set(fv) - before):  # Listed by `analyze TOOL --help` (key flags of this
    flags.declare_key_flag(name, flag_values=fv)  # module), not only by --helpfull.


def main(argv, flag_values: flags.FlagValues | None = None):
  if len(argv) != 2:
    raise app.UsageError(f"usage: python -m freqrobust.analyze TOOL --workdir=DIR; TOOL is one "
                         f"of {', '.join(tools_lib.TOOLS)}")
  if argv[1] not in tools_lib.TOOLS:
    raise workdir_lib.UserError(f"analyze: no tool named {argv[1]!r}; the tools: "
                                f"{', '.join(tools_lib.TOOLS)} (python -m freqrobust.analyze "
                                "TOOL --help lists a tool's flags).")
  values = flags.FLAGS if flag_values is None else flag_values
  base.check_flags(values)  # Every numeric flag, before anything is loaded.
  tool = tools_lib.TOOLS[argv[1]]
  workdirs = list(values.workdirs)
  workdir = values.workdir or (workdirs[0] if workdirs else None)
  if workdir is None:
    raise app.UsageError("pass --workdir=DIR (or --workdirs=A,B,... for spectra and compare)")
  context = base.Context(tool.name, workdir, values.step)
  summary = tool.run(values, context)
  print(base.written(summary, tool.name, context.out_dir))


def _tool_in(argv) -> str | None:
  return next((a for a in argv[1:] if not a.startswith("-")), None)


if __name__ == "__main__":
  from freqrobust import cli
  define_flags(tool=_tool_in(sys.argv))
  __doc__ = _doc()  # absl prints the module docstring for --help.
  cli.run(main)
