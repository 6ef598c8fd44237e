"""What every command line shares: absl flags, `--debug`, and user errors as one paragraph.

Every entry point (`main`, `evaluate`, `analyze`, `report`, `illustrate`, `launch/sweep.py`) is
an absl app run through `run(main)`: an error the user caused (a bad config field, a missing
dataset or workdir, a busy workdir, a full disk) is printed as one paragraph naming the field or
file and the fix, and the process exits with status 2; `--debug` shows the traceback instead.
`python -m freqrobust` lists the tools.
"""
from __future__ import annotations

import sys
from typing import Callable

from absl import app, flags

from freqrobust import platform
from freqrobust.data.errors import DatasetError
from freqrobust.workdir import UserError

# Errors whose message is the whole story for a user.
USER_ERRORS = (UserError, DatasetError, FileNotFoundError, FloatingPointError)

flags.DEFINE_bool("debug", False, "Show the full traceback of errors instead of one paragraph.")


def report_user_error(error: BaseException) -> None:
  print(f"Error: {error}", file=sys.stderr, flush=True)


def run(main: Callable, **app_kwargs) -> None:
  """`absl.app.run(main)`, with user errors as one paragraph (exit 2) unless --debug.

  A CPU run first re-executes itself with tcmalloc preloaded when it is installed
  (`platform.reexec_with_tcmalloc`; FREQROBUST_MALLOC=system keeps glibc's malloc)."""
  try:
    platform.reexec_with_tcmalloc()
  except ValueError as error:  # A FREQROBUST_MALLOC value it does not know.
    report_user_error(error)
    sys.exit(2)

  def guarded(argv):
    if not flags.FLAGS.debug:
      from absl import logging
      logging.set_verbosity(logging.WARNING)  # Orbax logs every restore at INFO.
    try:
      return main(argv)
    except USER_ERRORS as error:
      if flags.FLAGS.debug:
        raise
      report_user_error(error)
      sys.exit(2)

  app.run(guarded, **app_kwargs)
