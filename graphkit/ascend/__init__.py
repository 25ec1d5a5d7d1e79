"""The Ascend toolchain, as graphkit knows it without a CANN install.

- :mod:`~graphkit.ascend.ops`: what ATC accepts of ONNX (operator lists, opsets, per-op limits)
  and the Ascend IR type each ONNX op becomes;
- :mod:`~graphkit.ascend.flags`: the ATC flags and their valid values;
- :mod:`~graphkit.ascend.settings`: :class:`AtcSettings`, their validation, pass hints;
- :mod:`~graphkit.ascend.advice`: warnings on legal but doubtful settings;
- :mod:`~graphkit.ascend.fusion`: fusion switch files;
- :mod:`~graphkit.ascend.command`: the ``atc`` lines, ``atc.sh`` and the switch file's text;
- :mod:`~graphkit.ascend.lint`: what ATC will reject in a model, before ATC runs.

This package imports the first six (light: no onnx-graphsurgeon, no networkx); import
:mod:`graphkit.ascend.lint` for the linter.
"""

from graphkit.ascend.advice import check_warnings
from graphkit.ascend.command import (
    atc_command,
    atc_script,
    fusion_switch_json,
    input_shape_arg,
    resolve_input_format,
    validate_inputs,
)
from graphkit.ascend.flags import (
    ANY_GROUP,
    FUSION_GROUPS,
    GEAR_FLAGS,
    KNOWN_EXTRA_FLAGS,
    KNOWN_PASSES,
    KNOWN_SOCS,
)
from graphkit.ascend.fusion import parse_fusion_switch
from graphkit.ascend.ops import onnx_to_ascend_type
from graphkit.ascend.settings import AtcSettings, merge_pass_hints, settings_from_mapping, validate_settings

__all__ = [
    "ANY_GROUP",
    "FUSION_GROUPS",
    "GEAR_FLAGS",
    "KNOWN_EXTRA_FLAGS",
    "KNOWN_PASSES",
    "KNOWN_SOCS",
    "AtcSettings",
    "atc_command",
    "atc_script",
    "check_warnings",
    "fusion_switch_json",
    "input_shape_arg",
    "merge_pass_hints",
    "onnx_to_ascend_type",
    "parse_fusion_switch",
    "resolve_input_format",
    "settings_from_mapping",
    "validate_inputs",
    "validate_settings",
]
