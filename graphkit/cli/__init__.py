"""The command line: thin subcommands over the library, one module each.

Each subcommand module has ``HELP`` (its one line in ``graphkit --help``), ``add_arguments(p)``
and ``run(args) -> int``; the shared flags and their validators are in :mod:`graphkit.cli._args`.

Exit codes: 0 ok, 1 the model is wrong (parity, an expectation, a lint error, a compare or
bisect finding), 2 bad recipe, bad model, bad data or bad usage. Errors are one line on stderr;
anything that is not a GraphkitError is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from graphkit._util import check_path, one_line
from graphkit._version import __version__
from graphkit.errors import GraphkitError, UsageError

log = logging.getLogger("graphkit")
SUBCOMMANDS = ("apply", "eval", "bench", "preprocess", "compare", "bisect", "lint", "passes", "inspect")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too; keep our one-line form
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="graphkit", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"graphkit {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    # the same flags after the subcommand (SUPPRESS: absent there, they keep the main value)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"graphkit.cli.{name}")
        command = sub.add_parser(name, parents=[common], help=module.HELP)
        module.add_arguments(command)
        command.set_defaults(func=module.run)
    return p


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every ``finally`` (staging folders, temporary
    files) runs before the process exits."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    root = logging.getLogger("graphkit")
    saved = (root.handlers[:], root.level, root.propagate)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _main(argv)
    finally:  # in-process callers (tests, notebooks) get their logging and SIGTERM back
        root.handlers[:], root.level, root.propagate = saved
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: Sequence[str] | None) -> int:
    verbose = False
    try:
        args = build_parser().parse_args(argv)
        verbose = args.verbose
        _setup_logging(args.verbose, args.quiet)
        _check_path_args(args)
        return args.func(args)
    except GraphkitError as exc:
        if verbose:
            logging.getLogger("graphkit").exception("traceback")
        print(f"graphkit: error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # `graphkit passes | head -1`: the reader has what it wanted
        _silence_stdout()
        return 141  # 128 + SIGPIPE, as a shell tool killed by the signal reports
    except KeyboardInterrupt as exc:
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"graphkit: {what}; files are renamed into place only when a run completes", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit raises nothing more."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout without a file descriptor (captured in tests)
        pass


_POSITIONALS = ("recipe", "model", "a", "b")


def _check_path_args(args: argparse.Namespace) -> None:
    """Every path argument must at least be a name the OS can look up."""
    for dest, value in vars(args).items():
        if dest in _POSITIONALS and isinstance(value, list):
            # `compare a -- --`: Python 3.11's argparse leaves b as [], neither a path nor an error
            raise UsageError(f"graphkit: the following arguments are required: {dest}")
        if isinstance(value, Path):
            flag = dest if dest in _POSITIONALS else "--" + dest.replace("_", "-")
            check_path(value, flag)


def _setup_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("graphkit: %(message)s"))
    root = logging.getLogger("graphkit")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
