"""fold_transpose_softmax: fold Transpose -> Softmax -> inverse Transpose into one Softmax.

Before::

    x -> Transpose<perm> -> t -> Softmax<axis=a> -> s -> Transpose<perm^-1> -> y

After::

    x -> Softmax<axis=b> -> y

Exporters write a softmax over a non-last axis this way at opset < 13 (AASIST's graph attention,
seed-models.md §2.5): the Ascend guide's clear_softmax sets b = perm[a], which is right only
"because the trailing dim is 1" (§3.3 item 2). Here the fold is exact under the node's opset:

* opset >= 13: Softmax normalises over the one axis a of t, which is axis perm[a] of x (t's axis
  i is x's axis perm[i]), so b = perm[a].
* opset < 13: Softmax coerces t to 2-D [prod(t.dims < a), prod(t.dims >= a)] and normalises each
  row, i.e. jointly over x's axes S = {perm[a], ..., perm[r-1]}. The order in which the axes are
  flattened does not matter (a sum is a sum), and size-1 axes do not change the grouping, so
  Softmax<axis=b>(x) is the same exactly when S minus the size-1 axes equals {b, ..., r-1} minus
  the size-1 axes. This needs x's shape: axes of unknown size count as larger than 1 (which
  only makes the test stricter); an unknown rank refuses the fold.

Refused: either Transpose or the Softmax having another reader (or being a graph output), the
second perm not the inverse of the first, and the opset < 13 cases no axis b fits.
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from graphkit.ir.graph import opset_of, rank
from graphkit.ir.proto import is_onnx_domain
from graphkit.passes._infra import EXACT, Example, Sites, register_pass

EXAMPLES = (
    Example(  # AASIST's (B,N,N,1) map at opset 11: Softmax over t's axis 3 is Softmax<axis=2>(x)
        """g (float[B,7,7,1] x) => (float[B,7,7,1] y) {
            t = Transpose<perm=[0,1,3,2]>(x)
            s = Softmax<axis=3>(t)
            y = Transpose<perm=[0,1,3,2]>(s)
        }""",
        opset=11,
    ),
    Example(  # from opset 13, whatever the shape: axis perm[a]
        """g (float[2,3,4,5] x) => (float[2,3,4,5] y) {
            t = Transpose<perm=[0,2,3,1]>(x)
            s = Softmax<axis=1>(t)
            y = Transpose<perm=[0,3,1,2]>(s)
        }""",
    ),
)


@register_pass("fold_transpose_softmax", contract=EXACT)
def fold_transpose_softmax(graph: gs.Graph, *, sites: Sites) -> int:
    """Fold Transpose -> Softmax -> inverse Transpose into one Softmax on the untransposed tensor.

    Returns the number of Softmax nodes folded.
    """
    opset = opset_of(graph)
    outputs = {id(t) for t in graph.outputs}
    folds, used = [], {}  # used: id(Transpose) -> the Softmax whose fold removes it
    for softmax in [n for n in graph.nodes if n.op == "Softmax" and is_onnx_domain(n.domain)]:
        site = _match(softmax, outputs)
        if site is None:
            continue  # no Transpose in front: not a candidate
        if isinstance(site, str):
            sites.miss(softmax.name, site)
            continue
        first, second = site
        shared = next((t for t in site if id(t) in used), None)
        if shared is not None:
            # T -> Softmax -> T^-1 -> Softmax -> T: folding the first Softmax takes T^-1 away
            name = shared.name or shared.outputs[0].name
            sites.miss(softmax.name, f"its Transpose {name} is folded with {used[id(shared)].name}")
            continue
        axis = _folded_axis(_perm(first), softmax, first.inputs[0], opset)
        if isinstance(axis, str):
            sites.miss(softmax.name, axis)
            continue
        used[id(first)] = used[id(second)] = softmax
        if sites.take(softmax.name):
            folds.append((softmax, first, second, axis))
    for softmax, first, second, axis in folds:
        # Transpose_{perm^-1}(Softmax_a(Transpose_perm(x))) = Softmax_b(x)
        y = second.outputs[0]
        second.outputs.clear()
        softmax.inputs[0] = first.inputs[0]
        softmax.outputs[0] = y
        softmax.attrs["axis"] = axis
        first.inputs.clear()
    return len(folds)


def _match(softmax: gs.Node, graph_outputs: set[int]) -> tuple[gs.Node, gs.Node] | str | None:
    """The (Transpose, inverse Transpose) around ``softmax``, each link read once; else why not,
    or None when no Transpose writes the Softmax's input."""
    t, s = softmax.inputs[0], softmax.outputs[0]
    first = t.inputs[0] if t.inputs else None
    if first is None or first.op != "Transpose" or not is_onnx_domain(first.domain):
        return None
    if len(t.outputs) != 1 or id(t) in graph_outputs:
        return f"the Transpose output {t.name} has another reader"
    second = s.outputs[0] if len(s.outputs) == 1 else None
    if id(s) in graph_outputs or second is None:
        return f"the Softmax output {s.name} is read by {len(s.outputs)} nodes" + (
            " and is a graph output" if id(s) in graph_outputs else ""
        )
    if second.op != "Transpose" or not is_onnx_domain(second.domain):
        return f"the Softmax output is read by {second.op}, not a Transpose"
    p, q = _perm(first), _perm(second)
    if p is None or q is None:
        return "a perm is implicit and the input rank unknown"
    if len(p) != len(q) or any(q[p_i] != i for i, p_i in enumerate(p)):
        return f"perm {q} does not invert {p}"  # Transpose_q(Transpose_p(x)) = x needs q[p[i]] = i
    return first, second


def _perm(node: gs.Node) -> list[int] | None:
    if "perm" in node.attrs:
        return [int(p) for p in node.attrs["perm"]]
    r = rank(node.inputs[0])  # no perm: the axes are reversed
    return None if r is None else list(range(r - 1, -1, -1))


def _folded_axis(perm: list[int], softmax: gs.Node, x: gs.Tensor, opset: int) -> int | str:
    """The axis b with Softmax_b(x) = Transpose_perm^-1(Softmax_a(Transpose_perm(x))), else why not."""
    r = len(perm)
    if rank(x) not in (None, r):
        return f"input rank {rank(x)} does not match perm {perm}"
    a = int(softmax.attrs.get("axis", -1 if opset >= 13 else 1))
    if not -r <= a < r:
        return f"axis {a} is out of range for rank {r}"
    a %= r
    if opset >= 13:
        return perm[a]
    if x.shape is None:
        return f"opset {opset} < 13 and the input shape is unknown"  # size-1 axes decide the fold
    unit = {i for i, d in enumerate(x.shape) if d == 1}
    grouped = set(perm[a:]) - unit  # x's axes normalised jointly by the coerced Softmax
    fits = [b for b in range(r) if set(range(b, r)) - unit == grouped]
    if not fits:
        return f"at opset {opset} the Softmax normalises axes {sorted(grouped)} jointly, as no axis does"
    return perm[a] if perm[a] in fits else max(fits)
