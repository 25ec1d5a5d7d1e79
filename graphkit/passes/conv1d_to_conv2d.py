"""conv1d_to_conv2d: lift regions of 1-D convolutions, and the ops between them, to 2-D.

Before (every op on (N, C, L) tensors)::

    x -> Conv(k) -> Relu -> BN -> Split -> Conv(k, d) -> Concat -> Mul(., gate(N,C,1)) -> y

After (one Unsqueeze where a tensor enters the region, one Squeeze where one leaves)::

    x -> Unsqueeze[2] -> Conv(1,k) -> Relu -> BN -> Split -> Conv(1,k; 1,d) -> Concat(axis 1)
      -> Mul(., Unsqueeze[2](gate)) -> Squeeze[2] -> y

A region is a connected set (through tensors) of liftable nodes holding at least one 1-D Conv:
Conv with a constant rank-3 weight, BatchNormalization, unary and broadcasting elementwise ops,
Concat and Split. Inside it every tensor carries a unit axis at position 2, (N,C,L) -> (N,C,1,L),
so no Squeeze -> Unsqueeze pair remains between consecutive convs (the layout conversions that
ATC inserts around each Conv1d, ascend-toolchain.md §3.3). The rewrite is faithful: kernel,
dilation, stride, pads, group and auto_pad keep their meaning, unlike ModelZoo's fix_conv1d.py
(seed-models.md §5.3).

Regions inside If/Loop/Scan bodies, at any depth, are lifted the same way, one graph at a time
(new names are unique across the model). A region never spans a body boundary: a body's inputs
and outputs, and the outer tensors it reads by name, keep their 3-D form (the Unsqueeze and
Squeeze sit inside the body). That keeps every rewrite sound without looking at the enclosing
node: a Loop's carried values, a Scan's slices and an If's branch outputs (both branches must
agree) keep the types the node declares. The price is one Squeeze/Unsqueeze pair where a body
continues an outer region.

Tensors read only inside a region are lifted in place (same name, 4-D shape). A tensor that
leaves (read outside, by a subgraph, or a graph output) is written as ``<name>_4d`` and one
Squeeze restores the original tensor, name and readers. A tensor entering from outside is
lifted once: Unsqueeze for variables, a reshaped copy for constants (originals are never
mutated, so a weight shared with an outside node keeps its value).
"""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx
import numpy as np
import onnx_graphsurgeon as gs

from graphkit.ir.graph import make_squeeze, make_unsqueeze, rank, share_names, unique_name
from graphkit.ir.proto import UNARY_OPS, is_onnx_domain
from graphkit.passes._infra import EXACT, Example, Sites, register_pass

# Input 0 is the data; further inputs (Clip min/max) are parameters and stay as they are.
# Every input is a broadcasting operand (numpy rules, right-aligned).
_ELEMENTWISE = frozenset("Add Sub Mul Div Pow Max Min Sum Mean Mod PRelu Where".split())
_LIFTABLE = UNARY_OPS | _ELEMENTWISE | {"Conv", "BatchNormalization", "Concat", "Split"}
_AXIS_3D_TO_4D = (0, 1, 3)  # rank-3 axis a -> rank-4 axis, with the unit axis at 2


EXAMPLES = (
    Example(  # one grouped, dilated Conv1d with a bias
        """g (float[2,4,16] x) => (float[2,6,15] y) {
            y = Conv<kernel_shape=[3], pads=[1,2], dilations=[2], group=2>(x, w, b)
        }""",
        weights={"w": (6, 2, 3), "b": (6,)},
    ),
    Example(  # Conv -> Relu -> Conv is one region; before opset 13 the axes are attributes
        """g (float[B,4,12] x) => (float[B,4,12] y) {
            c = Conv<kernel_shape=[3], pads=[1,1]>(x, w1)
            r = Relu(c)
            y = Conv<kernel_shape=[1]>(r, w2)
        }""",
        opset=11,
        weights={"w1": (4, 4, 3), "w2": (4, 4, 1)},
    ),
)


@register_pass("conv1d_to_conv2d", contract=EXACT)
def conv1d_to_conv2d(graph: gs.Graph, *, sites: Sites) -> int:
    """Lift regions of 1-D convolutions and the ops between them to 2-D (N,C,L) -> (N,C,1,L).

    Each region is a site, labelled by its first Conv; bodies' regions are sites too. Returns
    the number of Conv nodes lifted; 0 leaves the graph untouched.
    """
    bodies = share_names(graph)  # outer graph first, then bodies, outer ones first
    return sum(_lift_graph(g, sites) for g in (graph, *bodies))


def _lift_graph(graph: gs.Graph, sites: Sites) -> int:
    """Lift the regions of one graph (not of its bodies)."""
    for conv in graph.nodes:
        why = _conv_refusal(conv)
        if why is not None:
            sites.miss(conv.name, why)
    # All regions are found before any is lifted; a region left out is outside for the others
    # (regions are connected components, so no data flows between two of them).
    regions = _regions(graph)
    chosen = {id(node) for region in regions if sites.take(_first_conv(region).name) for node in region}
    members = [node for node in graph.nodes if id(node) in chosen]  # graph order: same names
    if not members:
        return 0
    _Lift(graph, members).run()
    return sum(node.op == "Conv" for node in members)


# -- finding the regions -----------------------------------------------------------------------


def _data_slots(node: gs.Node) -> range:
    """Input positions that carry (N, C, L) data or a broadcast operand, not parameters."""
    if node.op in _ELEMENTWISE or node.op == "Concat":
        return range(len(node.inputs))
    return range(min(1, len(node.inputs)))  # Conv X, BN X, Split X, unary X


def _present(tensors: Iterable[gs.Tensor]) -> list[gs.Tensor]:
    return [t for t in tensors if t.name]  # "" marks an omitted optional input/output


def _is_member(node: gs.Node) -> bool:
    """Whether ``node`` may sit inside a region (all its outputs and data inputs known, rank 3)."""
    if node.op not in _LIFTABLE or not is_onnx_domain(node.domain):
        return False
    outputs = _present(node.outputs)
    if not outputs or any(rank(t) != 3 for t in outputs):
        return False
    data = _present(node.inputs[i] for i in _data_slots(node))
    if not data:
        return False
    ranks = [rank(t) for t in data]
    if any(r is None or r > 3 for r in ranks):
        return False
    if node.op in _ELEMENTWISE:
        return True  # rank <= 3 operands broadcast the same way once lifted (see _Lift._enter)
    if any(r != 3 for r in ranks):
        return False
    if node.op == "Conv":
        w = node.inputs[1] if len(node.inputs) > 1 else None
        return isinstance(w, gs.Constant) and rank(w) == 3 and len(_kernel(node, w)) == 1
    if node.op == "BatchNormalization":
        # spatial=0 (opset < 9) has per-position parameters; those would need lifting too.
        params = _present(node.inputs[1:])
        return node.attrs.get("spatial", 1) == 1 and all(rank(t) == 1 for t in params)
    return True


def _kernel(node: gs.Node, weight: gs.Constant) -> list[int]:
    return list(node.attrs.get("kernel_shape", weight.values.shape[2:]))


def _regions(graph: gs.Graph) -> list[list[gs.Node]]:
    """The regions that hold a Conv, each in graph order, ordered by their first member."""
    candidates = [node for node in graph.nodes if _is_member(node)]
    index = {id(node): i for i, node in enumerate(candidates)}
    links = nx.Graph()  # a candidate without links is a component of its own (not added)
    links.add_edges_from(
        (index[id(producer)], i)
        for i, node in enumerate(candidates)
        for slot in _data_slots(node)
        for producer in node.inputs[slot].inputs
        if id(producer) in index
    )
    regions = [[i] for i, node in enumerate(candidates) if node.op == "Conv" and i not in links]
    regions += [
        sorted(component)
        for component in nx.connected_components(links)
        if any(candidates[i].op == "Conv" for i in component)
    ]
    return [[candidates[i] for i in region] for region in sorted(regions)]


def _first_conv(region: list[gs.Node]) -> gs.Node:
    return next(node for node in region if node.op == "Conv")


def _conv_refusal(node: gs.Node) -> str | None:
    """Why a Conv that may be 1-D cannot join a region; None for members and for 2-D/3-D Convs."""
    if node.op != "Conv" or not is_onnx_domain(node.domain) or _is_member(node):
        return None
    x, w = node.inputs[0], node.inputs[1]
    outputs = _present(node.outputs)
    kernel = node.attrs.get("kernel_shape")
    signs = [rank(x), rank(w), len(kernel) + 2 if kernel else None, *(rank(t) for t in outputs)]
    if any(r is not None and r != 3 for r in signs):
        return None  # a 2-D or 3-D Conv: nothing to lift
    if not outputs or None in signs[3:]:
        return "output rank unknown"
    if rank(x) is None:
        return "input rank unknown"
    if not isinstance(w, gs.Constant):
        return f"weight {w.name} is not a constant"
    return "its shapes do not fit a 1-D Conv"  # not reached by a valid model


# -- rewriting ---------------------------------------------------------------------------------


class _Lift:
    """Rewrites the region members of one graph in place."""

    def __init__(self, graph: gs.Graph, members: list[gs.Node]) -> None:
        self.graph = graph
        self.members = members
        self.slots = {id(node): tuple(_data_slots(node)) for node in members}
        self.leaving: dict[int, tuple[gs.Variable, gs.Variable]] = {}  # id(t) -> (t, t4)
        self.entered: dict[int, gs.Tensor] = {}  # id(outside tensor) -> its lifted form
        self.rewired: dict[int, gs.Tensor] = {}  # tensors that lost readers

    def run(self) -> None:
        outputs = {id(t) for t in self.graph.outputs}
        for node in self.members:
            self._lift_outputs(node, outputs)
        for node in self.members:
            _lift_attrs(node)  # reads the 3-D weight, so before the inputs are lifted
            self._lift_inputs(node)
        for tensor in self.rewired.values():
            _resync_readers(tensor)
        for t, t4 in self.leaving.values():
            # t keeps its name and its outside readers: t = Squeeze(t4, axes=[2]).
            make_squeeze(self.graph, t4, [2], t)

    def _lift_outputs(self, node: gs.Node, graph_outputs: set[int]) -> None:
        for i, t in enumerate(node.outputs):
            if not t.name:
                continue
            shape = list(t.shape)
            shape.insert(2, 1)  # (N,C,L) -> (N,C,1,L)
            if id(t) not in graph_outputs and self._read_inside_only(t):
                t.shape = shape  # internal: lifted in place, name kept, readers unchanged
                continue
            # leaving: the member writes a new t4; region readers will read t4
            t4 = gs.Variable(unique_name(self.graph, f"{t.name}_4d"), dtype=t.dtype, shape=shape)
            node.outputs[i] = t4
            self.leaving[id(t)] = (t, t4)

    def _read_inside_only(self, t: gs.Tensor) -> bool:
        """Whether every reader of ``t`` is a member that reads it as data."""
        for reader in t.outputs:
            slots = self.slots.get(id(reader))
            if slots is None or any(x is t for j, x in enumerate(reader.inputs) if j not in slots):
                return False  # an outside node, a subgraph node, or a parameter slot
        return True

    def _lift_inputs(self, node: gs.Node) -> None:
        slots = self.slots[id(node)] + ((1,) if node.op == "Conv" else ())
        for slot in slots:
            t = node.inputs[slot]
            if not t.name:
                continue
            if id(t) in self.leaving:
                new = self.leaving[id(t)][1]
            elif t.inputs and id(t.inputs[0]) in self.slots:
                continue  # written by a member: already lifted in place
            else:
                new = self._enter(t)
            if new is not t:
                # Direct list edits: gs's synchronised setter scans the old tensor's reader
                # list per call (quadratic on wide fan-out); readers are resynced once at the end.
                list.__setitem__(node.inputs, slot, new)
                list.append(new.outputs, node)
                self.rewired[id(t)] = t

    def _enter(self, t: gs.Tensor) -> gs.Tensor:
        """The lifted form of a tensor entering from outside, made once per tensor."""
        if id(t) not in self.entered:
            r = rank(t)
            if r is None or r <= 1:
                new = t  # scalars and (L,) operands broadcast the same in 4-D
            elif isinstance(t, gs.Constant):
                # (.., C, L) -> (.., C, 1, L): a unit axis at -2 keeps numpy's right alignment;
                # for a Conv weight this is (O, I/g, k) -> (O, I/g, 1, k).
                values = np.ascontiguousarray(np.expand_dims(t.values, -2))
                new = gs.Constant(unique_name(self.graph, f"{t.name}_4d"), values)
            else:
                # rank r -> r+1 with the unit axis at -2, i.e. at r-1 (2 for (N,C,L), 1 for (C,L))
                new = make_unsqueeze(self.graph, t, [r - 1])
            self.entered[id(t)] = new
        return self.entered[id(t)]


def _lift_attrs(node: gs.Node) -> None:
    attrs = node.attrs
    if node.op == "Conv":
        # kernel [k] -> [1,k]; dilations [d] -> [1,d]; strides [s] -> [1,s];
        # pads [b, e] -> [0, b, 0, e]; group and auto_pad keep their meaning with H = 1.
        (k,) = _kernel(node, node.inputs[1])
        attrs["kernel_shape"] = [1, int(k)]
        for key in ("dilations", "strides"):
            if key in attrs:
                attrs[key] = [1, int(attrs[key][0])]
        if "pads" in attrs:
            begin, end = (int(p) for p in attrs["pads"])
            attrs["pads"] = [0, begin, 0, end]
    elif node.op in ("Concat", "Split"):
        # axis a of (N,C,L) -> 0, 1, 3 of (N,C,1,L), negative axes included (a % 3)
        attrs["axis"] = _AXIS_3D_TO_4D[int(attrs.get("axis", 0)) % 3]


def _resync_readers(tensor: gs.Tensor) -> None:
    """Rebuild ``tensor.outputs`` as the nodes whose inputs still name it, once per slot."""
    seen: set[int] = set()
    readers: list[gs.Node] = []
    for node in tensor.outputs:
        if id(node) not in seen:
            seen.add(id(node))
            readers.extend([node] * sum(t is tensor for t in node.inputs))
    list.clear(tensor.outputs)
    list.extend(tensor.outputs, readers)
