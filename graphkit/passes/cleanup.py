"""cleanup: merge duplicate constants and drop unused graph inputs.

Before: two initializers with the same dtype, shape and bytes (exporters repeat shape
constants and shared weights), inputs nothing reads (optionally).
After: one constant serves every consumer; unused inputs are gone when asked for.
Dead nodes are removed by the pass manager after every pass, so this pass covers what is left.
"""

from __future__ import annotations

import hashlib

import numpy as np
import onnx_graphsurgeon as gs

from graphkit.ir.graph import outer_scope_reads
from graphkit.passes._infra import EXACT, Example, register_pass

EXAMPLES = (
    Example(  # two equal initializers: the Mul reads the first
        "g (float[2] x) => (float[2] y) { p = Add(x, a)  y = Mul(p, b) }",
        constants={"a": np.array([1, 2], np.float32), "b": np.array([1, 2], np.float32)},
    ),
    Example(  # two equal Constant nodes, and an input nothing reads
        """g (float[2] x, float[2] unused) => (float[2] y) {
            a = Constant<value = float[2] {1, 2}>()
            b = Constant<value = float[2] {1, 2}>()
            p = Add(x, a)
            y = Mul(p, b)
        }""",
        params={"remove_unused_inputs": True},
    ),
)


@register_pass("cleanup", contract=EXACT)
def cleanup(graph: gs.Graph, *, remove_unused_inputs: bool = False) -> int:
    """Merge identical constants (same dtype, shape, bytes); optionally drop unused inputs."""
    merged = _merge_constant_nodes(graph)
    seen: dict[tuple[str, tuple[int, ...], str], gs.Constant] = {}
    for node in graph.nodes:
        for i, tensor in enumerate(node.inputs):
            if not isinstance(tensor, gs.Constant):
                continue
            first = seen.setdefault(_key(tensor.values), tensor)
            if first is not tensor:
                node.inputs[i] = first
                merged += 1
    sites = merged
    if remove_unused_inputs:
        # an input read only inside an If/Loop/Scan body is in use (an implicit input)
        used = {t.name for n in graph.nodes for t in n.inputs} | {t.name for t in graph.outputs}
        used |= outer_scope_reads(graph)
        keep = [t for t in graph.inputs if t.name in used]
        sites += len(graph.inputs) - len(keep)
        graph.inputs = keep
    return sites


def _key(values: np.ndarray) -> tuple[str, tuple[int, ...], str]:
    return str(values.dtype), values.shape, hashlib.sha1(values.tobytes()).hexdigest()


def _merge_constant_nodes(graph: gs.Graph) -> int:
    """Constant nodes with equal values: consumers of the later ones read the first one."""
    outputs = {id(t) for t in graph.outputs}
    seen: dict[tuple[str, tuple[int, ...], str], gs.Variable] = {}
    merged = 0
    for node in graph.nodes:
        value = node.attrs.get("value") if node.op == "Constant" else None
        if not isinstance(value, gs.Constant) or len(node.outputs) != 1:
            continue
        out = node.outputs[0]
        first = seen.setdefault(_key(value.values), out)
        if first is out or id(out) in outputs:
            continue
        for consumer in list(out.outputs):
            for i, t in enumerate(consumer.inputs):
                if t is out:
                    consumer.inputs[i] = first
        merged += 1
    return merged
