"""fold_constants: evaluate every subgraph whose inputs are all constants.

Before: Shape → Gather → Unsqueeze → Concat → Reshape chains, constant arithmetic.
After: their results as initializers; the nodes are gone.
Uses onnx-graphsurgeon's folding (onnxruntime evaluates the constant subgraphs) with shape
folding on, after shape inference (gs folds nothing without shapes: TensorRT#3267).
Loop and Scan nodes are not evaluated (see :func:`graphkit.ir.graph.fold_constants`); constant If
nodes are replaced by the branch they take.
"""

from __future__ import annotations

from typing import Literal

import onnx_graphsurgeon as gs

from graphkit.ir.graph import fold_constants as fold
from graphkit.passes._infra import EXACT, register_pass


@register_pass("fold_constants", contract=EXACT)
def fold_constants(
    graph: gs.Graph,
    *,
    fold_shapes: bool = True,
    partitioning: Literal["none", "basic", "recursive"] = "none",
    size_threshold: int | None = None,
) -> int:
    """Fold constant subgraphs and shape arithmetic into initializers."""
    before = len(graph.nodes)
    fold(
        graph,
        fold_shapes=fold_shapes,
        partitioning=None if partitioning == "none" else partitioning,
        size_threshold=size_threshold,
    )
    graph.cleanup()
    return max(0, before - len(graph.nodes))
