"""Third-party style passes used by the tests (loaded as ``plugin_passes:...``)."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from graphkit import EXACT, Sites, register_pass


@register_pass("scale_first_conv_weight", contract=EXACT)
def scale_first_conv_weight(graph: gs.Graph, *, factor: float = 1.01) -> int:
    """Multiply the first Conv's weight by ``factor`` (claims to be exact; it is not)."""
    for node in graph.nodes:
        if node.op == "Conv" and isinstance(node.inputs[1], gs.Constant):
            w = node.inputs[1]
            node.inputs[1] = gs.Constant(w.name + "_scaled", (w.values * factor).astype(w.values.dtype))
            return 1
    return 0


@register_pass("returns_nothing", contract=EXACT)
def returns_nothing(graph: gs.Graph) -> int:
    """A broken pass: forgets to return its site count."""
    return None  # type: ignore[return-value]


@register_pass("break_graph", contract=EXACT)
def break_graph(graph: gs.Graph) -> int:
    """A broken pass: wires a Relu to a tensor nothing produces."""
    ghost = gs.Variable("ghost", dtype=np.float32, shape=[1])
    out = gs.Variable("ghost_out", dtype=np.float32, shape=[1])
    graph.nodes.append(gs.Node("Relu", inputs=[ghost], outputs=[out]))
    graph.outputs.append(out)
    return 1


def not_a_pass(graph: gs.Graph) -> int:
    return 0


@register_pass("guide_uniform_constants", contract=EXACT)
def guide_uniform_constants(graph: gs.Graph, *, nodes: int = 15, denominator: int = 16) -> int:
    """The Ascend guide's modify_onnx.py constant: fill the ``nodes``-node uniform attention
    maps with 1/``denominator`` (the guide uses 1/16 for the 15-node HS-GAL layers; exact is
    1/15). Runs after fold_uniform_attention, rewriting the exact 1/15 maps it left."""
    exact = np.float32(1.0 / nodes)
    sites = 0
    for node in graph.nodes:
        for i, t in enumerate(node.inputs):
            if not isinstance(t, gs.Constant) or t.values.size < nodes * nodes:
                continue
            v = t.values
            if v.dtype == np.float32 and v.shape[-1] == nodes and np.all(v == exact):
                node.inputs[i] = gs.Constant(t.name + "_guide", np.full_like(v, 1.0 / denominator))
                sites += 1
    return sites


@register_pass("add_incompatible_constant", contract=EXACT)
def add_incompatible_constant(graph: gs.Graph) -> int:
    """A broken pass: adds a constant whose shape cannot broadcast to the first Relu's output
    (the ONNX checker accepts it; onnxruntime refuses to load it)."""
    for node in graph.nodes:
        if node.op == "Relu":
            out = node.outputs[0]
            mid = gs.Variable(out.name + "_pre", dtype=out.dtype)
            node.outputs[0] = mid
            bad = gs.Constant(out.name + "_bad", np.zeros(5, dtype=np.float32))
            graph.nodes.append(gs.Node("Add", inputs=[mid, bad], outputs=[out]))
            return 1
    return 0


@register_pass("scale_after_relu", contract=EXACT)
def scale_after_relu(
    graph: gs.Graph, *, bad: int = -1, factor: float = 1.05, drift: float = 1.0, sites: Sites
) -> int:
    """Insert ``Mul(relu, drift)`` after every Relu — except the ``bad``-th, which gets
    ``factor`` (a planted wrong rewrite for ``graphkit bisect`` to find; ``drift`` != 1 makes
    every site a little wrong). Sites: the Relus, in graph order."""
    done = 0
    for i, node in enumerate([n for n in graph.nodes if n.op == "Relu"]):
        if not sites.take(node.name):
            continue
        out = node.outputs[0]
        mid = gs.Variable(out.name + "_pre", dtype=out.dtype, shape=out.shape)
        node.outputs[0] = mid
        scale = np.array(factor if i == bad else drift, dtype=np.float32)
        graph.nodes.append(gs.Node("Mul", inputs=[mid, gs.Constant(out.name + "_k", scale)], outputs=[out]))
        done += 1
    return done


@register_pass("wait_for_signal", contract=EXACT)
def wait_for_signal(graph: gs.Graph, *, seconds: float = 60.0) -> int:
    """Sleeps (a test stand-in for a long pass, to be interrupted in the middle of)."""
    import time

    time.sleep(seconds)
    return 0


@register_pass("nudge_outputs", contract=EXACT)
def nudge_outputs(graph: gs.Graph, *, offset: float = 1e-9) -> int:
    """Add ``offset`` to every graph output: the size of difference a reordered summation leaves
    where the reference is exactly zero (a stand-in for one; claims to be exact)."""
    for i, out in enumerate(list(graph.outputs)):
        mid = gs.Variable(out.name + "_pre", dtype=out.dtype, shape=out.shape)
        for node in list(out.inputs):
            node.outputs[node.outputs.index(out)] = mid
        k = gs.Constant(f"{out.name}_nudge", np.array(offset, dtype=np.float32))
        graph.nodes.append(gs.Node("Add", name=f"nudge_{i}", inputs=[mid, k], outputs=[out]))
    return len(graph.outputs)
