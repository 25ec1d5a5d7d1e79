"""replace_scatternd_with_concat: a zero board written block by block by ScatterND -> Concat.

Before (the HS-GAL attention board, seed-models.md §2.3 step 7, once shapes are static and the
indices are constants; each index tensor enumerates one axis-aligned block)::

    b0 = zeros(B,N,N,1)              # Constant, ConstantOfShape(0) or Expand(0, shape)
    b1 = ScatterND(b0, I_TT, TT)     # I_TT: every (b, i, j, 0) with i < n, j < n
    b2 = ScatterND(b1, I_SS, SS)     #        i >= n, j >= n
    b3 = ScatterND(b2, I_TS, TS)     #        i < n,  j >= n
    y  = ScatterND(b3, I_ST, ST)     #        i >= n, j < n

After (the 2022 exact rewrite of the Ascend guide, seed-models.md §3.3, found by structure)::

    y = Concat<axis=1>(Concat<axis=2>(TT, TS), Concat<axis=2>(ST, SS))

Every ScatterND of a chain must have reduction "none" and constant indices that enumerate, in
row-major order, the rectangle ``[s_0, s_0+l_0) x ... x [s_{k-1}, s_{k-1}+l_{k-1})`` of the
first k axes (k = indices.shape[-1]); then its updates are that block (reshaped when the index
tensor is flattened). The blocks may not overlap, and the board must be zero, so the ScatterND
chain equals the blocks laid side by side: ``y[box_i] = U_i``, ``y = 0`` elsewhere. Uncovered
regions become zero constants. The blocks are split by guillotine cuts (a cut that crosses no
block), which gives the nested Concats; a tiling with no such cut (a pinwheel) is left alone.
The indexed axes must be static; the trailing axes may be symbolic unless a block has to be
reshaped or a hole filled. Indices that depend on the batch (before set_batch_size + simplify)
are not constants and are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_graphsurgeon as gs

from graphkit.ir.graph import const_value, int64_const, unique_name
from graphkit.ir.proto import is_onnx_domain
from graphkit.passes._infra import EXACT, Example, Sites, register_pass

_SHAPE_ONLY = frozenset({"Unsqueeze", "Squeeze", "Reshape", "Flatten", "Identity", "Transpose", "Expand"})


EXAMPLES = (
    Example(  # two row blocks of a zero board: Concat<axis=0>(u1, u2)
        """g (float[2,3] u1, float[2,3] u2) => (float[4,3] y) {
            b1 = ScatterND(board, i1, u1)
            y = ScatterND(b1, i2, u2)
        }""",
        constants={
            "board": np.zeros((4, 3), np.float32),
            "i1": np.array([[0], [1]], np.int64),
            "i2": np.array([[2], [3]], np.int64),
        },
    ),
    Example(  # a ConstantOfShape board, negative indices, and a hole that becomes zeros
        """g (float[2,3] u1, float[1,3] u2) => (float[4,3] y) {
            board = ConstantOfShape<value = float[1] {0}>(shape)
            b1 = ScatterND(board, i1, u1)
            y = ScatterND(b1, i2, u2)
        }""",
        constants={
            "shape": np.array([4, 3], np.int64),
            "i1": np.array([[0], [1]], np.int64),
            "i2": np.array([[-1]], np.int64),
        },
    ),
)


@register_pass("replace_scatternd_with_concat", contract=EXACT)
def replace_scatternd_with_concat(graph: gs.Graph, *, sites: Sites) -> int:
    """Replace zero boards assembled by ScatterND blocks with nested Concats of the blocks.

    Each board (a ScatterND chain) is a site, labelled by its last ScatterND. Returns the number
    of boards replaced.
    """
    boards = []
    for tail in [node for node in graph.nodes if _is_tail(graph, node)]:
        board = _board(tail)
        if isinstance(board, str):
            sites.miss(tail.name, board)
        elif sites.take(tail.name):
            boards.append(board)
    for board in boards:  # all boards are decoded before any is rewritten
        _emit(graph, board)
    return len(boards)


@dataclass
class _Block:
    start: tuple[int, ...]  # over the P indexed axes of the board
    size: tuple[int, ...]
    tensor: gs.Tensor  # the updates
    reshape: bool  # the index tensor enumerates the block flattened


@dataclass
class _Board:
    tail: gs.Node
    dims: tuple[int, ...]  # the P indexed axes (static)
    trailing: list  # the other axes (ints or symbols)
    zero: np.ndarray  # the board's fill value, a 0-d array of its dtype
    blocks: list[_Block]
    tree: object  # see _split


# -- finding and decoding boards -----------------------------------------------------------------


def _is_scatter(node: gs.Node) -> bool:
    reduction = node.attrs.get("reduction", "none")
    reduction = reduction.decode() if isinstance(reduction, bytes) else reduction
    return node.op == "ScatterND" and is_onnx_domain(node.domain) and reduction == "none"


def _is_tail(graph: gs.Graph, node: gs.Node) -> bool:
    """The last ScatterND of a chain: its board is read by something else than a ScatterND's data slot."""
    if not _is_scatter(node):
        return False
    out = node.outputs[0]
    chained = all(
        _is_scatter(r) and [x is out for x in r.inputs] == [True, False, False] for r in out.outputs
    )
    if any(t is out for t in graph.outputs):
        return True
    return bool(out.outputs) and not chained  # a board nobody reads is dead, not a site


def _zero_fill(t: gs.Tensor) -> np.ndarray | str:
    """The fill value of an all-zeros tensor (Constant, ConstantOfShape, Expand, shape ops), else
    why the board is not one."""
    for _ in range(64):  # through a bounded number of shape-only ops
        value = const_value(t)
        if value is not None:
            if value.size and not np.any(value):
                return value.flat[0].copy()
            return f"the board {t.name} is not all zeros"
        node = t.inputs[0] if len(t.inputs) == 1 else None
        if node is None:
            return f"the board {t.name} is not a constant"
        if node.op == "ConstantOfShape":
            fill = node.attrs.get("value")
            value = np.zeros(1, np.float32) if fill is None else np.asarray(fill.values).ravel()
            if value.size == 1 and not value[0]:
                return value[0].copy()
            return f"the board is filled with {value.tolist()}, not zero"
        if node.op not in _SHAPE_ONLY:
            return f"the board is computed by {node.op} {node.name}, not a zero constant"
        t = node.inputs[0]
    return "the board is not a constant"


def _board(tail: gs.Node) -> _Board | str:
    """The board the ScatterND chain ending at ``tail`` assembles, or why it is not one."""
    chain = [tail]
    while True:
        data = chain[-1].inputs[0]
        producer = data.inputs[0] if len(data.inputs) == 1 else None
        if producer is None or not _is_scatter(producer) or producer is tail:
            break
        chain.append(producer)
    chain.reverse()
    zero = _zero_fill(chain[0].inputs[0])
    if isinstance(zero, str):
        return zero
    shape = tail.outputs[0].shape or chain[0].inputs[0].shape
    if shape is None:
        return "the board's shape is unknown"
    indices = [const_value(node.inputs[1]) for node in chain]
    for node, idx in zip(chain, indices):
        if idx is None:
            return f"the indices of {node.name} are not constant"
        if idx.ndim < 1 or idx.shape[-1] < 1:
            return f"the indices of {node.name} index no axis"
    p = max(i.shape[-1] for i in indices)
    dims = shape[:p]
    if len(shape) < p or not all(isinstance(d, int) and d >= 0 for d in dims):
        return f"the indexed axes {list(dims)} of the board are not static"
    blocks = []
    for node, idx in zip(chain, indices):
        box = _rectangle(idx, tuple(dims))
        if box is None:
            return f"the indices of {node.name} do not list one box in row-major order"
        start, size = box
        blocks.append(_Block(start, size, node.inputs[2], tuple(idx.shape[:-1]) != size[: idx.shape[-1]]))
    for i, a in enumerate(blocks):
        for j in range(i + 1, len(blocks)):
            if _overlap(a, blocks[j]):
                return f"the blocks of {chain[i].name} and {chain[j].name} overlap"
    trailing = list(shape[p:])
    tree = _split(tuple(0 for _ in dims), tuple(dims), blocks)
    if tree is None:
        return "no guillotine cut splits the blocks (a pinwheel tiling)"
    static = all(isinstance(d, int) for d in trailing)
    if not static and (_has_hole(tree) or any(b.reshape for b in blocks)):
        # zero blocks and Reshape targets need the trailing dims
        return f"the trailing axes {trailing} are symbolic, and a hole or a flattened block needs them"
    return _Board(tail, tuple(dims), trailing, zero, blocks, tree)


def _rectangle(idx: np.ndarray, dims: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(start, size) over all of ``dims`` when ``idx`` lists one box in row-major order, else None."""
    k = idx.shape[-1]
    rows = idx.reshape(-1, k).astype(np.int64)
    bound = np.asarray(dims[:k], np.int64)
    if rows.shape[0] == 0 or np.any(rows < -bound) or np.any(rows >= bound):
        return None
    rows = np.where(rows < 0, rows + bound, rows)  # negative indices count from the end
    start, size = rows.min(axis=0), rows.max(axis=0) - rows.min(axis=0) + 1
    if int(np.prod(size)) != rows.shape[0]:
        return None
    expected = np.indices(tuple(size)).reshape(k, -1).T + start  # row-major enumeration of the box
    if not np.array_equal(rows, expected):
        return None
    # axes k..P-1 are written whole by this scatter
    return tuple(int(s) for s in start) + (0,) * (len(dims) - k), tuple(int(s) for s in size) + dims[k:]


def _overlap(a: _Block, b: _Block) -> bool:
    # boxes overlap iff their ranges overlap on every axis
    return all(sa < sb + lb and sb < sa + la for sa, la, sb, lb in zip(a.start, a.size, b.start, b.size))


# -- guillotine partition ------------------------------------------------------------------------
# A tree is ("block", _Block) | ("hole", start, size) | ("concat", axis, [children]).


def _inside(block: _Block, lo: tuple[int, ...], hi: tuple[int, ...]) -> bool:
    return all(lo[a] <= block.start[a] and block.start[a] + block.size[a] <= hi[a] for a in range(len(lo)))


def _split(lo: tuple[int, ...], hi: tuple[int, ...], blocks: list[_Block]) -> object | None:
    inner = [b for b in blocks if _inside(b, lo, hi)]
    if not inner:
        return ("hole", lo, tuple(h - s for s, h in zip(lo, hi)))
    if len(inner) == 1 and inner[0].start == lo and inner[0].size == tuple(h - s for s, h in zip(lo, hi)):
        return ("block", inner[0])
    for axis in range(len(lo)):
        edges = {e for b in inner for e in (b.start[axis], b.start[axis] + b.size[axis])}
        cuts = sorted(
            c
            for c in edges
            if lo[axis] < c < hi[axis]
            and not any(b.start[axis] < c < b.start[axis] + b.size[axis] for b in inner)
        )
        if cuts:
            children = []
            for a, b in zip([lo[axis], *cuts], [*cuts, hi[axis]]):
                child = _split(lo[:axis] + (a,) + lo[axis + 1 :], hi[:axis] + (b,) + hi[axis + 1 :], inner)
                if child is None:
                    return None
                children.append(child)
            return ("concat", axis, children)
    return None  # no cut crosses no block: not a guillotine tiling


def _has_hole(tree: object) -> bool:
    if tree[0] == "concat":
        return any(_has_hole(child) for child in tree[2])
    return tree[0] == "hole"


# -- rewriting -----------------------------------------------------------------------------------


def _emit(graph: gs.Graph, board: _Board) -> None:
    tail = board.tail
    out = tail.outputs[0]
    tail.outputs.clear()  # the chain dies at cleanup (unless something else reads a link)
    result = _build(graph, board, board.tree, out)
    if result is not out:  # the whole board is one block: keep the output's name and readers
        graph.nodes.append(
            gs.Node("Identity", name=unique_name(graph, f"{out.name}_block"), inputs=[result], outputs=[out])
        )


def _build(graph: gs.Graph, board: _Board, tree: object, out: gs.Variable | None) -> gs.Tensor:
    kind = tree[0]
    if kind == "block":
        return _leaf(graph, board, tree[1])
    if kind == "hole":
        values = np.full(tuple(tree[2]) + tuple(board.trailing), board.zero, dtype=board.zero.dtype)
        return gs.Constant(unique_name(graph, f"{board.tail.name}_zeros"), values)
    axis, children = tree[1], tree[2]
    inputs = [_build(graph, board, child, None) for child in children]
    if out is None:
        shape = list(_extent(tree)) + board.trailing
        out = gs.Variable(
            unique_name(graph, f"{board.tail.name}_concat"), dtype=board.zero.dtype, shape=shape
        )
    node = gs.Node(
        "Concat",
        name=unique_name(graph, f"{board.tail.name}_concat"),
        attrs={"axis": axis},
        inputs=inputs,
        outputs=[out],
    )
    graph.nodes.append(node)
    return out


def _extent(tree: object) -> tuple[int, ...]:
    if tree[0] == "block":
        return tree[1].size
    if tree[0] == "hole":
        return tree[2]
    axis, sizes = tree[1], [_extent(child) for child in tree[2]]
    return sizes[0][:axis] + (sum(s[axis] for s in sizes),) + sizes[0][axis + 1 :]


def _leaf(graph: gs.Graph, board: _Board, block: _Block) -> gs.Tensor:
    if not block.reshape:
        return block.tensor  # updates = indices.shape[:-1] + data.shape[k:] = the block's shape
    # indices list the box flattened: U (m, ...) -> (l_0, ..., l_{P-1}, trailing...), same order
    shape = list(block.size) + board.trailing
    target = int64_const(unique_name(graph, f"{block.tensor.name}_block_shape"), shape)
    y = gs.Variable(unique_name(graph, f"{block.tensor.name}_block"), dtype=board.zero.dtype, shape=shape)
    graph.nodes.append(
        gs.Node(
            "Reshape",
            name=unique_name(graph, f"{y.name}_reshape"),
            inputs=[block.tensor, target],
            outputs=[y],
        )
    )
    return y
