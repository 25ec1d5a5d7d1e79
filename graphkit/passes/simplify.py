"""simplify: onnxsim (constant folding, shape inference, onnxoptimizer fusions).

Before: an exported graph with shape plumbing and foldable subgraphs.
After: onnxsim's simplified graph. onnxsim's own random-input check is off (check_n=0): the
pass manager's parity check covers it, with the recipe's seeded and real inputs.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_graphsurgeon as gs

from graphkit.errors import PassError
from graphkit.ir.graph import export_model, replace_contents
from graphkit.ir.io import fds_to_debug_log, first_line
from graphkit.passes._infra import EXACT, Example, register_pass

log = logging.getLogger("graphkit.passes.simplify")


EXAMPLES = (
    Example(  # a Reshape target computed from the symbolic batch folds to [-1, 24]; B stays
        """g (float[B,4,6] x) => (float[B,24] y) {
            s = Shape(x)
            b = Slice(s, zero, one)
            target = Concat<axis=0>(b, rest)
            y = Reshape(x, target)
        }""",
        constants={
            "zero": np.array([0], np.int64),
            "one": np.array([1], np.int64),
            "rest": np.array([24], np.int64),
        },
    ),
)


@register_pass("simplify", contract=EXACT)
def simplify(
    graph: gs.Graph,
    *,
    skip_fuse_bn: bool = False,
    skipped_optimizers: list[str] = [],  # noqa: B006 - never mutated
    skip_constant_folding: bool = False,
    skip_shape_inference: bool = False,
    perform_optimization: bool = True,
    include_subgraph: bool = False,
    tensor_size_threshold: str = "1.5GB",
) -> int:
    """Simplify with onnxsim; returns the number of nodes removed."""
    import onnxsim

    before = len(graph.nodes)
    model = export_model(graph)
    try:
        with fds_to_debug_log(log, "onnxsim"):  # it warns per op it cannot fold
            simplified, _ = onnxsim.simplify(
                model,
                check_n=0,
                perform_optimization=perform_optimization,
                skip_fuse_bn=skip_fuse_bn,
                skipped_optimizers=list(skipped_optimizers) or None,
                skip_constant_folding=skip_constant_folding,
                skip_shape_inference=skip_shape_inference,
                include_subgraph=include_subgraph,
                tensor_size_threshold=tensor_size_threshold,
            )
    except Exception as exc:  # onnxsim raises bare RuntimeError/ValueError from C++
        raise PassError(f"onnxsim failed: {type(exc).__name__}: {first_line(exc)}") from exc
    replace_contents(graph, gs.import_onnx(simplified))
    return max(0, before - len(graph.nodes))
