"""Small helpers every layer shares: did-you-mean, one-line messages, text tables, path checks."""

from __future__ import annotations

import contextlib
import difflib
import importlib
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from graphkit.errors import UsageError


def closest(word: str, choices: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """'' or "; did you mean 'x'?" — ready to append to an error message."""
    match = closest(word, choices)
    return f"; did you mean '{match}'?" if match else ""


def first_line(message: object) -> str:
    """The first non-blank line of an exception's (or any object's) text; the type's name when it
    has none. onnx, onnxruntime and torch put a paragraph of context after the reason."""
    lines = (line.strip() for line in str(message).splitlines())
    return next((line for line in lines if line), type(message).__name__)


_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")  # and lone surrogates


def one_line(text: str) -> str:
    """``text`` with control characters and line breaks escaped: an error message stays one line
    whatever the user's keys, values and file names hold."""
    return _BREAKS.sub(lambda m: repr(m.group())[1:-1], text)


def show(value: Any, limit: int = 60) -> str:
    """A user's value for an error message: its repr, shortened."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-4:]}"


def text_table(rows: Sequence[Sequence[str]], *, underline: bool = True) -> str:
    """Left-aligned columns, two spaces apart; the first row is the header, underlined."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    if underline:
        lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def check_path(path: Path, flag: str) -> None:
    """UsageError where os functions would raise instead of answering (a NUL byte: ValueError;
    a name too long, a symlink loop, a folder that cannot be searched: OSError). A missing file
    passes: the command that reads the path says what it expected there."""
    text = str(path)
    shown = text if len(text) <= 120 else f"{text[:80]}...{text[-30:]} ({len(text)} characters)"
    if "\x00" in text:
        raise UsageError(f"{flag} {shown!r}: a path cannot contain a NUL byte")
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError as exc:
        raise UsageError(f"{flag} {shown}: {exc.strerror}") from None


@contextlib.contextmanager
def user_import_path(near: Path | None = None) -> Iterator[None]:
    """Import a user's module (a recipe's ``my_passes:fn``) as ``python -m`` finds it: the
    current folder first, then ``sys.path``, then ``near`` (the recipe's folder) last, so that a
    file beside the recipe never shadows an installed package. The console script, unlike
    ``python -m``, does not put the current folder on ``sys.path``; the entries added here are
    removed again on exit, so that nothing outlives the import."""
    cwd = os.getcwd()
    front = [] if cwd in sys.path or "" in sys.path else [cwd]
    folder = str(Path(near).resolve()) if near is not None else None
    back = [folder] if folder is not None and folder not in sys.path and folder != cwd else []
    sys.path[:0] = front
    sys.path.extend(back)
    if front or back:
        importlib.invalidate_caches()  # a module written since the last import must be seen
    try:
        yield
    finally:
        for entry in (*front, *back):
            with contextlib.suppress(ValueError):  # the module removed it itself
                sys.path.remove(entry)
