"""Small helpers over onnx-graphsurgeon that passes share.

Passes edit ``gs.Graph``; these helpers cover what gs leaves to the caller: opset-aware
Squeeze/Unsqueeze, ranks from inferred shapes, constant values, unique names across subgraphs,
moving between ModelProto and gs.Graph with shape inference, constant folding that works with
control flow, and replacing a graph's contents in place (for passes that wrap a ModelProto tool
such as onnxsim). Helpers on protos alone are in :mod:`graphkit.ir.proto`.

Importing this module routes onnx-graphsurgeon's messages, which gs prints to stdout, to the
``graphkit.gs`` logger at their own level (see :class:`_GsToLogging`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import onnx
import onnx_graphsurgeon as gs
from onnx_graphsurgeon.logger.logger import Logger, LogMode

from graphkit.errors import ModelError
from graphkit.ir.control_flow import inline_constant_ifs
from graphkit.ir.proto import DEFAULT_IR_VERSION, infer_shapes, is_onnx_domain, skeleton


class _GsToLogging(Logger):
    """gs's logger, writing to ``logging.getLogger("graphkit.gs")`` instead of stdout.

    gs has no hook for where its messages go: ``Logger.log`` ends in ``print`` and
    ``register_callback`` hears severity changes only. Every gs module holds the one
    ``G_LOGGER`` object by import, so that object itself must route: :func:`_route_gs_logging`
    gives it this subclass, which keeps its state (severity, once-only set) and overrides ``log``
    alone, through which ``warning``, ``info``, ``critical`` etc. all pass.
    """

    demoted = False  # True inside quiet_gs()

    def log(self, message: object, severity: int, mode: LogMode = LogMode.EACH, stack_depth: int = 2) -> None:
        level = logging.DEBUG if self.demoted else max(int(severity), logging.DEBUG)
        if severity < self.severity or not _GS_LOG.isEnabledFor(level):
            return
        if mode == LogMode.ONCE:
            if hash(message) in self.once_logged:
                return
            self.once_logged.add(hash(message))
        _GS_LOG.log(level, "%s", message() if callable(message) else message)


def _route_gs_logging() -> None:
    logger = gs.logger.G_LOGGER
    if not isinstance(logger, _GsToLogging):
        logger.__class__ = _GsToLogging


_GS_LOG = logging.getLogger("graphkit.gs")
_route_gs_logging()  # once, at import: graphkit's helpers are how passes reach gs


@contextlib.contextmanager
def quiet_gs() -> Iterator[None]:
    """Log onnx-graphsurgeon's messages of one block at DEBUG level, whatever their severity."""
    logger = gs.logger.G_LOGGER
    demoted = logger.demoted
    logger.demoted = True
    try:
        yield
    finally:
        logger.demoted = demoted


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
    if shapes:
        infer_shapes(model)
        _infer_body_shapes(model)
    return gs.import_onnx(model)


def _infer_body_shapes(model: onnx.ModelProto) -> None:
    """Refresh the value_info of the If/Loop/Scan bodies too (proto.infer_shapes keeps the main
    graph's only), so that passes see ranks inside bodies. A second inference, run only for
    models that hold bodies. Stale annotations go first, as proto.infer_shapes drops the main
    graph's: onnx inference keeps a symbolic dim it is given over the static one it infers."""
    bodies = list(_proto_bodies(model.graph))
    if not bodies:
        return
    sk = skeleton(model)
    for body in _proto_bodies(sk.graph):
        del body.value_info[:]
    try:
        inferred = onnx.shape_inference.infer_shapes(sk, data_prop=True)
    except Exception:  # inference is advisory, as in proto.infer_shapes
        return
    for body, body_inferred in zip(bodies, _proto_bodies(inferred.graph)):  # same nodes, same order
        del body.value_info[:]
        body.value_info.extend(body_inferred.value_info)


def _proto_bodies(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """The bodies of ``graph``'s nodes at any depth, depth first."""
    for node in graph.node:
        for attr in node.attribute:
            for body in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else attr.graphs:
                yield body
                yield from _proto_bodies(body)


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


def share_names(graph: gs.Graph) -> list[gs.Graph]:
    """The If/Loop/Scan bodies of ``graph`` at any depth, outer ones first, each made to draw
    :func:`unique_name` from ``graph``'s names: a name made in a body is then unique across the
    model (a body-local cache would know its own names and its bodies' only)."""
    reserve_names(graph, ())
    taken = graph.__dict__["_graphkit_names"]
    bodies = list(graph.subgraphs(recursive=True))
    for body in bodies:
        body.__dict__["_graphkit_names"] = taken
    return bodies


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

    An If whose condition folds to a constant is replaced by the branch it takes, every output
    kept (:mod:`graphkit.ir.control_flow`; gs's own flattening loses outputs), and folding runs
    again over the inlined nodes, until no such If is left.

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
    share_names(graph)  # names made here, in bodies too, are unique across the model
    if fold_shapes:
        _slice_partial_shapes(graph)
    while True:
        with quiet_gs():  # gs warns per node it cannot fold; kept at DEBUG in graphkit.gs
            graph.fold_constants(
                fold_shapes=fold_shapes,
                partitioning=partitioning,
                size_threshold=size_threshold,
                error_ok=False,
                flatten_subgraphs=False,
                should_exclude_node=_not_foldable,
            )
        if not inline_constant_ifs(graph, lambda base: unique_name(graph, base)):
            return graph


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
