"""cast_indices_int32: arithmetic on TopK/ArgMax/ArgMin indices runs in int32.

The NPU writes these indices as int32 while the ONNX graph says int64, so ATC fails with E89999
'op dtype is not same, DT_INT64 vs DT_INT32' on any arithmetic that reads them (lint rule
topk-int64-arith; msit's KnowledgeTopkFix).

Before: i = ArgMax(x) (int64) → [Reshape/Squeeze/Gather/…] → y = Add(i, k)
After:  y = Cast<int64>(Add(Cast<int32>(i), k32)): every int64 operand of the arithmetic is cast
to int32 (constants converted in place), and an int64 result cast back so readers see the same
type. Exact while the operands fit int32 (indices always do); a constant outside int32 or a
computed int64 operand that is not an index leaves the site alone.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from graphkit.ascend.ops import INDEX_ARITH, INDEX_OUTPUT, INDEX_PASS_THROUGH
from graphkit.ir.graph import const_value, unique_name
from graphkit.passes._infra import EXACT, Example, Sites, register_pass

EXAMPLES = (
    Example(  # the frame index of a peak, offset by a constant (SwiftF0's confidence peak)
        """g (float[1,7] x) => (int64[1] y) {
            i = ArgMax<axis = 1, keepdims = 0>(x)
            y = Add(i, k)
        }""",
        constants={"k": np.array([3], np.int64)},
    ),
)
_COMPARISONS = {"Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual"}
_I32 = np.iinfo(np.int32)


@register_pass("cast_indices_int32", contract=EXACT)
def cast_indices_int32(graph: gs.Graph, *, sites: Sites) -> int:
    """Arithmetic on TopK/ArgMax/ArgMin indices in int32, for ATC (topk-int64-arith)."""
    rewritten = 0
    for node in _arithmetic_on_indices(graph):
        label = node.name or node.outputs[0].name
        int64 = [i for i, t in enumerate(node.inputs) if t.dtype == np.int64]
        bad = [t.name for i, t in enumerate(node.inputs) if i in int64 and not _fits(t, graph)]
        if bad:
            sites.miss(label, f"int64 operand {bad[0]} may not fit int32")
            continue
        if not sites.take(label):
            continue
        for i in int64:
            t = node.inputs[i]
            value = const_value(t)
            if value is not None:
                node.inputs[i] = gs.Constant(unique_name(graph, f"{t.name}_int32"), value.astype(np.int32))
            else:
                node.inputs[i] = _cast(graph, t, onnx.TensorProto.INT32, np.int32)
        if node.op not in _COMPARISONS:
            for k, out in enumerate(node.outputs):
                if out.dtype == np.int64:
                    narrow = gs.Variable(
                        unique_name(graph, f"{out.name}_int32"), dtype=np.int32, shape=out.shape
                    )
                    node.outputs[k] = narrow
                    graph.nodes.append(
                        gs.Node(
                            "Cast",
                            unique_name(graph, f"{label}_to_int64"),
                            {"to": onnx.TensorProto.INT64},
                            [narrow],
                            [out],
                        )
                    )
        rewritten += 1
    return rewritten


def _arithmetic_on_indices(graph: gs.Graph) -> list[gs.Node]:
    """Arithmetic nodes that read index outputs, through ops that move them unchanged."""
    found: list[gs.Node] = []
    for src in graph.nodes:
        at = INDEX_OUTPUT.get(src.op)
        if at is None or at >= len(src.outputs):
            continue
        tainted, todo = {id(src.outputs[at])}, [src.outputs[at]]
        while todo:
            for reader in list(todo.pop().outputs):
                passes = reader.op in INDEX_PASS_THROUGH and id(reader.inputs[0]) in tainted
                if passes or (reader.op == "Concat" and all(id(t) in tainted for t in reader.inputs)):
                    new = [t for t in reader.outputs if id(t) not in tainted]
                    tainted.update(id(t) for t in new)
                    todo.extend(new)
                elif reader.op in INDEX_ARITH and all(reader is not f for f in found):
                    found.append(reader)
    return found


def _fits(t: gs.Tensor, graph: gs.Graph) -> bool:
    value = const_value(t)
    if value is not None:
        return bool(value.size == 0 or (value.min() >= _I32.min and value.max() <= _I32.max))
    producer = t.inputs[0] if t.inputs else None
    return producer is not None and (producer.op in INDEX_OUTPUT or producer.op in INDEX_PASS_THROUGH)


def _cast(graph: gs.Graph, t: gs.Tensor, to: int, dtype: type) -> gs.Variable:
    out = gs.Variable(unique_name(graph, f"{t.name}_int32"), dtype=dtype, shape=t.shape)
    graph.nodes.append(gs.Node("Cast", unique_name(graph, f"{t.name}_cast"), {"to": to}, [t], [out]))
    return out
