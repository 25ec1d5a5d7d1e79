"""Small helpers over onnx-graphsurgeon that passes share.

Passes edit ``gs.Graph``; these helpers cover what gs leaves to the caller: opset-aware
Squeeze/Unsqueeze, ranks from inferred shapes, constant values, unique names across subgraphs,
moving between ModelProto and gs.Graph with shape inference, constant folding that works with
control flow, and replacing a graph's contents in place (for passes that wrap a ModelProto tool
such as onnxsim). Helpers on protos alone are in :mod:`graphkit.ir.proto`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from graphkit.errors import ModelError
from graphkit.ir.proto import DEFAULT_IR_VERSION, infer_shapes, is_onnx_domain


@contextlib.contextmanager
def quiet_gs() -> Iterator[None]:
    """Silence onnx-graphsurgeon's own logger (it prints to stdout) for one block."""
    logger = gs.logger.G_LOGGER
    severity = logger.severity
    logger.severity = logger.CRITICAL
    try:
        yield
    finally:
        logger.severity = severity


def opset_of(graph: gs.Graph) -> int:
    return int(graph.opset) if graph.opset is not None else 13


def rank(tensor: gs.Tensor) -> int | None:
    """Rank of a tensor, or None when shape inference could not tell."""
    if isinstance(tensor, gs.Constant):
        return tensor.values.ndim
    return None if tensor.shape is None else len(tensor.shape)


def const_value(t: gs.Tensor) -> np.ndarray | None:
    """The value of a constant tensor: a gs.Constant, or the output of a Constant node holding a
    tensor; None for anything computed."""
    if isinstance(t, gs.Constant):
        return np.asarray(t.values)
    node = t.inputs[0] if len(t.inputs) == 1 else None
    if node is not None and node.op == "Constant" and isinstance(node.attrs.get("value"), gs.Constant):
        return np.asarray(node.attrs["value"].values)
    return None


def int64_const(name: str, values: Sequence[int]) -> gs.Constant:
    return gs.Constant(name, np.asarray(values, dtype=np.int64))


def unique_name(graph: gs.Graph, base: str) -> str:
    """A tensor/node name not yet used in the graph or its subgraphs (callers pass a
    descriptive base). Subgraphs count: ONNX names share one scope with the If/Loop/Scan bodies
    below, and a body that defines a name the outer graph defines too is not valid SSA."""
    # Cached on the graph object itself (gs.Graph's __getattr__ treats unknown names as
    # registered functions, hence __dict__).
    taken = graph.__dict__.get("_graphkit_names")
    if taken is None:
        taken = set(graph.tensors().keys()) | {n.name for n in graph.nodes} | subgraph_names(graph)
        graph.__dict__["_graphkit_names"] = taken
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
        # One axes constant per distinct value, shared by every Squeeze/Unsqueeze we add.
        cache = graph.__dict__.setdefault("_graphkit_axes", {})
        key = tuple(int(a) for a in axes)
        if key not in cache:
            base = "graphkit_axes_" + "_".join(map(str, key)).replace("-", "m")
            cache[key] = int64_const(unique_name(graph, base), key)
        node = gs.Node(op, name=name, inputs=[x, cache[key]], outputs=[y])
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


def import_graph(model: onnx.ModelProto, *, shapes: bool = True) -> gs.Graph:
    optional = [v.name for v in (*model.graph.input, *model.graph.output) if v.type.HasField("optional_type")]
    if optional:  # gs imports them as tensors and cannot export them again
        raise ModelError(
            f"graphkit cannot rewrite a model with optional-typed graph inputs or outputs "
            f"({', '.join(optional)}): onnx-graphsurgeon does not support them"
        )
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
        extra = [o for o in like.opset_import if not is_onnx_domain(o.domain)]
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
    dst.__dict__.pop("_graphkit_names", None)


def reserve_names(graph: gs.Graph, names: Iterable[str]) -> None:
    """Keep :func:`unique_name` from handing out ``names``. Also builds unique_name's cache."""
    taken = graph.__dict__.get("_graphkit_names")  # see unique_name
    if taken is None:
        # the names graph.tensors() would give, without its duplicate checks (3x faster)
        taken = {t.name for n in graph.nodes for ts in (n.inputs, n.outputs) for t in ts}
        taken.update(t.name for t in (*graph.inputs, *graph.outputs))
        taken.update(n.name for n in graph.nodes)
        taken.update(subgraph_names(graph))
        taken.discard("")
        graph.__dict__["_graphkit_names"] = taken
    taken.update(names)


def subgraph_names(graph: gs.Graph) -> set[str]:
    """Tensor and node names used in the If/Loop/Scan bodies of ``graph``, at any depth."""
    names: set[str] = set()
    for sub in graph.subgraphs(recursive=True):
        names.update(t.name for t in (*sub.inputs, *sub.outputs))
        names.update(t.name for n in sub.nodes for ts in (n.inputs, n.outputs) for t in ts)
        names.update(n.name for n in sub.nodes)
    names.discard("")
    return names


def outer_scope_reads(graph: gs.Graph) -> set[str]:
    """Names that nodes inside the subgraphs of ``graph`` read, at any depth.

    A body reads values of the enclosing graphs by name, as implicit inputs of its If/Loop/Scan
    node: a value or graph input of ``graph`` named here is in use even when no node of
    ``graph`` itself reads it. (Names local to a body are included too; ONNX forbids a body to
    redefine an outer name, so they never match one of ``graph``'s.)
    """
    return {t.name for sub in graph.subgraphs(recursive=True) for n in sub.nodes for t in n.inputs}


def fold_constants(
    graph: gs.Graph,
    *,
    fold_shapes: bool = True,
    partitioning: str | None = None,
    size_threshold: int | None = None,
) -> gs.Graph:
    """onnx-graphsurgeon's constant folding, errors raised, for graphs with control flow too.

    Not evaluated (left as they are, their inputs folded):

    * Loop and Scan nodes. gs evaluates what it folds on a copy cleaned with
      ``remove_unused_graph_inputs=True``, which also strips the body inputs a body does not
      read; body inputs are positional, so onnxruntime rejects the copy ("Size mismatch
      validating subgraph inputs") and the whole fold fails. gs does not hand this exclusion
      down when it folds inside the bodies, so a constant Loop nested in a body still fails
      there, as a PassError.
    * Ops that make sequences or optionals: gs types every value as a tensor, and onnxruntime
      rejects the typed copy.
    """
    if fold_shapes:
        _slice_partial_shapes(graph)
    with quiet_gs():  # gs warns per unfoldable node, on stdout; not useful to users
        return graph.fold_constants(
            fold_shapes=fold_shapes,
            partitioning=partitioning,
            size_threshold=size_threshold,
            error_ok=False,
            should_exclude_node=_not_foldable,
        )


def _slice_partial_shapes(graph: gs.Graph) -> None:
    """Shape<start, end>(x) -> Slice(Shape(x), [start], [end]), in bodies too.

    gs's shape folding (0.6.1) ignores Shape's start/end (opset 15): it folds Shape<end=1>(x) to
    the whole shape of x, and Gather(Shape<start=1>(x), i) to dim i of x instead of dim 1+i.
    Slice clamps its bounds exactly as Shape does, so the rewrite is exact, and the folding
    then evaluates the Slice correctly.
    """
    for node in list(graph.nodes):
        for attr in node.attrs.values():
            if isinstance(attr, gs.Graph):
                _slice_partial_shapes(attr)
        if node.op != "Shape" or not ({"start", "end"} & set(node.attrs)):
            continue
        start = int(node.attrs.pop("start", 0))
        end = node.attrs.pop("end", None)
        out = node.outputs[0]
        full = gs.Variable(unique_name(graph, f"{out.name}_full"), dtype=np.int64)
        node.outputs[0] = full
        bounds = [
            int64_const(unique_name(graph, f"{out.name}_{what}"), [value])
            for what, value in (
                ("start", start),
                ("end", np.iinfo(np.int64).max if end is None else int(end)),
            )
        ]
        axes = int64_const(unique_name(graph, f"{out.name}_axes"), [0])
        graph.nodes.append(
            gs.Node(
                "Slice", unique_name(graph, f"{out.name}_slice"), inputs=[full, *bounds, axes], outputs=[out]
            )
        )
    graph.toposort()


_NOT_TENSORS = frozenset({"SplitToSequence", "Optional"})


def _not_foldable(node: gs.Node) -> bool:
    return node.op in ("Loop", "Scan") or node.op.startswith("Sequence") or node.op in _NOT_TENSORS
