"""split_maxpool: split a kh×kw MaxPool into a width pool and a height pool.

Before::

    x (N,C,H,W) -> MaxPool<kernel [kh,kw], strides [sh,sw], pads [ph0,pw0,ph1,pw1],
                           dilations [dh,dw], ceil_mode, auto_pad> -> y

After::

    x -> MaxPool<kernel [1,kw], strides [1,sw], pads [0,pw0,0,pw1], dilations [1,dw]>
      -> MaxPool<kernel [kh,1], strides [sh,1], pads [ph0,0,ph1,0], dilations [dh,1]> -> y

(ceil_mode and auto_pad are copied to both.)
Exact because max is separable: y[i,j] = max_{h in Rh(i)} max_{w in Rw(j)} x[h,w], and the window
Rh(i) (resp. Rw(j)) with its padding, dilation, ceil_mode rounding and SAME padding depends only
on the height (resp. width) parameters. Padded positions never win, in either form.

Layout variant (the Ascend guide's AASIST sinc path, seed-models.md §3.3 item 4). After
conv1d_to_conv2d, a 1-D filter bank reaches the pool through a layout change::

    X (B,C,1,W) -> Squeeze[2] -> (B,C,W) -> Unsqueeze[1] -> (B,1,C,W) -> Abs -> MaxPool kh×kw -> y

A (B,1,C,W) tensor with one channel wastes Ascend's C0 = 16 channel blocks, so the width pool
runs on the (B,C,1,W) layout and only its (kw-times smaller) output changes layout::

    X -> Abs -> MaxPool [1,kw] -> (B,C,1,W') -> Reshape [0,1,C,-1] -> (B,1,C,W') -> MaxPool [kh,1] -> y

Exact: pooling (B,1,C,W) over a 1×kw window equals pooling (B,C,1,W) per channel, the Reshape
is the same row-major reinterpretation as Squeeze[2] + Unsqueeze[1] (0 copies the batch, so any
batch works), and elementwise unary ops commute with both. Any chain of elementwise unary ops
(each read only by the next) may sit between the Unsqueeze and the pool.

Refused: the two-output form (Indices), storage_order != 0, kernels other than 2-D, and kernels
with an axis below ``min_kernel`` (1×k and k×1 pools are already split).
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from graphkit.ir.graph import axes_of, int64_const, rank, unique_name
from graphkit.ir.proto import UNARY_OPS, is_onnx_domain
from graphkit.passes._infra import EXACT, Example, Sites, register_pass

EXAMPLES = (
    Example(  # a 3x4 pool with strides and pads per axis
        """g (float[2,3,11,13] x) => (float[2,3,5,5] y) {
            y = MaxPool<kernel_shape=[3,4], strides=[2,3], pads=[1,2,0,1]>(x)
        }""",
    ),
    Example(  # the layout variant: (B,C,1,W) -> Squeeze -> Unsqueeze -> Abs -> MaxPool
        """g (float[B,4,1,20] x) => (float[B,1,2,6] y) {
            s = Squeeze<axes=[2]>(x)
            u = Unsqueeze<axes=[1]>(s)
            a = Abs(u)
            y = MaxPool<kernel_shape=[2,3], strides=[2,3]>(a)
        }""",
        opset=11,
    ),
)

# Elementwise ops with one data input (further inputs, as Clip's min/max, are scalar parameters).


@register_pass("split_maxpool", contract=EXACT)
def split_maxpool(graph: gs.Graph, *, min_kernel: int = 2, sites: Sites) -> int:
    """Split 2-D kh×kw MaxPools into a 1×kw pool then a kh×1 pool (width first).

    Both kh and kw must be at least ``max(min_kernel, 2)``. Returns the number of pools split.
    """
    done = 0
    pools = [n for n in graph.nodes if n.op == "MaxPool" and is_onnx_domain(n.domain)]
    for pool in pools:
        why = _refusal(pool, max(2, min_kernel))
        if why is not None:
            sites.miss(pool.name, why)
            continue
        if not sites.take(pool.name):
            continue
        layout = _layout_change(graph, pool)
        if layout is not None:
            _split_with_layout(graph, pool, *layout)
        else:
            _split(graph, pool)
        done += 1
    return done


def _refusal(node: gs.Node, min_kernel: int) -> str | None:
    """Why the MaxPool ``node`` cannot be split, or None when it can."""
    if len(node.outputs) != 1 and any(t.name for t in node.outputs[1:]):
        return "its Indices output would need its own (non-separable) rewrite"
    if node.attrs.get("storage_order", 0) != 0:
        return "storage_order != 0"
    if rank(node.inputs[0]) != 4:
        return f"input rank is {rank(node.inputs[0])}, not 4"
    kernel = list(node.attrs.get("kernel_shape", []))
    if len(kernel) != 2:
        return f"kernel_shape {kernel} is not 2-D"
    if min(kernel) < min_kernel:
        return f"kernel {kernel} has an axis below {min_kernel} (already split)"
    return None


def _axis_attrs(pool: gs.Node, axis: int) -> dict:
    """The attributes of a pool that does ``pool``'s work on one spatial axis (0 H, 1 W) only."""
    attrs = pool.attrs

    def one(values: list[int], neutral: int) -> list[int]:
        out = [neutral, neutral]
        out[axis] = int(values[axis])
        return out

    out: dict = {"kernel_shape": one(attrs["kernel_shape"], 1)}
    for key in ("strides", "dilations"):
        if key in attrs:
            out[key] = one(attrs[key], 1)
    if "pads" in attrs:
        pads = [int(p) for p in attrs["pads"]]  # [h_begin, w_begin, h_end, w_end]
        out["pads"] = [0, 0, 0, 0]
        out["pads"][axis], out["pads"][axis + 2] = pads[axis], pads[axis + 2]
    for key in ("ceil_mode", "auto_pad"):  # SAME padding is computed per axis
        if key in attrs:
            out[key] = attrs[key]
    return out


def _split(graph: gs.Graph, pool: gs.Node) -> None:
    # MaxPool_{kh×kw}(x) = MaxPool_{kh×1}(MaxPool_{1×kw}(x))
    x, y = pool.inputs[0], pool.outputs[0]
    shape = None if x.shape is None or y.shape is None else [*x.shape[:3], y.shape[3]]
    mid = gs.Variable(unique_name(graph, f"{y.name}_wpool"), dtype=y.dtype, shape=shape)
    _replace(graph, pool, [(x, mid, _axis_attrs(pool, 1)), (mid, y, _axis_attrs(pool, 0))])


def _layout_change(graph: gs.Graph, pool: gs.Node) -> tuple[gs.Tensor, list[gs.Node], list] | None:
    """(X, unary chain, Reshape target) when ``pool`` reads X (B,C,1,W) through
    Squeeze[2] -> Unsqueeze[1] -> unary ops; None otherwise."""
    outputs = {id(t) for t in graph.outputs}
    chain: list[gs.Node] = []
    t = pool.inputs[0]
    while t.inputs and t.inputs[0].op in UNARY_OPS and is_onnx_domain(t.inputs[0].domain):
        if len(t.outputs) != 1 or id(t) in outputs:
            return None  # the chain is moved, so its tensors must have no other reader
        chain.insert(0, t.inputs[0])
        t = t.inputs[0].inputs[0]
    unsq = t.inputs[0] if t.inputs else None
    if unsq is None or unsq.op != "Unsqueeze" or _axes(unsq) != [1]:
        return None
    s = unsq.inputs[0]
    sq = s.inputs[0] if s.inputs else None
    if sq is None or sq.op != "Squeeze" or _axes(sq) != [2]:
        return None
    x = sq.inputs[0]
    if rank(x) != 4 or x.shape[2] != 1:
        return None
    channels, width = x.shape[1], (pool.outputs[0].shape or [None] * 4)[3]
    if isinstance(channels, int):
        target = [0, 1, channels, -1]  # 0 copies the batch (allowzero = 0)
    elif isinstance(width, int):
        target = [0, 1, -1, width]
    else:
        return None
    return x, chain, target


def _axes(node: gs.Node) -> list[int] | None:
    """A rank-4 Squeeze input's / Unsqueeze output's axes, normalised; also from a Constant node."""
    axes = axes_of(node)
    if axes is None and len(node.inputs) > 1 and node.inputs[1].inputs:
        const = node.inputs[1].inputs[0]  # opset >= 13 exporters write axes as a Constant node
        if const.op == "Constant" and isinstance(const.attrs.get("value"), gs.Constant):
            axes = [int(a) for a in np.asarray(const.attrs["value"].values).ravel()]
    return None if axes is None else [a % 4 for a in axes]


def _split_with_layout(graph: gs.Graph, pool: gs.Node, x: gs.Tensor, chain: list[gs.Node], target) -> None:
    # Unsqueeze[1](Squeeze[2](X)) = Reshape(X, [0,1,C,-1]); unary ops commute with it, and
    # MaxPool_{1×kw} on (B,1,C,W) = MaxPool_{1×kw} on (B,C,1,W) per channel, reshaped.
    src = x
    if chain:
        chain[0].inputs[0] = x  # the unary chain now runs on X's (B,C,1,W) layout
        for node in chain:
            node.outputs[0].shape = list(x.shape)
        src = chain[-1].outputs[0]
    y = pool.outputs[0]
    b, c = x.shape[:2]
    out_w = y.shape[3] if y.shape is not None else None
    mid = gs.Variable(unique_name(graph, f"{y.name}_wpool"), dtype=y.dtype, shape=[b, c, 1, out_w])
    back = gs.Variable(unique_name(graph, f"{y.name}_rows"), dtype=y.dtype, shape=[b, 1, c, out_w])
    shape_const = int64_const(unique_name(graph, f"{y.name}_rows_shape"), target)
    reshape = gs.Node(
        "Reshape", unique_name(graph, f"{y.name}_reshape"), inputs=[mid, shape_const], outputs=[back]
    )
    _replace(graph, pool, [(src, mid, _axis_attrs(pool, 1)), (back, y, _axis_attrs(pool, 0))], reshape)


def _replace(graph: gs.Graph, pool: gs.Node, parts: list, between: gs.Node | None = None) -> None:
    """Swap ``pool`` for the pools in ``parts`` ((input, output, attrs) each), ``between`` them."""
    base = pool.name or parts[-1][1].name
    pool.inputs.clear()
    pool.outputs.clear()
    graph.nodes = [n for n in graph.nodes if n is not pool]  # by identity: gs nodes compare by value
    for i, (src, dst, attrs) in enumerate(parts):
        suffix = ("_w", "_h")[i]
        graph.nodes.append(gs.Node("MaxPool", unique_name(graph, base + suffix), attrs, [src], [dst]))
        if i == 0 and between is not None:
            graph.nodes.append(between)
