"""The precision advisor (graphkit.debug.precision) on tiny chains with a planted fp16-sensitive node.

Every value of the harmless nodes is fp16-exact (powers of two times small integers), so only the
planted node has an fp16 error; the advisor must name it and only it, in few checks.
"""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphkit.ascend.precision import PrecisionConfig, emulate
from graphkit.debug._precision_gates import ParityGate
from graphkit.debug.precision import KEEP_DTYPE_FILE, advise, render
from graphkit.numerics import Tolerance

WIDTH = 8
FEED = {"x": np.stack([np.full(WIDTH, 1.0), np.full(WIDTH, 3.0)]).astype(np.float32)}
TOL = {"y": Tolerance(max_abs=1e-3, max_rel=None, min_cosine=None)}


def chain(n: int, planted: dict[int, str], *, weight: float = 1000.1) -> onnx.ModelProto:
    """x (2, WIDTH) → n nodes alternating ×2 and ×0.5 (exact in fp16) → y; at index i of
    ``planted`` a sensitive node instead: 'cancel' (x @ W, W = weight·I - 1000·shift: 1000.1
    rounds to 1000 in fp16 and the 0.1·x left cancels) or 'overflow' (×1e5 then ×1e-5: the
    value between them is beyond 65504, so both must stay fp32)."""
    nodes, inits, cur = [], [], "x"
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    half = numpy_helper.from_array(np.array(0.5, np.float32), "half")
    inits += [two, half]
    for i in range(n):
        out = f"t{i}"
        kind = planted.get(i)
        if kind == "cancel":
            w = weight * np.eye(WIDTH) - 1000.0 * np.roll(np.eye(WIDTH), 1, axis=1)
            inits.append(numpy_helper.from_array(w.astype(np.float32), f"w{i}"))
            nodes.append(helper.make_node("MatMul", [cur, f"w{i}"], [out], name=f"planted{i}"))
        elif kind == "overflow":
            inits.append(numpy_helper.from_array(np.array(1e6, np.float32), f"big{i}"))
            inits.append(numpy_helper.from_array(np.array(1e-6, np.float32), f"small{i}"))
            nodes.append(helper.make_node("Mul", [cur, f"big{i}"], [f"{out}a"], name=f"planted{i}"))
            nodes.append(helper.make_node("Mul", [f"{out}a", f"small{i}"], [out], name=f"planted{i}b"))
        else:
            nodes.append(helper.make_node("Mul", [cur, "two" if i % 2 else "half"], [out], name=f"n{i}"))
        cur = out
    nodes.append(helper.make_node("Identity", [cur], ["y"], name="out"))
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, WIDTH])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def run(model: onnx.ModelProto, gate=None):
    gate = gate or ParityGate(model, [FEED], TOL)
    return advise(model, PrecisionConfig("force_fp16"), gate, FEED, gate_name="parity")


def test_exact_model_is_exact_under_emulation():
    import onnxruntime as ort

    model = chain(12, {})
    ref = ort.InferenceSession(model.SerializeToString()).run(None, FEED)[0]
    emu = emulate(model, PrecisionConfig("force_fp16"))
    got = ort.InferenceSession(emu.SerializeToString()).run(None, FEED)[0]
    assert np.array_equal(ref, got)


@pytest.mark.parametrize("n", [16, 64])
def test_finds_the_planted_cancellation_in_few_checks(n):
    advice = run(chain(n, {n // 3: "cancel"}))
    assert advice.found and advice.kept == [f"planted{n // 3}"] and advice.kept_types == ["MatMul"]
    assert advice.checks <= 2 * math.log2(n) + 3
    assert not advice.before.ok and advice.after.ok and advice.after.figure < 1e-3
    assert advice.ranking[0][0] == f"planted{n // 3}"


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
def test_finds_an_overflow_and_the_node_that_scales_it_back():
    advice = run(chain(32, {5: "overflow"}))
    assert advice.found and advice.kept == ["planted5", "planted5b"]
    assert "inf" in render(advice) and advice.checks <= 2 * math.log2(32) + 3


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
def test_two_planted_sites():
    advice = run(chain(64, {10: "cancel", 40: "overflow"}))
    assert advice.kept == ["planted10", "planted40", "planted40b"]
    assert advice.checks <= 2 * math.log2(64) + 4


def test_a_model_fine_in_fp16_keeps_nothing():
    advice = run(chain(32, {7: "cancel"}, weight=1000.0))  # 1000 is exact in fp16
    assert advice.found and advice.kept == [] and advice.checks == 1
    assert "nothing to keep" in render(advice)


def test_when_even_all_fp32_fails_it_says_so():
    model = chain(16, {4: "cancel"})
    other = chain(16, {4: "cancel"}, weight=1000.5)  # a reference no precision setting reaches
    advice = run(model, ParityGate(other, [FEED], TOL))
    assert not advice.found and advice.kept == []
    assert "even with every node in fp32" in render(advice)


def test_cli_writes_keep_dtype_cfg(tmp_path, capsys):
    from test_apply import write_recipe

    from graphkit.cli import main

    recipe = write_recipe(
        tmp_path,
        passes="[]",
        extra={"batch_sizes": [2], "inputs": {"x": {"shape": ["B", 4, 16], "value": 0.5}}},
        model=_recipe_model(),
    )
    out = tmp_path / "out"
    assert main(["apply", str(recipe), "-o", str(out)]) == 0
    capsys.readouterr()
    code = main(["precision", str(recipe), "--models", str(out), "--max-abs", "1e-3", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["kept"] == ["planted3"] and "not measured on an NPU" in report["note"]
    assert (out / KEEP_DTYPE_FILE).read_text() == "planted3\n"


def _recipe_model() -> onnx.ModelProto:
    """The cancelling chain with write_recipe's interface: x (B, 4, 16) → y, pooled."""
    from onnx import shape_inference

    w = 1000.1 * np.eye(16) - 1000.0 * np.roll(np.eye(16), 1, axis=1)
    nodes = [
        helper.make_node("Mul", ["x", "two"], ["a"], name="n0"),
        helper.make_node("Mul", ["a", "half"], ["b"], name="n1"),
        helper.make_node("Relu", ["b"], ["c"], name="n2"),
        helper.make_node("MatMul", ["c", "w"], ["y"], name="planted3"),
        helper.make_node("ReduceMax", ["y"], ["pooled"], name="n4", axes=[2], keepdims=0),
    ]
    inits = [
        numpy_helper.from_array(np.array(2.0, np.float32), "two"),
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
        numpy_helper.from_array(w.astype(np.float32), "w"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 4, 16])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 4, 16]),
            helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["B", 4]),
        ],
        inits,
    )
    return shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
