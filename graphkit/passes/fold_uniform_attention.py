"""fold_uniform_attention: an attention map whose logits are provably flat -> the constant 1/N.

Before (graph attention, seed-models.md §2.3 steps 5 and 7; the HS-GAL node and master maps)::

    e = Tanh(att_proj(x_i * x_j))                # every element in [-1, 1]
    z = MatMul(e, att_weight) / temperature      # |z| <= sum|att_weight| / temperature
    A = Softmax<axis=-2>(z)                      # opset < 13: Transpose -> Softmax -> Transpose
    y = MatMul(Squeeze(A), x)

After (when the logits lie in an interval of width w <= tolerance)::

    y = MatMul(1/N, x)                           # N: the length the Softmax normalises over

Whether a map is uniform is decided from the weights alone, by interval arithmetic: bounds
start at bounded sources (constants, ConstantOfShape, Tanh in [-1,1], Sigmoid and Softmax in
[0,1], Clip with constant limits) and flow forward through MatMul/Gemm (per output column
``[sum_k min(lo*w_k, hi*w_k), sum_k max(lo*w_k, hi*w_k)]``, plus the bias), Add/Sub/Mul/Div,
Relu/Neg/Abs, ops that only move or select values (Slice, Reshape, Transpose, Squeeze,
Unsqueeze, Flatten, Concat, Split, Expand, Gather*, Tile, Reduce{Max,Min,Mean}, Identity, Cast)
and ScatterND/ScatterElements (the union of the data's and the updates' bounds). Inputs are
assumed finite, so a zero weight gives an exact zero whatever it multiplies. Every arithmetic
bound is widened by the floating-point rounding bound of its dtype (gamma_K = K*u for a sum of
K terms, plus K subnormal steps for underflow); exact zeros stay exact.

The equation: if every logit of a softmax group lies in ``[c, c + w]``, then each
``p_i = 1 / sum_j exp(z_j - z_i)`` with ``|z_j - z_i| <= w``, so
``exp(-w)/N <= p_i <= exp(w)/N`` and ``|p_i - 1/N| <= (exp(w) - 1)/N``. A logit bound
``|z| <= beta`` gives ``w = 2*beta``; the pass folds when ``w <= tolerance``. At w = 0 the fold
is exact; in AASIST-L every HS-GAL attention weight is denormal (|w| ~ 1e-40, §2.4), the bound
is ~1e-39 and onnxruntime's maps are exactly fl(1/N) (1/23, 1/15, master maps included);
GAT_S/T (|w| up to 0.65) stay. In AASIST (full) the ST21 node map (att_weight11 ~ 8.8e-3) stays,
while the ST11 master map (att_weightM ~ 1.5e-5) bounds to w ~ 3.1e-7 and folds at 1e-6.

N follows the opset: before 13 a Softmax normalises over all axes from ``axis`` on (default 1),
N = their product; from 13 over the one ``axis`` (default -1). Those dims must be static. The
Softmax output, and the shape-only ops after it (Transpose, Reshape, Squeeze, Unsqueeze,
Flatten, Identity, Expand), are replaced by constants of the static shape. Where a dim is
symbolic, the constant has 1 there, and only when every reader is a MatMul or Mul whose output
shape provably stays the same under broadcasting; else the site is left alone, as are maps that
reach a graph output.

Contract: approximate. The fold changes each probability by at most (exp(tolerance) - 1)/N, but
what that does to the model's outputs depends on everything after the map (A*x scales it by
|x|, a following BatchNorm by its gain), which a local pass cannot bound, and ``tolerance`` is
a parameter: no fixed fp_reorder bound would be honest. Where the logit interval is exactly
zero, or (as in AASIST-L) far below fp32 resolution, parity shows Delta = 0; each folded site is
reported in the pass notes with N, w and the bound on |p - 1/N|. Recipes that need a hard
check set ``parity.strict_approximate``.
"""

from __future__ import annotations

import math

import numpy as np
import onnx_graphsurgeon as gs

from graphkit.errors import PassError
from graphkit.ir.graph import const_value, opset_of, unique_name
from graphkit.ir.proto import is_onnx_domain
from graphkit.passes._infra import APPROXIMATE, Example, PassResult, Sites, register_pass

Interval = tuple[float, float]
_FREE: Interval = (-math.inf, math.inf)
# ops whose output values are a selection/rearrangement of input 0's (inference semantics)
_SAME = frozenset(
    "Identity Reshape Transpose Squeeze Unsqueeze Flatten Expand Slice Split Gather GatherElements "
    "GatherND Tile ReduceMax ReduceMin ReduceMean Dropout".split()
)
_SHAPE_ONLY = frozenset("Identity Reshape Transpose Squeeze Unsqueeze Flatten Expand".split())
_DATA_SLOTS = {"Concat": None, "Max": None, "Min": None, "Sum": None, "ScatterND": (0, 2)}
_DATA_SLOTS |= {"ScatterElements": (0, 2), "Gemm": (0, 1, 2), "Clip": (0, 1, 2)}
_DATA_SLOTS |= {op: (0, 1) for op in ("Add", "Sub", "Mul", "Div", "MatMul")}
_RULED = (
    _SAME | set(_DATA_SLOTS) | {"ConstantOfShape", "Tanh", "Sigmoid", "Softmax", "Relu", "Neg", "Abs", "Cast"}
)
# logits x * 0 are exactly flat: the map folds to 1/N exactly
_FLAT = "g (float[2,3,4] x) => (float[2,3,4] y) <float c = {0}> {z = Mul(x, c) a = Softmax(z) y = Mul(a, x)}"
EXAMPLES = tuple(Example(_FLAT, opset=opset) for opset in (11, 13))  # N = 3*4 before 13, 4 from 13


@register_pass("fold_uniform_attention", contract=APPROXIMATE)
def fold_uniform_attention(graph: gs.Graph, *, tolerance: float = 1e-6, sites: Sites) -> PassResult:
    """Replace Softmax maps whose logits provably vary by at most ``tolerance`` with 1/N.

    Returns the number of Softmax nodes folded; the notes give N and the bound for each.
    """
    if not tolerance >= 0:
        raise PassError(f"tolerance must be >= 0, got {tolerance}")
    bounds, opset = _Bounds(), opset_of(graph)
    members = {id(node) for node in graph.nodes}
    outputs = {id(t) for t in graph.outputs}
    notes, undo = [], []
    for node in list(graph.nodes):
        if node.op != "Softmax" or not is_onnx_domain(node.domain):
            continue
        if not node.outputs[0].outputs and id(node.outputs[0]) not in outputs:
            continue  # a dead map
        n = _group_size(node, opset)
        if n is None:
            sites.miss(node.name, f"N is not static (logits of shape {node.inputs[0].shape})")
            continue
        lo, hi = bounds.of(node.inputs[0])
        if not hi - lo <= tolerance:
            sites.miss(node.name, f"logit width {hi - lo:.3g} > tolerance {tolerance:.3g}")
            continue
        edges = _edges(node.outputs[0], members, outputs)
        why = edges if isinstance(edges, str) else None
        if why is None and (not edges or _shared_leaf(edges)):
            why = "a reader would get two broadcast constants" if edges else "the map reaches no reader"
        if why is not None:
            sites.miss(node.name, why)
            continue
        # A map left out is folded all the same until every site has been offered, so that later
        # maps see the same bounds whichever are taken; then its readers get the map back.
        changed = _fold(graph, node, edges, n)
        if not sites.take(node.name):
            undo += changed
            continue
        what = node.name or node.outputs[0].name
        notes.append(
            f"{what}: N={n}, logit width <= {hi - lo:.3g}, |p - 1/N| <= {math.expm1(hi - lo) / n:.3g}"
        )
    for reader, slot, tensor in reversed(undo):
        reader.inputs[slot] = tensor
    return PassResult(sites=len(notes), notes=notes)


def _group_size(node: gs.Node, opset: int) -> int | None:
    """N, the number of elements one softmax normalises over (opset-dependent), if static."""
    shape = node.inputs[0].shape
    if shape is None or not shape:
        return None
    axis = int(node.attrs.get("axis", 1 if opset < 13 else -1)) % len(shape)
    dims = shape[axis:] if opset < 13 else shape[axis : axis + 1]  # < 13: coerced to 2-D at axis
    if not all(isinstance(d, int) and d > 0 for d in dims):
        return None
    return math.prod(dims)


# -- value bounds --------------------------------------------------------------------------------


def _hull(values: np.ndarray) -> Interval:
    if values.dtype.kind not in "fiub" or values.size == 0:
        return _FREE
    v = values.astype(np.float64)
    return (float(v.min()), float(v.max())) if np.all(np.isfinite(v)) else _FREE


def _mul(a: Interval, b: Interval) -> Interval:
    with np.errstate(invalid="ignore"):
        p = np.array([a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]])
    p = np.where(np.isnan(p), 0.0, p)  # 0 * inf: inputs are finite, so the product is 0
    return float(p.min()), float(p.max())


def _unit(dtype: object) -> tuple[float, float]:
    """(unit roundoff, smallest subnormal) of a float dtype; fp32's when unknown."""
    try:
        info = np.finfo(np.dtype(dtype if dtype is not None else np.float32))
    except (TypeError, ValueError):
        info = np.finfo(np.float32)
    return float(info.eps) / 2, float(info.smallest_subnormal)


def _widen(iv: Interval, magnitude: float, terms: int, dtype: object) -> Interval:
    """Enclose rounding: |fl(sum of K terms) - exact| <= gamma_K * sum|terms| + K underflows."""
    if iv == (0.0, 0.0) or not all(map(math.isfinite, iv)):
        return iv  # exact zeros stay exact; unbounded stays unbounded
    u, tiny = _unit(dtype)
    delta = terms * u / (1 - terms * u) * magnitude + terms * tiny
    return iv[0] - delta, iv[1] + delta


class _Bounds:
    """Interval bounds of tensors, computed on demand (iteratively) and memoised."""

    def __init__(self) -> None:
        self.memo: dict[int, Interval] = {}

    def of(self, tensor: gs.Tensor) -> Interval:
        # depth-first, iterative: (tensor, inputs done?) frames; ``path`` holds the ancestors
        stack, path = [(tensor, False)], set()
        while stack:
            t, ready = stack.pop()
            if id(t) in self.memo:
                continue
            if ready:
                path.discard(id(t))
                try:
                    self.memo[id(t)] = self._rule(t)
                except (AttributeError, IndexError, KeyError, TypeError, ValueError):
                    self.memo[id(t)] = _FREE  # shapes or attributes a rule cannot read
                continue
            path.add(id(t))
            stack.append((t, True))
            # an input that is also an ancestor (a cycle: an invalid graph) stays unbounded
            stack.extend((i, False) for i in self._deps(t) if id(i) not in self.memo and id(i) not in path)
        return self.memo[id(tensor)]

    @staticmethod
    def _producer(t: gs.Tensor) -> gs.Node | None:
        node = t.inputs[0] if len(t.inputs) == 1 else None
        return node if node is not None and is_onnx_domain(node.domain) else None

    def _deps(self, t: gs.Tensor) -> list[gs.Tensor]:
        node = self._producer(t)
        if node is None or isinstance(t, gs.Constant):
            return []
        if node.op not in _RULED:
            return []  # unbounded whatever its inputs: no need to look further up
        slots = _DATA_SLOTS.get(node.op, (0,))
        slots = range(len(node.inputs)) if slots is None else slots
        return [node.inputs[s] for s in slots if s < len(node.inputs) and node.inputs[s].name]

    def _in(self, node: gs.Node, slot: int) -> Interval | None:
        if slot >= len(node.inputs) or not node.inputs[slot].name:
            return None
        return self.iv(node.inputs[slot])

    def iv(self, t: gs.Tensor) -> Interval:
        return self.memo.get(id(t), _FREE)

    def _rule(self, t: gs.Tensor) -> Interval:
        value = const_value(t)
        if value is not None:
            return _hull(value)
        node = self._producer(t)
        if node is None:
            return _FREE  # a graph input or an op of another domain
        op, x = node.op, self._in(node, 0)
        if op == "ConstantOfShape":
            fill = node.attrs.get("value")
            return (0.0, 0.0) if fill is None else _hull(np.asarray(fill.values))
        if op in _SAME:
            return x if op != "Dropout" or t is node.outputs[0] else _FREE
        if op in ("Concat", "Max", "Min", "ScatterND", "ScatterElements"):
            return self._union(node)
        if op in ("Tanh", "Sigmoid", "Softmax", "Relu", "Neg", "Abs", "Clip", "Cast"):
            return self._unary(node, t, x)
        if op in ("Add", "Sub", "Mul", "Div", "Sum"):
            return self._arith(node, t)
        if op in ("MatMul", "Gemm"):
            return self._matmul(node, t)
        return _FREE

    def _union(self, node: gs.Node) -> Interval:
        if node.op in ("ScatterND", "ScatterElements"):
            if node.attrs.get("reduction", "none") not in ("none", b"none"):
                return _FREE  # add/mul/max/min combine values: not a union
            parts = [self._in(node, 0), self._in(node, 2)]
        else:
            parts = [self._in(node, i) for i in range(len(node.inputs))]
        parts = [p for p in parts if p is not None]
        if node.op == "Max":
            return max(p[0] for p in parts), max(p[1] for p in parts)
        if node.op == "Min":
            return min(p[0] for p in parts), min(p[1] for p in parts)
        return min(p[0] for p in parts), max(p[1] for p in parts)

    def _unary(self, node: gs.Node, t: gs.Tensor, x: Interval) -> Interval:
        op = node.op
        if op == "Softmax":
            return 0.0, 1.0
        if op in ("Tanh", "Sigmoid"):
            f = math.tanh if op == "Tanh" else (lambda v: 0.5 * (1 + math.tanh(v / 2)))
            low = -1.0 if op == "Tanh" else 0.0
            iv = _widen((f(x[0]), f(x[1])), max(abs(f(x[0])), abs(f(x[1]))), 4, t.dtype)  # a few ulps
            return max(low, iv[0]), min(1.0, iv[1])  # the range of the function and of fp results
        if op == "Relu":
            return max(x[0], 0.0), max(x[1], 0.0)
        if op == "Neg":
            return -x[1], -x[0]
        if op == "Abs":
            top = max(abs(x[0]), abs(x[1]))
            return (0.0 if x[0] <= 0 <= x[1] else min(abs(x[0]), abs(x[1]))), top
        if op == "Cast":
            if t.dtype is None or np.dtype(t.dtype).kind != "f":
                return _FREE
            return _widen(x, max(abs(x[0]), abs(x[1])), 1, t.dtype)
        # Clip: limits from attributes (< 11) or constant inputs
        limits = [node.attrs.get("min", -math.inf), node.attrs.get("max", math.inf)]
        for i in (1, 2):
            if i < len(node.inputs) and node.inputs[i].name:
                value = const_value(node.inputs[i])
                limits[i - 1] = float(value) if value is not None and value.size == 1 else limits[i - 1]
        return min(max(x[0], limits[0]), limits[1]), max(min(x[1], limits[1]), limits[0])

    def _arith(self, node: gs.Node, t: gs.Tensor) -> Interval:
        ivs = [self._in(node, i) for i in range(len(node.inputs))]
        if node.op in ("Add", "Sum"):
            iv = sum(p[0] for p in ivs), sum(p[1] for p in ivs)
        elif node.op == "Sub":
            iv = ivs[0][0] - ivs[1][1], ivs[0][1] - ivs[1][0]
        elif node.op == "Mul":
            iv = _mul(ivs[0], ivs[1])
        else:  # Div: by a constant without zeros, or an interval that excludes 0
            divisor = const_value(node.inputs[1])
            if divisor is not None and divisor.dtype.kind == "f" and np.all(divisor != 0):
                q = np.concatenate([ivs[0][0] / divisor.ravel(), ivs[0][1] / divisor.ravel()])
                iv = (float(q.min()), float(q.max())) if not np.isnan(q).any() else _FREE
            elif ivs[1][0] > 0 or ivs[1][1] < 0:
                iv = _mul(ivs[0], (1 / ivs[1][1], 1 / ivs[1][0]))
            else:
                return _FREE
        return _widen(iv, max(abs(iv[0]), abs(iv[1])), len(ivs) - 1, t.dtype)

    def _matmul(self, node: gs.Node, t: gs.Tensor) -> Interval:
        a, b = node.inputs[0], node.inputs[1]
        wa, wb = const_value(a), const_value(b)
        trans_a = node.op == "Gemm" and node.attrs.get("transA", 0)
        trans_b = node.op == "Gemm" and node.attrs.get("transB", 0)
        if wb is not None and wb.dtype.kind == "f" and wb.ndim >= 1:
            w = wb.T if trans_b else wb
            iv, mag, k = _through(self.iv(a), w, axis=-2 if w.ndim >= 2 else 0)
        elif wa is not None and wa.dtype.kind == "f" and wa.ndim >= 1:
            w = wa.T if trans_a else wa
            iv, mag, k = _through(self.iv(b), w, axis=-1)
        else:  # two variables: |y| <= K * max|a| * max|b|
            ma, mb = (max(map(abs, self.iv(v))) for v in (a, b))
            if ma == 0 or mb == 0:
                iv, mag, k = (0.0, 0.0), 0.0, 1
            else:
                k = a.shape[(0 if trans_a else 1) if node.op == "Gemm" else -1] if a.shape else None
                if not isinstance(k, int) or not math.isfinite(ma * mb):
                    return _FREE
                mag = k * ma * mb
                iv = (-mag, mag)
        if node.op == "Gemm":
            alpha, beta = float(node.attrs.get("alpha", 1.0)), float(node.attrs.get("beta", 1.0))
            iv, mag = _mul(iv, (alpha, alpha)), mag * abs(alpha)
            c = self._in(node, 2)
            if c is not None:
                c = _mul(c, (beta, beta))
                iv, mag = (iv[0] + c[0], iv[1] + c[1]), mag + max(abs(c[0]), abs(c[1]))
        return _widen(iv, mag, int(k) + 2, t.dtype)


def _through(x: Interval, w: np.ndarray, axis: int) -> tuple[Interval, float, int]:
    """Bounds of sum_k x_k * w_k along ``axis`` of the constant ``w``, for x_k in ``x``.

    Returns the hull over the other positions, the largest sum_k |x_k * w_k| (for rounding)
    and K.
    """
    w = w.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        ends = np.stack([x[0] * w, x[1] * w])
        ends = np.where(np.isnan(ends), 0.0, ends)  # 0 * inf = 0 (finite inputs)
        hi = ends.max(axis=0).sum(axis=axis)
        lo = ends.min(axis=0).sum(axis=axis)
        mag = np.abs(ends).max(axis=0).sum(axis=axis)
    iv = (float(lo.min()), float(hi.max())) if lo.size else (0.0, 0.0)
    return iv, float(mag.max()) if mag.size else 0.0, w.shape[axis]


# -- folding -------------------------------------------------------------------------------------


def _same(a: object, b: object) -> bool:
    return a == b and isinstance(a, (int, str)) and a != ""


def _broadcast(a: list, b: list) -> list | None:
    """numpy broadcasting of two shapes with symbolic dims; None when it cannot be proven."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x, y = (a[-i] if i <= len(a) else 1), (b[-i] if i <= len(b) else 1)
        if x == 1 or _same(x, y):
            out.append(y)
        elif y == 1:
            out.append(x)
        else:
            return None
    return out[::-1]


def _keeps_shape(node: gs.Node, slot: int, unit: list, original: list) -> bool:
    """Whether ``node`` gives the same output shape when input ``slot`` has shape ``unit``."""
    if not is_onnx_domain(node.domain) or len(node.inputs) != 2 or node.inputs[0] is node.inputs[1]:
        return False
    other, out = node.inputs[1 - slot].shape, node.outputs[0].shape
    if other is None or out is None:
        return False
    if node.op == "Mul":
        new = _broadcast(unit, list(other))
    elif node.op == "MatMul" and len(unit) >= 2 and len(other) >= 2:
        a, b = (unit, list(other)) if slot == 0 else (list(other), unit)
        k = original[-1] if slot == 0 else original[-2]  # the contracted dim must be static
        batch = _broadcast(a[:-2], b[:-2])
        new = None if batch is None or not isinstance(k, int) else [*batch, a[-2], b[-1]]
    else:
        return False
    return new is not None and len(new) == len(out) and all(map(_same, new, out))


def _edges(t: gs.Tensor, members: set[int], outputs: set[int]) -> list | str:
    """(reader, slot, constant shape, broadcast) to feed 1/N to, through shape-only ops; or why
    the map cannot be replaced by a constant."""
    if id(t) in outputs:
        return f"{t.name} is a graph output"
    if t.shape is None:
        return f"the shape of {t.name} is unknown"
    static = all(isinstance(d, int) and d >= 0 for d in t.shape)
    unit = [d if isinstance(d, int) else 1 for d in t.shape]
    edges: list = []
    readers = {id(n): n for n in t.outputs}.values()
    for node in readers:
        if id(node) not in members:
            return f"{t.name} is read inside a subgraph"
        for slot in [i for i, x in enumerate(node.inputs) if x is t]:
            if (
                node.op in _SHAPE_ONLY
                and is_onnx_domain(node.domain)
                and slot == 0
                and len(node.outputs) == 1
            ):
                further = _edges(node.outputs[0], members, outputs)
                if not isinstance(further, str):
                    edges += further
                    continue
            if static:
                edges.append((node, slot, tuple(t.shape), False))
            elif _keeps_shape(node, slot, unit, list(t.shape)):
                edges.append((node, slot, tuple(unit), True))
            else:
                name = node.name or node.outputs[0].name
                return f"{node.op} {name} needs the symbolic dims of {t.name} {list(t.shape)}"
    return edges


def _shared_leaf(edges: list) -> bool:
    """Whether a reader of a broadcast constant gets two constants (its shape was checked for one)."""
    broadcast = {id(node) for node, _, _, unit in edges if unit}
    readers = [id(node) for node, _, _, _ in edges if id(node) in broadcast]
    return len(readers) != len(set(readers))


def _fold(graph: gs.Graph, softmax: gs.Node, edges: list, n: int) -> list[tuple[gs.Node, int, gs.Tensor]]:
    """Feed 1/N to the ``edges``; returns (reader, slot, tensor it read) for each."""
    dtype = np.dtype(softmax.outputs[0].dtype if softmax.outputs[0].dtype is not None else np.float32)
    made: dict[tuple[int, ...], gs.Constant] = {}
    changed = []
    for node, slot, shape, _ in edges:
        if shape not in made:
            name = unique_name(graph, f"{softmax.outputs[0].name}_uniform")
            made[shape] = gs.Constant(name, np.full(shape, 1.0 / n, dtype=dtype))  # fl(1/N) of the dtype
        changed.append((node, slot, node.inputs[slot]))
        node.inputs[slot] = made[shape]
    return changed
