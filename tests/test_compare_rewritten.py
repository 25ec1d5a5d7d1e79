"""graphkit compare across a rewrite: names that a fusion kept for another quantity are
"rewritten", not the first divergence; KL divergence only for distributions."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from tiny import conv1d_chain

from graphkit import testing
from graphkit.cli import main
from graphkit.debug.compare import CSV_COLUMNS, Thresholds, compare_tensor, render
from graphkit.debug.compare_run import compare_paths

BN_EPS = 1e-5  # BatchNormalization's default epsilon


def parameters(bias: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    p = {
        "w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.5,
        "s": (1 + 0.5 * rng.standard_normal(4)).astype(np.float32),  # far from 1: the BN matters
        "o": rng.standard_normal(4).astype(np.float32),
        "m": rng.standard_normal(4).astype(np.float32),
        "v": (1 + rng.random(4)).astype(np.float32),
        "w2": rng.standard_normal((5, 4, 1, 1)).astype(np.float32) * 0.5,
    }
    if bias:
        p["b"] = rng.standard_normal(4).astype(np.float32)
    return p


def conv_bn_relu(*, bias: bool = True) -> onnx.ModelProto:
    """x (N,3,8,8) → Conv 3x3 → c → BatchNormalization → n → Relu → r → Conv 1x1 → c2
    → GlobalAveragePool → Flatten → Softmax → p (N,5)."""
    return testing.build(
        f"""g (float[N,3,8,8] x) => (float[N,5] p) {{
            c = Conv<pads=[1,1,1,1]>(x, w{", b" if bias else ""})
            n = BatchNormalization(c, s, o, m, v)
            r = Relu(n)
            c2 = Conv(r, w2)
            g = GlobalAveragePool(c2)
            f = Flatten(g)
            p = Softmax(f)
        }}""",
        opset=17,
        **parameters(bias),
    )


def simplified(model: onnx.ModelProto) -> onnx.ModelProto:
    """graphkit's simplify (onnxsim): the BN folds into the Conv, whose output keeps the name c."""
    out, _ = testing.apply_pass(model, "simplify")
    assert [n.op_type for n in out.graph.node] == "Conv Relu Conv GlobalAveragePool Flatten Softmax".split()
    conv = out.graph.node[0]
    assert conv.output[0] == "c" and conv.input[1] != "w"  # c now holds the value after the BN
    return out


def perturbed(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    """The model with noise on initializer ``name`` (kept under its name), as a bad rewrite."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    [t] = [t for t in out.graph.initializer if t.name == name]
    w = numpy_helper.to_array(t)
    t.CopyFrom(
        numpy_helper.from_array(
            w + 0.5 * np.random.default_rng(1).standard_normal(w.shape).astype(w.dtype), name
        )
    )
    return out


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("bias", [True, False], ids=["conv-bias", "no-conv-bias"])
def test_the_fused_conv_is_rewritten_not_the_first_divergence(tmp_path: Path, bias: bool) -> None:
    a = save(conv_bn_relu(bias=bias), tmp_path / "a.onnx")
    b = save(simplified(conv_bn_relu(bias=bias)), tmp_path / "b.onnx")
    report = compare_paths(a, b, batch=1)
    rows = {r.tensor: r for r in report.rows}
    assert list(rows) == ["c", "r", "c2", "g", "f", "p"]  # n is gone from B
    c = rows["c"]
    assert c.status == "rewritten" and not c.abnormal
    assert c.rewritten.startswith(f"produced by Conv(·, w{', b' if bias else ''}) in A, Conv(·, ")
    assert "read by BatchNormalization(·, s, o, m, v) in A, Relu(·) in B" in c.rewritten
    assert c.metrics is not None and Thresholds().tripped(c.metrics)  # judged, it would be abnormal
    assert all(rows[t].status == "ok" for t in ("r", "c2", "g", "f", "p"))  # judged again after the fusion
    assert report.first_divergent is None and report.outputs_ok
    assert (
        report.counts["rewritten"] == 1 and report.counts["compared"] == 5 and report.counts["abnormal"] == 0
    )
    text = render(report)
    assert "rewritten (1; another quantity under the same name, not judged):" in text
    assert "  c (Conv): produced by Conv(" in text and "first divergent tensor: none" in text
    assert "5 tensors compared, 0 abnormal, 1 rewritten, 1 not in candidate" in text


def test_the_command_passes_and_writes_the_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = save(conv_bn_relu(), tmp_path / "a.onnx")
    b = save(simplified(conv_bn_relu()), tmp_path / "b.onnx")
    assert main(["-q", "compare", str(a), str(b), "--batch", "1", "-o", str(tmp_path / "r")]) == 0
    assert "c (Conv): produced by" in capsys.readouterr().out
    data = json.loads((tmp_path / "r" / "compare.json").read_text())
    assert data["first_divergent"] is None and data["counts"]["rewritten"] == 1
    assert [r["status"] for r in data["rows"]] == ["rewritten", "ok", "ok", "ok", "ok", "ok"]
    table = list(csv.DictReader((tmp_path / "r" / "compare.csv").open()))
    assert list(table[0]) == list(CSV_COLUMNS)
    assert table[0]["Status"] == "rewritten" and table[0]["IsPrecisionError"] == "False"
    assert table[0]["CompareFailReason"].startswith("rewritten: produced by Conv(")


def test_a_perturbed_weight_is_still_the_first_divergence(tmp_path: Path) -> None:
    a = save(conv_bn_relu(), tmp_path / "a.onnx")
    same_wiring = compare_paths(a, save(perturbed(conv_bn_relu(), "w"), tmp_path / "w.onnx"), batch=1)
    first = same_wiring.first_divergent
    assert first is not None and first.tensor == "c" and same_wiring.counts["rewritten"] == 0

    fused = simplified(conv_bn_relu())
    after = compare_paths(a, save(perturbed(fused, "w2"), tmp_path / "w2.onnx"), batch=1)  # after the fusion
    assert after.first_divergent is not None and after.first_divergent.tensor == "c2"
    assert [r.tensor for r in after.rows if r.rewritten] == ["c"]

    # a wrong fold: the fused tensor itself is not judged; the error shows at the next judged one
    folded = fused.graph.node[0].input[1]
    wrong = compare_paths(a, save(perturbed(fused, folded), tmp_path / "fold.onnx"), batch=1)
    assert wrong.first_divergent is not None and wrong.first_divergent.tensor == "r"
    assert (
        main(
            ["-q", "compare", str(a), str(tmp_path / "fold.onnx"), "--batch", "1", "-o", str(tmp_path / "o")]
        )
        == 1
    )


def test_a_changed_wiring_does_not_hide_a_match(tmp_path: Path) -> None:
    """BN folded by hand into a Conv that takes the BN's output name n: n is made by another
    op, but holds the same values, so it is judged (and ok)."""
    p = parameters(bias=True)
    k = p["s"] / np.sqrt(p["v"] + BN_EPS)  # Conv + BN: w' = w·k, b' = (b - m)·k + o
    fused = {"wf": p["w"] * k[:, None, None, None], "bf": (p["b"] - p["m"]) * k + p["o"], "w2": p["w2"]}
    b = testing.build(
        """g (float[N,3,8,8] x) => (float[N,5] p) {
            n = Conv<pads=[1,1,1,1]>(x, wf, bf)
            r = Relu(n)
            c2 = Conv(r, w2)
            g = GlobalAveragePool(c2)
            f = Flatten(g)
            p = Softmax(f)
        }""",
        opset=17,
        **fused,
    )
    report = compare_paths(save(conv_bn_relu(), tmp_path / "a.onnx"), save(b, tmp_path / "b.onnx"), batch=1)
    assert [(r.tensor, r.status) for r in report.rows][:2] == [("n", "ok"), ("r", "ok")]
    assert report.counts["rewritten"] == 0 and report.first_divergent is None


def test_the_ordinary_cases_compare_what_they_did(tmp_path: Path) -> None:
    a = save(conv1d_chain(), tmp_path / "a.onnx")
    names = ["c1", "r1", "n1", "c2", "y", "y_id", "pooled"]
    lifted, _ = testing.apply_pass(
        conv1d_chain(), "conv1d_to_conv2d"
    )  # same names, Unsqueeze/Squeeze at borders
    for b in (a, save(lifted, tmp_path / "lifted.onnx")):
        report = compare_paths(a, b, batch=2)
        assert [r.tensor for r in report.rows] == names and report.counts["rewritten"] == 0
        assert report.first_divergent is None
    renamed = conv1d_chain()  # a weight under another name, the same values: a copy, not a rewrite
    for node in renamed.graph.node:
        node.input[:] = ["w1_copy" if i == "w1" else i for i in node.input]
    next(t for t in renamed.graph.initializer if t.name == "w1").name = "w1_copy"
    report = compare_paths(a, save(renamed, tmp_path / "renamed.onnx"), batch=2)
    assert report.counts["rewritten"] == 0 and report.first_divergent is None


# --- KL only for distributions ----------------------------------------------------------------


def test_kl_is_reported_for_a_softmax_output_only(tmp_path: Path) -> None:
    a = save(conv_bn_relu(), tmp_path / "a.onnx")
    report = compare_paths(a, a, batch=2)
    rows = {r.tensor: r for r in report.rows}
    assert rows["p"].metrics.kl is not None  # Softmax: sums to 1 along its last axis
    assert rows["r"].metrics.kl is None  # Relu: non-negative, but no distribution
    assert rows["g"].metrics.kl is None  # signed
    line = next(x for x in render(report).splitlines() if x.startswith("r "))
    assert line.split()[7] == "-"  # the KL column (the worst table's 1-cos column is before it)


def test_kl_never_trips_for_a_tensor_that_is_no_distribution() -> None:
    relu_map = np.array([[0.5, 2.0, 0.0, 3.0], [1.0, 0.0, 4.0, 0.5]])
    far = np.array([[3.0, 0.1, 1.0, 0.2], [0.0, 2.0, 0.1, 3.0]])
    row = compare_tensor("r", relu_map, far)
    assert row.abnormal and row.metrics.kl is None and not any(t.startswith("KL") for t in row.tripped)
    probs = relu_map / relu_map.sum(axis=-1, keepdims=True)
    row = compare_tensor("p", probs, far / far.sum(axis=-1, keepdims=True))
    assert row.metrics.kl is not None and any(t.startswith("KL") for t in row.tripped)


def test_distributions_along_another_axis_and_in_float16() -> None:
    logits = np.random.default_rng(0).standard_normal((2, 200, 6))
    over_time = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)  # attention pooling: axis 1
    assert compare_tensor("att", over_time, over_time).metrics.kl == 0.0
    half = over_time.astype(np.float16)
    assert compare_tensor("att", half, half).metrics.kl is not None
    assert compare_tensor("ones", np.ones((4, 1)), np.ones((4, 1))).metrics.kl is None  # a size-1 axis
    assert compare_tensor("off", over_time * 1.01, over_time).metrics.kl is None  # sums 1.01: none
