"""remove_identity: drop Identity nodes.

Before: x → Identity → y → consumers.   After: x → consumers.
When y is a graph output its name must survive, so the producer of x writes y directly instead
(unless x is itself a graph input or output, or a constant: then the Identity stays).

Sites are decided before anything is rewritten, on a model of the rewrites (which tensor the
readers of each tensor read once every earlier Identity is gone), so that leaving a site out
never changes which later Identities are sites.
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from graphkit.passes._infra import EXACT, Example, Sites, register_pass

EXAMPLES = (
    Example(  # an inner Identity, and one whose output is a graph output (its producer writes y)
        """g (float[2,3] x) => (float[2,3] y) {
            a = Relu(x)
            b = Identity(a)
            c = Neg(b)
            y = Identity(c)
        }""",
    ),
)


@register_pass("remove_identity", contract=EXACT)
def remove_identity(graph: gs.Graph, *, sites: Sites) -> int:
    """Remove Identity nodes, keeping graph output names."""
    outputs = {id(t) for t in graph.outputs}
    inputs = {id(t) for t in graph.inputs}
    # reads[id(t)]: what the readers of t read once the Identities seen so far are removed
    reads: dict[int, gs.Tensor] = {}

    def resolve(t: gs.Tensor) -> gs.Tensor:
        while id(t) in reads:
            t = reads[id(t)]
        return t

    chosen = []
    for node in list(graph.nodes):
        if node.op != "Identity" or len(node.inputs) != 1 or len(node.outputs) != 1:
            continue
        x, y = resolve(node.inputs[0]), node.outputs[0]
        if id(y) in outputs:
            why = _refusal(x, inputs, outputs)
            if why is not None:
                sites.miss(node.name, why)
                continue
            reads[id(x)] = y  # x's producer writes y; x's other readers read y
        else:
            reads[id(y)] = x  # y's readers read x
        if sites.take(node.name):
            chosen.append(node)
    for node in chosen:  # each is valid whichever earlier sites were left out (see _remove)
        _remove(node, outputs)
    return len(chosen)


def _refusal(x: gs.Tensor, inputs: set[int], outputs: set[int]) -> str | None:
    """Why an Identity x -> y with y a graph output must stay, or None when it can go."""
    if isinstance(x, gs.Constant):
        return f"its output is a graph output and its input {x.name} is a constant"
    if id(x) in inputs:
        return f"its output is a graph output and its input {x.name} is a graph input"
    if id(x) in outputs:
        return f"its output is a graph output and its input {x.name} is one too"
    if not x.inputs:
        return f"its output is a graph output and its input {x.name} has no producer"
    return None


def _remove(node: gs.Node, outputs: set[int]) -> None:
    # Leaving out an earlier site only leaves x nearer to this node: the output of an Identity
    # that stays, which is produced, and is no graph input or output (else this node would
    # have read a graph output in the model above, and been refused there).
    x, y = node.inputs[0], node.outputs[0]
    if id(y) in outputs:
        # y -> keep its name: x's producer writes y, x's other readers read y.
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
