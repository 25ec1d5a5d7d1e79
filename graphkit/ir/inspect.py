"""``graphkit inspect``: what a model holds, in the terms that matter before ATC."""

from __future__ import annotations

from collections import Counter
from typing import Any

import onnx

from graphkit.ir.proto import conv_spatial_rank, dims, infer_shapes, is_onnx_domain


def _dims(vi: onnx.ValueInfoProto) -> list[int | str]:
    return ["?" if d is None else d for d in dims(vi) or []]


def describe(model: onnx.ModelProto) -> dict[str, Any]:
    inits = {i.name: i for i in model.graph.initializer}
    inferred = infer_shapes(model)
    ranks = {vi.name: len(vi.type.tensor_type.shape.dim) for vi in inferred.graph.value_info}
    ranks.update({vi.name: len(_dims(vi)) for vi in inferred.graph.input})
    conv1d = 0
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        conv1d += conv_spatial_rank(node, inits, ranks) == 1
    opset = next((o.version for o in model.opset_import if is_onnx_domain(o.domain)), None)
    return {
        "inputs": [
            {
                "name": vi.name,
                "shape": _dims(vi),
                "dtype": onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type).name,
            }
            for vi in model.graph.input
            if vi.name not in inits
        ],
        "outputs": [{"name": vi.name, "shape": _dims(vi)} for vi in inferred.graph.output],
        "opset": opset,
        "ir_version": model.ir_version,
        "nodes": len(model.graph.node),
        "initializers": len(inits),
        "parameters": int(sum(_numel(t) for t in inits.values())),
        "conv1d": conv1d,
        "ops": dict(
            sorted(Counter(n.op_type for n in model.graph.node).items(), key=lambda kv: (-kv[1], kv[0]))
        ),
    }


def _numel(t: onnx.TensorProto) -> int:
    n = 1
    for d in t.dims:
        n *= d
    return n


def render(info: dict[str, Any]) -> str:
    lines = [
        f"opset {info['opset']}, IR {info['ir_version']}, {info['nodes']} nodes, "
        f"{info['initializers']} initializers ({info['parameters']:,} values)"
    ]
    for kind in ("inputs", "outputs"):
        for v in info[kind]:
            shape = ",".join(str(d) for d in v["shape"])
            lines.append(f"{kind[:-1]:7s} {v['name']} ({shape}) {v.get('dtype', '')}".rstrip())
    lines.append(f"1-D convolutions: {info['conv1d']}")
    lines.append("ops: " + ", ".join(f"{op} {n}" for op, n in info["ops"].items()))
    return "\n".join(lines)
