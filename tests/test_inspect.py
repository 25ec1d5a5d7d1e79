"""graphkit inspect: what describe() counts, bodies of If/Loop/Scan included."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from graphkit.ir.inspect import describe, render


def convs(prefix: str, n: int, source: str) -> tuple[str, str]:
    """n 1-D Convs in a row from ``source``: their text and the last one's output."""
    lines, last = [], source
    for i in range(n):
        lines.append(f"{prefix}{i} = Conv <kernel_shape = [3], pads = [1, 1]> ({last}, w)")
        last = f"{prefix}{i}"
    return "\n".join(lines), last


def branchy_model() -> onnx.ModelProto:
    """Twelve 1-D Convs, all inside If branches (as in silero VAD): six in the then branch, five
    in the else branch and one in an If nested there, whose other branch holds a 2-D Conv. The
    nested one has no kernel_shape and reads a weight that a Constant node makes: only the
    inferred rank of its input inside the body tells it is 1-D. No Conv in the main graph."""
    then_convs, then_out = convs("t", 6, "x")
    else_convs, else_out = convs("e", 5, "x")
    model = onnx.parser.parse_model(f"""
    <ir_version: 8, opset_import: ["" : 17]>
    m (float[1,4,16] x, bool c) => (float[1,4,16] y) {{
        y = If (c) <
            then_branch = t () => (float[1,4,16] ty) {{
                {then_convs}
                ty = Relu ({then_out})
            }},
            else_branch = e () => (float[1,4,16] ey) {{
                {else_convs}
                ey = If (c) <
                    then_branch = et () => (float[1,4,16] ety) {{
                        kn = Constant <value = float[4,4,1] {{{", ".join(["0.5"] * 16)}}}> ()
                        ety = Conv ({else_out}, kn)
                    }},
                    else_branch = ee () => (float[1,4,16] eey) {{
                        u4 = Unsqueeze ({else_out}, two)
                        ec = Conv <kernel_shape = [1, 1]> (u4, w2)
                        eey = Squeeze (ec, two)
                    }}
                >
            }}
        >
    }}""")
    rng = np.random.default_rng(0)
    for name, shape in {"w": (4, 4, 3), "w2": (4, 4, 1, 1)}.items():
        model.graph.initializer.append(
            numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
        )
    model.graph.initializer.append(numpy_helper.from_array(np.array([2], np.int64), "two"))
    onnx.checker.check_model(model, full_check=True)
    return model


def test_convs_and_ops_inside_bodies_are_counted():
    # was: 0 1-D convolutions and an op histogram of the main graph alone ({"If": 1})
    info = describe(branchy_model())
    assert info["conv1d"] == 12
    assert info["ops"]["Conv"] == 13 and info["ops"]["If"] == 2 and info["ops"]["Constant"] == 1
    assert info["nodes"] == sum(info["ops"].values()) == 19
    assert (info["subgraphs"], info["subgraph_nodes"]) == (4, 18)
    text = render(info)
    assert "19 nodes (18 in 4 subgraphs)" in text and "1-D convolutions: 12" in text


def test_a_model_without_bodies_reads_as_before():
    model = onnx.parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 17]>
    m (float[1,4,16] x) => (float[1,4,16] y) { c = Conv <pads = [1, 1]> (x, w)  y = Relu (c) }""")
    model.graph.initializer.append(numpy_helper.from_array(np.zeros((4, 4, 3), np.float32), "w"))
    info = describe(model)
    assert (info["conv1d"], info["nodes"], info["subgraphs"], info["initializers"]) == (1, 2, 0, 1)
    assert info["outputs"] == [{"name": "y", "shape": [1, 4, 16]}]
    assert render(info).startswith("opset 17, IR 8, 2 nodes, 1 initializers")
