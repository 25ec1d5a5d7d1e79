"""The ``atc`` command lines graphkit emits, ``atc.sh`` and the fusion switch file's text.

:func:`atc_command` emits one static model per call (one batch size); the dynamic gear flags are
refused. :func:`validate_inputs` checks the input shapes against the model (§1.7 rule 2) before
any line is written; :func:`atc_script` wraps the lines into an executable ``atc.sh``.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence

from graphkit._util import did_you_mean
from graphkit.ascend.flags import BAD_INPUT_CHARS, BOOL_AS_INT, CONTROL_CHARS
from graphkit.ascend.settings import AtcSettings, validate_settings
from graphkit.errors import AtcConfigError


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
        if BAD_INPUT_CHARS.search(name):
            raise AtcConfigError(
                f"{at}: ATC's --input_shape cannot express a name containing ':', "
                "';', ',' or control characters; rename the input with the rename_io pass "
                f"({{pass: rename_io, with: {{inputs: {{'{name}': {_safe_name(name)}}}}}}})"
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


def _safe_name(name: str) -> str:
    safe = re.sub(r"\W+", "_", name).strip("_")
    return safe or "input"


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
        if name in BOOL_AS_INT:
            return "1" if value else "0"
        return "true" if value else "false"
    return str(value)


def _path(value: str, what: str) -> str:
    if not isinstance(value, str) or not value or CONTROL_CHARS.search(value):
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


def atc_script(commands: Sequence[str], *, cd_to_script_dir: bool = True) -> str:
    """The text of an executable ``atc.sh`` running ``commands`` (from :func:`atc_command`).

    With ``cd_to_script_dir`` the script first changes to its own folder, so relative --model and
    --output paths (graphkit writes the models beside atc.sh) work from any working directory.
    """
    for command in commands:
        if not isinstance(command, str) or not command.startswith("atc ") or CONTROL_CHARS.search(command):
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
