"""simplify: onnxsim (constant folding, shape inference, onnxoptimizer fusions).

Before: an exported graph with shape plumbing and foldable subgraphs.
After: onnxsim's simplified graph. onnxsim's own random-input check is off (check_n=0): the
pass manager's parity check covers it, with the recipe's seeded and real inputs.

onnxsim runs in a child process, started on the first call and reused
(:mod:`graphkit.passes._onnxsim_worker`): a segfault in it is a PassError naming the signal, not
the end of graphkit, and its error text comes back whole. The model travels through a private
temporary folder, this pass's one use of files, removed afterwards; the result is byte-identical
to an in-process call's.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx
import onnx_graphsurgeon as gs
from google.protobuf.message import DecodeError

from graphkit.errors import PassError
from graphkit.ir.graph import export_model, replace_contents
from graphkit.ir.io import serialize_model
from graphkit.passes._infra import EXACT, Example, register_pass
from graphkit.passes._onnxsim_worker import simplify_in_child

log = logging.getLogger("graphkit.passes.simplify")
IF_OPTIMIZER = "eliminate_if_with_const_cond"

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
    before = len(graph.nodes)
    options = {
        "check_n": 0,
        "perform_optimization": perform_optimization,
        "skip_fuse_bn": skip_fuse_bn,
        "skipped_optimizers": list(skipped_optimizers) or None,
        "skip_constant_folding": skip_constant_folding,
        "skip_shape_inference": skip_shape_inference,
        "include_subgraph": include_subgraph,
        "tensor_size_threshold": tensor_size_threshold,
    }
    model = serialize_model(export_model(graph), "the model for onnxsim")
    try:
        data = simplify_in_child(model, options)
    except PassError as exc:
        # onnxsim's optimizer (onnxoptimizer's eliminate_if_with_const_cond) can break models
        # whose If bodies read outer tensors ("must be topologically sorted", seen on silero
        # VAD, unmodified): retry without that optimizer, then without any, rather than refuse.
        if not perform_optimization or "onnxsim failed" not in str(exc):
            raise
        skip_if = options | {"skipped_optimizers": [*skipped_optimizers, IF_OPTIMIZER]}
        for retry, what in (
            (skip_if, f"its {IF_OPTIMIZER} optimizer"),
            (options | {"perform_optimization": False}, "its optimizer (perform_optimization: false)"),
        ):
            try:
                data = simplify_in_child(model, retry)
            except PassError:
                continue
            log.warning("%s; simplified without %s", exc, what)
            break
        else:
            raise
    try:
        simplified = onnx.ModelProto.FromString(data)
    except DecodeError as exc:  # onnxsim wrote something that is not a model
        raise PassError(f"onnxsim returned an unreadable model: {exc}") from None
    replace_contents(graph, gs.import_onnx(simplified))
    return max(0, before - len(graph.nodes))
