"""The ``emulate[=MODE]`` runner: an emitted model under ATC's precision mode, on onnxruntime CPU.

ATC compiles for inference with ``--precision_mode=force_fp16`` unless told otherwise
(``docs/ascend-toolchain.md`` §1.5): the om computes in fp16. This runner runs the emitted model
of a batch transformed by :func:`graphkit.ascend.precision.emulate`, so ``graphkit eval`` can set
the metric of the fp32 model beside the one the om will give. It is an emulation of the numerics
on CPU, not an NPU measurement (:data:`graphkit.ascend.precision.NOTE` says what it leaves out).

MODE is one of :data:`graphkit.ascend.precision.MODES`; without it, the recipe's own
``atc.precision_mode`` (or ``precision_mode_v2``), else ``force_fp16``, ATC's inference default.
The recipe's ``keep_dtype`` / ``modify_mixlist`` files and ``output_type`` apply as they do to ATC.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import onnx

from graphkit._util import did_you_mean
from graphkit.errors import UsageError
from graphkit.runners.base import Runner

DEFAULT_MODE = "force_fp16"  # ATC's default for inference (§1.5)

# ATC spellings that compute as one of the emulated modes (§1.5: aliases, and the v2 names)
ALIASES = {
    "allow_mix_precision_fp16": "allow_mix_precision",
    "cube_fp16in_fp32out": "force_fp32",
    "fp16": "force_fp16",
    "origin": "must_keep_origin_dtype",
    "mixed_float16": "allow_mix_precision",
}


def modes() -> tuple[str, ...]:
    from graphkit.ascend.precision import MODES

    return tuple(MODES)


def check_mode(mode: str, what: str) -> str:
    """``mode`` when it is an emulated mode (or an ATC alias of one), else a UsageError."""
    known = modes()
    mode = ALIASES.get(mode, mode)
    if mode not in known:
        raise UsageError(
            f"{what}: '{mode}' is not a precision mode graphkit emulates (modes: {', '.join(known)})"
            f"{did_you_mean(mode, known)}; bf16 and hif8 modes are not emulated"
        )
    return mode


def recipe_mode(atc: Any) -> str:
    """The mode the recipe's ATC settings compile with: precision_mode, else precision_mode_v2,
    else ATC's inference default."""
    given = atc.precision_mode or atc.precision_mode_v2
    if given is None:
        return DEFAULT_MODE
    at = "atc.precision_mode" if atc.precision_mode else "atc.precision_mode_v2"
    return check_mode(given, f"the recipe's {at}")


def config(atc: Any, mode: str | None = None, base: Path | None = None) -> Any:
    """The :class:`~graphkit.ascend.precision.PrecisionConfig` of the recipe's ATC settings under
    ``mode`` (None: the recipe's, :func:`recipe_mode`); files relative to ``base``."""
    from graphkit.ascend.precision import PrecisionConfig

    chosen = recipe_mode(atc) if mode is None else check_mode(mode, "emulate")
    # the recipe's own mode is replaced, so one that is not emulated (bf16) does not stop MODE
    plain = dataclasses.replace(atc, precision_mode=None, precision_mode_v2=None)
    return dataclasses.replace(PrecisionConfig.from_atc(plain, base), mode=chosen)


def emulated_model(
    model: onnx.ModelProto, atc: Any, mode: str | None = None, base: Path | None = None
) -> onnx.ModelProto:
    """``model`` under ``mode`` (None: the recipe's) with the recipe's keep_dtype,
    modify_mixlist and output_type."""
    from graphkit.ascend.precision import emulate

    return emulate(model, config(atc, mode, base))


def label(mode: str | None) -> str:
    """What tables call the runner: it says the figures are emulated."""
    return f"emulated {mode}" if mode else "emulated"


def open_emulated(path: Path, atc: Any, mode: str | None, *, label: str, base: Path | None = None) -> Runner:
    """An onnxruntime CPU runner of the emitted model at ``path`` under ``mode``."""
    from graphkit.ir.io import load_model
    from graphkit.runners.onnxruntime import OnnxruntimeRunner

    model = emulated_model(load_model(path), atc, mode, base)
    return OnnxruntimeRunner(model, providers="cpu", label=label)
