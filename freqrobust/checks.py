"""The field checks every component's `check_config` shares: a failed check is a `UserError`
naming the config field, the value given and what is valid."""
from __future__ import annotations

import math
from typing import Any

from freqrobust.workdir import UserError


def require(ok: bool, field: str, value: Any, valid: str) -> None:
  """Raises `UserError("config.<field>=<value> is invalid: <valid>.")` unless `ok`."""
  if not ok:
    raise UserError(f"config.{field}={value!r} is invalid: {valid}.")


def number(x: Any) -> bool:
  """A finite int or float (not a bool)."""
  return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def integer(x: Any, lo: int) -> bool:
  """An int (not a bool) >= `lo`."""
  return isinstance(x, int) and not isinstance(x, bool) and x >= lo
