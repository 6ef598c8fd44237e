"""The one parser of `get_config("a,b,key=value")` argument strings (configs/paper.py,
configs/baselines.py; launch/sweep.py builds them).

An argument string is comma-separated: a head word first (the table, the method), then words
(columns, backbones), bare flags (`cpu`) and `key=value` options (`seed=1`, `lambda=50`), in any
order; blanks around parts are ignored. Every mistake is a `freqrobust.workdir.UserError` that
names the config file, the argument string and what is valid: the command lines print it as one
paragraph (exit 2).

  parsed = args.parse("table3,nfd,seed=1,cpu", "configs/paper.py", head="table",
                      heads=TABLES, flags=("cpu",), options={"seed": int, "lambda": float})
  parsed.head, parsed.words, parsed.flags, parsed.options
  # 'table3', ['nfd'], {'cpu'}, {'seed': 1}
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Mapping, Optional

from freqrobust.workdir import UserError

_TYPE_NAMES = {int: "an integer", float: "a number", str: "a word"}


@dataclasses.dataclass(frozen=True)
class Parsed:
  """An argument string's parts: the head word, the other words in their order, the bare flags
  given and the `key=value` options given (converted)."""
  head: str
  words: tuple[str, ...]
  flags: frozenset[str]
  options: Mapping[str, Any]


def error(file: str, arg: str, message: str, listing: str = "") -> UserError:
  """The UserError of a bad argument string: `file:arg`, what is wrong, and where the valid
  arguments are listed (`listing`, e.g. "`python configs/paper.py table3` lists them")."""
  return UserError(f"--config={file}:{arg}: {message}" + (f" {listing}." if listing else ""))


def parse(arg: Optional[str], file: str, *, head: str, heads: Iterable[str],
          flags: Iterable[str] = (), options: Optional[Mapping[str, Callable[[str], Any]]] = None,
          word_keys: Iterable[str] = (), listing: str = "") -> Parsed:
  """Splits `arg` and checks its head word against `heads`, each bare flag against `flags` and
  each `key=value` against `options` (key -> converter such as int or float); a `key=value`
  whose key is in `word_keys` is a word (configs/paper.py's Table 2 columns `lmh=011`).

  Words that are neither the head, a flag nor an option are returned in `words` for the config
  to check (`unknown_word` builds its error). Raises UserError (the file, the string, what is
  valid) for a missing or unknown head, an unknown `key=`, a value of the wrong type, and a flag
  or option given twice.
  """
  heads = tuple(heads)
  flags = tuple(flags)
  options = dict(options or {})
  word_keys = frozenset(word_keys)
  arg = "" if arg is None else str(arg)
  parts = [p.strip() for p in arg.split(",") if p.strip()]
  valid_heads = ", ".join(heads)
  if not parts:
    raise error(file, arg, f"the argument string is empty; it starts with the {head}, one of: "
                f"{valid_heads}.", listing)
  first, rest = parts[0], parts[1:]
  if first not in heads:
    extra = ""
    if "=" in first or first in flags:
      extra = f" (the {head} comes first)"
    raise error(file, arg, f"unknown {head} {first!r}{extra}; valid: {valid_heads}.", listing)
  words, given_flags, given = [], set(), {}
  for part in rest:
    if "=" in part and part.partition("=")[0].strip() not in word_keys:
      key, _, text = part.partition("=")
      key, text = key.strip(), text.strip()
      if key not in options:
        raise error(file, arg, f"unknown option {part!r}; options: {_describe(flags, options)}.",
                    listing)
      if key in given:
        raise error(file, arg, f"{key}= is given twice.", listing)
      convert = options[key]
      try:
        given[key] = convert(text)
      except (TypeError, ValueError):
        raise error(file, arg, f"{part!r}: {key} takes {_TYPE_NAMES.get(convert, 'a value')}.",
                    listing) from None
    elif part in flags:
      if part in given_flags:
        raise error(file, arg, f"{part!r} is given twice.", listing)
      given_flags.add(part)
    else:
      words.append(part)
  return Parsed(first, tuple(words), frozenset(given_flags), given)


def unknown_word(file: str, arg: str, word: str, what: str, flags: Iterable[str] = (),
                 options: Optional[Mapping[str, Any]] = None, listing: str = "") -> UserError:
  """The error for a word no config reading knows: `what` says what is valid there (e.g.
  "columns nat, nfd; models resnet18"), followed by the flags and options."""
  return error(file, arg, f"unknown argument {word!r}; valid: {what}; options: "
               f"{_describe(tuple(flags), dict(options or {}))}.", listing)


def _describe(flags: tuple, options: Mapping[str, Any]) -> str:
  parts = list(flags) + [f"{key}=N" if convert is int else f"{key}=X"
                         for key, convert in options.items()]
  return ", ".join(parts) or "none"


def table_runs(file: str, tables: Mapping[str, Iterable[str]], table: str, cpu: bool = False,
               seeds: Iterable[int] = (0,), listing: str = "") -> list[str]:
  """The argument strings `<row>,seed=N[,cpu]` of every row of `tables[table]`, seed-major (an
  interrupted sweep still has every row of the first seeds): `runs()` of configs/baselines.py and
  configs/explain.py. An unknown table is a UserError naming `file` and the tables (`listing`:
  more about them)."""
  if table not in tables:
    raise UserError(f"{file} has no table {table!r}; its tables: {', '.join(tables)}{listing}.")
  return [",".join([row, f"seed={s}"] + (["cpu"] if cpu else [])) for s in seeds
          for row in tables[table]]
