"""Logging of one command: the console level from the ``-v``/``-q`` counts, and ``--log-file``.

Verbosity is the number of ``-v`` minus the number of ``-q`` (before or after the subcommand):

- ``-qq`` (-2 or less): errors only; ``-q`` (-1): warnings and errors;
- no flag (0): graphkit's progress lines (INFO);
- ``-v`` (1): graphkit's DEBUG lines too, and the traceback of an error;
- ``-vv`` (2 or more): other libraries' loggers at DEBUG on the console too.

``--log-file PATH`` appends graphkit's full DEBUG log (a header line per run, every traceback)
to PATH whatever the console shows. :func:`restored` gives in-process callers their logging
back and closes the file.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from graphkit.errors import UsageError

log = logging.getLogger("graphkit")
FILE_ONLY = {"file_only": True}  # `extra=` of a record the console must not repeat
_CONSOLE = {-2: logging.ERROR, -1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}


def console_level(verbosity: int) -> int:
    return _CONSOLE[max(-2, min(1, verbosity))]


def _console(fmt: str, level: int) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    handler.setLevel(level)
    handler.addFilter(lambda record: not getattr(record, "file_only", False))
    return handler


def _file(path: Path) -> logging.Handler:
    try:
        handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--log-file {path}: cannot write the log ({exc.strerror or exc})") from None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.setLevel(logging.DEBUG)
    return handler


def setup(verbosity: int, log_file: Path | None = None) -> None:
    """Point the "graphkit" logger (and, for ``-vv`` or a log file, the root logger that other
    libraries' loggers reach) at the console and the file."""
    level = console_level(verbosity)
    file = _file(log_file) if log_file is not None else None
    handlers = [_console("graphkit: %(message)s", level), *([file] if file else [])]
    log.handlers[:] = handlers
    log.setLevel(logging.DEBUG if file else level)
    log.propagate = False
    if verbosity >= 2 or file:
        # a handler on the root logger silences logging's last resort, which printed other
        # libraries' warnings: the console handler takes its place
        others = logging.DEBUG if verbosity >= 2 else logging.WARNING
        root = logging.getLogger()
        root.handlers[:] = [_console("%(name)s: %(message)s", others), *([file] if file else [])]
        root.setLevel(others)


@contextlib.contextmanager
def restored() -> Iterator[None]:
    """The "graphkit" and root loggers as they were before, and every handler added meanwhile
    closed (the log file's among them)."""
    loggers = (logging.getLogger("graphkit"), logging.getLogger())
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    try:
        yield
    finally:
        for lg, handlers, level, propagate in saved:
            for handler in lg.handlers:
                if handler not in handlers:
                    handler.close()
            lg.handlers[:] = handlers
            lg.setLevel(level)  # setLevel, not .level: it also clears the loggers' level cache
            lg.propagate = propagate
