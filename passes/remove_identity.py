"""remove_identity: drop Identity nodes.

Before: x → Identity → y → consumers.   After: x → consumers.
When y is a graph output its name must survive, so the producer of x writes y directly instead
(unless x is itself a graph input or output, or a constant: then the Identity stays).
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from graphkit.registry import EXACT, register_pass


@register_pass("remove_identity", contract=EXACT)
def remove_identity(graph: gs.Graph) -> int:
    """Remove Identity nodes, keeping graph output names."""
    outputs = {id(t) for t in graph.outputs}
    inputs = {id(t) for t in graph.inputs}
    removed = 0
    for node in list(graph.nodes):
        if node.op != "Identity" or len(node.inputs) != 1 or len(node.outputs) != 1:
            continue
        x, y = node.inputs[0], node.outputs[0]
        if id(y) in outputs:
            # y -> keep its name: x's producer writes y, x's other readers read y.
            if isinstance(x, gs.Constant) or id(x) in inputs or id(x) in outputs or not x.inputs:
                continue
            producer = x.inputs[0]
            for consumer in list(x.outputs):
                if consumer is not node:
                    consumer.inputs[consumer.inputs.index(x)] = y
            node.inputs.clear()
            node.outputs.clear()
            producer.outputs[producer.outputs.index(x)] = y
        else:
            for consumer in list(y.outputs):
                for k, t in enumerate(consumer.inputs):
                    if t is y:
                        consumer.inputs[k] = x
            node.inputs.clear()
            node.outputs.clear()
        removed += 1
    return removed
