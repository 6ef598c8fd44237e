"""`python -m freqrobust`: the tools, each with `--help` for its options."""
import sys

TOOLS = (
    ("python -m freqrobust.main --config=FILE[:args] --workdir=DIR",
     "train (resumes from DIR's newest checkpoint; --config.a.b=v overrides any field)"),
    ("python -m freqrobust.evaluate --workdir=DIR [--evals=corruptions,hfc_split] [--step=N]",
     "the run's evaluations (freqrobust/evaluators: clean, corruptions, hfc_split, summary, ...); "
     "finishes an interrupted run's"),
    ("python -m freqrobust.analyze TOOL --workdir=DIR [--step=N]",
     "pdm, heatmap, bandpass, spectra, occlusion, compare, dct, hfc, smoothing, fprinciple, "
     "perturbation "
     "(TOOL --help: its flags)"),
    ("python -m freqrobust.convert --arch=ARCH --checkpoint=FILE --workdir=DIR",
     "import a published PyTorch CIFAR-10 model (RobustBench zoo) as a workdir (docs/MODELS.md)"),
    ("python -m freqrobust.report --root=ROOT", "a sweep's runs in the paper's table layout"),
    ("python -m freqrobust.seeds --tool=TOOL --roots=ROOT",
     "an analyze tool's outputs over the seeds of each run (mean, sample std, one figure)"),
    ("python -m freqrobust.illustrate --out=DIR", "the paper's Figures 3 and 4 on real images"),
    ("python launch/sweep.py --table=tableN --seeds=0,1 --root=ROOT",
     "train a table's runs over seeds (skips finished, resumes unfinished)"),
)


def main() -> None:
  print("freqrobust tools (each takes --help; all take --debug for full tracebacks):\n")
  for command, what in TOOLS:
    print(f"  {command}\n      {what}")
  sys.exit(0)


if __name__ == "__main__":
  main()
