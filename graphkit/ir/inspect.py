"""``graphkit inspect``: what a model holds, in the terms that matter before ATC."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import onnx

from graphkit.ir.proto import conv_spatial_rank, dims, is_onnx_domain, skeleton


def _dims(vi: onnx.ValueInfoProto) -> list[int | str]:
    return ["?" if d is None else d for d in dims(vi) or []]


def _graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """``graph``, then the If/Loop/Scan bodies of its nodes at any depth."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            for body in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else attr.graphs:
                yield from _graphs(body)


def describe(model: onnx.ModelProto) -> dict[str, Any]:
    """What the model holds. Node, op, initializer and 1-D Conv counts take in the If/Loop/Scan
    bodies (a model may hold all its convolutions in branches); inputs and outputs are the main
    graph's."""
    inits = {i.name: i for i in model.graph.initializer}
    inferred = skeleton(model)
    try:  # not proto.infer_shapes: the bodies' value_info is wanted too
        inferred = onnx.shape_inference.infer_shapes(inferred, data_prop=True)
    except Exception:  # inference is advisory: the declared shapes are still there
        pass
    graphs = list(_graphs(inferred.graph))
    all_inits = {i.name: i for g in graphs for i in g.initializer}
    ranks = {
        vi.name: len(vi.type.tensor_type.shape.dim)
        for g in graphs
        for vi in (*g.value_info, *g.input, *g.output)
        if vi.type.tensor_type.HasField("shape")
    }
    nodes = [n for g in graphs for n in g.node]
    conv1d = sum(
        conv_spatial_rank(n, all_inits, ranks) == 1
        for n in nodes
        if n.op_type == "Conv" and is_onnx_domain(n.domain)
    )
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
        "nodes": len(nodes),
        "subgraphs": len(graphs) - 1,
        "subgraph_nodes": len(nodes) - len(inferred.graph.node),
        "initializers": len(all_inits),
        "parameters": int(sum(_numel(t) for g in _graphs(model.graph) for t in g.initializer)),
        "conv1d": conv1d,
        "ops": dict(sorted(Counter(n.op_type for n in nodes).items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def _numel(t: onnx.TensorProto) -> int:
    n = 1
    for d in t.dims:
        n *= d
    return n


def render(info: dict[str, Any]) -> str:
    bodies = f" ({info['subgraph_nodes']} in {info['subgraphs']} subgraphs)" if info["subgraphs"] else ""
    lines = [
        f"opset {info['opset']}, IR {info['ir_version']}, {info['nodes']} nodes{bodies}, "
        f"{info['initializers']} initializers ({info['parameters']:,} values)"
    ]
    for kind in ("inputs", "outputs"):
        for v in info[kind]:
            shape = ",".join(str(d) for d in v["shape"])
            lines.append(f"{kind[:-1]:7s} {v['name']} ({shape}) {v.get('dtype', '')}".rstrip())
    lines.append(f"1-D convolutions: {info['conv1d']}")
    lines.append("ops: " + ", ".join(f"{op} {n}" for op, n in info["ops"].items()))
    return "\n".join(lines)
