"""replace_pad_value: a constant Pad with a non-zero value becomes a zero Pad plus a mask.

ATC's Pad supports constant_value 0 only (ascend-toolchain.md §3.2); models pad with -inf
before a max (SwiftF0's confidence peaks) or with 1 before a product.

Before: y = Pad(x, pads, v), mode constant, v ≠ 0, x of static shape.
After:  y = Pad(x, pads, 0) + M, where M (the padded shape) holds v on the border and 0
inside. Exact: x + 0 = x and 0 + v = v for every float, ±inf included (only -0.0 becomes
+0.0, which compares equal). Masks larger than ``max_elements`` are left alone.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from graphkit.ir.graph import const_value, unique_name
from graphkit.passes._infra import EXACT, Example, Sites, register_pass

EXAMPLES = (
    Example(  # -inf on both ends of the last axis, as before a max over frames
        """g (float[1,2,5] x) => (float[1,2,7] y) {
            y = Pad(x, pads, value)
        }""",
        constants={
            "pads": np.array([0, 0, 1, 0, 0, 1], np.int64),
            "value": np.array(-np.inf, np.float32),
        },
    ),
)


@register_pass("replace_pad_value", contract=EXACT)
def replace_pad_value(graph: gs.Graph, *, max_elements: int = 1 << 22, sites: Sites) -> int:
    """Pad(x, pads, v≠0) -> Pad(x, pads, 0) + mask (v on the border), for ATC's zero-only Pad."""
    rewritten = 0
    for node in [n for n in graph.nodes if n.op == "Pad"]:
        label = node.name or node.outputs[0].name
        found = _site(node, max_elements)
        if isinstance(found, str):
            if found:
                sites.miss(label, found)
            continue
        pads, value, shape = found
        if not sites.take(label):
            continue
        x, y = node.inputs[0], node.outputs[0]
        dtype = np.asarray(value).dtype
        rank = len(shape)
        out_shape = [shape[i] + pads[i] + pads[i + rank] for i in range(rank)]
        mask = np.full(out_shape, value, dtype=dtype)
        mask[tuple(slice(pads[i], pads[i] + shape[i]) for i in range(rank))] = 0
        padded = gs.Variable(unique_name(graph, f"{y.name}_zero_pad"), dtype=y.dtype, shape=out_shape)
        zero = gs.Constant(unique_name(graph, f"{label}_zero"), np.zeros((), dtype))
        node.inputs = [x, node.inputs[1], zero, *node.inputs[3:]]
        node.attrs.pop("value", None)
        node.outputs = [padded]
        border = gs.Constant(unique_name(graph, f"{label}_border"), mask)
        graph.nodes.append(
            gs.Node("Add", unique_name(graph, f"{label}_add_border"), inputs=[padded, border], outputs=[y])
        )
        rewritten += 1
    return rewritten


def _site(node: gs.Node, max_elements: int) -> tuple[list[int], np.ndarray, list[int]] | str:
    """(pads, value, input shape) of a rewritable Pad, else why not ('' for no candidate)."""
    if node.attrs.get("mode", "constant") not in ("constant", b"constant"):
        return ""
    if len(node.inputs) < 2:  # opset < 11: pads and value are attributes
        return "opset < 11 Pad (attributes); not rewritten"
    value = const_value(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2].name else None
    if value is None:
        return "" if len(node.inputs) < 3 or not node.inputs[2].name else "constant_value is computed"
    if value.size != 1 or float(value.ravel()[0]) == 0 or value.dtype.kind != "f":
        return ""
    if len(node.inputs) > 3 and node.inputs[3].name:
        return "axes input given; not rewritten"
    pads = const_value(node.inputs[1])
    shape = node.inputs[0].shape
    if pads is None or shape is None or not all(isinstance(d, int) and d >= 0 for d in shape):
        return "pads or the input shape are not static"
    pads_l = [int(p) for p in pads.ravel()]
    if len(pads_l) != 2 * len(shape) or min(pads_l) < 0:
        return "negative or malformed pads"
    size = int(np.prod([shape[i] + pads_l[i] + pads_l[i + len(shape)] for i in range(len(shape))]))
    if size > max_elements:
        return f"the mask would hold {size} elements (max_elements {max_elements})"
    return pads_l, value.reshape(()), list(shape)
