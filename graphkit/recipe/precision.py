"""The recipe's ``precision:`` section and the precision files its ``atc:`` block names.

``precision: {emulate: true, max_delta: 1.0e-3}``: apply runs each final model once more, under
ATC's precision mode emulated on CPU, records its parity figures in manifest.json and, with
``max_delta``, fails when an output moves further than that (an emulation, not an NPU run).

``atc.extra_flags.keep_dtype`` / ``modify_mixlist`` name files. One that exists beside the recipe
(relative to it) is checked here, before any model is loaded, and its path made absolute: apply
copies it beside atc.sh. One that is not there is left as written, for the NPU host to supply.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from graphkit.ascend.flags import ASCEND_TYPE, CONTROL_CHARS
from graphkit.recipe.checker import Checker, given, kind
from graphkit.recipe.schema import PrecisionSpec

PRECISION_KEYS = ("emulate", "max_delta")
PRECISION_FILES = ("keep_dtype", "modify_mixlist")  # atc.extra_flags naming a file
MAX_FILE_BYTES = 1 << 20
MIXLIST_LISTS = ("black-list", "white-list")
MIXLIST_ACTIONS = ("to-add", "to-remove")
OP_TYPE_PREFIX = "OpType::"


def parse_precision(c: Checker, value: Any) -> PrecisionSpec:
    p = c.mapping(value, "precision", allowed=PRECISION_KEYS)
    emulate = c.boolean(p.get("emulate", True), "precision.emulate")
    max_delta = p.get("max_delta")
    if max_delta is not None:
        max_delta = c.number(max_delta, "precision.max_delta", positive=True)
        if not emulate:
            raise c.fail("precision.max_delta", "needs the emulation (precision.emulate: false skips it)")
    return PrecisionSpec(emulate, max_delta)


def resolve_precision_files(c: Checker, atc: Any) -> Any:
    """``atc`` with its keep_dtype / modify_mixlist files checked and made absolute where they
    exist beside the recipe."""
    flags = dict(atc.extra_flags)
    for name in PRECISION_FILES:
        value = flags.get(name)
        if not isinstance(value, str):
            continue
        where = f"atc.extra_flags.{name}"
        path = c.file(value, where, must_exist=False)
        if not path.is_file():
            continue  # the NPU host's file: atc.sh names it as written
        text = _read(c, path, where)
        if name == "keep_dtype":
            keep_dtype_entries(c, text, f"{where} ({path})")
        else:
            mixlist_ops(c, text, f"{where} ({path})")
        flags[name] = str(path.resolve())
    if flags == dict(atc.extra_flags):
        return atc
    return dataclasses.replace(atc, extra_flags=flags)


def _read(c: Checker, path: Path, where: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise c.fail(where, f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise c.fail(where, f"{path}: {len(data)} bytes; at most {MAX_FILE_BYTES}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise c.fail(where, f"{path}: not UTF-8 text") from None


def keep_dtype_entries(c: Checker, text: str, where: str) -> tuple[str, ...]:
    """The entries of a keep_dtype file (§1.5): one per line, a node name of the model ATC
    compiles or ``OpType::<Ascend IR type>``; blank lines are skipped."""
    entries = []
    for i, line in enumerate(text.splitlines(), 1):
        entry = line.strip()
        if not entry:
            continue
        if CONTROL_CHARS.search(entry):
            raise c.fail(where, f"line {i}: control characters in an entry")
        if entry.startswith(OP_TYPE_PREFIX) and not ASCEND_TYPE.fullmatch(entry[len(OP_TYPE_PREFIX) :]):
            raise c.fail(where, f"line {i}: {entry!r}: OpType:: takes one Ascend IR op type (OpType::Conv2D)")
        entries.append(entry)
    if not entries:
        raise c.fail(where, "the file names no node (one node name or OpType::<type> per line)")
    return tuple(entries)


def mixlist_ops(c: Checker, text: str, where: str) -> dict[str, dict[str, list[str]]]:
    """A modify_mixlist JSON (§1.5): ``{"black-list": {"to-add": [...], "to-remove": [...]},
    "white-list": {...}}`` of Ascend IR op types."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise c.fail(where, f"invalid JSON: line {exc.lineno}: {exc.msg}") from None
    top = _keys(c, data, where, MIXLIST_LISTS)
    out: dict[str, dict[str, list[str]]] = {}
    for list_name, actions in top.items():
        at = f"{where}: {list_name}"
        out[list_name] = {}
        for action, ops in _keys(c, actions, at, MIXLIST_ACTIONS).items():
            if not isinstance(ops, list) or not all(
                isinstance(o, str) and ASCEND_TYPE.fullmatch(o) for o in ops
            ):
                raise c.fail(f"{at}.{action}", f"expected a list of Ascend IR op types, got {kind(ops)}")
            out[list_name][action] = list(ops)
    if not any(ops for actions in out.values() for ops in actions.values()):
        raise c.fail(where, "the file changes no list (black-list/white-list to-add/to-remove)")
    return out


def _keys(c: Checker, data: Any, where: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise c.fail(where, f"expected a JSON object, got {kind(data)}")
    for key in data:
        if key not in allowed:
            from graphkit._util import did_you_mean

            raise c.fail(
                where, f"unknown key {key!r}{did_you_mean(str(key), allowed)} (keys: {', '.join(allowed)})"
            )
    return {k: given(data, k, {} if k in MIXLIST_LISTS else []) for k in data}
