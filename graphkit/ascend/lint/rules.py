"""The rules of ``graphkit lint``: one check per rule id, each a generator of findings.

A check reads a :class:`_View` (the model's weight-free skeleton after shape inference, with
its nodes, subgraphs included, flattened into sites, and shapes, producers and consumers
indexed for lookups) and yields ``(graph order, Finding)`` pairs; :data:`_CHECKS` maps each
rule id to its check. The checks follow ``docs/ascend-toolchain.md`` §3 and §6 and read ATC's
operator facts from :mod:`graphkit.ascend.ops`.

They live apart from :mod:`graphkit.ascend.lint`, which builds the view, validates the ATC target,
orders and renders the findings and holds the CLI, so that a rule can be read (and added) on
its own. :class:`Finding` and the view types are defined here because both modules use them;
graphkit.ascend.lint re-exports :class:`Finding`, :data:`ERROR` and :data:`WARNING`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

import networkx as nx
import numpy as np
import onnx
from onnx import helper, numpy_helper

from graphkit.ascend import ops
from graphkit.ir.proto import dims, is_onnx_domain

ERROR, WARNING = "error", "warning"
# Graph order of findings that are about no node: the opset, then graph inputs, then tensors.
_OPSET_AT, _INPUTS_AT, _TENSORS_AT = -3_000_000, -2_000_000, -1_000_000


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str  # "error": ATC rejects it or computes wrong results; "warning": slow or risky
    node: str | None  # the node, or the tensor / graph input, it is about
    op_type: str | None
    message: str
    fix: str | None  # the graphkit pass that fixes it, where graphkit has one

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)


class _Site(NamedTuple):
    order: int  # position in a depth-first walk of the graph and its subgraphs
    node: onnx.NodeProto
    consts: Mapping[str, onnx.TensorProto | onnx.NodeProto]  # in scope: initializers, Constants
    top: bool  # in the main graph (not inside an If/Loop/Scan body)
    graph: int  # which graph: 0 for the main one, then the bodies in walk order


@dataclass
class _View:
    """What the rules read: the inferred skeleton, flattened for lookups."""

    graph: onnx.GraphProto
    opset: int | None
    cann: tuple[int, int]
    soc: str
    gear: str | None
    functions: frozenset[tuple[str, str]]  # model-local functions: (domain, name)
    sites: list[_Site] = field(default_factory=list)
    shapes: dict[str, list[int | str | None] | None] = field(default_factory=dict)
    producer: dict[str, _Site] = field(default_factory=dict)  # main graph only
    consumers: dict[str, list[tuple[_Site, int]]] = field(default_factory=dict)  # (site, input index)
    graphs: int = 0  # how many graphs the walk has entered
    # dims of the bodies' values and initializers, the main graph's being in shapes (a name
    # that sibling bodies both define keeps the dims of the last one walked)
    body_shapes: dict[str, list[int | str | None] | None] = field(default_factory=dict)


def _label(node: onnx.NodeProto) -> str:
    return node.name or f"<{node.op_type}:{node.output[0] if node.output else '?'}>"  # unnamed: op, output


def _shape(dims: Sequence[int | str | None]) -> str:
    return "(" + ",".join("?" if d is None else str(d) for d in dims) + ")"


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _value(const: onnx.TensorProto | onnx.NodeProto) -> np.ndarray | None:
    """A constant's value, or None where it cannot be read (e.g. a skeleton's stripped weight)."""
    try:
        if isinstance(const, onnx.TensorProto):
            return numpy_helper.to_array(const)
        value = helper.get_attribute_value(const.attribute[0])  # a Constant has one value_* attr
        return numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else np.asarray(value)
    except (ValueError, TypeError, IndexError):
        return None


_Found = Iterator[tuple[int, Finding]]  # (graph order, finding)


def _of(v: _View, *op_types: str) -> Iterator[_Site]:
    """The default-domain nodes of these op types, subgraphs included."""
    return (s for s in v.sites if s.node.op_type in op_types and is_onnx_domain(s.node.domain))


def _at(
    rule: str, site: _Site, msg: str, *, severity: str = ERROR, fix: str | None = None
) -> tuple[int, Finding]:
    """A finding about a node; the message starts with the node's name."""
    node = site.node
    return site.order, Finding(rule, severity, _label(node), node.op_type, f"{_label(node)}: {msg}", fix)


def _unsupported_op(v: _View) -> _Found:
    known = ops.supported_ops(v.cann)
    which = f"the CANN {ops.list_name(v.cann)} list"
    if (6, 0) <= v.cann < (8, 0):
        which += f", the closest published one for CANN {v.cann[0]}.x"
    for site in v.sites:
        op, domain = site.node.op_type, site.node.domain
        where = "" if site.top else "inside a subgraph, "
        if (domain, op) in v.functions:
            why = (
                f"{where}calls the model-local function {domain}:{op}, which ATC's operator list "
                "does not cover; inline it (onnx.inliner.inline_local_functions) and lint again"
            )
        elif op in ops.CUSTOM_OPS or (is_onnx_domain(domain) and op in known):
            continue
        elif not is_onnx_domain(domain):
            why = (
                f"{where}{op} of domain '{domain}': ATC parses the ai.onnx domain and its custom NPU "
                "ops only (E16002 'No ONNX parser is registered', or EZ3003)"
            )
        else:
            hint = ops.REWRITE_HINTS.get(op, "rewrite it with listed ops")
            why = (
                f"{where}{op} is not in ATC's ONNX operator list ({which}): ATC fails with E16002 "
                f"'No ONNX parser is registered for optype [{op}]' or EZ3003; {hint}"
            )
        yield _at("unsupported-op", site, why)


def _opset(v: _View) -> _Found:
    top, cann = ops.max_opset(v.cann), ".".join(map(str, v.cann))
    if v.opset is None:
        return
    if not 8 <= v.opset <= top:
        msg = (
            f"the model's default-domain opset is {v.opset}, but ATC's ONNX parsers for CANN {cann} "
            f"cover opsets 8-{top}: its ops fail with E16002 'No ONNX parser is registered'; "
            f"re-export at opset 11-{min(top, 17)}"
        )
        yield _OPSET_AT, Finding("opset", ERROR, None, None, msg, None)
    elif not 11 <= v.opset <= 17:
        why = "Pad's parser starts at v11" if v.opset < 11 else "18 is the newest opset the parsers know"
        msg = f"opset {v.opset} is accepted, but 11-17 is the range to export at for ATC: {why}"
        yield _OPSET_AT, Finding("opset", WARNING, None, None, msg, None)


def _gear_allows(gear: str | None, axis: int, rank: int, cann: tuple[int, int]) -> bool:
    if gear == "dynamic_batch_size":
        return axis == 0
    if gear == "dynamic_image_size":
        return rank == 4 and axis in (2, 3)
    if gear == "input_shape_range":
        return cann >= (6, 3)  # §1.4: "reserved, not supported" in 5.0.4 and 6.0.1
    return gear == "dynamic_dims"


_GEAR_WHY = {
    None: "no gear flag is given, so ATC needs each dim fixed by --input_shape (ATC docs: --input_shape)",
    "dynamic_batch_size": "--dynamic_batch_size makes only dim 0 (N) dynamic",
    "dynamic_image_size": "--dynamic_image_size makes only H and W (dims 2, 3 of a 4-D input) dynamic",
    "input_shape_range": "--input_shape_range is reserved and unsupported before CANN 6.3",
}


def _dynamic_dim(v: _View) -> _Found:
    inits = {t.name for t in v.graph.initializer}
    total = 0
    for order, vi in enumerate((vi for vi in v.graph.input if vi.name not in inits), start=_INPUTS_AT):
        declared = dims(vi)
        if declared is None:
            msg = f"input {vi.name} declares no shape: ATC needs each dim fixed or bound by a gear flag"
            yield order, Finding("dynamic-dim", ERROR, vi.name, None, msg, None)
            continue
        dynamic = [i for i, d in enumerate(declared) if not isinstance(d, int) or d < 0]
        total += len(dynamic)
        bad = [i for i in dynamic if not _gear_allows(v.gear, i, len(declared), v.cann)]
        if bad:
            fix = "set_batch_size" if 0 in bad else None
            msg = (
                f"input {vi.name} {_shape(declared)}: dim(s) {', '.join(map(str, bad))} are dynamic and "
                + _GEAR_WHY[v.gear]
                + ("; set_batch_size makes the batch dim static" if fix else "")
            )
            yield order, Finding("dynamic-dim", ERROR, vi.name, None, msg, fix)
    if v.gear == "dynamic_dims" and v.cann <= (7, 0) and total > 4:
        msg = (
            f"--dynamic_dims takes at most 4 dynamic dims per gear up to CANN 7.0 (ATC docs: "
            f"--dynamic_dims); inputs have {total}"
        )
        yield _INPUTS_AT - 1, Finding("dynamic-dim", ERROR, None, None, msg, None)
    if v.gear == "input_shape_range" and v.cann >= (6, 3):
        msg = (
            "--input_shape_range is deprecated from CANN 6.3/7.0 (ATC docs: --input_shape_range): "
            "give the ranges in --input_shape"
        )
        yield _INPUTS_AT - 1, Finding("dynamic-dim", WARNING, None, None, msg, None)


def _topk_int64_arith(v: _View) -> _Found:
    reported: set[int] = set()  # one finding per consumer, even where several index sources meet
    for src in v.sites:
        out = ops.INDEX_OUTPUT.get(src.node.op_type, len(src.node.output))
        if not src.top or out >= len(src.node.output) or not src.node.output[out]:
            continue
        tainted, todo = {src.node.output[out]}, [src.node.output[out]]
        while todo:  # follow the indices through ops that move them unchanged, up to a Cast
            for site, i in v.consumers.get(todo.pop(), []):
                op = site.node.op_type
                mixed = op == "Concat" and not all(t in tainted for t in site.node.input)
                if (op in ops.INDEX_PASS_THROUGH and i == 0) or (op == "Concat" and not mixed):
                    new = [t for t in site.node.output if t and t not in tainted]
                    tainted.update(new)
                    todo.extend(new)
                elif (op in ops.INDEX_ARITH or mixed) and site.order not in reported:
                    reported.add(site.order)
                    msg = (
                        f"{op} reads the int64 indices of {_label(src.node)} ({src.node.op_type}) with "
                        "no Cast between; the NPU writes them as int32, so ATC fails with E89999 "
                        "'op dtype is not same, DT_INT64 vs DT_INT32'; insert a Cast to int32 on the "
                        "indices and cast the other operand to match (msit KnowledgeTopkFix)"
                    )
                    yield _at("topk-int64-arith", site, msg, fix="cast_indices_int32")


def _resize_dynamic_scales(v: _View) -> _Found:
    slots = {1: "scales"} if v.opset is not None and v.opset < 11 else {2: "scales", 3: "sizes"}
    for site in _of(v, "Resize"):
        for i, what in slots.items():
            name = site.node.input[i] if i < len(site.node.input) else ""
            if name and name not in site.consts:
                p = v.producer.get(name)
                by = f" (by {_label(p.node)}, {p.node.op_type})" if p else ""
                msg = f"its {what} '{name}' is computed at run time{by}; ATC's Resize needs them constant"
                yield _at("resize-dynamic-scales", site, msg, fix="simplify")


def _pads(v: _View) -> _Found:
    """pad-constant-value and pad-reflect."""
    for site in _of(v, "Pad"):
        attrs = _attrs(site.node)
        mode = attrs.get("mode", b"constant").decode()
        if mode == "reflect":
            msg = f"reflect Pad is slow on the 310/310P ({v.soc}); write it as Slice+Concat"
            yield _at("pad-reflect", site, msg, severity=WARNING)
        if mode != "constant":
            continue
        value: float | None = float(attrs.get("value", 0.0))  # opset < 11: an attribute
        name = site.node.input[2] if len(site.node.input) > 2 else ""
        if name:  # opset >= 11: the optional input 2
            const = site.consts.get(name)
            array = None if const is None else _value(const)
            value = None if array is None else float(array.ravel()[0]) if array.size else 0.0
        if value is None or value != 0:
            got = f"'{name}' is not a constant, so it cannot be checked" if value is None else f"is {value:g}"
            yield _at(
                "pad-constant-value",
                site,
                f"constant_value {got}; ATC's Pad supports 0 only (CANN ONNX operator list: Pad)",
                fix="replace_pad_value" if name and value is not None else None,
            )


def _kernel(v: _View, node: onnx.NodeProto) -> list[int] | None:
    """Spatial kernel dims: the kernel_shape attribute, else a Conv weight's dims 2... (-1: unknown)."""
    attrs = _attrs(node)
    if "kernel_shape" in attrs:
        return [int(k) for k in attrs["kernel_shape"]]
    dims = _dims_of(v, node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
    return [d if isinstance(d, int) else -1 for d in dims[2:]] if dims else None


def _dims_of(v: _View, name: str) -> list[int | str | None] | None:
    return v.shapes[name] if name in v.shapes else v.body_shapes.get(name)


def _kernels(v: _View) -> _Found:
    """wide-conv-kernel and avgpool-kernel."""
    for site in _of(v, "Conv", "AveragePool"):
        kernel = _kernel(v, site.node) or [-1]
        k = max(kernel)
        if site.node.op_type == "Conv" and k > ops.WIDE_KERNEL:
            msg = (
                f"kernel {kernel} is {k} wide (> {ops.WIDE_KERNEL}), slow on the 310/310P; split "
                "it into sliced convs + ReduceSum (msit KnowledgeSplitLargeKernelConv)"
            )
            yield _at("wide-conv-kernel", site, msg, severity=WARNING)
        elif site.node.op_type == "AveragePool" and k > ops.POOL_KERNEL:
            msg = (
                f"kernel {kernel} exceeds the ISA's pooling limit {ops.POOL_KERNEL}, so ATC adds "
                "TransData/Transpose; split it into cascaded pools (msit KnowledgeAvgPoolSplit)"
            )
            yield _at("avgpool-kernel", site, msg, severity=WARNING)


def _shape_arithmetic(v: _View, name: str) -> bool:
    """Whether a tensor is computed from shapes and constants only (what simplify folds)."""
    inputs = {vi.name for vi in v.graph.input} - {t.name for t in v.graph.initializer}
    seen, todo = set(), [name]
    while todo:
        if (t := todo.pop()) in inputs:
            return False
        p = v.producer.get(t)
        if t not in seen and p is not None and p.node.op_type not in ("Shape", "Size"):
            todo.extend(p.node.input)
        seen.add(t)
    return True


def _empty_tensor(v: _View) -> _Found:
    graph_io = {vi.name for vi in (*v.graph.input, *v.graph.output)}
    for name, shape in v.shapes.items():
        if not shape or 0 not in shape:
            continue
        readers = v.consumers.get(name, [])
        # Exporters' shape arithmetic (Concat(Shape(x), Slice(...)) for a Reshape target) often
        # holds empty vectors; simplify folds it away, after set_batch_size if the batch is dynamic.
        folds = name in v.producer and _shape_arithmetic(v, name)
        fix, hint = ("simplify", "; it is shape arithmetic, which simplify folds") if folds else (None, "")
        concats = [s for s, _ in readers if s.node.op_type == "Concat"]
        for concat in concats:
            msg = (
                f"input '{name}' {_shape(shape)} is empty; ATC's Concat rejects empty inputs though ONNX "
                f"allows them (msit KnowledgeEmptySliceFix removes them){hint}"
            )
            yield _at("empty-tensor", concat, msg, fix=fix)
        # An empty tensor read only as a parameter (Resize's roi/scales placeholders, a Reshape
        # to a scalar) is how exporters spell "absent"; only zero-size data troubles ATC.
        if concats or not (name in graph_io or any(i == 0 for _, i in readers)):
            continue
        msg = f"tensor '{name}' {_shape(shape)} has a zero-size dim; ATC does not compile zero-size tensors"
        if (p := v.producer.get(name)) is not None:
            yield _at("empty-tensor", p, msg + hint, fix=fix)
        else:
            yield _TENSORS_AT, Finding("empty-tensor", ERROR, name, None, msg, None)


def _is_conv1d(v: _View, node: onnx.NodeProto) -> bool:
    if (kernel := _kernel(v, node)) is not None:
        return len(kernel) == 1
    return len(_dims_of(v, node.input[0]) or ()) == 3


def _conv1d_chain(v: _View) -> _Found:
    """One finding per chain, in the main graph and in each body: a chain never crosses a body's
    boundary, as conv1d_to_conv2d's regions do not."""
    convs = {s.order: s for s in _of(v, "Conv") if _is_conv1d(v, s.node)}
    chain = nx.Graph()  # 1-D Convs joined through the elementwise ops a chain runs through
    chain.add_nodes_from(s.order for s in v.sites if s.node.op_type in ops.CONV1D_CHAIN_OPS)
    chain.add_nodes_from(convs)
    producer = {(s.graph, out): s for s in v.sites for out in s.node.output if out}
    for site in (s for s in v.sites if s.order in chain):
        for p in (producer.get((site.graph, name)) for name in site.node.input):
            if p is not None and p.order in chain:
                chain.add_edge(site.order, p.order)
    for component in nx.connected_components(chain):
        if found := sorted(o for o in component if o in convs):
            first = convs[found[0]]
            span = f"{len(found)} Convs, to {_label(convs[found[-1]].node)}" if len(found) > 1 else "1 Conv"
            where = "" if first.top else " inside a subgraph"
            msg = (
                f"starts a chain of 1-D convolutions{where} ({span}); ATC lowers each Conv1d to Conv2D "
                "with TransData layout conversions around it"
            )
            yield _at("conv1d-chain", first, msg, severity=WARNING, fix="conv1d_to_conv2d")


_CHECKS: Mapping[str, Callable[[_View], _Found]] = MappingProxyType({
    "unsupported-op": _unsupported_op, "opset": _opset, "dynamic-dim": _dynamic_dim,
    "topk-int64-arith": _topk_int64_arith, "resize-dynamic-scales": _resize_dynamic_scales,
    "pad-constant-value": _pads, "pad-reflect": _pads, "wide-conv-kernel": _kernels,
    "avgpool-kernel": _kernels, "empty-tensor": _empty_tensor, "conv1d-chain": _conv1d_chain,
})  # fmt: skip
