"""ATC settings, their static validation, and the ``atc`` command lines graphkit emits.

No CANN install is needed: every rule here is checked on the text of the settings, following
``docs/ascend-toolchain.md`` §1 (flags, §1.7 the static rule list) and §2 (fusion switch files).

- :func:`settings_from_mapping` turns a recipe's ``atc:`` block into an :class:`AtcSettings` and
  validates it completely; :func:`validate_settings` does the same for one built in code.
- Errors are :class:`~graphkit.errors.AtcConfigError`. **Warnings** (legal settings that are
  probably not what the user meant, e.g. ``keep_dtype`` under ``must_keep_origin_dtype``) are
  returned by :func:`check_warnings` as strings, never printed: the caller logs or shows them.
- :func:`atc_command` emits one static model per call (one batch size); the dynamic gear flags are
  refused. :func:`atc_script` wraps the lines into an executable ``atc.sh``.
"""

from __future__ import annotations

import difflib
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from graphkit.errors import AtcConfigError
from graphkit.suggest import did_you_mean

# §1.2: CamelCase spellings; case matters (ASCEND310 is rejected by ATC). The 310P vGPU parts are
# spelled "Ascend310P3Vir01" in CANN's own sources (the doc's map lists them lower-cased).
KNOWN_SOCS = frozenset(
    ["Ascend310", "Ascend310P1", "Ascend310P3", "Ascend310P5", "Ascend310P7"]
    + [f"Ascend310P3Vir{n}" for n in ("01", "02", "04", "08")]
    + [f"Ascend310B{n}" for n in range(1, 5)]
    + ["Ascend910", "Ascend910A", "Ascend910ProA", "Ascend910B", "Ascend910ProB", "Ascend910PremiumA"]
    + [f"Ascend910{s}" for s in ("B1", "B2", "B2C", "B3", "B4", "B4-1")]
    + [f"Ascend910_{n}" for n in ("9391", "9392", "9381", "9382", "9372", "9362")]
    + ["Ascend950", "Ascend950DT", "Ascend950PR"]
)
_SOC_WITH_NPU = re.compile(r"Ascend950(DT|PR)_\d{4}")  # <ChipName>_<NPUName>, as for A3 parts
LEGACY_SOC = "Ascend710"  # the 310P before its rename; CANN <= 5.1 only (§1.2)
# Families and the first CANN release whose docs name them (§1.2, §1.8): older → a warning.
_SOC_SINCE = (("Ascend310P", (6, 0)), ("Ascend310B", (6, 2)), ("Ascend910_93", (8, 5)), ("Ascend950", (8, 5)))
_NO_BF16 = ("Ascend310", "Ascend710", "Ascend910", "Ascend910A", "Ascend910ProA", "Ascend910PremiumA")

LOG_LEVELS = ("debug", "info", "warning", "error", "null")
ONNX_INPUT_FORMATS = ("NCHW", "NCDHW", "ND")
PRECISION_MODES = (
    "force_fp16",
    "allow_fp32_to_fp16",
    "must_keep_origin_dtype",
    "allow_mix_precision",
    "allow_mix_precision_fp16",
    "allow_mix_precision_bf16",
    "force_fp32",
    "cube_fp16in_fp32out",
    "allow_fp32_to_bf16",
)
PRECISION_MODES_V2 = (
    "fp16",
    "origin",
    "cube_fp16in_fp32out",
    "mixed_float16",
    "mixed_bfloat16",
    "mixed_hif8",
)
MIXED_MODES = frozenset(
    {
        "allow_mix_precision",
        "allow_mix_precision_fp16",
        "allow_mix_precision_bf16",
        "mixed_float16",
        "mixed_bfloat16",
    }
)
_PRECISION_SINCE = {
    "allow_mix_precision_fp16": (6, 3),
    "allow_mix_precision_bf16": (6, 3),
    "force_fp32": (7, 0),
    "cube_fp16in_fp32out": (7, 0),
    "allow_fp32_to_bf16": (7, 0),
}
IMPL_MODES = ("high_performance", "high_precision", "high_performance_for_all", "high_precision_for_all")
LIST_IMPL_MODES = frozenset({"high_performance", "high_precision"})  # §1.5: not the _for_all ones

FUSION_GROUPS = ("GraphFusion", "UBFusion")
ANY_GROUP = "*"  # the group parse_fusion_switch gives form A lines, which name no group
_PASS_NAME = re.compile(r"[A-Za-z0-9_]+")
# Passes the toolchain doc names (§2); other names are fine, a near miss of these is a warning.
KNOWN_PASSES = frozenset(
    {
        "ReshapeTransposeFusionPass",
        "TransposeReshapeFusionPass",
        "SoftmaxFusionPass",
        "GroupNormFusionPass",
        "TbeEltwiseFusionPass",
        "SameInputConv2dPass",
        "ConstToAttrPass",
        "V100RequantFusionPass",
        "V200RequantFusionPass",
        "TbePool2dQuantFusionPass",
        "TbeReduceElemwiseFusionPass",
        "AABiasaddConvFusion",
        "BatchMatMulFusionPass",
        "DepthwiseFusionPass",
    }
)

# Flags graphkit writes itself, and settings that have their own field.
GRAPHKIT_FLAGS = ("framework", "model", "output", "input_shape", "fusion_switch_file")
FIRST_CLASS = (
    "soc_version",
    "input_format",
    "log",
    "precision_mode",
    "precision_mode_v2",
    "op_select_implmode",
    "optypelist_for_implmode",
)
GEAR_FLAGS = ("dynamic_batch_size", "dynamic_image_size", "dynamic_dims", "input_shape_range")
_FLAG_NAME = re.compile(r"[a-z][a-z0-9_]*")
# ATC flags graphkit knows of; any other name passes through with a warning.
KNOWN_EXTRA_FLAGS = frozenset(
    {
        "mode",
        "check_report",
        "out_nodes",
        "output_type",
        "insert_op_conf",
        "enable_small_channel",
        "input_fp16_nodes",
        "is_input_adjust_hw_layout",
        "is_output_adjust_hw_layout",
        "compression_optimize_conf",
        "modify_mixlist",
        "keep_dtype",
        "customize_dtypes",
        "op_precision_mode",
        "op_debug_level",
        "op_compiler_cache_mode",
        "op_compiler_cache_dir",
        "debug_dir",
        "enable_scope_fusion_passes",
        "buffer_optimize",
        "disable_reuse_memory",
        "enable_single_stream",
        "enable_compress_weight",
        "compress_weight_conf",
        "status_check",
        "display_model_info",
        "oo_level",
        "host_env_os",
        "host_env_cpu",
        "allow_hf32",
    }
)
# Booleans: these flags take 0/1 (§1.6 enable_small_channel; CANN docs for the others); every
# other flag gets true/false, the spelling of is_input_adjust_hw_layout (§1.6).
_BOOL_AS_INT = frozenset(
    {"enable_small_channel", "status_check", "disable_reuse_memory", "display_model_info"}
)
_MODES = {0: "build an om (the default)", 3: "precheck only"}
_NOT_BUILD_MODES = (1, 5, 6)  # om/graph → JSON and om info: they do not convert an ONNX model

# §1.5, msit's ONNX parser map: the Ascend IR type an ONNX op becomes.
ONNX_TO_ASCEND = MappingProxyType(
    {
        "Softmax": "SoftmaxV2",
        "LogSoftmax": "LogSoftmaxV2",
        "MatMul": "BatchMatMulV2",
        "Slice": "StridedSliceV2",
        "Pad": "PadV3",
        "Squeeze": "SqueezeV3",
        "Unsqueeze": "UnsqueezeV3",
        "Div": "RealDiv",
        "Where": "SelectV2",
        "Sum": "AccumulateNV2",
        "BatchNormalization": "BatchNorm",
        "InstanceNormalization": "InstanceNorm",
        "ReduceL1": "LpNorm",
        "ReduceL2": "LpNorm",
        "ReduceSumSquare": "SquareSumV1",
        "GlobalAveragePool": "AvgPool",
        "GlobalMaxPool": "MaxPool",
        "CumSum": "Cumsum",
        "GatherND": "GatherNd",
        "ScatterND": "ScatterNd",
        "LSTM": "CommonLSTM",
        "GRU": "CommonGRU",
        "And": "LogicalAnd",
        "Or": "LogicalOr",
        "Not": "LogicalNot",
        "GreaterOrEqual": "GreaterEqual",
        "LessOrEqual": "LessEqual",
        "MeanVarianceNormalization": "MVNV2",
    }
)
# Ops the parser expands into a PartitionedCall body (the doc names these of about 40).
PARTITIONED_CALL_OPS = frozenset(
    {
        "Conv",
        "Gemm",
        "Gather",
        "Transpose",
        "Concat",
        "Split",
        "Resize",
        "ReduceMean",
        "ReduceMax",
        "Clip",
        "Max",
        "Min",
        "MaxPool",
        "AveragePool",
        "NonZero",
        "OneHot",
        "NonMaxSuppression",
        "ArgMax",
    }
)
_ASCEND_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BAD_INPUT_CHARS = re.compile(r"[:;,\x00-\x1f\x7f]")


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


def _at(where: str, *keys: str) -> str:
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
                hint = f"; other ATC flags go under extra_flags ({_at(where, 'extra_flags', key)})"
            elif not hint and key in GRAPHKIT_FLAGS:
                hint = f"; graphkit sets --{key} itself"
            raise AtcConfigError(f"{_at(where, str(key))}: unknown ATC setting{hint}")


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
        return AtcConfigError(f"{_at(where, key)}: expected {want}, got {got} {values[key]!r}")

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
                f"{_at(where, 'extra_flags', name)}: expected a string, integer or boolean, got "
                f"{type(value).__name__} {value!r} (write other values as a quoted string)"
            )


def validate_settings(settings: AtcSettings, where: str = "atc") -> None:
    """Raise AtcConfigError on the first rule of §1.7/§2 the settings break."""
    _check_types({k: getattr(settings, k) for k in _KEYS}, where)
    _cann(settings, where)
    _check_soc(settings, where)
    _check_enums(settings, where)
    _check_implmode(settings, where)
    _check_fusion(settings.fusion_switches, _at(where, "fusion_switches"))
    _check_extra_flags(settings, where)


def _cann(settings: AtcSettings, where: str) -> tuple[int, int] | None:
    if settings.cann_version is None:
        return None
    # ASCII digits, bounded: \d takes any Unicode digit, and int() refuses 5000 of them
    m = re.fullmatch(r"([0-9]{1,9})\.([0-9]{1,9})(\.[0-9A-Za-z.]+)?", settings.cann_version)
    if not m:
        raise AtcConfigError(
            f"{_at(where, 'cann_version')}: '{settings.cann_version}' is not a "
            "CANN version such as '8.0', '5.0.4' or '8.0.RC1'"
        )
    return int(m[1]), int(m[2])


def _check_soc(s: AtcSettings, where: str) -> None:
    soc, at = s.soc_version, _at(where, "soc_version")
    if soc == LEGACY_SOC:
        version = _cann(s, where)
        if version is None or version > (5, 1):
            raise AtcConfigError(
                f"{at}: 'Ascend710' is the pre-6.0 name of the 310P chip, accepted only with "
                f"cann_version <= 5.1 (cann_version is {s.cann_version or 'unset'}); use "
                "'Ascend310P3' (or the 310P part npu-smi info reports)"
            )
        return
    if soc in KNOWN_SOCS or _SOC_WITH_NPU.fullmatch(soc):
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
    _enum(s.log, LOG_LEVELS, _at(where, "log"), "ATC --log level")
    fmt, at = s.input_format, _at(where, "input_format")
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
    _enum(s.precision_mode, PRECISION_MODES, _at(where, "precision_mode"), "--precision_mode")
    _enum(s.precision_mode_v2, PRECISION_MODES_V2, _at(where, "precision_mode_v2"), "--precision_mode_v2")
    if s.precision_mode is not None and s.precision_mode_v2 is not None:
        raise AtcConfigError(
            f"{where}: precision_mode and precision_mode_v2 cannot be combined; "
            "keep one (the docs recommend precision_mode_v2)"
        )


def _check_implmode(s: AtcSettings, where: str) -> None:
    at = _at(where, "optypelist_for_implmode")
    _enum(s.op_select_implmode, IMPL_MODES, _at(where, "op_select_implmode"), "--op_select_implmode")
    seen: set[str] = set()
    for op in s.optypelist_for_implmode:
        if not _ASCEND_TYPE.fullmatch(op):
            raise AtcConfigError(f"{at}: '{op}' is not an op type name (one type per list entry)")
        if op in seen:
            raise AtcConfigError(f"{at}: '{op}' is listed twice")
        seen.add(op)
    if s.optypelist_for_implmode and s.op_select_implmode not in LIST_IMPL_MODES:
        raise AtcConfigError(
            f"{at}: needs op_select_implmode high_precision or high_performance (one mode applies "
            f"to the whole list), not {s.op_select_implmode or 'unset'}"
        )


def _check_fusion(switches: Mapping[str, Mapping[str, str]], at: str) -> None:
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
            if not _PASS_NAME.fullmatch(name):
                raise AtcConfigError(f"{at}.{group}: '{name}' is not a pass name (letters, digits, _)")
            if value not in ("on", "off"):
                raise AtcConfigError(f"{at}.{group}.{name}: expected 'on' or 'off', got {value!r}")


def _check_extra_flags(s: AtcSettings, where: str) -> None:
    flags = s.extra_flags
    for name, value in flags.items():
        at = _at(where, "extra_flags", name)
        if name.startswith("-"):
            raise AtcConfigError(f"{at}: write the flag name without the leading '--'")
        if not _FLAG_NAME.fullmatch(name):
            raise AtcConfigError(f"{at}: does not look like an ATC flag (lower_snake_case)")
        if name in FIRST_CLASS:
            raise AtcConfigError(f"{at}: {name} has its own setting; write it as {_at(where, name)}")
        if name in GRAPHKIT_FLAGS:
            raise AtcConfigError(f"{at}: graphkit sets --{name} itself")
        if isinstance(value, str) and (not value or _CONTROL.search(value)):
            raise AtcConfigError(f"{at}: the value must be non-empty and on one line")
    gears = [g for g in GEAR_FLAGS if g in flags]
    if gears:
        both = (
            f"; they are also mutually exclusive (ATC E10009: {', '.join(gears)})" if len(gears) > 1 else ""
        )
        raise AtcConfigError(
            f"{_at(where, 'extra_flags', gears[0])}: graphkit emits one static "
            "model per batch size, so the dynamic gear flags are not supported; "
            f"list the batch sizes in the recipe instead{both}"
        )
    if "mode" in flags:
        mode = flags["mode"]
        # ASCII digits only: "²".isdigit() holds, yet int("²") raises
        mode = int(mode) if isinstance(mode, str) and re.fullmatch(r"[0-9]{1,9}", mode) else mode
        if mode in _NOT_BUILD_MODES and not isinstance(mode, bool):
            raise AtcConfigError(
                f"{_at(where, 'extra_flags', 'mode')}: --mode={mode} converts "
                "or inspects an om, it does not build one from ONNX; use 0 or 3"
            )
        if isinstance(mode, bool) or mode not in _MODES:
            raise AtcConfigError(
                f"{_at(where, 'extra_flags', 'mode')}: {mode!r} is not a mode "
                "graphkit can emit; 0 builds an om, 3 only prechecks"
            )
    if "modify_mixlist" in flags and not {s.precision_mode, s.precision_mode_v2} & MIXED_MODES:
        raise AtcConfigError(
            f"{_at(where, 'extra_flags', 'modify_mixlist')}: needs a mixed precision mode "
            "(precision_mode allow_mix_precision* or precision_mode_v2 mixed_float16/"
            "mixed_bfloat16)"
        )
    output_type = flags.get("output_type")
    if isinstance(output_type, str) and ":" in output_type and "out_nodes" not in flags:
        raise AtcConfigError(
            f"{_at(where, 'extra_flags', 'output_type')}: the per-node form "
            "'node:idx:TYPE' needs extra_flags.out_nodes"
        )
    layout, fp16 = flags.get("is_input_adjust_hw_layout"), flags.get("input_fp16_nodes")
    if layout is not None and fp16 is not None:
        n_layout = 1 if isinstance(layout, bool | int) else len(str(layout).split(","))
        n_nodes = len(str(fp16).split(";"))
        if n_layout != n_nodes:
            raise AtcConfigError(
                f"{_at(where, 'extra_flags', 'is_input_adjust_hw_layout')}: {n_layout} value(s) "
                f"for {n_nodes} input_fp16_nodes; give one true/false per node"
            )


def check_warnings(settings: AtcSettings, where: str = "atc") -> list[str]:
    """Legal settings that are probably not what was meant; returned, never printed."""
    s, flags, out = settings, settings.extra_flags, []
    if "op_precision_mode" in flags and (s.op_select_implmode or s.optypelist_for_implmode):
        out.append(
            f"{where}: extra_flags.op_precision_mode overrides op_select_implmode and "
            "optypelist_for_implmode; ATC ignores them"
        )
    keeps = {s.precision_mode, s.precision_mode_v2} & {"must_keep_origin_dtype", "origin"}
    if "keep_dtype" in flags and keeps:
        out.append(
            f"{where}: extra_flags.keep_dtype has no effect under {keeps.pop()}: every op "
            "already keeps its original dtype"
        )
    if "keep_dtype" in flags and "customize_dtypes" in flags:
        out.append(f"{where}: extra_flags.customize_dtypes wins over keep_dtype when both are given")
    if flags.get("enable_small_channel") in (1, True, "1") and "insert_op_conf" not in flags:
        out.append(
            f"{where}: extra_flags.enable_small_channel is meant for static AIPP "
            "(insert_op_conf); without it there may be no gain"
        )
    if "is_input_adjust_hw_layout" in flags and "input_fp16_nodes" not in flags:
        out.append(f"{where}: extra_flags.is_input_adjust_hw_layout has no effect without input_fp16_nodes")
    for name in flags:
        if name not in KNOWN_EXTRA_FLAGS:
            out.append(
                f"{_at(where, 'extra_flags', name)}: not an ATC flag graphkit knows; passed "
                f"through as is{did_you_mean(name, sorted(KNOWN_EXTRA_FLAGS))}"
            )
    for op in s.optypelist_for_implmode:
        if op in ONNX_TO_ASCEND or op in PARTITIONED_CALL_OPS:
            ascend = ONNX_TO_ASCEND.get(op, "known only after ATC parses the model")
            out.append(
                f"{_at(where, 'optypelist_for_implmode')}: '{op}' is an ONNX op type; "
                f"ATC expects Ascend IR types (here: {ascend})"
            )
    out += _fusion_warnings(s, where) + _version_warnings(s, where)
    return out


def _fusion_warnings(s: AtcSettings, where: str) -> list[str]:
    out = []
    for group, passes in s.fusion_switches.items():
        for name in passes:
            at = _at(where, "fusion_switches", group, name)
            if name == "ALL" or name in KNOWN_PASSES:
                continue
            near = difflib.get_close_matches(name, KNOWN_PASSES, n=1, cutoff=0.9)
            if near:  # so close to a documented pass that it is most likely a typo of it
                out.append(f"{at}: not a pass the toolchain doc names; did you mean '{near[0]}'?")
            elif not name.endswith(("Pass", "Fusion")):
                out.append(f"{at}: does not look like a fusion pass name (…Pass or …Fusion)")
    if s.soc_version.startswith("Ascend950") and s.fusion_switches.get("UBFusion"):
        out.append(f"{_at(where, 'fusion_switches', 'UBFusion')}: {s.soc_version} has no UB fusion")
    return out


def _version_warnings(s: AtcSettings, where: str) -> list[str]:
    out, version, soc = [], _cann(s, where), s.soc_version
    mode = s.precision_mode or s.precision_mode_v2 or ""
    if "bf16" in mode or "bfloat16" in mode:
        if soc in _NO_BF16 or soc.startswith("Ascend310P"):
            out.append(f"{where}: {mode} needs a chip with bf16 (Atlas A2 class or later), not {soc}")
    if mode == "mixed_hif8" and not soc.startswith("Ascend950"):
        out.append(f"{where}: mixed_hif8 exists on Atlas 350 (Ascend950) only, not {soc}")
    if version is None:
        return out
    for prefix, since in _SOC_SINCE:
        if soc.startswith(prefix) and version < since:
            out.append(
                f"{_at(where, 'soc_version')}: {soc} first appears in CANN "
                f"{since[0]}.{since[1]} docs; cann_version {s.cann_version} may not know it"
            )
    since = (6, 3) if s.precision_mode_v2 else _PRECISION_SINCE.get(s.precision_mode or "")
    if since and version < since:
        out.append(
            f"{where}: {mode} first appears in CANN {since[0]}.{since[1]} docs; "
            f"cann_version {s.cann_version} may not know it"
        )
    if s.op_select_implmode and version >= (8, 0):
        out.append(
            f"{_at(where, 'op_select_implmode')}: no longer evolving since CANN 8.x and "
            "due for deprecation; extra_flags.op_precision_mode replaces it"
        )
    return out


_HINT_KEYS = (
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
        return origin.get(path, f"the recipe ({_at(where, path)})")

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
        _check_keys(hint, hint_where, (*_HINT_KEYS, "source"))
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


def resolve_input_format(settings: AtcSettings, input_ranks: Mapping[str, int]) -> str:
    """The --input_format to emit: the explicit one, NCHW under AIPP, else by the input ranks."""
    if settings.input_format is not None:
        return settings.input_format
    if "insert_op_conf" in settings.extra_flags:
        return "NCHW"
    ranks = set(input_ranks.values())
    if ranks == {4}:
        return "NCHW"
    if ranks == {5}:
        return "NCDHW"
    return "ND"


def _check_shapes(shapes: Mapping[str, Sequence[int]], where: str) -> None:
    for name, dims in shapes.items():
        at = f"{where}: input_shape '{name}'"
        if not isinstance(name, str) or not name:
            raise AtcConfigError(f"{where}: input_shape: input names must be non-empty strings")
        if _BAD_INPUT_CHARS.search(name):
            raise AtcConfigError(
                f"{at}: ATC's --input_shape cannot express a name containing ':', "
                "';', ',' or control characters; rename the model input"
            )
        if isinstance(dims, str | bytes) or not isinstance(dims, Sequence):
            raise AtcConfigError(f"{at}: expected a list of dims, got {dims!r}")
        for dim in dims:
            if isinstance(dim, bool) or not isinstance(dim, int):
                raise AtcConfigError(f"{at}: dim {dim!r} is not an integer")
            if dim == -1:
                raise AtcConfigError(
                    f"{at}: -1 asks for a dynamic dim; graphkit emits static "
                    "models, one per batch size, so give every dim a value"
                )
            if dim < 1:
                raise AtcConfigError(f"{at}: dim {dim} must be positive (ATC refuses zero dims)")


def input_shape_arg(shapes: Mapping[str, Sequence[int]]) -> str:
    """The --input_shape value: ``"mel:4,80,200;other:1,2"`` (unquoted), in mapping order."""
    _check_shapes(shapes, "atc")
    return ";".join(f"{name}:{','.join(str(d) for d in dims)}" for name, dims in shapes.items())


_RANK_RULE = {
    "ND": (range(0, 5), "rank <= 4"),
    "NCHW": (range(4, 5), "rank 4"),
    "NCDHW": (range(5, 6), "rank 5"),
}


def validate_inputs(
    settings: AtcSettings,
    shapes: Mapping[str, Sequence[int]],
    model_inputs: Mapping[str, Sequence[int | str | None]],
    *,
    where: str = "atc",
) -> None:
    """§1.7 rule 2: the shapes name real model inputs, agree with them, and suit the format.

    ``model_inputs`` maps each graph input (not initializers) to its dims: ints for fixed dims,
    strings or None for symbolic/unknown ones. Inputs with only fixed dims may be left out.
    """
    _check_shapes(shapes, where)
    for name, dims in shapes.items():
        if name not in model_inputs:
            raise AtcConfigError(
                f"{where}: input_shape '{name}' is not an input of the model"
                f"{did_you_mean(name, model_inputs)}; inputs: "
                f"{', '.join(model_inputs) or 'none'}"
            )
        model_dims = list(model_inputs[name])
        if len(dims) != len(model_dims):
            raise AtcConfigError(
                f"{where}: input_shape '{name}' has rank {len(dims)}, the model "
                f"input has rank {len(model_dims)} {model_dims}"
            )
        for axis, (dim, fixed) in enumerate(zip(dims, model_dims, strict=True)):
            if isinstance(fixed, int) and fixed > 0 and dim != fixed:
                raise AtcConfigError(
                    f"{where}: input_shape '{name}' dim {axis} is {dim}, the model fixes it to {fixed}"
                )
    for name, model_dims in model_inputs.items():
        if name not in shapes and any(not isinstance(d, int) or d < 1 for d in model_dims):
            raise AtcConfigError(
                f"{where}: model input '{name}' has symbolic dims {list(model_dims)}; give it a shape"
            )
    fmt = resolve_input_format(settings, {n: len(d) for n, d in shapes.items()})
    allowed, rule = _RANK_RULE[fmt]
    chosen = "" if settings.input_format else " (chosen from the ranks of the given shapes)"
    for name, model_dims in model_inputs.items():
        if len(model_dims) not in allowed:
            raise AtcConfigError(
                f"{where}: input '{name}' has rank {len(model_dims)} but "
                f"--input_format={fmt}{chosen} needs {rule}; ATC applies one "
                "format to every input"
            )


_UNQUOTED = re.compile(r"[A-Za-z0-9_@%+=:./-]+")  # no shell meaning, none of ; , ~
_DOUBLE_QUOTABLE = re.compile(r"[^\"\\$`!]+")  # nothing special inside "…"


def _flag(name: str, value: str, *, quote: bool = False) -> str:
    """``--k=v`` (no space after =); values with ; , ~ or shell characters quoted (§1.7.7)."""
    if not quote and _UNQUOTED.fullmatch(value):
        return f"--{name}={value}"
    if _DOUBLE_QUOTABLE.fullmatch(value):
        return f'--{name}="{value}"'
    return f"--{name}={shlex.quote(value)}"


def _flag_value(name: str, value: str | int | bool) -> str:
    if isinstance(value, bool):
        if name in _BOOL_AS_INT:
            return "1" if value else "0"
        return "true" if value else "false"
    return str(value)


def _path(value: str, what: str) -> str:
    if not isinstance(value, str) or not value or _CONTROL.search(value):
        raise ValueError(f"atc_command: {what} must be a non-empty one-line path, got {value!r}")
    return value


def atc_command(
    settings: AtcSettings,
    *,
    model: str,
    output: str,
    shapes: Mapping[str, Sequence[int]],
    fusion_switch_file: str | None,
) -> str:
    """One shell-ready ``atc`` line building a static om; deterministic for equal arguments.

    ``output`` is a prefix: ATC appends ``.om`` and, on recent builds, an arch suffix too.
    ``fusion_switch_file`` is where the caller wrote :func:`fusion_switch_json`; it must be given
    exactly when the settings have switches.
    """
    validate_settings(settings)
    if not shapes:
        raise AtcConfigError("atc: no input shapes; graphkit emits static models only")
    _check_shapes(shapes, "atc")
    has_switches = fusion_switch_json(settings) is not None
    if has_switches != (fusion_switch_file is not None):
        raise ValueError(
            "atc_command: pass fusion_switch_file exactly when the settings have "
            "fusion switches (write fusion_switch_json(settings) there)"
        )
    fmt = resolve_input_format(settings, {n: len(d) for n, d in shapes.items()})
    parts = [
        "atc",
        "--framework=5",
        _flag("model", _path(model, "model")),
        _flag("output", _path(output, "output")),
        _flag("input_format", fmt),
        _flag("input_shape", input_shape_arg(shapes), quote=True),
        _flag("soc_version", settings.soc_version),
        _flag("log", settings.log),
    ]
    if fusion_switch_file is not None:
        parts.append(_flag("fusion_switch_file", _path(fusion_switch_file, "fusion_switch_file")))
    for key in ("precision_mode", "precision_mode_v2", "op_select_implmode"):
        if getattr(settings, key) is not None:
            parts.append(_flag(key, getattr(settings, key)))
    if settings.optypelist_for_implmode:
        parts.append(_flag("optypelist_for_implmode", ",".join(settings.optypelist_for_implmode), quote=True))
    for name in sorted(settings.extra_flags):
        parts.append(_flag(name, _flag_value(name, settings.extra_flags[name])))
    return " ".join(parts)


def fusion_switch_json(settings: AtcSettings) -> str | None:
    """The --fusion_switch_file text (§2 form B, sorted keys, trailing newline); None if no switches."""
    groups = {g: dict(p) for g, p in settings.fusion_switches.items() if p}
    if not groups:
        return None
    return json.dumps({"Switch": groups}, indent=2, sort_keys=True) + "\n"


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
        if not sep or not _PASS_NAME.fullmatch(name) or value not in ("on", "off"):
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
    _check_fusion(switch, "fusion switch file: Switch")
    return {group: dict(passes) for group, passes in switch.items()}


def onnx_to_ascend_type(op_type: str) -> str:
    """The Ascend IR type ATC gives an ONNX op (what optypelist/keep_dtype/mixlist expect)."""
    if op_type in PARTITIONED_CALL_OPS:
        example = " (Conv becomes e.g. Conv2D)" if op_type == "Conv" else ""
        raise AtcConfigError(
            f"ONNX op '{op_type}' cannot be listed by its ONNX name: ATC's parser expands it into "
            "a PartitionedCall body, so its Ascend IR type is known only after parsing"
            f"{example}; list the Ascend IR type itself"
        )
    return ONNX_TO_ASCEND.get(op_type, op_type)


def atc_script(commands: Sequence[str], *, cd_to_script_dir: bool = True) -> str:
    """The text of an executable ``atc.sh`` running ``commands`` (from :func:`atc_command`).

    With ``cd_to_script_dir`` the script first changes to its own folder, so relative --model and
    --output paths (graphkit writes the models beside atc.sh) work from any working directory.
    """
    for command in commands:
        if not isinstance(command, str) or not command.startswith("atc ") or _CONTROL.search(command):
            raise ValueError(f"atc_script: not a one-line atc command: {command!r}")
    header = [
        "#!/usr/bin/env bash",
        "# Generated by graphkit; edit the recipe and regenerate rather than this file.",
        "# ATC appends .om and, on recent builds, an arch suffix to --output",
        "# (e.g. model_linux_aarch64.om): runners glob <output>*.om.",
        "set -euo pipefail",
        "if ! command -v atc >/dev/null 2>&1; then",
        "  echo \"atc.sh: 'atc' not found; source the CANN environment first, e.g.\" >&2",
        "  echo '  source /usr/local/Ascend/ascend-toolkit/set_env.sh' >&2",
        "  exit 127",
        "fi",
    ]
    if cd_to_script_dir:
        header += ["# Paths below are relative to this script's folder.", 'cd "$(dirname "$0")"']
    return "\n".join([*header, *commands]) + "\n"
