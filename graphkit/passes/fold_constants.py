"""fold_constants: evaluate every subgraph whose inputs are all constants.

Before: Shape → Gather → Unsqueeze → Concat → Reshape chains, constant arithmetic.
After: their results as initializers; the nodes are gone.
Uses onnx-graphsurgeon's folding (onnxruntime evaluates the constant subgraphs) with shape
folding on, after shape inference (gs folds nothing without shapes: TensorRT#3267).
Loop and Scan nodes are not evaluated (see :func:`graphkit.ir.graph.fold_constants`); an If whose
condition folds to a constant is replaced by the branch it takes, every output kept, and the
branch's nodes are folded in turn. Folding reaches into If/Loop/Scan bodies too.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import onnx_graphsurgeon as gs

from graphkit.ir.graph import fold_constants as fold
from graphkit.passes._infra import EXACT, Example, register_pass

EXAMPLES = (
    Example(  # constant arithmetic: Mul of two Constants
        """g (float[B,3] x) => (float[B,3] y) {
            a = Constant<value = float[3] {1, 2, 3}>()
            b = Constant<value = float[3] {4, 5, 6}>()
            c = Mul(a, b)
            y = Add(x, c)
        }""",
    ),
    Example(  # shape arithmetic on static dims: x / its last dim
        """g (float[2,4,6] x) => (float[2,4,6] y) {
            s = Shape(x)
            w = Gather<axis=0>(s, last)
            f = Cast<to=1>(w)
            y = Div(x, f)
        }""",
        constants={"last": np.array(2, np.int64)},
    ),
)


@register_pass("fold_constants", contract=EXACT)
def fold_constants(
    graph: gs.Graph,
    *,
    fold_shapes: bool = True,
    partitioning: Literal["none", "basic", "recursive"] = "none",
    size_threshold: int | None = None,
) -> int:
    """Fold constant subgraphs and shape arithmetic into initializers.

    Returns how many nodes went, bodies included (an inlined If brings its branch's nodes into
    the graph: the count is of nodes anywhere, not of the graph's own).
    """
    before = _nodes_anywhere(graph)
    fold(
        graph,
        fold_shapes=fold_shapes,
        partitioning=None if partitioning == "none" else partitioning,
        size_threshold=size_threshold,
    )
    graph.cleanup()
    return max(0, before - _nodes_anywhere(graph))


def _nodes_anywhere(graph: gs.Graph) -> int:
    return len(graph.nodes) + sum(len(sub.nodes) for sub in graph.subgraphs(recursive=True))
