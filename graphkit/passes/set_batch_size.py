"""set_batch_size: make the batch dimension static and fold what depended on it.

Before: inputs with a symbolic batch dim B (on any axis: a state [2, B, 128] has it on axis 1);
Shape → Gather → Concat → Reshape chains that compute sizes from B at run time; intermediate
shapes with B.
After: those dims equal ``batch``; shapes re-inferred; the shape arithmetic folded into
constants. Inputs without a batch dim keep their shape; a batch dim that is already static
must already equal ``batch``.
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
def set_batch_size(
    graph: gs.Graph, *, batch: int = 1, axis: int = 0, axes: dict[str, int] | None = None
) -> int:
    """Set the batch dim of the inputs to ``batch``, re-infer shapes, fold shape arithmetic.

    ``axes`` names the inputs that have a batch dim and where (a state ``[2, B, 128]``: 1);
    inputs it leaves out have none and keep their shape. Without it, every input's dim
    ``axis`` is the batch. The pass manager fills ``batch`` and ``axes`` from the recipe.
    """
    if batch < 1:
        raise PassError(f"batch must be positive, got {batch}")
    batch_axes = {t.name: axis for t in graph.inputs} if axes is None else dict(axes)
    changed = 0
    symbols = set()
    for tensor in graph.inputs:
        at = batch_axes.get(tensor.name)
        if at is None or tensor.shape is None or not len(tensor.shape) > at:
            continue
        dim = tensor.shape[at]
        if isinstance(dim, int) and dim > 0:
            if dim != batch:
                raise PassError(
                    f"input '{tensor.name}' has a static dim {dim} on its batch axis {at}; "
                    f"it cannot become {batch} (export the model with a dynamic batch there)"
                )
            continue
        symbols.add(dim)
        shape = list(tensor.shape)
        shape[at] = batch
        tensor.shape = shape
        changed += 1
    if not changed:
        return 0
    # Shapes below the inputs were inferred with a symbolic batch: drop and re-infer them.
    # Graph outputs keep a declared shape (ONNX requires one): their batch dims are set, and
    # inference refines the rest where it can.
    inputs = {id(t) for t in graph.inputs}
    outputs = {id(t) for t in graph.outputs}
    symbols = {d for d in symbols if isinstance(d, str)}
    for tensor in graph.tensors().values():
        if not isinstance(tensor, gs.Variable) or id(tensor) in inputs:
            continue
        if id(tensor) in outputs and tensor.shape is not None:
            tensor.shape = [batch if d in symbols else d for d in tensor.shape]
        elif id(tensor) not in outputs:
            tensor.shape = None
    replace_contents(graph, import_graph(export_model(graph)))
    fold_constants(graph, fold_shapes=True).cleanup()
    replace_contents(graph, import_graph(export_model(graph)))  # shapes for what was folded
    return changed
