"""set_implmode: ask ATC for an implementation mode on some op types (graph unchanged).

Before and after: the same graph. The pass records, for ATC, ``--op_select_implmode=<mode>``
and ``--optypelist_for_implmode=<Ascend IR types>`` (the AASIST-L guide compiles Sigmoid in
high_performance mode). It changes numbers on the NPU only, hence the ``approximate`` contract.
"""

from __future__ import annotations

from typing import Literal

import onnx_graphsurgeon as gs

from graphkit.passes._infra import APPROXIMATE, Example, PassResult, register_pass

EXAMPLES = (
    Example(  # two sites reported, the graph unchanged
        "g (float[B,3] x) => (float[B,3] y) { s = Sigmoid(x)  y = Softmax(s) }",
        params={"op_types": ["Sigmoid", "Softmax"]},
    ),
)


@register_pass("set_implmode", contract=APPROXIMATE)
def set_implmode(
    graph: gs.Graph,
    *,
    op_types: list[str] = ["Sigmoid"],  # noqa: B006 - never mutated; shown in `graphkit passes`
    mode: Literal["high_performance", "high_precision"] = "high_performance",
) -> PassResult:
    """Record ATC implementation-mode hints for ONNX op types, without changing the graph."""
    from graphkit.ascend.ops import onnx_to_ascend_type

    wanted = set(op_types)
    sites = sum(1 for n in graph.nodes if n.op in wanted)
    ascend = [onnx_to_ascend_type(op) for op in op_types]
    return PassResult(
        sites=sites,
        atc={"op_select_implmode": mode, "optypelist_for_implmode": ascend},
    )
