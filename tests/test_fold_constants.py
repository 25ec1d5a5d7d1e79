import logging

import numpy as np
import onnx
import pytest
import tiny

from graphkit import testing
from graphkit.ir.graph import export_model, fold_constants, import_graph
from graphkit.testing import build


def copy(model: onnx.ModelProto) -> onnx.ModelProto:
    fresh = onnx.ModelProto()
    fresh.CopyFrom(model)  # apply_pass refreshes shape annotations of its input in place
    return fresh


def ops_anywhere(model: onnx.ModelProto) -> list[str]:
    """The op types of every node, subgraphs included."""
    found = []

    def walk(graph: onnx.GraphProto) -> None:
        for node in graph.node:
            found.append(node.op_type)
            for attr in node.attribute:
                for sub in [attr.g] if attr.HasField("g") else attr.graphs:
                    walk(sub)

    walk(model.graph)
    return found


def test_folds_constant_subgraph():
    model = build(
        """g (float[B,3] x) => (float[B,3] y) {
            a = Constant<value = float[3] {1, 2, 3}>()
            b = Constant<value = float[3] {4, 5, 6}>()
            c = Mul(a, b)
            y = Add(x, c)
        }""",
        opset=17,
    )
    expected = build(
        "g (float[B,3] x) => (float[B,3] y) { y = Add(x, c) }", opset=17, c=np.float32([4, 10, 18])
    )
    out, result = testing.apply_pass(model, "fold_constants")
    assert result.sites == 3  # two Constants and the Mul
    assert [n.op_type for n in out.graph.node] == ["Add"]
    testing.assert_same_structure(out, expected)
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(testing.run(out, {"x": x})[0], testing.run(model, {"x": x})[0])


def test_must_not_fire_on_dynamic_shape_without_batch():
    # The Reshape target depends on the symbolic batch: nothing can be folded yet.
    model = tiny.with_shape_plumbing()
    out, result = testing.apply_pass(model, "fold_constants", fold_shapes=True)
    assert "Shape" in {n.op_type for n in out.graph.node}


# -- If with a constant condition ----------------------------------------------------------------

# y, z, w = If(cond): the then branch computes y from an outer value and a nested If (on an outer
# constant), returns the graph input x as z (through an Identity the test removes: a body output
# that is an outer tensor is what remove_identity or gs's cleanup leave, the text format cannot
# say it) and a constant as w; the else branch computes all three.
CONSTANT_IF = """
<ir_version: 8, opset_import: ["" : 17]>
m (float[2,3] x) => (float[2,3] y, float[2,3] z, float[3] w) {
    c = Constant <value = bool {COND}> ()
    k = Constant <value = bool {1}> ()
    a = Relu (x)
    y, z, w = If (c) <
        then_branch = t () => (float[2,3] ty, float[2,3] tz, float[3] tk) {
            t1 = Neg (a)
            ty = If (k) <
                then_branch = tt () => (float[2,3] tty) { tty = Abs (t1) },
                else_branch = te () => (float[2,3] tey) { tey = Identity (t1) }
            >
            tz = Identity (x)
            tk = Constant <value = float[3] {1, 2, 3}> ()
        },
        else_branch = e () => (float[2,3] ey, float[2,3] ez, float[3] ek) {
            ey = Sigmoid (a)
            ez = Mul (x, a)
            ek = Constant <value = float[3] {4, 5, 6}> ()
        }
    >
}"""


@pytest.mark.parametrize("cond", [1, 0])
def test_constant_if_is_inlined_with_every_output(cond):
    # was: gs's flattening rewired every second output only (z lost its producer), and left an
    # output dangling where the branch returns an outer tensor; the model failed the checker
    model = onnx.parser.parse_model(CONSTANT_IF.replace("COND", str(cond)))
    onnx.checker.check_model(model, full_check=True)
    graph = import_graph(copy(model))
    (then,) = [n.attrs["then_branch"] for n in graph.nodes if n.op == "If"]
    then.outputs[1] = graph.inputs[0]  # tz -> x itself
    fold_constants(graph)
    out = export_model(graph.cleanup().toposort(), like=model)
    onnx.checker.check_model(out, full_check=True)
    assert "If" not in ops_anywhere(out)
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    for got, want in zip(testing.run(out, {"x": x}), testing.run(model, {"x": x})):
        np.testing.assert_array_equal(got, want)


SR_IF = """
<ir_version: 8, opset_import: ["" : 16]>
m (float[1,4] x) => (float[1,4] y, float[1,4] z, int64[1] n) {
    sr = Constant <value = int64 {16000}> ()
    ref = Constant <value = int64 {16000}> ()
    is16k = Equal (sr, ref)
    y, z, n = If (is16k) <
        then_branch = t () => (float[1,4] ty, float[1,4] tz, int64[1] tn) {
            ty = Relu (x)
            tz = Neg (ty)
            tn = Constant <value = int64[1] {256}> ()
        },
        else_branch = e () => (float[1,4] ey, float[1,4] ez, int64[1] en) {
            ey = Identity (x)
            ez = Abs (x)
            en = Constant <value = int64[1] {128}> ()
        }
    >
}"""


def test_if_on_a_bound_sample_rate_folds_away():
    # what binding a scalar input sr to 16000 leaves (silero VAD branches on sr == 16000)
    model = onnx.parser.parse_model(SR_IF)
    out, _ = testing.apply_pass(copy(model), "fold_constants")
    onnx.checker.check_model(out, full_check=True)
    assert sorted(ops_anywhere(out)) == ["Neg", "Relu"]
    x = np.random.default_rng(0).standard_normal((1, 4)).astype(np.float32)
    y, z, n = testing.run(out, {"x": x})
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    np.testing.assert_array_equal(z, -np.maximum(x, 0))
    assert n.tolist() == [256]


def test_names_inlined_into_a_body_are_unique_across_the_model():
    # In the Loop body, the If on k (constant) is inlined; its branch defines t1, which the
    # sibling If on h's sign defines too (sibling scopes may), and the outer graph defines t1_1:
    # the inlined t1 must take a name used nowhere else.
    model = onnx.parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 17]>
    m (float[2] x, int64 n) => (float[2] y, float[2] t1_1) {
        t1_1 = Neg (x)
        c = Constant <value = bool {1}> ()
        k = Constant <value = bool {1}> ()
        y = Loop (n, c, x) <
            body = b (int64 i, bool ci, float[2] h) => (bool co, float[2] h3) {
                h2 = If (k) <
                    then_branch = t () => (float[2] ty) { t1 = Abs (h)  ty = Add (t1, t1) },
                    else_branch = e () => (float[2] ey) { ey = Identity (h) }
                >
                s = ReduceSum <keepdims = 0> (h2)
                zero = Constant <value = float {0}> ()
                positive = Greater (s, zero)
                h3 = If (positive) <
                    then_branch = t2 () => (float[2] t2y) { t1 = Neg (h2)  t2y = Identity (t1) },
                    else_branch = e2 () => (float[2] e2y) { e2y = Identity (h2) }
                >
                co = Identity (ci)
            }
        >
    }""")
    onnx.checker.check_model(model, full_check=True)
    out, _ = testing.apply_pass(copy(model), "fold_constants")
    onnx.checker.check_model(out, full_check=True)
    assert ops_anywhere(out).count("If") == 1
    for x in ([-1.0, 2.0], [1.0, 2.0]):
        feed = {"x": np.array(x, np.float32), "n": np.array(3)}
        for got, want in zip(testing.run(out, feed), testing.run(model, feed)):
            np.testing.assert_array_equal(got, want)


# -- onnx-graphsurgeon's messages ----------------------------------------------------------------


def test_gs_warnings_go_to_the_log_not_stdout(capsys, caplog):
    # gs warns on export when two nodes share a name; it used to print the warning to stdout
    graph = import_graph(build("g (float[2] x) => (float[2] y) { a = Relu (x)  y = Neg (a) }"))
    for node in graph.nodes:
        node.name = "same"
    with caplog.at_level(logging.WARNING, logger="graphkit.gs"):
        export_model(graph)
    assert capsys.readouterr().out == ""
    (record,) = [r for r in caplog.records if r.name == "graphkit.gs"]
    assert record.levelno == logging.WARNING and "same" in record.getMessage()


def test_folding_messages_are_debug_records(capsys, caplog):
    # gs advises a size threshold when a fold makes a tensor over 1 MiB (here 4 MB of ones);
    # graphkit keeps what gs says while folding at DEBUG (noise to most users), off stdout
    model = build("""g (float[2] x) => (float[2] y) {
        n = Constant <value = int64[1] {1000000}> ()
        ones = ConstantOfShape <value = float[1] {1}> (n)
        s = ReduceSum <keepdims = 0> (ones)
        y = Add (x, s)
    }""")
    with caplog.at_level(logging.DEBUG, logger="graphkit.gs"):
        testing.apply_pass(model, "fold_constants")
    assert capsys.readouterr().out == ""
    (record,) = [r for r in caplog.records if r.name == "graphkit.gs"]
    assert record.levelno == logging.DEBUG and "size threshold" in record.getMessage()
