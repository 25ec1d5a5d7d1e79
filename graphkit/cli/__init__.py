"""The command line: thin subcommands over the library, one module each.

Each subcommand module has ``HELP`` (its one line in ``graphkit --help``), ``add_arguments(p)``
and ``run(args) -> int``; the shared flags and their validators are in :mod:`graphkit.cli._args`.

Exit codes: 0 ok, 1 the model is wrong (parity, an expectation, a lint error, a compare or
bisect finding), 2 bad recipe, bad model, bad data or bad usage, or an OSError nobody turned into
a clearer error (a full disk, a read-only folder). Errors are one line on stderr; anything else
that is not a GraphkitError is a bug and keeps its traceback (``-v`` logs it for an OSError).
``-v``/``-q`` and ``--log-file`` are described in :mod:`graphkit.cli._logging`.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from graphkit._util import check_path, one_line
from graphkit._version import __version__
from graphkit.cli import _logging
from graphkit.cli._parser import ArgumentsError, Parser, ParserExit, leading_flags, unrecognized
from graphkit.errors import GraphkitError, Terminated, check_interrupted, note_interrupt

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


_DESCRIPTION = "Recipe-driven ONNX graph surgery for Ascend NPUs, every rewrite proven against onnxruntime."
_VERBOSE = (
    "more output, repeatable: -v adds graphkit's debug lines and an error's traceback, "
    "-vv other libraries' debug logs too"
)
_QUIET = "less output, repeatable: -q warnings and errors only, -qq errors only (-v and -q offset each other)"
_LOG_FILE = "append the full debug log (every graphkit line, tracebacks) to PATH, whatever -v/-q show"


def _add_output_flags(p: argparse.ArgumentParser, suffix: str = "") -> None:
    """-v, -q and --log-file; after the subcommand (``suffix``) they count apart and add up."""
    p.add_argument("-v", "--verbose", dest="verbose" + suffix, action="count", default=0, help=_VERBOSE)
    p.add_argument("-q", "--quiet", dest="quiet" + suffix, action="count", default=0, help=_QUIET)
    default = argparse.SUPPRESS if suffix else None  # after the subcommand: given, it wins
    p.add_argument("--log-file", type=Path, default=default, metavar="PATH", help=_LOG_FILE)


def build_parser(*, arguments: bool = True) -> Parser:
    """The parser of every subcommand (``arguments=False``: their names and help lines only,
    enough for ``graphkit --help``, without importing what their flags need)."""
    p = Parser(prog="graphkit", description=_DESCRIPTION, epilog="graphkit COMMAND --help: a command's flags")
    p.add_argument("--version", action="version", version=f"graphkit {__version__}")
    _add_output_flags(p)
    common = argparse.ArgumentParser(add_help=False)
    _add_output_flags(common, "_after")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser, help="one of:")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"graphkit.cli.{name}")
        command = sub.add_parser(name, parents=[common], help=module.HELP, description=module.HELP)
        if arguments:
            module.add_arguments(command)
        command.set_defaults(func=module.run)
        p.commands[name] = command
    return p


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = build_parser(arguments=not {"-h", "--help"} & set(leading_flags(argv)))
    args, extras = parser.parse_known_args(argv)
    if extras:  # argparse's own error names neither the subcommand nor the flag meant
        command = parser.commands.get(args.command, parser)
        raise unrecognized(command.prog, command, extras)
    if args.command is None:
        raise ArgumentsError(
            parser.prog, f"give a command: {', '.join(SUBCOMMANDS)} (graphkit --help says what each does)"
        )
    return args


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
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--version" in leading_flags(argv):
        print(f"graphkit {__version__}")
        return 0
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, _on_signal) for sig in _SIGNALS}
    try:
        with _logging.restored():  # in-process callers (tests, notebooks) get their logging back
            return _main(argv)
    finally:  # and their signal handlers
        note_interrupt(None)
        for sig, handler in previous.items():
            if handler is not None:  # None: a handler installed from C, which Python cannot restore
                signal.signal(sig, handler)


def _main(argv: Sequence[str]) -> int:
    command, logged = "", False
    try:
        args = _parse(argv)
        command = args.command
        _setup_logging(args, argv)
        logged = True
        _check_path_args(args)
        return args.func(args)
    except ParserExit as exc:  # --help
        return exc.status
    except GraphkitError as exc:
        prog = exc.prog if isinstance(exc, ArgumentsError) else "graphkit"
        return _fail(f"{prog}: error: {one_line(str(exc))}", exc.exit_code, logged)
    except BrokenPipeError:  # `graphkit passes | head -1`: the reader has what it wanted
        _silence_stdout()
        return 141  # 128 + SIGPIPE, as a shell tool killed by the signal reports
    except OSError as exc:  # a full disk, a read-only folder: the user's environment, not a bug
        from graphkit.ir.io import describe_os_error  # here: --version must not import onnx

        return _fail(f"graphkit: error: {describe_os_error(exc)}", 2, logged)
    except ImportError as exc:  # an interrupt during a native module's import, or a bug
        try:
            check_interrupted(exc)
        except KeyboardInterrupt as interrupt:
            return _interrupted(interrupt, command)
        raise
    except KeyboardInterrupt as exc:
        return _interrupted(exc, command)
    except Exception:  # a bug: its traceback goes on as it is, and into the log file too
        if logged:
            _logging.log.debug("uncaught error", exc_info=True, extra=_logging.FILE_ONLY)
        raise


def _fail(line: str, code: int, logged: bool) -> int:
    """Print the one error line. Once logging is set up, the traceback goes to the console
    with -v, and it and the line go to the log file (never through the caller's loggers)."""
    if logged:
        _logging.log.debug("traceback", exc_info=True)
        _logging.log.error(line, extra=_logging.FILE_ONLY)
    print(line, file=sys.stderr)
    return code


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
            raise ArgumentsError(f"graphkit {args.command}", f"the following arguments are required: {dest}")
        if isinstance(value, Path):
            flag = dest if dest in _POSITIONALS else "--" + dest.replace("_", "-")
            check_path(value, flag)


def _setup_logging(args: argparse.Namespace, argv: Sequence[str]) -> None:
    verbosity = args.verbose + args.verbose_after - args.quiet - args.quiet_after
    if args.log_file is not None:
        check_path(args.log_file, "--log-file")  # before the handler opens it (a NUL byte)
    _logging.setup(verbosity, args.log_file)
    _logging.log.debug("graphkit %s: %s", __version__, " ".join(argv), extra=_logging.FILE_ONLY)
