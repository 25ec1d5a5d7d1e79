"""ATC settings (:class:`AtcSettings`) and their static validation against the toolchain rules.

No CANN install is needed: every rule here is checked on the text of the settings, following
``docs/ascend-toolchain.md`` §1 (flags, §1.7 the static rule list) and §2 (fusion switch files).

- :func:`settings_from_mapping` turns a recipe's ``atc:`` block into an :class:`AtcSettings` and
  validates it completely; :func:`validate_settings` does the same for one built in code.
- :func:`merge_pass_hints` folds in what passes ask for (``set_implmode``) and re-validates.
- Errors are :class:`~graphkit.errors.AtcConfigError`; warnings (legal settings that are probably
  not what the user meant) are :func:`graphkit.ascend.advice.check_warnings`'s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from graphkit._util import did_you_mean
from graphkit.ascend.flags import (
    ASCEND_TYPE,
    BUILD_MODES,
    CONTROL_CHARS,
    FIRST_CLASS,
    FLAG_NAME,
    GEAR_FLAGS,
    GRAPHKIT_FLAGS,
    IMPL_MODES,
    KNOWN_EXTRA_FLAGS,
    KNOWN_SOCS,
    LEGACY_SOC,
    LIST_IMPL_MODES,
    LOG_LEVELS,
    MIXED_MODES,
    NOT_BUILD_MODES,
    ONNX_INPUT_FORMATS,
    OUTPUT_TYPES,
    PRECISION_MODES,
    PRECISION_MODES_V2,
    SOC_WITH_NPU,
)
from graphkit.ascend.fusion import check_fusion
from graphkit.errors import AtcConfigError


class FrozenDict(dict):
    """A dict that refuses changes, so settings stay immutable yet still pickle, deep-copy,
    ``dataclasses.asdict`` and ``json.dumps`` (a MappingProxyType does none of these)."""

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("AtcSettings mappings are read-only; build new settings with dataclasses.replace")

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        return self  # immutable all the way down: values are scalars or FrozenDicts


def _frozen(mapping: Any) -> Any:
    """A read-only copy of a mapping of mappings; anything else unchanged (validation rejects it)."""
    if not isinstance(mapping, Mapping):
        return mapping
    return FrozenDict({k: _frozen(v) for k, v in mapping.items()})


@dataclass(frozen=True)
class AtcSettings:
    """What a recipe says about ATC. Defaults reproduce the ModelZoo audio guides' lines."""

    soc_version: str = "Ascend310P3"
    input_format: str | None = None  # None: ND unless every input is 4-D (NCHW) or 5-D (NCDHW)
    log: str = "error"
    precision_mode: str | None = None
    precision_mode_v2: str | None = None
    op_select_implmode: str | None = None
    optypelist_for_implmode: tuple[str, ...] = ()  # Ascend IR op types
    fusion_switches: Mapping[str, Mapping[str, str]] = field(default_factory=dict, hash=False)
    extra_flags: Mapping[str, str | int | bool] = field(default_factory=dict, hash=False)
    cann_version: str | None = None  # "8.0", "5.0.4", "8.0.RC1": drives alias/version rules

    def __post_init__(self) -> None:
        if isinstance(self.optypelist_for_implmode, list):
            object.__setattr__(self, "optypelist_for_implmode", tuple(self.optypelist_for_implmode))
        object.__setattr__(self, "fusion_switches", _frozen(self.fusion_switches))
        object.__setattr__(self, "extra_flags", _frozen(self.extra_flags))


_KEYS = tuple(f.name for f in fields(AtcSettings))


def key_path(where: str, *keys: str) -> str:
    return ".".join((where, *keys))


def _coerce_yaml(data: Mapping[str, Any]) -> dict[str, Any]:
    """Undo YAML 1.1 surprises: `log: null` → "null", `Pass: off` → "off", `cann_version: 8.0`."""
    out = dict(data)
    if "log" in out and out["log"] is None:
        out["log"] = "null"  # ATC's own "null" level; log has no "unset" (the default is error)
    if isinstance(out.get("cann_version"), int | float) and not isinstance(out["cann_version"], bool):
        out["cann_version"] = str(out["cann_version"])
    if isinstance(out.get("optypelist_for_implmode"), list):
        out["optypelist_for_implmode"] = tuple(out["optypelist_for_implmode"])
    switches = out.get("fusion_switches")
    if isinstance(switches, Mapping):
        out["fusion_switches"] = {
            g: (
                {p: ("on" if v else "off") if isinstance(v, bool) else v for p, v in group.items()}
                if isinstance(group, Mapping)
                else group
            )
            for g, group in switches.items()
        }
    return out


def _check_keys(data: Any, where: str, allowed: Sequence[str]) -> None:
    if not isinstance(data, Mapping):
        raise AtcConfigError(f"{where}: expected a mapping of ATC settings, got {type(data).__name__}")
    for key in data:
        if key not in allowed:
            hint = did_you_mean(str(key), allowed)
            if key in GEAR_FLAGS:
                hint = (
                    "; graphkit emits one static model per batch size, so the dynamic gear "
                    "flags are not supported"
                )
            elif key in KNOWN_EXTRA_FLAGS:
                hint = f"; other ATC flags go under extra_flags ({key_path(where, 'extra_flags', key)})"
            elif not hint and key in GRAPHKIT_FLAGS:
                hint = f"; graphkit sets --{key} itself"
            raise AtcConfigError(f"{key_path(where, str(key))}: unknown ATC setting{hint}")


def settings_from_mapping(data: Mapping[str, Any], where: str) -> AtcSettings:
    """Build and completely validate settings from a recipe's ``atc:`` mapping."""
    _check_keys(data, where, _KEYS)
    values = _coerce_yaml(data)
    _check_types(values, where)
    settings = AtcSettings(**values)
    validate_settings(settings, where)
    return settings


def _check_types(values: Mapping[str, Any], where: str) -> None:
    def bad(key: str, want: str) -> AtcConfigError:
        got = type(values[key]).__name__
        return AtcConfigError(f"{key_path(where, key)}: expected {want}, got {got} {values[key]!r}")

    for key in ("soc_version", "log"):
        if key in values and not isinstance(values[key], str):
            raise bad(key, "a string")
    for key in ("input_format", "precision_mode", "precision_mode_v2", "op_select_implmode", "cann_version"):
        if values.get(key) is not None and not isinstance(values[key], str):
            raise bad(key, "a string")
    ops = values.get("optypelist_for_implmode", ())
    if not isinstance(ops, tuple) or not all(isinstance(op, str) for op in ops):
        raise bad("optypelist_for_implmode", "a list of Ascend IR op type names")
    switches = values.get("fusion_switches", {})
    if not isinstance(switches, Mapping) or not all(
        isinstance(g, str) and isinstance(group, Mapping) and all(isinstance(p, str) for p in group)
        for g, group in switches.items()
    ):
        raise bad("fusion_switches", "a mapping {GraphFusion|UBFusion: {PassName: on|off}}")
    extra = values.get("extra_flags", {})
    if not isinstance(extra, Mapping) or not all(isinstance(k, str) for k in extra):
        raise bad("extra_flags", "a mapping of flag name to value")
    for name, value in extra.items():
        if isinstance(value, float) or not isinstance(value, str | int):
            raise AtcConfigError(
                f"{key_path(where, 'extra_flags', name)}: expected a string, integer or boolean, got "
                f"{type(value).__name__} {value!r} (write other values as a quoted string)"
            )


def validate_settings(settings: AtcSettings, where: str = "atc") -> None:
    """Raise AtcConfigError on the first rule of §1.7/§2 the settings break."""
    _check_types({k: getattr(settings, k) for k in _KEYS}, where)
    cann_tuple(settings, where)
    _check_soc(settings, where)
    _check_enums(settings, where)
    _check_implmode(settings, where)
    check_fusion(settings.fusion_switches, key_path(where, "fusion_switches"))
    _check_extra_flags(settings, where)


def cann_tuple(settings: AtcSettings, where: str) -> tuple[int, int] | None:
    if settings.cann_version is None:
        return None
    # ASCII digits, bounded: \d takes any Unicode digit, and int() refuses 5000 of them
    m = re.fullmatch(r"([0-9]{1,9})\.([0-9]{1,9})(\.[0-9A-Za-z.]+)?", settings.cann_version)
    if not m:
        raise AtcConfigError(
            f"{key_path(where, 'cann_version')}: '{settings.cann_version}' is not a "
            "CANN version such as '8.0', '5.0.4' or '8.0.RC1'"
        )
    return int(m[1]), int(m[2])


def _check_soc(s: AtcSettings, where: str) -> None:
    soc, at = s.soc_version, key_path(where, "soc_version")
    if soc == LEGACY_SOC:
        version = cann_tuple(s, where)
        if version is None or version > (5, 1):
            raise AtcConfigError(
                f"{at}: 'Ascend710' is the pre-6.0 name of the 310P chip, accepted only with "
                f"cann_version <= 5.1 (cann_version is {s.cann_version or 'unset'}); use "
                "'Ascend310P3' (or the 310P part npu-smi info reports)"
            )
        return
    if soc in KNOWN_SOCS or SOC_WITH_NPU.fullmatch(soc):
        return
    by_lower = {name.lower(): name for name in KNOWN_SOCS}
    if soc.lower() in by_lower:
        hint = f"; did you mean '{by_lower[soc.lower()]}'? (soc_version is case-sensitive)"
    elif soc.lower() == LEGACY_SOC.lower():
        hint = "; did you mean 'Ascend310P3'? (Ascend710 is its pre-6.0 name)"
    else:
        hint = did_you_mean(soc, sorted(KNOWN_SOCS))
    raise AtcConfigError(
        f"{at}: unknown soc_version '{soc}'{hint}; it is 'Ascend' + the Name "
        "column of npu-smi info, e.g. 'Ascend310P3'"
    )


def _enum(value: str | None, choices: Sequence[str], at: str, what: str) -> None:
    if value is None or value in choices:
        return
    folded = {c.lower(): c for c in choices}.get(value.lower())
    hint = f"; did you mean '{folded}'?" if folded else did_you_mean(value, choices)
    raise AtcConfigError(f"{at}: '{value}' is not a valid {what}{hint}; valid: {', '.join(choices)}")


def _check_enums(s: AtcSettings, where: str) -> None:
    _enum(s.log, LOG_LEVELS, key_path(where, "log"), "ATC --log level")
    fmt, at = s.input_format, key_path(where, "input_format")
    if fmt is not None and fmt not in ONNX_INPUT_FORMATS:
        if fmt in ("NHWC", "NDHWC"):
            raise AtcConfigError(
                f"{at}: {fmt} is an ATC value for TensorFlow models only; ONNX models take NCHW, NCDHW or ND"
            )
        if fmt.upper() in ONNX_INPUT_FORMATS:
            raise AtcConfigError(
                f"{at}: '{fmt}' is not a valid ATC value; did you mean '{fmt.upper()}'? (case matters)"
            )
        raise AtcConfigError(
            f"{at}: {fmt} is not a valid ATC value; ONNX models take NCHW, NCDHW "
            "or ND (audio and sequence inputs of rank <= 4 use ND)"
        )
    if "insert_op_conf" in s.extra_flags and fmt not in (None, "NCHW"):
        raise AtcConfigError(
            f"{at}: {fmt} cannot be used with insert_op_conf (AIPP); ONNX models with AIPP take NCHW only"
        )
    _enum(s.precision_mode, PRECISION_MODES, key_path(where, "precision_mode"), "--precision_mode")
    _enum(
        s.precision_mode_v2, PRECISION_MODES_V2, key_path(where, "precision_mode_v2"), "--precision_mode_v2"
    )
    if s.precision_mode is not None and s.precision_mode_v2 is not None:
        raise AtcConfigError(
            f"{where}: precision_mode and precision_mode_v2 cannot be combined; "
            "keep one (the docs recommend precision_mode_v2)"
        )


def _check_implmode(s: AtcSettings, where: str) -> None:
    at = key_path(where, "optypelist_for_implmode")
    _enum(s.op_select_implmode, IMPL_MODES, key_path(where, "op_select_implmode"), "--op_select_implmode")
    seen: set[str] = set()
    for op in s.optypelist_for_implmode:
        if not ASCEND_TYPE.fullmatch(op):
            raise AtcConfigError(f"{at}: '{op}' is not an op type name (one type per list entry)")
        if op in seen:
            raise AtcConfigError(f"{at}: '{op}' is listed twice")
        seen.add(op)
    if s.optypelist_for_implmode and s.op_select_implmode not in LIST_IMPL_MODES:
        raise AtcConfigError(
            f"{at}: needs op_select_implmode high_precision or high_performance (one mode applies "
            f"to the whole list), not {s.op_select_implmode or 'unset'}"
        )


def _check_extra_flags(s: AtcSettings, where: str) -> None:
    flags = s.extra_flags
    for name, value in flags.items():
        at = key_path(where, "extra_flags", name)
        if name.startswith("-"):
            raise AtcConfigError(f"{at}: write the flag name without the leading '--'")
        if not FLAG_NAME.fullmatch(name):
            raise AtcConfigError(f"{at}: does not look like an ATC flag (lower_snake_case)")
        if name in FIRST_CLASS:
            raise AtcConfigError(f"{at}: {name} has its own setting; write it as {key_path(where, name)}")
        if name in GRAPHKIT_FLAGS:
            raise AtcConfigError(f"{at}: graphkit sets --{name} itself")
        if isinstance(value, str) and (not value or CONTROL_CHARS.search(value)):
            raise AtcConfigError(f"{at}: the value must be non-empty and on one line")
    gears = [g for g in GEAR_FLAGS if g in flags]
    if gears:
        both = (
            f"; they are also mutually exclusive (ATC E10009: {', '.join(gears)})" if len(gears) > 1 else ""
        )
        raise AtcConfigError(
            f"{key_path(where, 'extra_flags', gears[0])}: graphkit emits one static "
            "model per batch size, so the dynamic gear flags are not supported; "
            f"list the batch sizes in the recipe instead{both}"
        )
    if "mode" in flags:
        mode = flags["mode"]
        # ASCII digits only: "²".isdigit() holds, yet int("²") raises
        mode = int(mode) if isinstance(mode, str) and re.fullmatch(r"[0-9]{1,9}", mode) else mode
        if mode in NOT_BUILD_MODES and not isinstance(mode, bool):
            raise AtcConfigError(
                f"{key_path(where, 'extra_flags', 'mode')}: --mode={mode} converts "
                "or inspects an om, it does not build one from ONNX; use 0 or 3"
            )
        if isinstance(mode, bool) or mode not in BUILD_MODES:
            raise AtcConfigError(
                f"{key_path(where, 'extra_flags', 'mode')}: {mode!r} is not a mode "
                "graphkit can emit; 0 builds an om, 3 only prechecks"
            )
    if "modify_mixlist" in flags and not {s.precision_mode, s.precision_mode_v2} & MIXED_MODES:
        raise AtcConfigError(
            f"{key_path(where, 'extra_flags', 'modify_mixlist')}: needs a mixed precision mode "
            "(precision_mode allow_mix_precision* or precision_mode_v2 mixed_float16/"
            "mixed_bfloat16)"
        )
    output_type = flags.get("output_type")
    if isinstance(output_type, str) and ":" in output_type and "out_nodes" not in flags:
        raise AtcConfigError(
            f"{key_path(where, 'extra_flags', 'output_type')}: the per-node form "
            "'node:idx:TYPE' needs extra_flags.out_nodes"
        )
    if "output_type" in flags:
        _check_output_type(flags["output_type"], key_path(where, "extra_flags", "output_type"))
    layout, fp16 = flags.get("is_input_adjust_hw_layout"), flags.get("input_fp16_nodes")
    if layout is not None and fp16 is not None:
        n_layout = 1 if isinstance(layout, bool | int) else len(str(layout).split(","))
        n_nodes = len(str(fp16).split(";"))
        if n_layout != n_nodes:
            raise AtcConfigError(
                f"{key_path(where, 'extra_flags', 'is_input_adjust_hw_layout')}: {n_layout} value(s) "
                f"for {n_nodes} input_fp16_nodes; give one true/false per node"
            )


def _check_output_type(value: object, at: str) -> None:
    """§1.6: one type for every output (FP32), or ``node:idx:TYPE`` entries joined by ';'."""
    if not isinstance(value, str):
        raise AtcConfigError(f"{at}: expected a type such as FP32, got {value!r}")
    for entry in value.split(";"):
        kind = entry.rsplit(":", 1)[-1] if ":" in value else entry
        if ":" in value and (entry.count(":") < 2 or not entry.split(":")[-2].isdigit()):
            raise AtcConfigError(f"{at}: '{entry}' is not of the form node:idx:TYPE")
        if kind not in OUTPUT_TYPES:
            near = f"; did you mean '{kind.upper()}'?" if kind.upper() in OUTPUT_TYPES else ""
            hint = near or did_you_mean(kind, OUTPUT_TYPES) or f"; valid: {', '.join(OUTPUT_TYPES)}"
            raise AtcConfigError(f"{at}: '{kind}' is not an ATC output type{hint}")


HINT_KEYS = (
    "input_format",
    "precision_mode",
    "precision_mode_v2",
    "op_select_implmode",
    "optypelist_for_implmode",
    "fusion_switches",
    "extra_flags",
)


def merge_pass_hints(settings: AtcSettings, hints: Sequence[Mapping[str, Any]], where: str) -> AtcSettings:
    """Fold the ATC settings passes ask for into the recipe's, then re-validate.

    A hint is a mapping of setting keys (op_select_implmode, optypelist_for_implmode,
    precision_mode[_v2], input_format, fusion_switches, extra_flags) plus an optional ``source``
    naming the pass for messages. Op type lists are unioned in order; any other value that differs
    from the recipe's explicit setting or from an earlier hint is an AtcConfigError naming both.
    """
    merged: dict[str, Any] = {k: getattr(settings, k) for k in _KEYS}
    merged["fusion_switches"] = {g: dict(p) for g, p in settings.fusion_switches.items()}
    merged["extra_flags"] = dict(settings.extra_flags)
    origin: dict[str, str] = {}  # setting path -> who set it

    def recipe(path: str) -> str:
        return origin.get(path, f"the recipe ({key_path(where, path)})")

    def put(table: dict[str, Any], key: str, path: str, value: Any, src: str) -> None:
        old = table.get(key)
        if old is not None and old != value:
            raise AtcConfigError(
                f"{where}: {path} {value!r} asked by {src} conflicts with {old!r} from {recipe(path)}"
            )
        if old is None:
            table[key] = value
            origin[path] = src

    for i, hint in enumerate(hints):
        src = str(hint.get("source", f"pass hint #{i}")) if isinstance(hint, Mapping) else ""
        hint_where = f"{where} [{src}]"
        _check_keys(hint, hint_where, (*HINT_KEYS, "source"))
        values = _coerce_yaml({k: v for k, v in hint.items() if k != "source"})
        _check_types(values, hint_where)
        for key, value in values.items():
            if key == "optypelist_for_implmode":
                known = merged[key]
                merged[key] = known + tuple(op for op in value if op not in known)
            elif key in ("fusion_switches", "extra_flags"):
                for name, item in value.items():
                    if key == "extra_flags":
                        put(merged[key], name, f"{key}.{name}", item, src)
                        continue
                    group = merged[key].setdefault(name, {})
                    for pass_name, state in item.items():
                        put(group, pass_name, f"{key}.{name}.{pass_name}", state, src)
            elif value is not None:
                put(merged, key, key, value, src)
    result = AtcSettings(**merged)
    validate_settings(result, where)
    return result
