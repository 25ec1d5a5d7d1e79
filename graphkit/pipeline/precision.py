"""apply's precision step: the parity figures of each final model under ATC's precision mode,
emulated on CPU, and the keep_dtype / modify_mixlist files atc.sh names.

The om that ATC builds computes in fp16 unless told otherwise (``--precision_mode`` defaults to
``force_fp16`` for inference), so the fp32 parity figures say nothing of what users will run.
:func:`emulated_parity` runs the final model once more, transformed by
:func:`graphkit.ascend.precision.emulate`, on the same parity feed, and returns its figures for
manifest.json (``batches[i].precision``). They are reported, not judged, unless the recipe asks
(``precision: {max_delta: X}``): then an output that moves further fails apply. These are
figures of an emulation on CPU, not of an NPU (:data:`graphkit.ascend.precision.NOTE`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any

import onnx

from graphkit._progress import Stopwatch
from graphkit.errors import ParityError, UsageError
from graphkit.ir.ort import OrtFailure
from graphkit.pipeline.reference import Reference
from graphkit.recipe import Recipe

log = logging.getLogger("graphkit")
PRECISION_FILES = ("keep_dtype", "modify_mixlist")  # ATC flags naming a file written beside atc.sh
GIST = "emulated on CPU, not measured on an NPU"


def emulated_parity(
    recipe: Recipe, ref: Reference, model: onnx.ModelProto, batch: int, *, label: str = ""
) -> dict[str, Any] | None:
    """``{"mode", "figures", "note"}`` of ``model`` under the recipe's precision mode, judged
    against ``ref`` (one onnxruntime run); None where the recipe skips it. A mode graphkit
    does not emulate (bf16) is logged and recorded as skipped. Raises ParityError where an
    output moves further than ``precision.max_delta``. The run is announced first and timed
    (``label``: the progress lines' batch column, default ``bs<batch>``)."""
    from graphkit.ascend.precision import NOTE, PrecisionConfig, emulate

    spec = recipe.precision
    if not spec.emulate:
        return None
    try:
        config = PrecisionConfig.from_atc(recipe.atc, recipe.base_dir)
    except UsageError as exc:
        if spec.max_delta is not None:
            raise
        log.info("batch %d: no emulated figures: %s", batch, exc)
        return {"mode": recipe.atc.precision_mode or recipe.atc.precision_mode_v2, "skipped": str(exc)}
    where = f"at batch {batch} under emulated {config.mode}"
    label = label or f"bs{batch}"
    log.info("%s emulating %s on CPU ...", label, config.mode)
    watch = Stopwatch()
    try:
        measured = ref.measure(emulate(model, config), where=where)
    except OrtFailure as exc:
        if spec.max_delta is not None:
            raise ParityError(
                f"batch {batch}: onnxruntime cannot run the emulated {config.mode} model: {exc}"
            ) from None
        log.warning("batch %d: onnxruntime cannot run the emulated %s model (%s)", batch, config.mode, exc)
        return {"mode": config.mode, "skipped": str(exc), "note": NOTE}
    out: dict[str, Any] = {"mode": config.mode, "figures": _finite(measured.figures()), "note": NOTE}
    overflowed = sorted(n for n, c in measured.checks.items() if not math.isfinite(c.max_abs))
    if overflowed:  # inf or NaN in the emulated outputs: fp16 overflowed on the way
        out["non_finite_outputs"] = overflowed
    # the output that moves most (a NaN most of all: fp16 overflowed on the way)
    name, worst = max(
        ((n, c.max_abs) for n, c in measured.checks.items()),
        key=lambda kv: math.inf if math.isnan(kv[1]) else kv[1],
    )
    log.info("%s emulated %s in %s: max|Δ| %.2e (%s; %s)", label, config.mode, watch, worst, name, GIST)
    if spec.max_delta is not None:
        out["max_delta"] = spec.max_delta
        if not worst <= spec.max_delta:  # NaN fails too
            raise ParityError(
                f"batch {batch}: output '{name}' moves by max |Δ| {worst:.3g} under {config.mode} "
                f"(precision.max_delta {spec.max_delta:g}; {GIST}); keep the sensitive nodes in "
                "fp32 (graphkit precision writes a keep_dtype file) or relax the limit"
            )
    return out


def _finite(value: Any) -> Any:
    """The figures with inf and NaN as null: manifest.json stays strict JSON."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def precision_files(settings: Any, taken: set[str]) -> tuple[Any, dict[str, bytes]]:
    """The settings with each keep_dtype / modify_mixlist file the recipe supplies (an absolute
    path, see :mod:`graphkit.recipe.precision`) named by its base name, and those files' bytes
    to write beside atc.sh. ``taken``: the names apply writes itself."""
    flags, files = dict(settings.extra_flags), {}
    for flag in PRECISION_FILES:
        value = flags.get(flag)
        if not isinstance(value, str):
            continue
        path = Path(value)
        if not (path.is_absolute() and path.is_file()):
            log.warning(
                "atc.extra_flags.%s: %s is not beside the recipe; atc.sh names it as written", flag, value
            )
            continue
        name = path.name
        if name in taken or name in files:
            raise UsageError(
                f"atc.extra_flags.{flag}: {path}: apply writes another file named {name}; rename it"
            )
        try:
            files[name] = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"atc.extra_flags.{flag}: cannot read {path}: {exc.strerror}") from None
        flags[flag] = name
    if not files:
        return settings, files
    return dataclasses.replace(settings, extra_flags=flags), files
