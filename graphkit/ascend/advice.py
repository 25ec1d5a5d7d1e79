"""Warnings on legal ATC settings that are probably not what was meant; returned, never printed."""

from __future__ import annotations

import difflib

from graphkit._util import did_you_mean
from graphkit.ascend.flags import KNOWN_EXTRA_FLAGS, KNOWN_PASSES, NO_BF16, PRECISION_SINCE, SOC_SINCE
from graphkit.ascend.ops import ONNX_TO_ASCEND, PARTITIONED_CALL_OPS
from graphkit.ascend.settings import AtcSettings, cann_tuple, key_path


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
                f"{key_path(where, 'extra_flags', name)}: not an ATC flag graphkit knows; passed "
                f"through as is{did_you_mean(name, sorted(KNOWN_EXTRA_FLAGS))}"
            )
    for op in s.optypelist_for_implmode:
        if op in ONNX_TO_ASCEND or op in PARTITIONED_CALL_OPS:
            ascend = ONNX_TO_ASCEND.get(op, "known only after ATC parses the model")
            out.append(
                f"{key_path(where, 'optypelist_for_implmode')}: '{op}' is an ONNX op type; "
                f"ATC expects Ascend IR types (here: {ascend})"
            )
    out += _fusion_warnings(s, where) + _version_warnings(s, where)
    return out


def _fusion_warnings(s: AtcSettings, where: str) -> list[str]:
    out = []
    for group, passes in s.fusion_switches.items():
        for name in passes:
            at = key_path(where, "fusion_switches", group, name)
            if name == "ALL" or name in KNOWN_PASSES:
                continue
            near = difflib.get_close_matches(name, KNOWN_PASSES, n=1, cutoff=0.9)
            if near:  # so close to a documented pass that it is most likely a typo of it
                out.append(f"{at}: not a pass the toolchain doc names; did you mean '{near[0]}'?")
            elif not name.endswith(("Pass", "Fusion")):
                out.append(f"{at}: does not look like a fusion pass name (…Pass or …Fusion)")
    if s.soc_version.startswith("Ascend950") and s.fusion_switches.get("UBFusion"):
        out.append(f"{key_path(where, 'fusion_switches', 'UBFusion')}: {s.soc_version} has no UB fusion")
    return out


def _version_warnings(s: AtcSettings, where: str) -> list[str]:
    out, version, soc = [], cann_tuple(s, where), s.soc_version
    mode = s.precision_mode or s.precision_mode_v2 or ""
    if "bf16" in mode or "bfloat16" in mode:
        if soc in NO_BF16 or soc.startswith("Ascend310P"):
            out.append(f"{where}: {mode} needs a chip with bf16 (Atlas A2 class or later), not {soc}")
    if mode == "mixed_hif8" and not soc.startswith("Ascend950"):
        out.append(f"{where}: mixed_hif8 exists on Atlas 350 (Ascend950) only, not {soc}")
    if version is None:
        return out
    for prefix, since in SOC_SINCE:
        if soc.startswith(prefix) and version < since:
            out.append(
                f"{key_path(where, 'soc_version')}: {soc} first appears in CANN "
                f"{since[0]}.{since[1]} docs; cann_version {s.cann_version} may not know it"
            )
    since = (6, 3) if s.precision_mode_v2 else PRECISION_SINCE.get(s.precision_mode or "")
    if since and version < since:
        out.append(
            f"{where}: {mode} first appears in CANN {since[0]}.{since[1]} docs; "
            f"cann_version {s.cann_version} may not know it"
        )
    if s.op_select_implmode and version >= (8, 0):
        out.append(
            f"{key_path(where, 'op_select_implmode')}: no longer evolving since CANN 8.x and "
            "due for deprecation; extra_flags.op_precision_mode replaces it"
        )
    return out
