"""set_batch_size: make the batch dimension static and fold what depended on it.

Before: inputs shaped (B, ...) with a symbolic B; Shape → Gather → Concat → Reshape chains that
compute sizes from B at run time; intermediate shapes with B.
After: inputs shaped (batch, ...); shapes re-inferred; the shape arithmetic folded into
constants. Inputs whose batch dim is already static must already equal ``batch``.
The pass manager runs this pass once per emitted batch size, filling ``batch`` itself.
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from graphkit.errors import PassError
from graphkit.ir.graph import export_model, fold_constants, import_graph, replace_contents
from graphkit.passes._infra import EXACT, Example, register_pass

EXAMPLES = (
    Example(  # the exporters' Reshape target computed from B folds once B = 2
        """g (float[B,4,6] x) => (float[B,24] y) {
            s = Shape(x)
            i0 = Constant<value = int64[1] {0}>()
            b = Gather<axis = 0>(s, i0)
            rest = Constant<value = int64[1] {24}>()
            target = Concat<axis = 0>(b, rest)
            r = Reshape(x, target)
            y = Identity(r)
        }""",
        params={"batch": 2},
    ),
)


@register_pass("set_batch_size", contract=EXACT)
def set_batch_size(graph: gs.Graph, *, batch: int = 1, axis: int = 0) -> int:
    """Set the batch dim of every input to ``batch``, re-infer shapes, fold shape arithmetic."""
    if batch < 1:
        raise PassError(f"batch must be positive, got {batch}")
    changed = 0
    for tensor in graph.inputs:
        if tensor.shape is None or not len(tensor.shape) > axis:
            continue
        dim = tensor.shape[axis]
        if isinstance(dim, int) and dim > 0:
            if dim != batch:
                raise PassError(
                    f"input '{tensor.name}' has a static batch {dim} on axis {axis}; "
                    f"it cannot become {batch} (export the model with a dynamic batch)"
                )
            continue
        shape = list(tensor.shape)
        shape[axis] = batch
        tensor.shape = shape
        changed += 1
    if not changed:
        return 0
    # Shapes below the inputs were inferred with a symbolic batch: drop and re-infer them.
    # Graph outputs keep a declared shape (ONNX requires one): their batch dim is set, and
    # inference refines the rest where it can.
    inputs = {id(t) for t in graph.inputs}
    outputs = {id(t) for t in graph.outputs}
    symbols = {t.shape[axis] for t in graph.inputs if t.shape is not None and len(t.shape) > axis}
    for tensor in graph.tensors().values():
        if not isinstance(tensor, gs.Variable) or id(tensor) in inputs:
            continue
        if id(tensor) in outputs and tensor.shape is not None:
            tensor.shape = [batch if i == axis and d in symbols else d for i, d in enumerate(tensor.shape)]
        elif id(tensor) not in outputs:
            tensor.shape = None
    replace_contents(graph, import_graph(export_model(graph)))
    fold_constants(graph, fold_shapes=True).cleanup()
    replace_contents(graph, import_graph(export_model(graph)))  # shapes for what was folded
    return changed
