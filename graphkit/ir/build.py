"""Small models built by code: ONNX text in, a checked ModelProto out, with seeded weights.

Tests and the examples each pass declares are written as ONNX text (``onnx.parser`` syntax)
rather than golden ``.onnx`` files::

    model_from_text("g (float[2,4] x) => (float[2,4] y) { y = Mul(x, w) }", inits={"w": seeded(4)})
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx import numpy_helper

from graphkit.ir.proto import DEFAULT_IR_VERSION


def model_from_text(
    text: str,
    *,
    opset: int = 13,
    inits: Mapping[str, np.ndarray] | None = None,
    check: bool = True,
) -> onnx.ModelProto:
    """Parse a model from ONNX text and add ``inits`` as initializers.

    Text that does not start with ``<`` (a model header) gets ``<ir_version: 8, opset_import:
    ["" : opset]>``. Tensors written in the text (initializers, Constant values) hold raw bytes,
    as exporters write them: the parser writes typed fields, which onnx-graphsurgeon re-encodes
    as raw bytes once a pass reads the value. With ``check`` the full ONNX checker (with shape
    inference) runs on the result, so a test's model is valid before any pass sees it.
    """
    if not text.lstrip().startswith("<"):
        text = f'<ir_version: {DEFAULT_IR_VERSION}, opset_import: ["" : {opset}]>\n{text}'
    model = onnx.parser.parse_model(text)
    _raw_tensors(model.graph)
    model.graph.initializer.extend(
        numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()
    )
    if check:
        onnx.checker.check_model(model, full_check=True)
    return model


def _raw_tensors(graph: onnx.GraphProto) -> None:
    """Initializers and tensor attributes (Constant values, in bodies too) as raw bytes."""
    for t in graph.initializer:
        t.CopyFrom(_raw(t))
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                attr.t.CopyFrom(_raw(attr.t))
            for t in attr.tensors:
                t.CopyFrom(_raw(t))
            for body in [attr.g] if attr.HasField("g") else attr.graphs:
                _raw_tensors(body)


def _raw(t: onnx.TensorProto) -> onnx.TensorProto:
    return numpy_helper.from_array(numpy_helper.to_array(t), t.name)


def seeded(*shape: int, seed: int = 0, scale: float = 0.3) -> np.ndarray:
    """A float32 tensor of standard-normal values times ``scale``, from ``seed``."""
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)
