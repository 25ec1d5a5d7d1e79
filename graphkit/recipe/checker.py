"""The walker that checks a recipe's YAML tree: every message names the file and the path inside
it (``passes[2].with.mode``) and, for a misspelled key or value, the closest valid one."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from graphkit._util import did_you_mean, one_line, show
from graphkit.errors import RecipeError


class Checker:
    """Walks the YAML tree; every message carries the file and the path inside it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, message: str) -> RecipeError:
        text = f"{self.path}: {where}: {message}" if where else f"{self.path}: {message}"
        return RecipeError(one_line(text))

    def mapping(
        self, value: Any, where: str, *, required: Sequence[str] = (), allowed: Sequence[str] = ()
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {kind(value)}")
        for key in value:
            if not isinstance(key, str):
                raise self.fail(where, f"key {key!r} is not a string")
            if allowed and key not in allowed:
                raise self.fail(
                    join(where, key),
                    f"unknown key{did_you_mean(key, allowed)} (valid keys: {', '.join(allowed)})",
                )
        for key in required:
            if key not in value:
                raise self.fail(where, f"missing required key '{key}'")
        return value

    def string(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, f"expected a non-empty string, got {kind(value)}")
        return value

    def integer(self, value: Any, where: str, *, lo: int | None = None, hi: int | None = None) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(where, f"expected an integer, got {kind(value)}")
        if lo is not None and value < lo:
            raise self.fail(where, f"{value} is below the minimum {lo}")
        if hi is not None and value > hi:
            raise self.fail(where, f"{value} is above the maximum {hi}")
        return value

    def number(self, value: Any, where: str, *, positive: bool = False) -> float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise self.fail(where, f"expected a number, got {kind(value)}")
        try:
            number = float(value)
        except OverflowError:  # an int beyond the float range
            raise self.fail(where, f"{show(value)} is too large for a number") from None
        if not math.isfinite(number):
            raise self.fail(where, f"{value} is not finite")
        if positive and number <= 0:
            raise self.fail(where, f"{value} must be positive")
        return number

    def boolean(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where, f"expected true or false, got {kind(value)}")
        return value

    def choice(self, value: Any, where: str, choices: Sequence[str]) -> str:
        text = self.string(value, where)
        if text not in choices:
            raise self.fail(
                where, f"{show(text)} is not one of {', '.join(choices)}{did_you_mean(text, choices)}"
            )
        return text

    def file(self, value: Any, where: str, *, must_exist: bool = True, folder: bool = False) -> Path:
        """A path relative to the recipe; with ``must_exist``, a file (or, with ``folder``,
        a file or a folder) that is there. Paths the OS cannot look up are RecipeErrors too."""
        text = self.string(value, where)
        if "\x00" in text:  # os functions raise ValueError on it
            raise self.fail(where, f"{show(text)}: a path cannot contain a NUL byte")
        try:
            path = Path(text).expanduser()
        except RuntimeError:  # ~user of an unknown user, or no home folder
            raise self.fail(where, f"{show(text)}: no such user or home folder") from None
        if not path.is_absolute():
            path = self.path.parent / path
        if not must_exist:
            return path
        try:
            exists, is_dir = path.exists(), path.is_dir()
        except OSError as exc:  # name too long, permission denied, symlink loop
            raise self.fail(where, f"cannot look up {path}: {exc.strerror}") from None
        if not exists:
            raise self.fail(where, f"file not found: {path}")
        if is_dir and not folder:
            raise self.fail(where, f"{path} is a folder, not a file")
        return path


def kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return (
        f"{type(value).__name__} {show(value)}"
        if not isinstance(value, (dict, list))
        else type(value).__name__
    )


def join(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def given(mapping: Mapping[str, Any], key: str, default: Any) -> Any:
    """``mapping[key]``, or ``default`` where the key is absent or null (``key:`` left empty);
    a value of the wrong type (``parity: false``) is left for the checker to refuse."""
    value = mapping.get(key)
    return default if value is None else value
