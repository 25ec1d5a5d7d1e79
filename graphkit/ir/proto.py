"""Helpers on onnx protos alone (no onnx-graphsurgeon): graph inputs and their dims, domains,
constants, weight-free skeletons, shape inference, the structural checker, Conv ranks.

Everything that reads a model without editing it (lint, inspect, expectations, the runners)
uses these; :mod:`graphkit.ir.graph` holds the helpers for passes, which edit ``gs.Graph``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import onnx

DEFAULT_IR_VERSION = 8  # onnxruntime >= 1.14 reads it; keeps models loadable by older tools
DEFAULT_DOMAINS = (None, "", "ai.onnx")  # how the default ONNX domain is spelled (gs: None)
# Elementwise ops of one data input whose output has the input's shape.
UNARY_OPS = frozenset(
    "Abs Acos Acosh Asin Asinh Atan Atanh Cast Ceil Celu Clip Cos Cosh Elu Erf Exp Floor Gelu "
    "HardSigmoid HardSwish Identity IsInf IsNaN LeakyRelu Log Mish Neg Not Reciprocal Relu Round "
    "Selu Sigmoid Sign Sin Sinh Softplus Softsign Sqrt Tan Tanh ThresholdedRelu".split()
)

Dims = list[int | str | None]  # a fixed size, a symbolic name, or unknown


def is_onnx_domain(domain: str | None) -> bool:
    """Whether a node's domain is the default ONNX one ("", "ai.onnx", or gs's None)."""
    return domain in DEFAULT_DOMAINS


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The graph inputs a caller feeds: those that are not also initializers (IR < 4 lists
    every initializer as an input too)."""
    inits = {i.name for i in model.graph.initializer}
    return [vi for vi in model.graph.input if vi.name not in inits]


def dims(vi: onnx.ValueInfoProto) -> Dims | None:
    """The dims a value declares: ints, symbolic names or None (unknown); None without a shape."""
    tensor = vi.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim]


def input_dims(model: onnx.ModelProto) -> dict[str, Dims]:
    """Each fed graph input's declared dims ([] where it declares no shape)."""
    return {vi.name: dims(vi) or [] for vi in graph_inputs(model)}


def op_histogram(graph: onnx.GraphProto) -> Counter[str]:
    """Node counts by op type (this graph's nodes, not its subgraphs')."""
    return Counter(n.op_type for n in graph.node)


SKELETON_LIMIT = 4096  # initializers with more elements lose their bytes in a skeleton


def skeleton(model: onnx.ModelProto, *, limit: int = SKELETON_LIMIT) -> onnx.ModelProto:
    """The model without the bytes of its large initializers (names, dtypes, dims kept).

    Shape inference and the structural checks need the graph, not the weights: running them on
    a skeleton avoids serialising a 100+ MB model for each. Small initializers (shape
    arithmetic, axes) keep their values, so data propagation still sees them; large ones keep
    their name, dtype and dims but no data, which shape inference accepts.
    """
    sk = onnx.ModelProto()
    sk.ir_version = model.ir_version
    sk.producer_name = model.producer_name
    sk.opset_import.extend(model.opset_import)
    sk.functions.extend(model.functions)
    src, g = model.graph, sk.graph
    g.name = src.name
    g.node.extend(src.node)
    g.input.extend(src.input)
    g.output.extend(src.output)
    g.sparse_initializer.extend(src.sparse_initializer)
    for t in src.initializer:
        if int(np.prod(t.dims, dtype=np.int64)) <= limit:
            g.initializer.append(t)
        else:
            e = g.initializer.add()
            e.name, e.data_type = t.name, t.data_type
            e.dims.extend(t.dims)
    return sk


def infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnx shape inference with data propagation, run on a skeleton of the model.

    Refreshes ``model``'s ``value_info`` and output types in place (stale ones are dropped)
    and returns it; the weights are never copied.
    """
    try:
        inferred = onnx.shape_inference.infer_shapes(skeleton(model), data_prop=True)
    except Exception:  # inference is advisory: models it cannot handle are still valid input
        return model
    del model.graph.value_info[:]  # value_info is derived data: refreshed in place
    model.graph.value_info.extend(inferred.graph.value_info)
    for mine, theirs in zip(model.graph.output, inferred.graph.output):
        if theirs.type.tensor_type.HasField("shape"):  # never erase a declared output shape
            mine.type.CopyFrom(theirs.type)
    return model


def check_structure(model: onnx.ModelProto) -> None:
    """The ONNX checker on the model's structure (nodes, attributes, types, topology).

    Large initializers are checked as empty tensors of their dtype (their bytes come from
    numpy and are exercised by onnxruntime in the parity check); ``check_model`` on the full
    model runs once on every emitted file.
    """
    sk = skeleton(model)
    for t in sk.graph.initializer:
        if not (
            t.raw_data
            or t.float_data
            or t.int64_data
            or t.int32_data
            or t.double_data
            or t.string_data
            or t.uint64_data
        ):
            del t.dims[:]
            t.dims.append(0)
    onnx.checker.check_model(sk)


def conv_spatial_rank(
    node: onnx.NodeProto,
    inits: Mapping[str, onnx.TensorProto],
    ranks: Mapping[str, int] | None = None,
) -> int | None:
    """How many spatial axes a Conv node has: from its kernel_shape, else its constant
    weight's rank, else its input's (inferred) rank; None when none of them is known."""
    for attr in node.attribute:
        if attr.name == "kernel_shape":
            return len(attr.ints)
    if len(node.input) > 1 and node.input[1] in inits:
        return len(inits[node.input[1]].dims) - 2
    rank_ = (ranks or {}).get(node.input[0])
    return None if rank_ is None else rank_ - 2


def pin_input_dims(model: onnx.ModelProto, shapes: Mapping[str, Sequence[int | str]]) -> onnx.ModelProto:
    """A copy of ``model`` whose graph inputs declare ``shapes`` (ints: static dims; strings:
    the symbolic batch), with value_info re-inferred; ``model`` itself when it declares them
    already. A model whose frame count or image size is unknown then shows shape inference,
    the passes and lint the dims that ATC's --input_shape will fix."""
    wanted = {vi.name: vi for vi in model.graph.input if vi.name in shapes}
    if all(_declares(vi, shapes[name]) for name, vi in wanted.items()):
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for vi in out.graph.input:
        if vi.name in shapes and not _declares(vi, shapes[vi.name]):
            shape = vi.type.tensor_type.shape
            shape.ClearField("dim")
            for d in shapes[vi.name]:
                dim = shape.dim.add()
                if isinstance(d, str):
                    dim.dim_param = d
                else:
                    dim.dim_value = d
    del out.graph.value_info[:]  # inferred with the old dims
    return infer_shapes(out)


def _declares(vi: onnx.ValueInfoProto, want: Sequence[int | str]) -> bool:
    t = vi.type.tensor_type
    if not t.HasField("shape") or len(t.shape.dim) != len(want):
        return False
    for d, w in zip(t.shape.dim, want):
        if isinstance(w, int) and not (d.HasField("dim_value") and d.dim_value == w):
            return False
        if isinstance(w, str) and not d.HasField("dim_param"):
            return False
    return True


def declare_output_shapes(model: onnx.ModelProto, shapes: Mapping[str, Sequence[int]]) -> bool:
    """Make the graph outputs declare the static ``shapes`` an emitted model gives (a Squeeze
    at batch 1 gives rank 0; exporters write -1 or stale symbols); True when one changed."""
    changed = False
    for vi in model.graph.output:
        want = shapes.get(vi.name)
        if want is None or _declares(vi, list(want)):
            continue
        shape = vi.type.tensor_type.shape
        shape.ClearField("dim")
        for w in want:
            shape.dim.add().dim_value = int(w)
        changed = True
    return changed
