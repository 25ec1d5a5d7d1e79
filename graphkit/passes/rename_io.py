"""rename_io: rename graph inputs and outputs.

Before: TF-style names such as ``serving_default_input_2:0`` that ATC's ``--input_shape``
(``name:d0,d1;name2:…``) cannot express, or names an application does not expect.
After: the same graph under the new names; readers in If/Loop bodies follow, since they read
the tensor itself. Parity maps the reference's names to the new ones.
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from graphkit.errors import PassError
from graphkit.ir.graph import subgraph_names
from graphkit.passes._infra import EXACT, Example, register_pass

EXAMPLES = (
    Example(
        """g (float[1,4] "serving_default_input_2:0") => (float[1,4] "StatefulPartitionedCall:0") {
            "StatefulPartitionedCall:0" = Relu("serving_default_input_2:0")
        }""",
        params={
            "inputs": {"serving_default_input_2:0": "input_2"},
            "outputs": {"StatefulPartitionedCall:0": "y"},
        },
    ),
)


@register_pass("rename_io", contract=EXACT)
def rename_io(graph: gs.Graph, *, inputs: dict[str, str] = {}, outputs: dict[str, str] = {}) -> int:  # noqa: B006
    """Rename graph inputs and outputs (old name: new name); returns how many were renamed."""
    taken = {t for t in graph.tensors()} | subgraph_names(graph)
    renamed = 0
    for kind, table, tensors in (("input", inputs, graph.inputs), ("output", outputs, graph.outputs)):
        by_name = {t.name: t for t in tensors}
        for old, new in table.items():
            tensor = by_name.get(old)
            if tensor is None and new in by_name:
                continue  # renamed already
            if tensor is None:
                raise PassError(f"no {kind} '{old}' to rename ({kind}s: {', '.join(by_name) or 'none'})")
            if not isinstance(new, str) or not new.strip() or not new.isprintable():
                raise PassError(f"{kind} '{old}': {new!r} is not a tensor name")
            if new == old:
                continue
            if new in taken:
                raise PassError(f"{kind} '{old}': the model already has a tensor named '{new}'")
            taken.discard(old)
            taken.add(new)
            tensor.name = new
            renamed += 1
    return renamed
