"""The parser and its own usage errors: one line each (``graphkit apply: error: ...``), with a
did-you-mean for a misspelt command, flag or choice.

argparse prints a usage paragraph and exits; graphkit keeps its one-line errors and returns
from :func:`graphkit.cli.main` instead of exiting, so in-process callers get an exit code for
``--help`` and ``--version`` as for everything else.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from graphkit._util import closest, one_line, show
from graphkit.errors import UsageError


class ArgumentsError(UsageError):
    """A usage error the parser found; its line starts with ``prog`` (``graphkit apply``), as
    argparse's own do, so that the user sees which command's flags were meant."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class ParserExit(Exception):
    """argparse is done (``--help``, ``--version``): :func:`graphkit.cli.main` returns ``status``."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands: dict[str, argparse.ArgumentParser] = {}  # a subcommand's own parser

    def error(self, message: str) -> NoReturn:  # argparse exits 2 too; keep our one-line form
        raise ArgumentsError(self.prog, message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise ParserExit(status)

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        # argparse's hook for `choices` (the subcommand's name too): the same check, a better line
        if action.choices is None or value in action.choices:
            return
        choices = [str(c) for c in action.choices]
        near = closest(str(value), choices)
        if action.dest == "command":
            hint = f"; did you mean '{near}'?" if near else f" (commands: {', '.join(choices)})"
            raise ArgumentsError(self.prog, one_line(f"unknown command {show(value)}{hint}"))
        name = "/".join(action.option_strings) or action.dest
        hint = f"; did you mean '{near}'?" if near else ""
        raise ArgumentsError(
            self.prog,
            one_line(f"{name}: invalid choice {show(value)} (choose from {', '.join(choices)}){hint}"),
        )


def unrecognized(prog: str, parser: argparse.ArgumentParser, extras: Sequence[str]) -> ArgumentsError:
    """The error for arguments no parser took: each unknown flag with its nearest known one (a
    value after an unknown flag is taken for its value and not named)."""
    flags = [e.partition("=")[0] for e in extras if e.startswith("-") and e != "--"]
    if not flags:
        words = ", ".join(show(e) for e in extras)
        return ArgumentsError(prog, one_line(f"unrecognized argument{'s' * (len(extras) > 1)} {words}"))
    # argparse has no public list of a parser's flags; _actions is the list it parses with
    known = [s for a in parser._actions for s in a.option_strings if s.startswith("--")]
    if len(flags) == 1:
        near = closest(flags[0], known)
        hint = f"; did you mean {near}?" if near else ""
        return ArgumentsError(prog, one_line(f"unrecognized argument {flags[0]}{hint}"))
    named = []
    for flag in flags:
        near = closest(flag, known)
        named.append(f"{flag} (did you mean {near}?)" if near else flag)
    return ArgumentsError(prog, one_line(f"unrecognized arguments {', '.join(named)}"))


def leading_flags(argv: Sequence[str]) -> list[str]:
    """The flags before the subcommand. ``--version`` there is answered before the parser is
    built, and ``--help`` there gets a parser without the subcommands' flags: building those
    imports every subcommand's dependencies, onnx and numpy among them (1.4 s)."""
    flags: list[str] = []
    skip = False
    for token in argv:
        if skip:
            skip = False
        elif token == "--" or not token.startswith("-"):
            break  # the subcommand (or a stray word): what follows is its own
        else:
            flags.append(token)
            skip = token == "--log-file"  # its value may start with a dash
    return flags
