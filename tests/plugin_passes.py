"""Third-party style passes used by the tests (loaded as ``plugin_passes:...``)."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from graphkit import EXACT, register_pass


@register_pass("scale_first_conv_weight", contract=EXACT)
def scale_first_conv_weight(graph: gs.Graph, *, factor: float = 1.01) -> int:
    """Multiply the first Conv's weight by ``factor`` (claims to be exact; it is not)."""
    for node in graph.nodes:
        if node.op == "Conv" and isinstance(node.inputs[1], gs.Constant):
            w = node.inputs[1]
            node.inputs[1] = gs.Constant(w.name + "_scaled", (w.values * factor).astype(w.values.dtype))
            return 1
    return 0


@register_pass("returns_nothing", contract=EXACT)
def returns_nothing(graph: gs.Graph) -> int:
    """A broken pass: forgets to return its site count."""
    return None  # type: ignore[return-value]


@register_pass("break_graph", contract=EXACT)
def break_graph(graph: gs.Graph) -> int:
    """A broken pass: wires a Relu to a tensor nothing produces."""
    ghost = gs.Variable("ghost", dtype=np.float32, shape=[1])
    out = gs.Variable("ghost_out", dtype=np.float32, shape=[1])
    graph.nodes.append(gs.Node("Relu", inputs=[ghost], outputs=[out]))
    graph.outputs.append(out)
    return 1


def not_a_pass(graph: gs.Graph) -> int:
    return 0
