"""Small helpers over onnx-graphsurgeon that passes share.

Passes edit ``gs.Graph``; these helpers cover what gs leaves to the caller: opset-aware
Squeeze/Unsqueeze, ranks from inferred shapes, moving between ModelProto and gs.Graph with
shape inference, and replacing a graph's contents in place (for passes that wrap a
ModelProto tool such as onnxsim).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import onnx
import onnx_graphsurgeon as gs

DEFAULT_IR_VERSION = 8  # onnxruntime >= 1.14 reads it; keeps models loadable by older tools


def opset_of(graph: gs.Graph) -> int:
    return int(graph.opset) if graph.opset is not None else 13


def rank(tensor: gs.Tensor) -> int | None:
    """Rank of a tensor, or None when shape inference could not tell."""
    if isinstance(tensor, gs.Constant):
        return tensor.values.ndim
    return None if tensor.shape is None else len(tensor.shape)


def int64_const(name: str, values: Sequence[int]) -> gs.Constant:
    return gs.Constant(name, np.asarray(values, dtype=np.int64))


def unique_name(graph: gs.Graph, base: str) -> str:
    """A tensor/node name not yet used in the graph (callers pass a descriptive base)."""
    taken = getattr(graph, "_graphkit_names", None)
    if taken is None:
        taken = set(graph.tensors().keys()) | {n.name for n in graph.nodes}
        graph._graphkit_names = taken  # cache on the graph object, not in module state
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    taken.add(name)
    return name


def _axes_node(
    graph: gs.Graph, op: str, x: gs.Tensor, y: gs.Variable, axes: Sequence[int], name: str
) -> gs.Node:
    if opset_of(graph) >= 13:
        axes_t = int64_const(unique_name(graph, f"{name}_axes"), axes)
        node = gs.Node(op, name=name, inputs=[x, axes_t], outputs=[y])
    else:
        node = gs.Node(op, name=name, attrs={"axes": list(axes)}, inputs=[x], outputs=[y])
    graph.nodes.append(node)
    return node


def make_unsqueeze(
    graph: gs.Graph, x: gs.Tensor, axes: Sequence[int], y: gs.Variable | None = None
) -> gs.Variable:
    """Append ``y = Unsqueeze(x, axes)`` to the graph, in the form the graph's opset wants."""
    name = unique_name(graph, f"{x.name}_unsqueeze")
    if y is None:
        shape = None
        if x.shape is not None:
            shape = list(x.shape)
            for a in sorted(a % (len(shape) + len(axes)) for a in axes):
                shape.insert(a, 1)
        y = gs.Variable(unique_name(graph, f"{x.name}_4d"), dtype=x.dtype, shape=shape)
    _axes_node(graph, "Unsqueeze", x, y, axes, name)
    return y


def make_squeeze(graph: gs.Graph, x: gs.Tensor, axes: Sequence[int], y: gs.Variable) -> None:
    """Append ``y = Squeeze(x, axes)`` to the graph, in the form the graph's opset wants."""
    _axes_node(graph, "Squeeze", x, y, axes, unique_name(graph, f"{y.name}_squeeze"))


def axes_of(node: gs.Node) -> list[int] | None:
    """The axes of a Squeeze/Unsqueeze (attribute or constant input), None if not constant."""
    if "axes" in node.attrs:
        return [int(a) for a in node.attrs["axes"]]
    if len(node.inputs) > 1 and isinstance(node.inputs[1], gs.Constant):
        return [int(a) for a in np.asarray(node.inputs[1].values).ravel()]
    return None


def op_histogram(graph: gs.Graph | onnx.GraphProto) -> Counter[str]:
    nodes = graph.nodes if isinstance(graph, gs.Graph) else graph.node
    return Counter(n.op if isinstance(graph, gs.Graph) else n.op_type for n in nodes)


def infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnx shape inference with data propagation; stale value_info is dropped first."""
    model = onnx.ModelProto.FromString(model.SerializeToString()) if model.graph.value_info else model
    del model.graph.value_info[:]
    try:
        return onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # inference is advisory: models it cannot handle are still valid input
        return model


def import_graph(model: onnx.ModelProto, *, shapes: bool = True) -> gs.Graph:
    return gs.import_onnx(infer_shapes(model) if shapes else model)


def export_model(graph: gs.Graph, like: onnx.ModelProto | None = None) -> onnx.ModelProto:
    """Export a gs.Graph, keeping the IR version and metadata of ``like`` where given."""
    model = gs.export_onnx(graph, do_type_check=True)
    if like is not None:
        model.ir_version = like.ir_version
        model.producer_name = like.producer_name or model.producer_name
        model.producer_version = like.producer_version
        del model.metadata_props[:]
        model.metadata_props.extend(like.metadata_props)
        extra = [o for o in like.opset_import if o.domain not in ("", "ai.onnx")]
        known = {o.domain for o in model.opset_import}
        model.opset_import.extend(o for o in extra if o.domain not in known)
    else:
        model.ir_version = min(model.ir_version, DEFAULT_IR_VERSION) or DEFAULT_IR_VERSION
    return model


def replace_contents(dst: gs.Graph, src: gs.Graph) -> None:
    """Make ``dst`` hold what ``src`` holds (passes edit the graph object they were given)."""
    dst.nodes = src.nodes
    dst.inputs = src.inputs
    dst.outputs = src.outputs
    dst.opset = src.opset
    dst.import_domains = src.import_domains
    if hasattr(src, "functions"):
        dst.functions = src.functions
    if hasattr(dst, "_graphkit_names"):
        del dst._graphkit_names
