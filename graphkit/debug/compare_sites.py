"""Where each tensor of a model sits in its graph: the evidence :func:`graphkit.debug.wiring.rewritten`
weighs when ``graphkit compare`` pairs up the tensors of two models by name (model vs model).

:func:`tensor_sites` reads a :class:`~graphkit.debug.wiring.Site` per name from the graph's own
nodes; :func:`constant_digest` identifies a constant operand by its values, not its name.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable

import onnx
from onnx import numpy_helper

from graphkit.debug.wiring import Operand, Site, Use
from graphkit.ir.proto import is_onnx_domain

_VIEWS = frozenset({"Identity", "Squeeze", "Unsqueeze", "Dropout"})  # output 0 holds input 0's values
_NO_VALUE = frozenset({"Shape", "Size"})  # they read a tensor's shape only


def tensor_sites(graph: onnx.GraphProto, names: Iterable[str]) -> dict[str, Site]:
    """The :class:`~graphkit.debug.wiring.Site` of each name, from the graph's own nodes (a
    subgraph that reads a tensor is not counted among its readers)."""
    made: dict[str, tuple[onnx.NodeProto, int]] = {}
    readers: dict[str, list[onnx.NodeProto]] = {}
    consts: dict[str, onnx.TensorProto | onnx.AttributeProto] = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and is_onnx_domain(node.domain) and len(node.attribute) == 1:
            consts[node.output[0]] = node.attribute[0]
        made.update((name, (node, k)) for k, name in enumerate(node.output))
        for name in dict.fromkeys(node.input):
            readers.setdefault(name, []).append(node)
    digests: dict[str, str] = {}

    def view(node: onnx.NodeProto) -> bool:
        return node.op_type in _VIEWS and is_onnx_domain(node.domain) and bool(node.input)

    def source(name: str) -> str:  # back through the views that made it
        while name in made and made[name][1] == 0 and view(made[name][0]):
            name = made[name][0].input[0]
        return name

    def operand(name: str, me: str) -> Operand:
        s = source(name) if name else ""
        if s in consts:
            if s not in digests:
                digests[s] = constant_digest(consts[s])
            return ("const", s, digests[s])
        return ("absent",) if not s else ("self",) if s == me else ("data",)

    def use(node: onnx.NodeProto, me: str, op: str) -> Use:
        ins = list(node.input)
        while ins and not ins[-1]:  # trailing optional inputs left out
            ins.pop()
        return op, tuple(operand(i, me) for i in ins)

    @functools.cache
    def site(s: str) -> Site:
        if s in consts:
            producer: Use = ("constant", (operand(s, ""),))
        elif s in made:
            node, k = made[s]
            producer = use(node, s, f"{node.op_type}:{k}" if k else node.op_type)
        else:
            producer = (f"graph input {s}", ())
        found, todo, seen = [], [s], set()
        while todo:  # the readers of s and of its views
            name = todo.pop()
            for node in readers.get(name, ()):
                if view(node) and node.input[0] == name:
                    todo.append(node.output[0])
                elif node.op_type not in _NO_VALUE and id(node) not in seen:
                    seen.add(id(node))
                    found.append(use(node, s, node.op_type))
        return Site(producer, tuple(found))

    return {n: site(source(n)) for n in names}


def constant_digest(t: onnx.TensorProto | onnx.AttributeProto) -> str:
    """A constant's dtype, shape without its size-1 axes and a hash of its values: equal for a
    renamed copy, a lifted copy (w (O,I,K) as (O,I,1,K)) or a Constant made an initializer."""
    if isinstance(t, onnx.AttributeProto):
        if not t.HasField("t"):  # value_float, value_ints, ...: as written
            return hashlib.blake2b(t.SerializeToString(), digest_size=16).hexdigest()
        t = t.t
    data = t.raw_data
    if not data:
        a = numpy_helper.to_array(t)
        data = t.SerializeToString(deterministic=True) if a.dtype == object else a.tobytes()
    dims = [d for d in t.dims if d != 1]
    return f"{t.data_type}{dims}:" + hashlib.blake2b(data, digest_size=16).hexdigest()
