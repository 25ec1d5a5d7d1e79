"""tile_conv_width: tile a wide region of stride-1 convolutions along the width, exactly.

Before (AASIST's first residual block; conv1's output alone is (B,32,24,21490), seed-models.md §2.6)::

    x -> conv1 (2×3, pads h 1,1 w 1,1) -> Selu -> conv2 (2×3, pads h 0,0 w 1,1) -> Add -> y
    x -> conv_downsample (1×3, pads w 1,1) ---------------------------------------^

After, for T tiles of y's columns [a_t, b_t) (each tile reads x through its halo)::

    x -> Slice[a_t-2, b_t+2) -> conv1 (pads h 1,1 w q0,q1) -> Selu -> conv2 (w q0',q1') -> Add_t
    x -> Slice[a_t-1, b_t+1) -> conv_downsample (w q0'',q1'') ----------------------------^
    y = Concat(Add_0, ..., Add_{T-1}, axis=3)

The region is everything width-local downstream of one tensor x (N,C,H,W), W >= ``min_width``:
2-D Convs with width stride 1 (any width kernel, dilation and pads; any height geometry, group),
BatchNormalization, elementwise unary ops, and broadcasting elementwise ops whose other operands
do not vary along the width (last dim 1, or scalars). It must leave through exactly one tensor y,
and y must not feed a further width-local op (the region is maximal). The columns each tensor
must provide follow backwards from y's tile, clipped to the tensor's width: a conv with width
kernel k, dilation d and begin pad p0 computes output column j from input columns
j - p0 + d·i, i in [0, k), so output columns [lo, hi) need input columns
[max(0, lo - p0), min(W_in, hi - p0 + (k-1)·d)). Each tile conv then gets the width pads
q0 = in_lo - lo + p0 and q1 = (hi - lo) - (in_hi - in_lo) - q0 + (k-1)·d: 0 at interior edges,
where the halo holds the real neighbour columns, and the original padding at the outer edges.
A tensor read over different ranges is computed over their hull and sliced per reader.

Unlike the Ascend guide's slice_conv (§3.3 item 5), which drops the padding at interior edges
and overlaps two columns, this matches the untiled graph (only the conv's summation order may
differ). Refused: a region with several exits (a width-stride-2 conv, a Transpose, a reduction
or MatMul over the width inside it), operands that vary along the width from outside, pads wider
than the kernel's span, unknown shapes, and inputs that already are width Slices (tiles).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx_graphsurgeon as gs

from graphkit.ir.graph import int64_const, opset_of, rank, unique_name
from graphkit.ir.proto import UNARY_OPS, is_onnx_domain
from graphkit.passes._infra import EXACT, Example, Sites, register_pass

_ELEMENTWISE = frozenset("Add Sub Mul Div Pow Max Min Sum Mean Mod PRelu Where And Or Xor".split())
_W = 3  # the width axis of (N, C, H, W)


EXAMPLES = (
    Example(  # Conv -> Relu in 3 tiles of 4 columns, each reading its 1-column halo
        """g (float[1,2,3,12] x) => (float[1,2,3,12] y) {
            c = Conv<kernel_shape=[1,3], pads=[0,1,0,1]>(x, w, b)
            y = Relu(c)
        }""",
        params={"tiles": 3, "min_width": 8},
        weights={"w": (2, 2, 1, 3), "b": (2,)},
    ),
    Example(  # AASIST's residual block in small: two branches from x meet at the Add
        """g (float[1,1,4,30] x) => (float[1,2,4,30] y) {
            c1 = Conv<kernel_shape=[2,3], pads=[1,1,0,1]>(x, w1)
            r = Selu(c1)
            c2 = Conv<kernel_shape=[2,3], pads=[0,1,1,1]>(r, w2)
            d = Conv<kernel_shape=[1,3], pads=[0,1,0,1]>(x, w3)
            y = Add(c2, d)
        }""",
        opset=11,
        params={"tiles": 2, "min_width": 16},
        weights={"w1": (2, 1, 2, 3), "w2": (2, 2, 2, 3), "w3": (2, 1, 1, 3)},
    ),
)


@register_pass("tile_conv_width", contract=EXACT)
def tile_conv_width(graph: gs.Graph, *, tiles: int = 5, min_width: int = 4096, sites: Sites) -> int:
    """Tile wide regions of width-stride-1 convs and elementwise ops along the width, with exact halos.

    Each region is a site, labelled by its first Conv. Returns the number of regions tiled;
    ``tiles`` < 2 turns the pass off.
    """
    if tiles < 2:
        return 0
    outputs = {id(t) for t in graph.outputs}
    starts, misses = _starts(graph, min_width)
    for label, why in misses:
        sites.miss(label, why)
    regions = []  # all found before any is tiled (regions are disjoint: one does not see another)
    for x in starts:
        region = _region(graph, x, outputs)
        if isinstance(region, tuple):
            sites.miss(*region)
        elif region is not None and sites.take(_first_conv(region.members).name):
            regions.append(region)
    for region in regions:
        _Tiler(graph, region).run(tiles)
    return len(regions)


# -- finding the regions -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Conv:
    """Width geometry of a Conv, plus its resolved height pads."""

    k: int
    d: int
    p0: int
    p1: int
    h_pads: tuple[int, int]

    @property
    def span(self) -> int:
        return (self.k - 1) * self.d


@dataclass
class _Region:
    x: gs.Tensor
    y: gs.Tensor
    members: list[gs.Node]  # topological order, all ancestors of y
    inside: set[int]  # ids of x and the members' outputs


def _width(t: gs.Tensor) -> int | None:
    if rank(t) != 4:
        return None
    w = t.shape[_W]
    return w if isinstance(w, int) and not isinstance(w, bool) else None


def _outputs(node: gs.Node) -> list[gs.Tensor]:
    return [t for t in node.outputs if t.name]


def _width_local(node: gs.Node) -> bool:
    """Whether ``node`` maps each width column to itself (what a region may hold)."""
    if not is_onnx_domain(node.domain) or len(_outputs(node)) != 1 or rank(_outputs(node)[0]) != 4:
        return False
    if node.op == "Conv":
        return int(node.attrs.get("strides", [1, 1])[-1]) == 1
    return node.op in UNARY_OPS or node.op in _ELEMENTWISE or node.op == "BatchNormalization"


def _width_slice(node: gs.Node) -> bool:
    """Whether ``node`` is a Slice that may cut the width (a tile, made by us or by the model)."""
    if node.op != "Slice":
        return False
    if "starts" in node.attrs:  # opset < 10: attributes; no axes means the first len(starts)
        axes = node.attrs.get("axes", range(len(node.attrs["starts"])))
    elif len(node.inputs) > 3 and node.inputs[3].name:
        axes = node.inputs[3].values if isinstance(node.inputs[3], gs.Constant) else None
    else:
        starts = node.inputs[1] if len(node.inputs) > 1 else None
        axes = range(len(starts.values)) if isinstance(starts, gs.Constant) else None
    return axes is None or any(int(a) % 4 == _W for a in np.asarray(list(axes)).ravel())


def _starts(graph: gs.Graph, min_width: int) -> tuple[list[gs.Tensor], list[tuple[str, str]]]:
    """Wide rank-4 tensors where a region may begin (not made by a width-local op or a width
    Slice); and (Conv, why) for the Convs that read a wide tensor no region may begin at."""
    seen: set[int] = set()
    starts, misses = [], []
    for t in [*graph.inputs, *(t for n in graph.nodes for t in _outputs(n))]:
        if id(t) in seen or not isinstance(t, gs.Variable) or rank(t) != 4:
            continue
        seen.add(id(t))
        made = t.inputs[0] if t.inputs else None
        if made is not None and _width_local(made):
            continue  # inside a region, not at its start
        w = _width(t)
        if w is None:
            misses += _conv_readers(t, f"its input {t.name} has no static width ({t.shape[_W]})")
        elif w < min_width:
            continue
        elif made is not None and _width_slice(made):
            misses += _conv_readers(t, f"its input {t.name} is a width Slice (a tile) already")
        else:
            starts.append(t)
    return starts, misses


def _conv_readers(t: gs.Tensor, why: str) -> list[tuple[str, str]]:
    return [(node.name, why) for node in t.outputs if node.op == "Conv"][:1]


def _first_conv(nodes: list[gs.Node]) -> gs.Node:
    return next(node for node in nodes if node.op == "Conv")


def _conv(node: gs.Node) -> _Conv | None:
    """The geometry of a width-stride-1 2-D Conv whose pads are known, or None."""
    geometry = _geometry(node)
    return geometry if isinstance(geometry, _Conv) else None


def _geometry(node: gs.Node) -> _Conv | str:
    """The geometry of a width-stride-1 2-D Conv whose pads are known, or why it has none."""
    attrs = node.attrs
    w = node.inputs[1] if len(node.inputs) > 1 else None
    kernel = attrs.get("kernel_shape") or (list(w.shape[2:]) if w is not None and rank(w) == 4 else None)
    if kernel is None or len(kernel) != 2 or not all(isinstance(k, int) for k in kernel):
        return f"kernel shape {kernel} is not a static 2-D kernel"
    strides = [int(s) for s in attrs.get("strides", [1, 1])]
    dil = [int(d) for d in attrs.get("dilations", [1, 1])]
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if strides[1] != 1:
        return f"width stride {strides[1]}"
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        h = node.inputs[0].shape[2]
        if not isinstance(h, int):
            return f"auto_pad {auto_pad} on a symbolic height {h}"
        totals = [max(0, (math.ceil(h / strides[0]) - 1) * strides[0] + (kernel[0] - 1) * dil[0] + 1 - h)]
        totals.append((kernel[1] - 1) * dil[1])  # stride 1: the output keeps the input's width
        begins = [t // 2 if auto_pad == "SAME_UPPER" else t - t // 2 for t in totals]
        pads = [begins[0], begins[1], totals[0] - begins[0], totals[1] - begins[1]]
    elif auto_pad == "VALID":
        pads = [0, 0, 0, 0]
    elif auto_pad == "NOTSET":
        pads = [int(p) for p in attrs.get("pads", [0, 0, 0, 0])]
    else:
        return f"auto_pad {auto_pad}"
    geometry = _Conv(int(kernel[1]), dil[1], pads[1], pads[3], (pads[0], pads[2]))
    # pads beyond the kernel's span would make columns that read no input (bias only)
    if max(geometry.p0, geometry.p1) > geometry.span:
        return f"width pads {[geometry.p0, geometry.p1]} are wider than the kernel's span {geometry.span}"
    return geometry


def _invariant(t: gs.Tensor) -> bool:
    """An operand from outside the region that is the same for every width column."""
    shape = t.values.shape if isinstance(t, gs.Constant) else t.shape
    if shape is None or len(shape) > 4:
        return False
    return len(shape) == 0 or shape[-1] == 1


def _eligible(node: gs.Node, inside: set[int]) -> bool:
    """Whether ``node`` may join a region whose tensors (so far) are ``inside``."""
    if not _width_local(node):
        return False
    width = _width(_outputs(node)[0])
    if width is None:
        return False
    if node.op in _ELEMENTWISE:
        for t in node.inputs:
            if id(t) in inside:
                if _width(t) != width:
                    return False  # broadcasting along the width
            elif not _invariant(t):
                return False
        return True
    if id(node.inputs[0]) not in inside or any(id(t) in inside for t in node.inputs[1:]):
        return False  # data through input 0 only; weights and parameters from outside
    if node.op == "BatchNormalization":
        return int(node.attrs.get("training_mode", 0)) == 0 and node.attrs.get("spatial", 1) == 1
    if node.op == "Conv":
        return _width(node.inputs[0]) is not None and _conv(node) is not None
    return _width(node.inputs[0]) == width  # unary


def _region(graph: gs.Graph, x: gs.Tensor, graph_outputs: set[int]) -> _Region | tuple[str, str] | None:
    """The maximal width-local region downstream of ``x``, if it has one exit and a Conv; else
    (a Conv, why) when a Conv was in reach, or None."""
    start = 0 if not x.inputs else next(i for i, n in enumerate(graph.nodes) if n is x.inputs[0]) + 1
    inside, members, refused = {id(x)}, [], None
    for node in graph.nodes[start:]:  # topological order: producers come first
        if any(id(t) in inside for t in node.inputs):
            if _eligible(node, inside):
                members.append(node)
                inside.add(id(_outputs(node)[0]))
            elif refused is None and node.op == "Conv":
                refused = node
    member_ids = {id(m) for m in members}
    exits = [
        t
        for m in members
        for t in _outputs(m)
        if id(t) in graph_outputs or any(id(r) not in member_ids for r in t.outputs)
    ]
    convs = [m for m in members if m.op == "Conv"]
    if not convs:  # not a candidate, unless a Conv it reaches could not join
        if refused is None:
            return None
        return refused.name, f"cannot join the region from {x.name}: {_why_not(refused, inside)}"
    if len(exits) > 1:
        leaving = ", ".join(_leaves(t, member_ids, graph_outputs) for t in exits[:3])
        return convs[0].name, f"{len(exits)} exits ({leaving}): its columns mix or leave halfway"
    further = [r for r in exits[0].outputs if _width_local(r)] if exits else []
    if further:
        why = f"its exit {exits[0].name} feeds {_called(further[0])}, which cannot join"
        return convs[0].name, f"{why}: {_why_not(further[0], inside)}"
    if not exits:
        return None  # nothing reads the region
    y = exits[0]
    needed, ancestors = {id(y)}, []
    for node in reversed(members):
        if id(_outputs(node)[0]) in needed:
            ancestors.append(node)
            needed.update(id(t) for t in node.inputs)
    if not any(node.op == "Conv" for node in ancestors):
        return None
    return _Region(x, y, ancestors[::-1], inside)


def _leaves(t: gs.Tensor, member_ids: set[int], graph_outputs: set[int]) -> str:
    """How the region tensor ``t`` leaves the region."""
    reader = next((r for r in t.outputs if id(r) not in member_ids), None)
    return f"{t.name} to {_called(reader)}" if reader is not None else f"{t.name} is a graph output"


def _called(node: gs.Node) -> str:
    return f"{node.op} {node.name or next((t.name for t in _outputs(node)), '')}"


def _why_not(node: gs.Node, inside: set[int]) -> str:
    """Why ``node``, which reads the region's tensors ``inside``, cannot join it."""
    outputs = _outputs(node)
    if not is_onnx_domain(node.domain) or len(outputs) != 1:
        return f"{node.op} is not width-local"
    if node.op == "Conv" and int(node.attrs.get("strides", [1, 1])[-1]) != 1:
        return f"width stride {node.attrs['strides'][-1]}"
    if not _width_local(node):
        return f"{node.op} is not width-local" if rank(outputs[0]) == 4 else f"output rank {rank(outputs[0])}"
    width = _width(outputs[0])
    if width is None:
        return f"output width {outputs[0].shape[_W]} is not static"
    if node.op in _ELEMENTWISE:
        for t in node.inputs:
            if id(t) in inside and _width(t) != width:
                return f"{t.name} broadcasts along the width"
            if id(t) not in inside and not _invariant(t):
                return f"operand {t.name} varies along the width from outside"
    elif id(node.inputs[0]) not in inside or any(id(t) in inside for t in node.inputs[1:]):
        return "it reads the region through a parameter input"
    elif node.op == "BatchNormalization":
        return "BatchNormalization in training mode or with spatial=0"
    elif node.op == "Conv":
        geometry = _geometry(node) if _width(node.inputs[0]) is not None else "input width unknown"
        return geometry if isinstance(geometry, str) else "its geometry is not supported"
    return "it changes the width"


# -- tiling ------------------------------------------------------------------------------------


class _Tiler:
    """Rebuilds one region once per tile and concatenates the tiles along the width."""

    def __init__(self, graph: gs.Graph, region: _Region) -> None:
        self.graph = graph
        self.region = region
        self.geometry = {id(n): _conv(n) for n in region.members if n.op == "Conv"}
        self.axes = int64_const(unique_name(graph, f"{region.x.name}_tile_axes"), [_W])

    def run(self, tiles: int) -> None:
        y = self.region.y
        width = _width(y)
        count = min(tiles, width)
        pieces = [self._tile(t, t * width // count, (t + 1) * width // count) for t in range(count)]
        for node in self.region.members:
            node.inputs.clear()
            node.outputs.clear()
        dead = {id(n) for n in self.region.members}
        self.graph.nodes = [n for n in self.graph.nodes if id(n) not in dead]
        # y[..., a_t:b_t] = piece_t, so y = Concat(pieces, axis=W)
        name = unique_name(self.graph, f"{y.name}_tiles")
        self.graph.nodes.append(gs.Node("Concat", name, {"axis": _W}, pieces, [y]))

    def _ranges(self, lo: int, hi: int) -> tuple[dict, dict]:
        """Columns each tensor provides (hull over its readers) and each input slot needs."""
        inside = self.region.inside
        ranges: dict[int, tuple[int, int]] = {id(self.region.y): (lo, hi)}
        needs: dict[tuple[int, int], tuple[int, int]] = {}
        for node in reversed(self.region.members):
            a, b = ranges[id(_outputs(node)[0])]
            conv = self.geometry.get(id(node))
            if conv is not None:
                # output columns [a, b) read input columns [a - p0, b - p0 + (k-1)d), clipped
                slots = [(0, (max(0, a - conv.p0), min(_width(node.inputs[0]), b - conv.p0 + conv.span)))]
            else:
                slots = [(i, (a, b)) for i, t in enumerate(node.inputs) if id(t) in inside]
            for i, need in slots:
                needs[(id(node), i)] = need
                t = node.inputs[i]
                old = ranges.get(id(t), need)
                ranges[id(t)] = (min(old[0], need[0]), max(old[1], need[1]))
        return ranges, needs

    def _tile(self, index: int, lo: int, hi: int) -> gs.Tensor:
        ranges, needs = self._ranges(lo, hi)
        built: dict[int, tuple[gs.Tensor, int, int]] = {}  # id(t) -> (tile of t, its columns)
        slices: dict[tuple[int, tuple[int, int]], gs.Tensor] = {}
        for node in self.region.members:
            out = _outputs(node)[0]
            a, b = ranges[id(out)]
            inputs = list(node.inputs)
            for i, t in enumerate(inputs):
                if (id(node), i) in needs:
                    inputs[i] = self._read(t, needs[(id(node), i)], built, slices, index)
            attrs = dict(node.attrs)
            conv = self.geometry.get(id(node))
            if conv is not None:
                n0, n1 = needs[(id(node), 0)]
                q0 = n0 - a + conv.p0  # 0 where the tile reads real columns left of a
                q1 = (b - a) - (n1 - n0) - q0 + conv.span
                attrs["pads"] = [conv.h_pads[0], q0, conv.h_pads[1], q1]
                attrs.pop("auto_pad", None)
            tile = self._variable(out, index, b - a)
            name = unique_name(self.graph, f"{node.name or out.name}_tile{index}")
            self.graph.nodes.append(gs.Node(node.op, name, attrs, inputs, [tile], domain=node.domain))
            built[id(out)] = (tile, a, b)
        return built[id(self.region.y)][0]

    def _read(self, t: gs.Tensor, need: tuple[int, int], built: dict, slices: dict, index: int) -> gs.Tensor:
        """Columns ``need`` of ``t``: its tile as is, or a Slice of it (x is always sliced)."""
        if t is self.region.x:
            source, lo = t, 0
        else:
            source, lo, hi = built[id(t)]
            if (lo, hi) == need:
                return source
        key = (id(t), need)
        if key not in slices:
            slices[key] = self._slice(t, source, need[0] - lo, need[1] - lo, index)
        return slices[key]

    def _slice(self, t: gs.Tensor, source: gs.Tensor, begin: int, end: int, index: int) -> gs.Variable:
        """``source[..., begin:end]``, named after the region tensor ``t``."""
        graph = self.graph
        out = self._variable(t, index, end - begin, "_cols")
        name = unique_name(graph, f"{out.name}_slice")
        if opset_of(graph) >= 10:
            starts = int64_const(unique_name(graph, f"{out.name}_starts"), [begin])
            ends = int64_const(unique_name(graph, f"{out.name}_ends"), [end])
            graph.nodes.append(
                gs.Node("Slice", name, inputs=[source, starts, ends, self.axes], outputs=[out])
            )
        else:
            attrs = {"starts": [begin], "ends": [end], "axes": [_W]}
            graph.nodes.append(gs.Node("Slice", name, attrs, [source], [out]))
        return out

    def _variable(self, like: gs.Tensor, index: int, width: int, suffix: str = "") -> gs.Variable:
        name = unique_name(self.graph, f"{like.name}_tile{index}{suffix}")
        return gs.Variable(name, dtype=like.dtype, shape=[*like.shape[:_W], width])
