"""replace_gather_elements: a row gather written as GatherElements -> Gather on a flattened view.

Before (GraphPool, seed-models.md §2.3 step 6; h (B,N,D), the TopK indices idx (B,k,1))::

    idx = TopK(scores (B,N,1), k, axis=1)[1]                  # (B,k,1), maybe via Unsqueeze/Reshape
    y   = GatherElements<axis=1>(h, Expand(idx, [1,1,D]))     # (B,k,D)

After (correct for every batch size; the Ascend guide's Gather uses batch 0's indices for all)::

    rows = Cast<int32>(Squeeze<2>(idx)) + Range(0, B_idx) * N  # (B,k): row b*N + idx[b,j] of h
    y    = Gather<axis=0>(Reshape(h, [-1, D]), rows)            # (B,k,D)

(The Cast keeps int64 indices out of the arithmetic: Ascend's TopK gives int32 indices, and an
Add of int32 and int64 fails ATC with E89999, ascend-toolchain.md §3.2; ``index_dtype: int64``
keeps them int64 for other targets.)

The rewrite is exact: GatherElements gives ``y[b,j,d] = h[b, idx[b,j,0], d]`` when the indices
are idx broadcast along the last axis only, and ``Reshape(h, [-1, D])[b*N + i] = h[b, i]``.
The guards prove that broadcast structurally: data and indices of rank 3, axis 1, the indices an
Expand of a tensor whose last axis is 1, to a shape (evaluated from constants and static dims of
``Shape`` outputs) whose last entry is D and whose other entries are 1 or leave idx's dims as
they are; D is static. The offsets use idx's own batch (GatherElements reads data batch b for
indices batch b); they are constants when that batch and N are static, else
Shape/Gather/Range/Mul (constant-foldable once the batch is set). Indices not provably
non-negative (not from TopK, not a non-negative constant) are first wrapped into [0, N) with
Mod, as GatherElements accepts [-N, N).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import onnx_graphsurgeon as gs

from graphkit.ir.graph import axes_of, make_squeeze, unique_name
from graphkit.ir.proto import is_onnx_domain
from graphkit.passes._infra import EXACT, Example, Sites, register_pass

_PASS_VALUES = frozenset({"Unsqueeze", "Squeeze", "Reshape", "Flatten", "Identity", "Cast"})


# AASIST's GraphPool: the rows of h * scores at the top-k scores
_POOL = """g (float[{b},5,3] h) => (float[{b},2,3] y) {{
    s = MatMul(h, w)
    scores = Sigmoid(s)
    top, idx = TopK<axis=1>(scores, k)
    wide = Expand(idx, shape)
    hs = Mul(h, scores)
    y = GatherElements<axis=1>(hs, wide)
}}"""
EXAMPLES = tuple(
    Example(
        _POOL.format(b=batch),
        weights={"w": (3, 1)},
        constants={"k": np.array([2], np.int64), "shape": np.array([1, 1, 3], np.int64)},
    )
    for batch in (2, "B")  # offsets: constants for a static batch, Shape/Range for a symbolic one
)


@register_pass("replace_gather_elements", contract=EXACT)
def replace_gather_elements(
    graph: gs.Graph, *, index_dtype: Literal["int32", "int64"] = "int32", sites: Sites
) -> int:
    """Replace row-gathering GatherElements (TopK -> Expand -> GatherElements) with a flat Gather.

    ``index_dtype``: the row arithmetic's integer type. int32 (default) casts the indices first:
    Ascend's TopK yields int32 indices, and int64 offsets added to them fail ATC (E89999).
    Returns the number of GatherElements replaced.
    """
    chosen = []
    for node in [n for n in graph.nodes if n.op == "GatherElements" and is_onnx_domain(n.domain)]:
        idx = _row_indices(node)
        if isinstance(idx, str):
            sites.miss(node.name, idx)
        elif sites.take(node.name):
            chosen.append((node, idx))
    for node, idx in chosen:  # all sites are matched before any is rewritten
        _rewrite(graph, node, idx, np.dtype(index_dtype))
    return len(chosen)


# -- matching ------------------------------------------------------------------------------------


def _same(a: object, b: object) -> bool:
    """Two dims that are provably equal: equal ints, or the same symbol."""
    return a == b and isinstance(a, (int, str)) and a not in ("", -1)


def _row_indices(node: gs.Node) -> gs.Tensor | str:
    """idx (B,k,1) when the GatherElements ``node`` gathers whole rows along axis 1 of rank-3
    data, else why not."""
    if len(node.inputs) != 2:
        return f"{len(node.inputs)} inputs"
    data, indices = node.inputs
    if data.shape is None or len(data.shape) != 3:
        return "data shape unknown" if data.shape is None else f"data rank {len(data.shape)}, not 3"
    axis = int(node.attrs.get("axis", 0))
    if axis not in (1, -2):
        return f"axis {axis}, not 1"
    d = data.shape[2]
    if not isinstance(d, int):
        return f"the data's last dim {d} is not static"
    expand = indices.inputs[0] if len(indices.inputs) == 1 else None
    if expand is None or expand.op != "Expand":
        return f"indices {indices.name} are not an Expand"
    idx, target = expand.inputs
    if idx.shape is None or len(idx.shape) != 3 or idx.shape[2] != 1:
        return f"expanded indices {idx.name} have shape {idx.shape}, not (B,k,1)"
    shape = _values(target)
    if shape is None:
        return f"Expand shape {target.name} is not constant"
    if shape.ndim != 1 or not 1 <= len(shape) <= 3 or shape[-1] != d:
        return f"Expand shape {shape.tolist()} does not end in D={d}"
    # Expand(idx, s): out = broadcast(idx.shape, s). Only the size-1 last axis may grow (to D);
    # an entry 1 keeps idx's dim, any other entry must already be idx's dim.
    lead = [1] * (3 - len(shape)) + [int(v) for v in shape[:-1]]
    if not all(s == 1 or _same(s, dim) for s, dim in zip(lead, idx.shape[:2])):
        return f"Expand shape {shape.tolist()} repeats indices {list(idx.shape)} beyond their last axis"
    return idx


def _values(t: gs.Tensor, depth: int = 0) -> np.ndarray | None:
    """The value of a small integer shape tensor, from constants and static dims, else None."""
    known = _partial(t, depth)
    if known is None or not known[1].all():
        return None
    return known[0]


def _partial(t: gs.Tensor, depth: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(values, known mask) of a 0-/1-D integer tensor; unknown entries are symbolic dims."""
    if isinstance(t, gs.Constant):
        v = np.asarray(t.values)
        return (v.astype(np.int64).ravel(), np.ones(v.size, bool)) if v.dtype.kind in "iub" else None
    node = t.inputs[0] if len(t.inputs) == 1 else None
    if node is None or depth > 32:
        return None
    args = [_partial(i, depth + 1) if i.name else None for i in node.inputs]
    if node.op == "Constant" and isinstance(node.attrs.get("value"), gs.Constant):
        return _partial(node.attrs["value"], depth)
    if node.op == "Shape":
        dims = node.inputs[0].shape
        if dims is None:
            return None
        dims = dims[node.attrs.get("start", 0) : node.attrs.get("end", len(dims))]
        ok = np.array([isinstance(x, int) and x >= 0 for x in dims], bool)
        return np.array([x if k else 0 for x, k in zip(dims, ok)], np.int64), ok
    if any(a is None for a in args):
        return None
    if node.op in _PASS_VALUES:
        return args[0]  # same values in the same order (these tensors are at most 1-D)
    if node.op == "Concat":
        return np.concatenate([a[0] for a in args]), np.concatenate([a[1] for a in args])
    if node.op == "Gather" and int(node.attrs.get("axis", 0)) == 0 and args[1][1].all():
        pick = args[1][0]
        return args[0][0][pick], args[0][1][pick]
    if node.op == "ConstantOfShape" and args[0][1].all() and args[0][0].size <= 1:
        fill = node.attrs.get("value")
        v = np.zeros(1, np.int64) if fill is None else np.asarray(fill.values).astype(np.int64).ravel()
        n = int(args[0][0].prod()) if args[0][0].size else 1
        return np.full(n, v[0]), np.ones(n, bool)
    ops = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Equal": np.equal}
    if node.op in ops:
        (a, ka), (b, kb) = args
        return ops[node.op](a, b).astype(np.int64), ka & kb
    if node.op == "Where":
        (c, kc), (a, ka), (b, kb) = args
        c = c.astype(bool)
        return np.where(c, a, b), kc & np.where(c, ka, kb)
    return None


def _nonnegative(t: gs.Tensor) -> bool:
    """Whether ``t`` is TopK indices (through value-preserving ops) or a non-negative constant."""
    for _ in range(16):
        if isinstance(t, gs.Constant):
            return bool(np.all(np.asarray(t.values) >= 0))
        node = t.inputs[0] if len(t.inputs) == 1 else None
        if node is None:
            return False
        if node.op == "TopK":
            return t is node.outputs[1]
        if node.op not in _PASS_VALUES - {"Cast"}:
            return False
        t = node.inputs[0]
    return False


# -- rewriting -----------------------------------------------------------------------------------


class _Builder:
    """Appends nodes named after one output tensor."""

    def __init__(self, graph: gs.Graph, base: str) -> None:
        self.graph, self.base = graph, base

    def var(self, name: str, dtype: object, shape: list | None) -> gs.Variable:
        return gs.Variable(unique_name(self.graph, f"{self.base}_{name}"), dtype=dtype, shape=shape)

    def const(self, name: str, value: object, dtype: object) -> gs.Constant:
        return gs.Constant(unique_name(self.graph, f"{self.base}_{name}"), np.asarray(value, dtype=dtype))

    def add(self, op: str, inputs: list[gs.Tensor], y: gs.Variable, **attrs: object) -> gs.Variable:
        name = unique_name(self.graph, f"{y.name}_{op.lower()}")
        self.graph.nodes.append(gs.Node(op, name=name, attrs=attrs, inputs=inputs, outputs=[y]))
        return y

    def dim(self, t: gs.Tensor, axis: int, dtype: object) -> gs.Tensor:
        """Dim ``axis`` of ``t`` as a scalar of ``dtype``: a constant when static, else Shape->Gather."""
        size = t.shape[axis]
        if isinstance(size, int):
            return self.const(f"dim{axis}", size, dtype)
        shape = self.add("Shape", [t], self.var("shape", np.int64, [len(t.shape)]))
        pick = self.const(f"axis{axis}", axis, np.int64)
        y = self.add("Gather", [shape, pick], self.var(f"dim{axis}", np.int64, []), axis=0)
        if np.dtype(dtype) != np.int64:
            y = self.add("Cast", [y], self.var(f"dim{axis}_cast", dtype, []), to=_onnx_type(dtype))
        return y


def _too_many_rows(data: gs.Tensor, dtype: np.dtype) -> bool:
    """Whether the flat view's row numbers (B*N) might not fit ``dtype``."""
    b, n = data.shape[0], data.shape[1]
    if not isinstance(n, int):
        return True
    limit = np.iinfo(dtype).max
    return n > limit or (isinstance(b, int) and b * n > limit)


def _onnx_type(dtype: object) -> int:
    from onnx import helper

    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _rewrite(graph: gs.Graph, node: gs.Node, idx: gs.Tensor, index_dtype: np.dtype) -> None:
    data, out = node.inputs[0], node.outputs[0]
    n, d = data.shape[1], data.shape[2]
    b, k = idx.shape[0], idx.shape[1]
    dtype = idx.dtype if idx.dtype is not None else np.int64
    g = _Builder(graph, out.name)
    # rows (B,k): idx without its unit last axis (skipping an Unsqueeze that added it)
    producer = idx.inputs[0] if len(idx.inputs) == 1 else None
    if producer is not None and producer.op == "Unsqueeze" and axes_of(producer) in ([2], [-1]):
        rows = producer.inputs[0]
    else:
        rows = g.var("rows", dtype, [b, k])
        make_squeeze(graph, idx, [2], rows)
    source = rows  # its dim 0 is the indices' batch
    if np.dtype(dtype) != index_dtype and not _too_many_rows(data, index_dtype):
        # int64 -> int32 is exact: every index is below N, every flat row below B*N
        rows = g.add("Cast", [rows], g.var("rows_cast", index_dtype, [b, k]), to=_onnx_type(index_dtype))
        dtype = index_dtype
    if not _nonnegative(idx):
        # Mod (fmod=0) takes the divisor's sign: i in [-N, N) -> i + N*(i < 0) in [0, N)
        rows = g.add("Mod", [rows, g.dim(data, 1, dtype)], g.var("wrapped", dtype, [b, k]))
    # offsets (B,1) = arange(B)*N: indices batch b reads rows b*N .. b*N+N-1 of the flat view
    if isinstance(b, int) and isinstance(n, int):
        offsets: gs.Tensor = g.const("offsets", (np.arange(b) * n).reshape(b, 1), dtype)
    else:
        zero, one = g.const("zero", 0, np.int64), g.const("one", 1, np.int64)
        offsets = g.add("Range", [zero, g.dim(source, 0, np.int64), one], g.var("range", np.int64, [b]))
        offsets = g.add("Mul", [offsets, g.dim(data, 1, np.int64)], g.var("starts", np.int64, [b]))
        if np.dtype(dtype) != np.int64:
            offsets = g.add("Cast", [offsets], g.var("starts_cast", dtype, [b]), to=_onnx_type(dtype))
        column = g.const("column", [-1, 1], np.int64)
        offsets = g.add("Reshape", [offsets, column], g.var("offsets", dtype, [b, 1]))
    rows = g.add("Add", [rows, offsets], g.var("flat_rows", dtype, [b, k]))
    # data (B,N,D) -> (B*N, D); Gather(axis 0) -> (B,k,D), written to the original output
    static = isinstance(data.shape[0], int) and isinstance(n, int)
    flat_shape = g.const("flat_shape", [-1, d], np.int64)
    flat = g.add(
        "Reshape", [data, flat_shape], g.var("flat", data.dtype, [data.shape[0] * n, d] if static else None)
    )
    node.outputs.clear()
    g.add("Gather", [flat, rows], out, axis=0)
