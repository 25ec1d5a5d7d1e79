"""Inlining the If nodes whose condition is a constant: each is replaced by the branch it takes.

onnx-graphsurgeon 0.6.1 flattens such Ifs in its ``fold_constants``, wrongly: it detaches each
If output while it iterates over them (gs keeps node and tensor lists in sync, so the list
shrinks under the loop and every second output is left without a producer), leaves an output
dangling where the branch returns an outer tensor or a constant, and renames every constant the
branch reads, outer initializers included. :func:`graphkit.ir.graph.fold_constants` turns that
flattening off and calls :func:`inline_constant_ifs` between folding rounds instead.

Before::

    y, z = If(cond = true) { then: t1 = Neg(a); ty = Abs(t1); tz = outer   else: ... }

After (body-local names made unique across the model; the else branch is dropped)::

    t1_1 = Neg(a); y = Abs(t1_1); z = Identity(outer)

A branch output its own node computes is renamed to the If output it feeds (exact, no node
added); an output that is an outer tensor, a constant or a repeat of another output gets an
Identity (exact too).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx_graphsurgeon as gs

Rename = Callable[[str], str]  # a name unused anywhere in the model, from a descriptive base
_DEFAULT_DOMAINS = (None, "", "ai.onnx")


def inline_constant_ifs(graph: gs.Graph, rename: Rename) -> int:
    """Replace each If, in ``graph`` and its bodies at any depth, whose condition is a constant
    by the nodes of the branch it takes (an If that a taken branch brings along too). Returns how
    many were inlined. The graph stays topologically sorted."""
    return _inline(graph, (), rename)


def _inline(graph: gs.Graph, outer: tuple[set[int], ...], rename: Rename) -> int:
    # ids of the tensors visible here, one set per enclosing graph (not merged: a copy per body
    # would cost the outer graph's size per body); a branch tensor in none is the branch's own
    here = {id(t) for t in graph.tensors().values()}
    scope = (*outer, here)
    count, i = 0, 0
    while i < len(graph.nodes):
        node = graph.nodes[i]
        cond = _constant_cond(node)
        if cond is None:
            for sub in node.subgraphs():
                count += _inline(sub, scope, rename)
            i += 1
            continue
        taken, dropped = (node.attrs["then_branch"], node.attrs["else_branch"])[:: 1 if cond else -1]
        _detach(dropped)
        nodes = _take(node, taken, scope, rename)
        here.update(id(t) for n in nodes for t in n.outputs)
        graph.nodes[i : i + 1] = nodes  # at the If's place: inputs before, readers after
        count += 1  # i stays: the branch's first node (maybe an If itself) is looked at next
    return count


def _constant_cond(node: gs.Node) -> bool | None:
    if node.op != "If" or node.domain not in _DEFAULT_DOMAINS or not node.inputs:
        return None
    cond = node.inputs[0]
    if not isinstance(cond, gs.Constant) or cond.values.size != 1:
        return None
    return bool(np.asarray(cond.values).ravel()[0])


def _detach(graph: gs.Graph) -> None:
    """Take a dropped branch's nodes off the reader lists of the tensors they read (outer ones
    keep gs's back-references otherwise, and passes would see readers that do not exist)."""
    for node in graph.nodes:
        for sub in node.subgraphs():
            _detach(sub)
        node.inputs.clear()


def _take(node: gs.Node, branch: gs.Graph, scope: tuple[set[int], ...], rename: Rename) -> list[gs.Node]:
    """The nodes that replace ``node``: the branch's, renamed, writing the If's outputs."""

    def own(t: gs.Tensor) -> bool:  # written by the branch, or a constant of its own
        return not any(id(t) in ids for ids in scope)

    for t in branch.tensors().values():
        if own(t):
            t.name = rename(t.name)
    for n in branch.nodes:
        if n.name:
            n.name = rename(n.name)
    outputs = list(node.outputs)
    node.inputs.clear()
    node.outputs.clear()  # the If outputs lose their producer; they get a new one below
    nodes = list(branch.nodes)
    written: dict[int, gs.Variable] = {}  # id(branch output) -> the If output that replaced it
    for out, result in zip(outputs, branch.outputs):
        out.dtype = out.dtype or result.dtype
        out.shape = out.shape or result.shape
        if isinstance(result, gs.Variable) and own(result) and result.inputs and id(result) not in written:
            _replace(result, out)  # out takes the place of the branch's own output
            written[id(result)] = out
        else:
            # y = Identity(outer tensor, constant, or an output already written)
            source = written.get(id(result), result)
            identity = gs.Node("Identity", rename(f"{out.name}_identity"), inputs=[source], outputs=[out])
            nodes.append(identity)
    return nodes


def _replace(old: gs.Variable, new: gs.Variable) -> None:
    """Make the producer of ``old`` write ``new`` and every reader read ``new`` (readers in
    nested bodies included: gs shares tensor objects between a graph and its bodies)."""
    (producer,) = old.inputs
    producer.outputs[[t is old for t in producer.outputs].index(True)] = new
    for reader in list(old.outputs):
        for j, t in enumerate(reader.inputs):
            if t is old:
                reader.inputs[j] = new
