"""Fusion switch files (``--fusion_switch_file``): their checks and both forms of §2.

Form B is the JSON graphkit writes (:func:`graphkit.ascend.command.fusion_switch_json`); form A
is the older ``PassName:off`` lines. :func:`parse_fusion_switch` reads either.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from graphkit._util import did_you_mean
from graphkit.ascend.flags import ANY_GROUP, FUSION_GROUPS, PASS_NAME
from graphkit.errors import AtcConfigError


def check_fusion(switches: Mapping[str, Mapping[str, str]], at: str) -> None:
    for group, passes in switches.items():
        if group == "Priority":
            raise AtcConfigError(
                f"{at}.Priority: the Priority section is not supported by graphkit "
                "(UB pass priorities); only GraphFusion and UBFusion switches"
            )
        if group not in FUSION_GROUPS:
            raise AtcConfigError(
                f"{at}.{group}: unknown fusion group"
                f"{did_you_mean(group, FUSION_GROUPS)}; use GraphFusion or UBFusion"
            )
        for name, value in passes.items():
            if not PASS_NAME.fullmatch(name):
                raise AtcConfigError(f"{at}.{group}: '{name}' is not a pass name (letters, digits, _)")
            if value not in ("on", "off"):
                raise AtcConfigError(f"{at}.{group}.{name}: expected 'on' or 'off', got {value!r}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise AtcConfigError(f"fusion switch file: key '{key}' appears twice in one object")
    return dict(pairs)


def parse_fusion_switch(text: str) -> dict[str, dict[str, str]]:
    """Parse a fusion switch file of either form of §2.

    Form B (JSON, ``{"Switch": {"GraphFusion": {...}, "UBFusion": {...}}}``) gives its groups;
    form A (``PassName:off`` lines, no group) gives ``{ANY_GROUP: {...}}``.
    """
    if not text.strip():
        raise AtcConfigError("fusion switch file: empty")
    if text.lstrip().startswith("{"):
        return _parse_form_b(text)
    passes: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, value = (part.strip() for part in line.partition(":"))
        if not sep or not PASS_NAME.fullmatch(name) or value not in ("on", "off"):
            raise AtcConfigError(
                f"fusion switch file line {number}: expected 'PassName:off' or "
                f"'PassName:on', got {line.strip()!r}"
            )
        if passes.get(name, value) != value:
            raise AtcConfigError(f"fusion switch file line {number}: {name} is switched both on and off")
        passes[name] = value
    return {ANY_GROUP: passes}


def _parse_form_b(text: str) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise AtcConfigError(
            f"fusion switch file: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(data, dict) or set(data) != {"Switch"}:
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise AtcConfigError(
            f"fusion switch file: expected one top-level key 'Switch', got {keys}"
            + (
                "; the Priority section is not supported by graphkit"
                if isinstance(data, dict) and "Priority" in data
                else ""
            )
        )
    switch = data["Switch"]
    if not isinstance(switch, dict) or not all(
        isinstance(p, dict) and all(isinstance(v, str) for v in p.values()) for p in switch.values()
    ):
        raise AtcConfigError(
            'fusion switch file: \'Switch\' must map group names to {PassName: "on"|"off"} objects'
        )
    check_fusion(switch, "fusion switch file: Switch")
    return {group: dict(passes) for group, passes in switch.items()}
