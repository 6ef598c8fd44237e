"""What every command line shares: absl flags, `--debug`, and user errors as one paragraph.

Every entry point (`main`, `evaluate`, `analyze`, `report`, `illustrate`, `launch/sweep.py`) is
an absl app run through `run(main)`: an error the user caused (a bad config field, a missing
dataset or workdir, a busy workdir, a full disk) is printed as one paragraph naming the field or
file and the fix, and the process exits with status 2; `--debug` shows the traceback instead.
`python -m freqrobust` lists the tools.
"""
from __future__ import annotations

import os
import sys
import textwrap
from typing import Callable, Optional

from absl import app, flags

from freqrobust import platform
from freqrobust.data.errors import DatasetError
from freqrobust.workdir import UserError

# Errors whose message is the whole story for a user.
USER_ERRORS = (UserError, DatasetError, FileNotFoundError, FloatingPointError)

flags.DEFINE_bool("debug", False, "Show the full traceback of errors instead of one paragraph.")


def default_config():
  """configs/default.py's config (the repository root put on the path when a command runs from
  elsewhere): the defaults and the types of the fields a command line overrides."""
  try:
    from configs import default
  except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from configs import default
  return default.get_config()


def report_user_error(error: BaseException) -> None:
  print(f"Error: {error}", file=sys.stderr, flush=True)


def _user_error_in(error: BaseException):
  """The innermost user error (USER_ERRORS) in `error`'s chain of causes and contexts, or None.

  A flag's parser that raises a UserError (a config file's `get_config` with a bad argument
  string, a missing config file) reaches absl wrapped: as IllegalFlagValueError, and through
  ml_collections, as a copy whose message holds the traceback. The innermost one is the
  original, with only its own message."""
  found, seen = None, set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, USER_ERRORS):
      found = error
    error = error.__cause__ or error.__context__
  return found


def _parse_flags_reporting_user_errors(parser: Optional[Callable]) -> Callable:
  """A flags parser for `absl.app.run`: `parser` (absl's FLAGS(argv) when None), with a user error
  raised while a flag is read as one paragraph (exit 2; --debug: the traceback); any other flag
  error (an unknown flag, a value its parser refuses) as absl reports it, also with exit 2: every
  error the user made on the command line exits 2, as the README says."""

  def parse(argv):
    try:
      return parser(argv) if parser is not None else flags.FLAGS(argv)
    except flags.Error as error:
      if any(a in ("--debug", "--debug=true", "--debug=True", "--debug=1") for a in argv):
        raise
      user_error = _user_error_in(error)
      if user_error is not None:
        report_user_error(user_error)
        sys.exit(2)
      message = str(error)  # absl.app.parse_flags_with_usage's report
      message = (f"FATAL Flags parsing error:\n{textwrap.indent(message, '  ')}\n"
                 if "\n" in message else f"FATAL Flags parsing error: {message}\n")
      sys.stderr.write(message)
      sys.stderr.write("Pass --helpshort or --helpfull to see help on flags.\n")
      sys.exit(2)
  return parse


def run(main: Callable, flags_parser: Optional[Callable] = None, **app_kwargs) -> None:
  """`absl.app.run(main)`, with user errors as one paragraph (exit 2) unless --debug: those of
  `main` and those raised while the flags are read (`flags_parser`, absl's by default: e.g. the
  `--config` file of `main.py`).

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

  app.run(guarded, flags_parser=_parse_flags_reporting_user_errors(flags_parser), **app_kwargs)
