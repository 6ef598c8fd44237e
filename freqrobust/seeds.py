"""Command line: an analysis tool's outputs over the seeds of each run.

  python -m freqrobust.seeds --tool=hfc --roots=runs/explain_hfc --out=figures
  python -m freqrobust.seeds --tool=dct --roots=runs/adversarial_cpu \\
      --groups=natural_cpu,gaussian_cpu,paper_both_att_cpu,pgd_at_cpu

Reads DIR/analysis/TOOL/*.npz of every run under the roots (`analyze TOOL` writes them), groups
the runs by name without `_seed-N`, and writes per group the mean and sample standard deviation
over seeds (OUT/seeds_TOOL.json) and one figure (OUT/seeds_TOOL.png); the functions are
`freqrobust.analysis.seeds`.
"""
import os
from typing import Optional

from absl import app, flags

from freqrobust.analysis import seeds
from freqrobust.workdir import UserError


def define_flags(flag_values: Optional[flags.FlagValues] = None) -> None:
  fv = flags.FLAGS if flag_values is None else flag_values
  flags.DEFINE_string("tool", None, f"The analysis tool: one of {', '.join(seeds.TOOL_FILES)}.",
                      flag_values=fv)
  flags.DEFINE_list("roots", None, "Comma-separated folders of runs (a sweep's --root).",
                    flag_values=fv)
  flags.DEFINE_list("groups", [], "Run names without _seed-N, in the figure's order (default: "
                    "every group found).", flag_values=fv)
  flags.DEFINE_list("labels", [], "Display labels for --groups, one each.", flag_values=fv)
  flags.DEFINE_string("out", "", "Output folder (default: the first root's analysis/).",
                      flag_values=fv)
  flags.DEFINE_string("name", "", "Output stem seeds_<name> (default: the tool).", flag_values=fv)
  flags.mark_flags_as_required(["tool", "roots"], flag_values=fv)


def main(argv, flag_values: Optional[flags.FlagValues] = None) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  values = flags.FLAGS if flag_values is None else flag_values
  roots = [r for r in values.roots if r]
  groups = [g for g in values.groups if g]
  labels = [l for l in values.labels if l]
  if not roots:
    raise UserError("--roots is empty: give the folders of runs (a sweep's --root), "
                    "comma-separated, e.g. --roots=runs/explain_hfc.")
  if labels and len(labels) != len(groups):
    raise UserError(f"--labels has {len(labels)} entries for {len(groups)} --groups: give one "
                    "label per group, in the same order.")
  summary = seeds.run(roots, values.tool, values.out or os.path.join(roots[0], "analysis"),
                      groups, dict(zip(groups, labels)), values.name)
  print("\n".join(seeds.describe(summary)))
  print(f"wrote {summary['figure']} and its .json")


if __name__ == "__main__":
  from freqrobust import cli
  define_flags()
  cli.run(main)
