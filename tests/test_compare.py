"""graphkit.debug.compare: msit's metrics by hand, thresholds, fail reasons, and localising a divergence."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from tiny import conv1d_chain

from graphkit import testing
from graphkit.cli import main
from graphkit.data.golden import save_golden
from graphkit.debug.compare import CSV_COLUMNS, Thresholds, compare_tensor, render, write_reports
from graphkit.debug.compare_run import compare_paths
from graphkit.errors import DataError, ModelError, UsageError
from graphkit.numerics import kl_divergence
from graphkit.numerics import stats as metrics

# --- metrics, each by hand --------------------------------------------------------------------


def test_cosine_of_orthogonal_and_parallel_vectors() -> None:
    assert metrics(np.array([1.0, 0.0]), np.array([0.0, 1.0])).cosine == pytest.approx(0.0)
    assert metrics(np.array([1.0, 2, 3]), np.array([2.0, 4, 6])).cosine == pytest.approx(1.0)
    assert metrics(np.array([1.0, 2]), np.array([-1.0, -2])).cosine == pytest.approx(-1.0)
    assert metrics(np.zeros(3), np.zeros(3)).cosine == 1.0  # both all zero: equal
    assert metrics(np.zeros(3), np.ones(3)).cosine == 0.0


def test_absolute_errors_and_rmse() -> None:
    m = metrics(np.array([1.0, 2, 3, 4]), np.array([1.0, 2, 3, 6]))  # d = [0, 0, 0, 2]
    assert m.max_abs == 2.0
    assert m.mean_abs == 0.5
    assert m.rmse == pytest.approx(1.0)  # sqrt(4 / 4)


def test_relative_euclidean_distance() -> None:
    m = metrics(np.array([3.0, 4.0]), np.array([3.0, 4.5]))
    assert m.rel_euclid == pytest.approx(0.5 / 5.0)
    assert metrics(np.zeros(2), np.zeros(2)).rel_euclid == 0.0
    assert metrics(np.zeros(2), np.ones(2)).rel_euclid == math.inf


def test_relative_errors_skip_zeros_of_the_golden() -> None:
    m = metrics(np.array([1.0, 2, 0, 4]), np.array([1.5, 2, 5, 3]))  # r = [.5, 0, (g = 0) 0, .25]
    assert m.max_rel == pytest.approx(0.5)
    assert m.mean_rel == pytest.approx(0.75 / 4)
    assert m.accumulated_rel == pytest.approx(0.75)


def test_kl_of_two_known_distributions() -> None:
    want = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)  # = 0.5 ln(4/3)
    assert kl_divergence(np.array([1.0, 1.0]), np.array([1.0, 3.0])) == pytest.approx(want)
    assert kl_divergence(np.array([2.0, 2.0]), np.array([2.0, 6.0])) == pytest.approx(want)  # scale-free
    assert kl_divergence(np.array([1.0, 1.0]), np.array([1.0, 1.0])) == 0.0
    assert kl_divergence(np.array([1.0, 0.0]), np.array([1.0, 5.0])) == pytest.approx(math.log(6))


def test_kl_is_none_for_signed_or_zero_sum_data() -> None:
    assert kl_divergence(np.array([1.0, -1.0]), np.array([1.0, 1.0])) is None
    assert kl_divergence(np.array([1.0, 1.0]), np.array([1.0, -0.5])) is None
    assert kl_divergence(np.zeros(3), np.zeros(3)) is None
    assert metrics(np.array([-1.0, 2.0]), np.array([-1.0, 2.0])).kl is None


def test_mean_and_std_of_each_side() -> None:
    m = metrics(np.array([1.0, 3.0]), np.array([2.0, 2.0]))
    assert (m.golden_mean, m.golden_std, m.candidate_mean, m.candidate_std) == (2.0, 1.0, 2.0, 0.0)


def test_empty_tensors_compare_as_equal() -> None:
    m = metrics(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32))
    assert (m.cosine, m.max_abs, m.rmse, m.rel_euclid, m.kl) == (1.0, 0.0, 0.0, 0.0, None)
    row = compare_tensor("e", np.zeros((0, 3)), np.zeros((0, 3)))
    assert not row.abnormal and row.fail_reason == ""


# --- thresholds -------------------------------------------------------------------------------

PERFECT = metrics(np.array([1.0, 2.0]), np.array([1.0, 2.0]))


def test_default_thresholds_are_msits() -> None:
    assert dataclasses.asdict(Thresholds()) == {
        "cosine": 0.99,
        "rel_euclid": 0.05,
        "kl": 0.005,
        "rmse": 1.0,
        "mean_rel": 1.0,
        # graphkit's elementwise rule, reported beside msit's limits, at the recipes' default
        "elemwise": {"max_abs": 1e-4, "max_rel": None, "min_cosine": None},
        # the network outputs' pass/fail rule: graphkit's default Tolerance
        "outputs": {
            "default": {"max_abs": 1e-4, "max_rel": None, "min_cosine": 0.99999},
            "per_output": {},
            "source": "graphkit's default",
        },
    }
    assert Thresholds().tripped(PERFECT) == []


@pytest.mark.parametrize(
    ("field", "value", "text"),
    [
        ("cosine", 0.98, "cosine"),
        ("rel_euclid", 0.06, "rel-euclid"),
        ("kl", 0.006, "KL"),
        ("rmse", 1.1, "RMSE"),
        ("mean_rel", 1.1, "mean rel"),
        ("cosine", math.nan, "cosine"),
    ],
)
def test_each_threshold_trips_alone(field: str, value: float, text: str) -> None:
    tripped = Thresholds().tripped(dataclasses.replace(PERFECT, **{field: value}))
    assert len(tripped) == 1 and tripped[0].startswith(text)


def test_thresholds_at_the_limit_pass_and_can_be_overridden() -> None:
    at_limit = dataclasses.replace(PERFECT, cosine=0.99, rel_euclid=0.05, kl=0.005, rmse=1.0, mean_rel=1.0)
    assert Thresholds().tripped(at_limit) == []
    loose = dataclasses.replace(PERFECT, cosine=0.9)
    assert Thresholds(cosine=0.8).tripped(loose) == []


# --- fail reasons -----------------------------------------------------------------------------


def test_shape_mismatch_is_a_fail_reason() -> None:
    row = compare_tensor("t", np.zeros((1, 4)), np.zeros((1, 5)))
    assert row.abnormal and row.metrics is None and "shape [1, 4] vs [1, 5]" in row.fail_reason


def test_nan_in_the_candidate_is_a_fail_reason() -> None:
    row = compare_tensor("t", np.ones(4), np.array([1.0, np.nan, 1.0, np.inf]))
    assert row.abnormal and "candidate 1 NaN / 1 Inf" in row.fail_reason
    assert row.metrics is not None and row.metrics.cosine == pytest.approx(1.0)  # on the finite rest


def test_identical_non_finite_values_are_a_note_only() -> None:
    g = np.array([0.0, -np.inf, 2.0], np.float32)  # e.g. an attention mask
    row = compare_tensor("mask", g, g.copy())
    assert not row.abnormal and "identical on both sides" in row.fail_reason


def test_dtype_difference_is_noted_and_metrics_still_computed() -> None:
    g = np.linspace(1, 2, 8, dtype=np.float32)
    row = compare_tensor("t", g, g.astype(np.float16))
    assert row.fail_reason == "dtype float32 vs float16" and not row.abnormal
    assert row.metrics is not None and row.metrics.cosine > 0.9999


def test_missing_and_non_numeric_tensors() -> None:
    assert compare_tensor("t", np.ones(2), None).fail_reason == "not in the candidate"
    row = compare_tensor("s", np.array(["a"]), np.array(["a"]))
    assert row.abnormal and row.fail_reason.startswith("not numeric")


# --- models -----------------------------------------------------------------------------------


def chain(perturb_layer: int | None = None, *, batch: int | str = "B", layers: int = 5) -> onnx.ModelProto:
    """x (batch, 8) → [MatMul W_i → Tanh] × layers → y; an extra output after layer 1 is ``h``.

    ``perturb_layer`` adds noise to that layer's weight (1-based), as a bad rewrite would.
    """
    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i in range(1, layers + 1):
        w = (rng.standard_normal((8, 8)) / math.sqrt(8)).astype(np.float32)
        if i == perturb_layer:
            w = w + 0.5 * np.random.default_rng(1).standard_normal((8, 8)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes += [
            helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"], name=f"mm{i}"),
            helper.make_node("Tanh", [f"m{i}"], [f"t{i}"], name=f"tanh{i}"),
        ]
        prev = f"t{i}"
    nodes.append(helper.make_node("Constant", [], ["two"], value=numpy_helper.from_array(np.float32(2.0))))
    nodes.append(helper.make_node("Mul", [prev, "two"], ["y"], name="scale"))
    nodes.append(helper.make_node("Identity", ["t1"], ["h"], name="tap"))
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 8])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 8]),
            helper.make_tensor_value_info("h", TensorProto.FLOAT, [batch, 8]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def test_model_vs_model_localises_a_perturbed_layer(tmp_path: Path) -> None:
    a = save(chain(), tmp_path / "a.onnx")
    b = save(chain(perturb_layer=3), tmp_path / "b.onnx")
    report = compare_paths(a, b, batch=2)
    names = [r.tensor for r in report.rows]
    assert names == ["m1", "t1", "m2", "t2", "m3", "t3", "m4", "t4", "m5", "t5", "y", "h"]  # no x, w, two
    first = report.first_divergent
    assert first is not None and (first.tensor, first.op_type) == ("m3", "MatMul")
    assert not any(r.abnormal for r in report.rows[: names.index("m3")])
    assert {r.tensor for r in report.rows if r.is_output} == {"y", "h"}
    by_name = {r.tensor: r for r in report.rows}
    assert by_name["y"].abnormal and not by_name["h"].abnormal
    assert not report.outputs_ok
    assert report.counts["outputs_abnormal"] == 1
    text = render(report)
    assert "first divergent tensor: m3 (MatMul) cosine" in text and "FAIL" in text


def test_model_vs_itself_passes_and_outputs_only(tmp_path: Path) -> None:
    a = save(chain(), tmp_path / "a.onnx")
    report = compare_paths(a, a, batch=3, seed=7)
    assert report.outputs_ok and report.first_divergent is None and len(report.rows) == 12
    only = compare_paths(a, a, batch=3, outputs_only=True)
    assert [r.tensor for r in only.rows] == ["y", "h"]


def test_model_vs_model_with_a_static_batch_candidate(tmp_path: Path) -> None:
    a = save(conv1d_chain(), tmp_path / "a.onnx")
    static = conv1d_chain()
    static.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 2
    b = save(static, tmp_path / "b.onnx")
    report = compare_paths(a, b, batch=2)
    assert report.outputs_ok and len(report.rows) >= 6


def test_tensors_shape_inference_cannot_type(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import graphkit.ir.ort
    import graphkit.ir.proto

    a = save(chain(), tmp_path / "a.onnx")
    monkeypatch.setattr(graphkit.ir.proto, "infer_shapes", lambda model: model)  # inference finds nothing
    report = compare_paths(a, a, batch=2)
    assert len(report.rows) == 12 and report.counts["untyped"] == 0  # onnxruntime typed them

    real = graphkit.ir.ort.run_model

    def picky(model, feeds, outputs):  # noqa: ANN001, ANN202 - a runtime that rejects untyped outputs
        if len(outputs) > 2:
            raise graphkit.ir.ort.OrtFailure("cannot type an output")
        return real(model, feeds, outputs)

    monkeypatch.setattr(graphkit.ir.ort, "run_model", picky)
    report = compare_paths(a, a, batch=2)
    assert [r.tensor for r in report.rows] == ["y", "h"] and report.counts["untyped"] == 10
    assert "10 untyped" in render(report)


def test_symbolic_batch_needs_batch(tmp_path: Path) -> None:
    a = save(chain(), tmp_path / "a.onnx")
    with pytest.raises(UsageError, match="input 'x' has symbolic dim 'B' at axis 0: give --batch"):
        compare_paths(a, a)


def test_model_vs_golden(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32)
    y, h = testing.run(chain(), {"x": x})
    meta = {"recipe": "chain", "recipe_sha256": "0" * 64, "seed": 0, "batch": 2}
    golden = save_golden(tmp_path / "bs2.npz", inputs={"x": x}, outputs={"y": y, "h": h}, meta=meta)
    good = compare_paths(save(chain(batch=2), tmp_path / "good.onnx"), golden)
    assert good.outputs_ok and [r.tensor for r in good.rows] == ["y", "h"]
    bad = compare_paths(golden, save(chain(perturb_layer=4), tmp_path / "bad.onnx"))
    assert not bad.outputs_ok and bad.first_divergent is not None and bad.first_divergent.tensor == "y"
    assert bad.golden.startswith(str(golden))  # the golden is the reference, on either side
    fed = compare_paths(tmp_path / "good.onnx", tmp_path / "bad.onnx", inputs=golden)
    assert fed.first_divergent is not None and fed.first_divergent.tensor == "m4"


def test_model_vs_golden_with_intermediate_tensors(tmp_path: Path) -> None:
    model = chain(batch=2)
    x = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32)
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.append(helper.make_tensor_value_info("m2", TensorProto.FLOAT, [2, 8]))
    y, h, m2 = testing.run(probe, {"x": x})
    meta = {"recipe": "chain", "recipe_sha256": "", "seed": None, "batch": 2}
    golden = save_golden(
        tmp_path / "g.npz", inputs={"x": x}, outputs={"y": y, "h": h}, tensors={"m2": m2 + 0.5}, meta=meta
    )
    report = compare_paths(save(model, tmp_path / "m.onnx"), golden)
    assert [(r.tensor, r.is_output, r.abnormal) for r in report.rows] == [
        ("m2", False, True),  # topological order: the intermediate first
        ("y", True, False),
        ("h", True, False),
    ]
    assert report.outputs_ok  # an intermediate deviation alone does not fail the outputs
    assert [r.tensor for r in compare_paths(tmp_path / "m.onnx", golden, outputs_only=True).rows] == [
        "y",
        "h",
    ]


def test_bad_paths_raise_clear_errors(tmp_path: Path) -> None:
    a = save(chain(), tmp_path / "a.onnx")
    (tmp_path / "npu").mkdir()
    with pytest.raises(UsageError, match="only against a golden file"):
        compare_paths(a, tmp_path / "npu")
    with pytest.raises(ModelError, match="not found"):
        compare_paths(a, tmp_path / "missing.onnx", batch=1)
    with pytest.raises(UsageError, match="not found"):
        compare_paths(tmp_path / "golden.npz", tmp_path / "npu-typo")
    with pytest.raises(UsageError, match="--batch must be >= 1"):
        compare_paths(a, a, batch=0)
    (tmp_path / "junk.onnx").write_bytes(b"\x01\x02 not a model")
    with pytest.raises(ModelError):
        compare_paths(a, tmp_path / "junk.onnx", batch=1)
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="not a readable .npz"):
        compare_paths(a, tmp_path / "bad.npz")
    with pytest.raises(UsageError, match="--inputs and --batch"):
        compare_paths(a, tmp_path / "bad.npz", batch=2)


def test_reports_are_written_in_msit_column_order(tmp_path: Path) -> None:
    a = save(chain(), tmp_path / "a.onnx")
    b = save(chain(perturb_layer=5), tmp_path / "b.onnx")
    report = compare_paths(a, b, batch=2)
    csv_path, json_path = write_reports(report, tmp_path / "out")
    rows = list(csv.reader(csv_path.open()))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 1 + len(report.rows)
    m5 = next(r for r in rows if r[0] == "m5")
    assert m5[CSV_COLUMNS.index("IsPrecisionError")] == "True" and m5[1] == "MatMul"
    assert m5[CSV_COLUMNS.index("KullbackLeiblerDivergence")] == "n/a"  # signed data
    data = json.loads(json_path.read_text())
    assert data["first_divergent"] == "m5" and data["outputs_ok"] is False


def test_command_exit_codes_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = save(chain(), tmp_path / "a.onnx")
    b = save(chain(perturb_layer=2), tmp_path / "b.onnx")
    assert main(["-q", "compare", str(a), str(b), "--batch", "2", "-o", str(tmp_path / "r")]) == 1
    out = capsys.readouterr().out
    assert "first divergent tensor: m2 (MatMul)" in out
    assert "elementwise rule: |Δ| <= 0.0001" in out and "min tol" in out
    assert (tmp_path / "r" / "compare.csv").is_file()
    assert main(["-q", "compare", str(a), str(a), "--batch", "2", "--json", "-o", str(tmp_path / "s")]) == 0
    assert json.loads(capsys.readouterr().out)["outputs_ok"] is True
    # loose msit thresholds alone do not: the outputs still break graphkit's default tolerance
    loose = ["--cosine", "-1", "--rel-euclid", "1e9", "--kl", "1e9", "--rmse", "1e9", "--mean-rel", "1e9"]
    assert main(["-q", "compare", str(a), str(b), "--batch", "2", "-o", str(tmp_path / "t"), *loose]) == 1
    # with a wide enough tolerance too, the perturbed model passes
    wide = ["--max-abs", "1e3", "--max-rel", "0.5"]
    assert (
        main(["-q", "compare", str(a), str(b), "--batch", "2", "-o", str(tmp_path / "u"), *loose, *wide]) == 0
    )
    assert "|Δ| <= 1000 + 0.5·|ref|" in capsys.readouterr().out


def test_a_lifted_tensor_is_compared_without_its_unit_axis():
    """conv1d_to_conv2d keeps a tensor's name and adds an axis: (N,C,L) vs (N,C,1,L)."""
    from graphkit.debug.compare import compare_tensor

    g = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    row = compare_tensor("t", g, g.reshape(2, 3, 1, 4))
    assert not row.abnormal and row.metrics.cosine == pytest.approx(1.0)
    assert "compared without the size-1 axes" in row.fail_reason
    assert compare_tensor("t", g, g.reshape(2, 1, 12)).abnormal  # a real reshape is not
