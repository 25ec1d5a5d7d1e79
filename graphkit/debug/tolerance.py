"""The tolerance ``graphkit compare`` holds the network outputs to, and the line of a failure.

msit's limits (cosine 0.99, ...) flag a tensor as abnormal, but pass a rewrite that moves an
output by 1e-3 while the recipe promises 1e-4. So each network output must also pass
:func:`graphkit.numerics.check` against one :class:`~graphkit.numerics.Tolerance`, the first of:

1. ``--max-abs`` / ``--max-rel`` when given: that elementwise rule for every output (the cosine
   is then judged by msit's ``--cosine`` alone);
2. the recipe's parity tolerance (``parity.tolerance`` and ``parity.per_output`` of
   ``manifest.json``) where A or B lies in a ``graphkit apply`` output folder (a model in it, or a
   golden file in its ``golden/``);
3. graphkit's default :class:`~graphkit.numerics.Tolerance`.

Intermediate tensors keep msit's limits and the elementwise rule shown per row: they locate a
divergence, the outputs decide.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphkit.errors import DataError, UsageError
from graphkit.numerics import Check, Tolerance


@dataclass(frozen=True)
class OutputTolerance:
    """The network outputs' pass/fail rule: ``per_output[name]``, else ``default``; ``source``
    says where it comes from, for messages."""

    default: Tolerance = field(default_factory=Tolerance)
    per_output: Mapping[str, Tolerance] = field(default_factory=dict)
    source: str = "graphkit's default"

    def tolerance_for(self, output: str) -> Tolerance:
        return self.per_output.get(output, self.default)


def output_tolerance(
    a: Path, b: Path, *, max_abs: float | None = None, max_rel: float | None = None
) -> OutputTolerance:
    """The rule of the module docstring for comparing ``a`` with ``b``."""
    if max_abs is not None or max_rel is not None:
        given = Tolerance(
            max_abs=Tolerance().max_abs if max_abs is None else max_abs, max_rel=max_rel, min_cosine=None
        )
        return OutputTolerance(given, {}, "--max-abs/--max-rel")
    found: dict[Path, OutputTolerance] = {}
    for path in (a, b):
        manifest = apply_manifest(path)
        if manifest is not None and manifest not in found:
            found[manifest] = _read(manifest)
    if not found:
        return OutputTolerance()
    (first, tol), *others = found.items()
    for other, theirs in others:
        if (theirs.default, dict(theirs.per_output)) != (tol.default, dict(tol.per_output)):
            raise UsageError(
                f"{first} and {other} hold different parity tolerances ({tol.default.describe()} vs "
                f"{theirs.default.describe()}): give --max-abs/--max-rel to say which applies"
            )
    return tol


def apply_manifest(path: Path) -> Path | None:
    """``<out>/manifest.json`` where ``path`` is a file of a ``graphkit apply`` output folder
    (``<out>/x_bsN.onnx``, ``<out>/golden/bsN.npz``, ``<out>/passes/*.onnx``), else None."""
    path = Path(path)
    if path.is_dir():  # an NPU output folder: not one apply writes
        return None
    below = path.parent.name in ("golden", "passes")
    folders = [path.parent, *([path.parent.parent] if below else [])]
    return next((f / "manifest.json" for f in folders if (f / "manifest.json").is_file()), None)


def _read(manifest: Path) -> OutputTolerance:
    hint = "re-run graphkit apply, or give --max-abs/--max-rel"
    try:
        parity = json.loads(manifest.read_text(encoding="utf-8"))["parity"]
        default = _tolerance(parity["tolerance"])
        per_output = {str(k): _tolerance(v) for k, v in parity.get("per_output", {}).items()}
    except OSError as exc:
        raise DataError(f"{manifest}: cannot read it ({exc.strerror}); {hint}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        # ValueError covers bad JSON and bad UTF-8; the others a manifest of another shape
        raise DataError(
            f"{manifest}: no parity tolerance in it ({type(exc).__name__}: {exc}); {hint}"
        ) from None
    return OutputTolerance(default, per_output, f"the recipe's parity tolerance, {manifest}")


def _tolerance(value: Any) -> Tolerance:
    if not isinstance(value, Mapping) or set(value) - {"max_abs", "max_rel", "min_cosine"}:
        raise ValueError(f"a tolerance is max_abs, max_rel, min_cosine; got {value!r}")

    def number(key: str, optional: bool) -> float | None:
        v = value.get(key)
        if v is None and optional:
            return None
        low = -1.0 if key == "min_cosine" else 0.0
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v >= low):
            raise ValueError(f"{key} is {v!r}")
        return float(v)

    max_abs = number("max_abs", optional=False)
    assert max_abs is not None
    return Tolerance(max_abs, number("max_rel", optional=True), number("min_cosine", optional=True))


def failure_line(name: str, c: Check, tol: Tolerance, source: str) -> str:
    """``output 'y' breaks |Δ| <= 0.0001 (source): why; max|Δ| ...; passes with ...``."""
    needs = [c.min_tolerance()] if c.failing else []
    if tol.min_cosine is not None and c.cosine_checked and not c.cosine >= tol.min_cosine:
        needs.append(f"min_cosine <= {c.cosine:.7f}")
    if len(needs) == 2:  # both bounds broken: the elementwise alternatives, and the cosine
        needs[0] = f"({needs[0]})"
    return (
        f"output '{name}' breaks the tolerance {tol.describe()} ({source}): {c.why}; "
        f"max|Δ| {c.max_abs:.3g}, cosine {c.cosine:.7f}; would pass with {' and '.join(needs)}"
    )
