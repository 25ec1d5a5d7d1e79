"""``graphkit compare A B --emulate MODE``: B run under ATC's precision mode, emulated on CPU.

B (an ONNX model) is transformed by :func:`graphkit.ascend.precision.emulate` and compared with A
tensor by tensor as usual: ``graphkit compare m.onnx m.onnx --emulate force_fp16`` shows where
fp16 moves the values of a model and by how much. The emulated model keeps the names of the
tensors its fp16 nodes compute (their rounded values), so intermediates pair up with A's. An
emulation of the numerics on CPU, not an NPU measurement (the report's notes say what it leaves
out).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import onnx

from graphkit.errors import UsageError
from graphkit.pipeline.verify import verify_listed


def compare_emulated(a: Path, b: Path, mode: str, *, inputs: Path | None = None, **options: Any) -> Any:
    """:func:`graphkit.debug.compare_run.compare_paths` of A against B under ``mode``."""
    from graphkit.ascend.precision import NOTE, PrecisionConfig, emulate
    from graphkit.debug.compare_run import compare_paths
    from graphkit.ir.io import load_model
    from graphkit.pipeline.provenance import file_identity
    from graphkit.runners.emulate import check_mode

    mode = check_mode(mode, "--emulate")
    a, b = Path(a), Path(b)
    if b.is_dir() or b.suffix.lower() != ".onnx":
        raise UsageError(f"--emulate: {b} is not an ONNX model (.onnx); it emulates model B's precision")
    verify_listed(a, b, inputs)  # the files as an apply wrote them, before B is rewritten
    emulated = emulate(load_model(b), PrecisionConfig(mode=mode))
    with tempfile.TemporaryDirectory(prefix="graphkit-emulate-") as tmp:
        path = Path(tmp) / b.name
        onnx.save_model(emulated, str(path), save_as_external_data=emulated.ByteSize() > 2**31 - 2**20)
        del emulated
        report = compare_paths(a, path, inputs=inputs, **options)
    report.candidate = f"{b} (emulated {mode}, onnxruntime CPU)"
    report.provenance["files"]["b"] = {**file_identity(b), "emulated": mode}  # not the temporary copy
    report.notes.append(f"B emulated under {mode}: {NOTE}")
    return report
