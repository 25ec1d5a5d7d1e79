"""graphkit.ascend.precision: ATC's precision modes emulated on onnxruntime CPU, exact where
rounding is the whole story, and the fp16 overflow report."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import tiny

from graphkit import testing
from graphkit.ascend.precision import PrecisionConfig, emulate, fp16_issues, fp16_nodes
from graphkit.errors import UsageError


def r16(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float32).astype(np.float16).astype(np.float32)


MATMUL = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[2, 8] x) => (float[2, 4] y) <float[8, 4] w = {W}> {
    h = MatMul(x, w)
    y = Sigmoid(h)
}
"""


def matmul_model(w: np.ndarray) -> onnx.ModelProto:
    text = MATMUL.replace("{W}", "{" + ", ".join(f"{v:.9g}" for v in w.ravel()) + "}")
    return onnx.parser.parse_model(text)


def test_force_fp16_rounds_inputs_weights_and_outputs_and_accumulates_in_fp32():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 4)).astype(np.float32)
    x = rng.standard_normal((2, 8)).astype(np.float32)
    model = matmul_model(w)
    (got,) = testing.run(emulate(model, PrecisionConfig("force_fp16")), {"x": x})
    h = r16(r16(x).astype(np.float64) @ r16(w).astype(np.float64))  # fp16 in, fp32 accumulate, fp16 out
    want = r16(1 / (1 + np.exp(-h.astype(np.float32))))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-3)  # Sigmoid itself: fp32 on fp16 input
    assert np.array_equal(got, r16(got))  # every output value is an fp16 value
    (fp32,) = testing.run(model, {"x": x})
    assert not np.array_equal(got, fp32)


EXACT = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[2, 2, 8] x) => (float[2, 3] y) <float[3, 2, 3] w = {W}, float[3] b = {1, -2, 3},
                                         float[12, 3] m = {M}> {
    c = Conv <pads: ints = [1, 1]> (x, w, b)
    r = Relu(c)
    p = MaxPool <kernel_shape: ints = [3], pads: ints = [1, 1], strides: ints = [2]> (r)
    f = Flatten(p)
    y = MatMul(f, m)
}
"""


def test_values_fp16_holds_exactly_give_identical_results():
    rng = np.random.default_rng(1)  # small integers: fp16 holds them, their products and sums
    w, m = rng.integers(-2, 3, 18), rng.integers(-2, 3, 36)
    text = EXACT.replace("{W}", "{" + ", ".join(map(str, w)) + "}").replace(
        "{M}", "{" + ", ".join(map(str, m)) + "}"
    )
    model = onnx.parser.parse_model(text)
    x = rng.integers(-3, 4, (2, 2, 8)).astype(np.float32)
    (want,) = testing.run(model, {"x": x})
    for mode in ("force_fp16", "allow_fp32_to_fp16", "allow_mix_precision", "force_fp32"):
        (got,) = testing.run(emulate(model, PrecisionConfig(mode)), {"x": x})
        assert np.array_equal(got, want), mode


def test_must_keep_origin_dtype_changes_nothing_and_modes_differ():
    rng = np.random.default_rng(3)
    model = matmul_model(rng.standard_normal((8, 4)).astype(np.float32))
    x = rng.standard_normal((2, 8)).astype(np.float32)
    (fp32,) = testing.run(model, {"x": x})
    (same,) = testing.run(emulate(model, PrecisionConfig("must_keep_origin_dtype")), {"x": x})
    assert np.array_equal(same, fp32)
    (cube_out32,) = testing.run(emulate(model, PrecisionConfig("force_fp32")), {"x": x})
    (cube16,) = testing.run(emulate(model, PrecisionConfig("allow_fp32_to_fp16")), {"x": x})
    assert not np.array_equal(cube_out32, cube16)  # fp16 vs fp32 output of the MatMul
    assert not np.array_equal(r16(cube_out32), cube_out32)  # the Sigmoid kept fp32


def test_emulation_keeps_the_models_interface_and_passes_the_checker():
    model = tiny.conv1d_chain()
    emulated = emulate(model, PrecisionConfig())
    onnx.checker.check_model(emulated)
    assert [o.name for o in emulated.graph.output] == [o.name for o in model.graph.output]
    assert [i.name for i in emulated.graph.input] == [i.name for i in model.graph.input]


OVERFLOW = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[1, 64] x) => (float[1, 1] y, float[1, 64] z) <float k = {300.0}> {
    s = Mul(x, k)
    z = Relu(s)
    q = Mul(s, s)
    y = ReduceSum <keepdims: int = 1> (q)
}
"""


def test_a_sum_of_squares_that_overflows_fp16_is_reported_by_node():
    model = onnx.parser.parse_model(OVERFLOW)
    for i, node in enumerate(model.graph.node):
        node.name = f"n{i}_{node.op_type}"
    x = np.ones((1, 64), np.float32)  # s = 300: fine; s*s = 90000 > 65504
    issues = fp16_issues(model, PrecisionConfig(), {"x": x})
    assert [(i.node, i.kind) for i in issues] == [("n2_Mul", "overflow"), ("n3_ReduceSum", "overflow")]
    assert "becomes inf in fp16" in issues[0].describe() and "n2_Mul" in issues[0].describe()
    kept = PrecisionConfig(keep_dtype=frozenset({"n2_Mul", "n3_ReduceSum"}))
    assert fp16_issues(model, kept, {"x": x}) == []  # kept in fp32: nothing rounds them
    (y,) = testing.run(emulate(model, kept), {"x": x})[:1]
    assert np.isfinite(y).all()
    assert not np.isfinite(testing.run(emulate(model, PrecisionConfig()), {"x": x})[0]).all()
    assert fp16_issues(model, PrecisionConfig(), {"x": x / 10}) == []  # must not fire: 900 fits


def test_underflow_of_significant_values_is_reported():
    model = onnx.parser.parse_model(OVERFLOW.replace("{300.0}", "{1e-9}"))
    issues = fp16_issues(model, PrecisionConfig(), {"x": np.ones((1, 64), np.float32)})
    assert issues and all(i.kind == "underflow" for i in issues)


def test_keep_dtype_by_op_type_and_fp16_nodes():
    model = onnx.parser.parse_model(OVERFLOW)
    for i, node in enumerate(model.graph.node):
        node.name = f"n{i}"
    assert fp16_nodes(model, PrecisionConfig()) == ["n0", "n2", "n3"]  # Relu is exact in fp16
    keep = PrecisionConfig(keep_dtype=frozenset({"OpType::Mul"}))
    assert fp16_nodes(model, keep) == ["n3"]
    assert fp16_nodes(model, PrecisionConfig("allow_fp32_to_fp16")) == []  # no Cube op


def test_mixlist_moves_ops_between_lists():
    model = onnx.parser.parse_model(OVERFLOW)
    for i, node in enumerate(model.graph.node):
        node.name = f"n{i}"
    mixed = PrecisionConfig("allow_mix_precision")
    assert fp16_nodes(model, mixed) == []  # Mul is gray and reads fp32 only; ReduceSum is black
    white = PrecisionConfig("allow_mix_precision", mixlist={"white-list": {"to-add": ["Mul"]}})
    assert fp16_nodes(model, white) == ["n0", "n2"]


def test_unknown_modes_are_refused_and_v2_names_map():
    with pytest.raises(UsageError, match="emulated modes are"):
        PrecisionConfig("fp8")
    assert PrecisionConfig("mixed_float16").mode == "allow_mix_precision"
    assert PrecisionConfig("cube_fp16in_fp32out").mode == "force_fp32"


def test_keeping_every_candidate_gives_the_fp32_model_back():
    rng = np.random.default_rng(4)
    model = matmul_model(rng.standard_normal((8, 4)).astype(np.float32))
    pre = onnx.helper.make_node("Reshape", ["x0", "shape"], ["x"], name="reshape_input")
    model.graph.node.insert(0, pre)  # the input goes through an op that only moves values
    model.graph.input[0].name = "x0"
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.array([2, 8], np.int64), "shape"))
    for i, node in enumerate(model.graph.node):
        node.name = node.name or f"n{i}"
    x = rng.standard_normal((2, 8)).astype(np.float32)
    (fp32,) = testing.run(model, {"x0": x})
    keep = PrecisionConfig(keep_dtype=frozenset(fp16_nodes(model, PrecisionConfig())))
    (got,) = testing.run(emulate(model, keep), {"x0": x})
    assert np.array_equal(got, fp32)


def test_a_weight_beyond_fp16_becomes_inf_without_a_numpy_warning(recwarn):
    model = onnx.parser.parse_model(OVERFLOW.replace("{300.0}", "{1e6}"))
    for i, node in enumerate(model.graph.node):
        node.name = f"n{i}"
    emulated = emulate(model, PrecisionConfig())
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    k = next(t for t in emulated.graph.initializer if t.name == "k")
    assert np.isinf(onnx.numpy_helper.to_array(k))
    issues = fp16_issues(model, PrecisionConfig(), {"x": np.ones((1, 64), np.float32)})
    assert ("k", "overflow") in [(i.tensor, i.kind) for i in issues]
