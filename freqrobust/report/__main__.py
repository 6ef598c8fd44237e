"""`python -m freqrobust.report`: the command line of `freqrobust.report`."""
from freqrobust import cli, report

if __name__ == "__main__":
  report.define_flags()
  cli.run(report.main)
