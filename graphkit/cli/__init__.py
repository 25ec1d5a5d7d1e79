"""The command line: thin subcommands over the library, one module each.

Each subcommand module has ``HELP`` (its one line in ``graphkit --help``), ``add_arguments(p)``
and ``run(args) -> int``; the shared flags and their validators are in :mod:`graphkit.cli._args`.

Exit codes: 0 ok, 1 the model is wrong (parity, an expectation, a lint error, a compare or
bisect finding), 2 bad recipe, bad model, bad data or bad usage, or an OSError nobody turned into
a clearer error (a full disk, a read-only folder). Errors are one line on stderr; anything else
that is not a GraphkitError is a bug and keeps its traceback (``-v`` logs it for an OSError).
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from graphkit._util import check_path, one_line
from graphkit._version import __version__
from graphkit.errors import GraphkitError, Terminated, UsageError, check_interrupted, note_interrupt

log = logging.getLogger("graphkit")
SUBCOMMANDS = (
    "apply",
    "eval",
    "bench",
    "preprocess",
    "compare",
    "bisect",
    "lint",
    "passes",
    "inspect",
    "precision",
)


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


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _on_signal(signum: int, frame: object) -> None:
    """The first Ctrl-C or SIGTERM interrupts the run; later ones are ignored, so that they
    cannot break the cleanup the first one started (staging folders, temporary files) with a
    traceback of their own. :func:`main` gives in-process callers their handlers back; the
    exit hook ignores the signals again for the interpreter's own shutdown, which otherwise
    resets them to the default and dies of a second Ctrl-C."""
    _ignore_signals()
    atexit.register(_ignore_signals)
    note_interrupt(signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _ignore_signals() -> None:
    for sig in _SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def main(argv: Sequence[str] | None = None) -> int:
    root = logging.getLogger("graphkit")
    saved = (root.handlers[:], root.level, root.propagate)
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, _on_signal) for sig in _SIGNALS}
    try:
        return _main(argv)
    finally:  # in-process callers (tests, notebooks) get their logging and signal handlers back
        note_interrupt(None)
        root.handlers[:], root.level, root.propagate = saved
        for sig, handler in previous.items():
            if handler is not None:  # None: a handler installed from C, which Python cannot restore
                signal.signal(sig, handler)


def _main(argv: Sequence[str] | None) -> int:
    verbose, command = False, ""
    try:
        args = build_parser().parse_args(argv)
        verbose, command = args.verbose, args.command
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
    except OSError as exc:  # a full disk, a read-only folder: the user's environment, not a bug
        from graphkit.ir.io import describe_os_error  # here: --version must not import onnx

        if verbose:
            logging.getLogger("graphkit").exception("traceback")
        print(f"graphkit: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except ImportError as exc:  # an interrupt during a native module's import, or a bug
        try:
            check_interrupted(exc)
        except KeyboardInterrupt as interrupt:
            return _interrupted(interrupt, command)
        raise
    except KeyboardInterrupt as exc:
        return _interrupted(exc, command)


def _interrupted(exc: KeyboardInterrupt, command: str) -> int:
    what = "terminated" if isinstance(exc, Terminated) else "interrupted"
    note = _INTERRUPTED.get(command, "files are renamed into place only when a run completes")
    print(f"graphkit: {what}; {note}", file=sys.stderr)
    return 143 if isinstance(exc, Terminated) else 130


# What an interrupted run leaves, where the default note is not the whole truth.
_INTERRUPTED = {
    "eval": "the report is written only after every run completes",
    "bench": "the report is written only after every run completes",
}


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
