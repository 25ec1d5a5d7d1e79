"""graphkit compare fails when a network output breaks its tolerance, not only msit's limits.

The tolerance is ``--max-abs/--max-rel`` when given, else the recipe's (the manifest.json of the
apply output folder the files come from), else graphkit's default Tolerance(). Intermediates
keep being reported with msit's abnormal counts.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from test_apply import write_recipe

from graphkit.cli import main
from graphkit.debug.compare_run import compare_paths
from graphkit.ir.ort import session


def chain(scale: float = 0.0, *, layers: int = 8, batch: int | str = "B") -> onnx.ModelProto:
    """x (batch, 16) → [MatMul W_i → Tanh] × layers → y; ``scale`` multiplies every weight by
    (1 + scale): a rewrite that is off by a little everywhere, as a Conv rewrite in fp16."""
    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i in range(layers):
        w = (rng.standard_normal((16, 16)) / math.sqrt(16)).astype(np.float32) * np.float32(1 + scale)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes += [
            helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"]),
            helper.make_node("Tanh", [f"m{i}"], [f"t{i}"]),
        ]
        prev = f"t{i}"
    nodes.append(helper.make_node("Identity", [prev], ["y"]))
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 16])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def stderr_lines(capsys: pytest.CaptureFixture[str]) -> tuple[str, list[str]]:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return captured.out, captured.err.strip().splitlines()


def test_a_rewrite_within_msit_limits_but_beyond_the_tolerance_fails(tmp_path, capsys):
    a = save(chain(), tmp_path / "a.onnx")
    b = save(chain(3e-3), tmp_path / "b.onnx")
    report = compare_paths(a, b, batch=4)
    y = next(r for r in report.rows if r.is_output)
    assert not y.abnormal and y.metrics is not None and y.metrics.cosine > 0.99  # msit: fine
    assert 1e-4 < y.metrics.max_abs < 1e-2

    out = tmp_path / "r"
    assert main(["-q", "compare", str(a), str(b), "--batch", "4", "-o", str(out)]) == 1
    text, err = stderr_lines(capsys)
    [line] = [e for e in err if e.startswith("graphkit: compare failed: ")]
    assert "output 'y' breaks the tolerance |Δ| <= 0.0001, cosine >= 0.99999 (graphkit's default)" in line
    assert f"max|Δ| {y.metrics.max_abs:.3g}" in line and "would pass with max_abs >= " in line
    assert "network outputs: 0/1 within thresholds and tolerance: FAIL" in text
    assert "FAIL: output 'y' breaks" in text
    # the report is written, and says the same
    data = json.loads((out / "compare.json").read_text())
    assert data["outputs_ok"] is False and data["counts"]["outputs_beyond_tolerance"] == 1
    assert data["output_failures"] == [line.removeprefix("graphkit: compare failed: ")]
    assert (out / "compare.csv").read_text().count("\n") == 1 + len(report.rows)
    # intermediates are still reported as before (msit's limits, not the tolerance)
    assert data["counts"]["abnormal"] == 0 and len(data["rows"]) == 17


def test_the_tolerance_that_would_pass_passes(tmp_path, capsys):
    a = save(chain(), tmp_path / "a.onnx")
    b = save(chain(3e-3), tmp_path / "b.onnx")
    need = compare_paths(a, b, batch=4).output_failures[0].split("would pass with max_abs >= ")[1]
    need_abs = float(need.split()[0]) * 1.01
    args = ["-q", "compare", str(a), str(b), "--batch", "4", "-o", str(tmp_path / "r")]
    assert main([*args, "--max-abs", f"{need_abs:g}"]) == 0
    text, err = stderr_lines(capsys)
    assert not err and "(--max-abs/--max-rel)" in text and ": PASS" in text


def test_must_not_fire_on_an_equal_or_a_float_noise_candidate(tmp_path, capsys):
    a = save(chain(), tmp_path / "a.onnx")
    same = save(chain(1e-7), tmp_path / "same.onnx")  # float32 rounding of the weights
    for b in (a, same):
        assert main(["-q", "compare", str(a), str(b), "--batch", "4", "-o", str(tmp_path / b.stem)]) == 0
        text, err = stderr_lines(capsys)
        assert not err and "within thresholds and tolerance: PASS" in text
        assert json.loads((tmp_path / b.stem / "compare.json").read_text())["output_failures"] == []


def test_json_mode_keeps_stdout_json_and_says_why_on_stderr(tmp_path, capsys):
    a = save(chain(), tmp_path / "a.onnx")
    b = save(chain(3e-3), tmp_path / "b.onnx")
    assert main(["-q", "compare", str(a), str(b), "--batch", "4", "--json", "-o", str(tmp_path / "r")]) == 1
    text, err = stderr_lines(capsys)
    assert json.loads(text)["output_failures"][0].startswith("output 'y' breaks")
    assert len(err) == 1 and err[0].startswith("graphkit: compare failed: output 'y'")


# --- the recipe's tolerance, from the apply output folder's manifest.json -------------------------


def applied(tmp: Path, tolerance: dict | None, name: str = "out") -> Path:
    """`graphkit apply --save-golden` of the tiny recipe with ``parity.tolerance``."""
    work = tmp / f"{name}-recipe"
    work.mkdir()
    extra = {"parity": {"tolerance": tolerance}} if tolerance else None
    out = tmp / name
    assert main(["-q", "apply", str(write_recipe(work, extra=extra)), "-o", str(out), "--save-golden"]) == 0
    return out


def npu_outputs(out: Path, folder: Path, factor: float) -> Path:
    """The bs3 model's outputs on the golden inputs, ``pooled`` × ``factor``, as ais_bench writes."""
    x = np.fromfile(out / "golden" / "bs3" / "x" / "x0.bin", dtype="<f4").reshape(3, 4, 16)
    y, pooled = session((out / "tiny_bs3.onnx").read_bytes()).run(["y", "pooled"], {"x": x})
    stamp = folder / "2024_01_01-12_00_00"
    stamp.mkdir(parents=True)
    y.astype("<f4").tofile(stamp / "x0_0.bin")
    (pooled * np.float32(factor)).astype("<f4").tofile(stamp / "x0_1.bin")
    return folder


def test_the_recipe_tolerance_of_the_output_folder_applies(tmp_path, capsys):
    out = applied(tmp_path, {"default": {"max_abs": 0.05}})
    npu = npu_outputs(out, tmp_path / "npu", 1.002)
    golden = out / "golden" / "bs3.npz"
    manifest_before = (out / "manifest.json").read_bytes()
    assert main(["-q", "compare", str(golden), str(npu), "-o", str(tmp_path / "r1")]) == 0
    text, err = stderr_lines(capsys)
    assert not err and f"the recipe's parity tolerance, {out / 'manifest.json'}" in text
    assert "network outputs must pass |Δ| <= 0.05, cosine >= 0.99999" in text
    # the same golden file outside the folder: graphkit's default tolerance, which it breaks
    loose = tmp_path / "loose.npz"
    loose.write_bytes(golden.read_bytes())
    assert main(["-q", "compare", str(loose), str(npu), "-o", str(tmp_path / "r2")]) == 1
    _, err = stderr_lines(capsys)
    assert len(err) == 1 and "output 'pooled' breaks the tolerance |Δ| <= 0.0001" in err[0]
    # explicit flags override the recipe
    assert (
        main(["-q", "compare", str(golden), str(npu), "--max-abs", "1e-6", "-o", str(tmp_path / "r3")]) == 1
    )
    _, err = stderr_lines(capsys)
    assert len(err) == 1 and "|Δ| <= 1e-06 (--max-abs/--max-rel)" in err[0]
    assert (out / "manifest.json").read_bytes() == manifest_before  # compare only reads it


def test_a_per_output_tolerance_names_its_output(tmp_path, capsys):
    tolerance = {"default": {"max_abs": 0.05}, "pooled": {"max_abs": 1e-6, "min_cosine": 0.99999}}
    out = applied(tmp_path, tolerance)
    npu = npu_outputs(out, tmp_path / "npu", 1.002)
    assert main(["-q", "compare", str(out / "golden" / "bs3.npz"), str(npu), "-o", str(tmp_path / "r")]) == 1
    _, err = stderr_lines(capsys)
    [line] = err
    assert "output 'pooled' breaks the tolerance |Δ| <= 1e-06, cosine >= 0.99999" in line
    assert str(out / "manifest.json") in line and "would pass with max_abs >= " in line
    report = json.loads((tmp_path / "r" / "compare.json").read_text())
    assert report["thresholds"]["outputs"]["per_output"]["pooled"]["max_abs"] == 1e-6
    assert {r["tensor"]: r["elemwise"]["ok"] for r in report["rows"]} == {"y": True, "pooled": False}


def test_a_model_in_the_output_folder_uses_its_manifest(tmp_path, capsys):
    out = applied(tmp_path, {"default": {"max_abs": 0.05}})
    emitted = onnx.load(str(out / "tiny_bs3.onnx"))
    for t in emitted.graph.initializer:  # off by 0.2 %: within 0.05, beyond 1e-4
        if t.data_type == TensorProto.FLOAT and len(t.dims) > 1:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) * np.float32(1.002), t.name))
    golden = tmp_path / "bs3.npz"  # a copy outside the folder: only the model can point at it
    golden.write_bytes((out / "golden" / "bs3.npz").read_bytes())
    outside = save(emitted, tmp_path / "tiny_bs3.onnx")
    assert main(["-q", "compare", str(golden), str(outside), "-o", str(tmp_path / "r1")]) == 1
    _, err = stderr_lines(capsys)
    assert err and all("(graphkit's default)" in e for e in err)
    inside = save(emitted, out / "tiny_bs3_edited.onnx")
    assert main(["-q", "compare", str(golden), str(inside), "-o", str(tmp_path / "r2")]) == 0
    assert not stderr_lines(capsys)[1]


def test_a_broken_manifest_is_one_clear_line_and_writes_no_report(tmp_path, capsys):
    out = applied(tmp_path, None)
    npu = npu_outputs(out, tmp_path / "npu", 1.0)
    golden = out / "golden" / "bs3.npz"
    for text in ("{not json", json.dumps({"parity": {"tolerance": {"max_abs": "big"}}}), "[]"):
        (out / "manifest.json").write_text(text)
        report = tmp_path / "r"
        assert main(["-q", "compare", str(golden), str(npu), "-o", str(report)]) == 2
        _, err = stderr_lines(capsys)
        assert len(err) == 1 and err[0].startswith(
            f"graphkit: error: {out / 'manifest.json'}: no parity tolerance"
        )
        assert "re-run graphkit apply, or give --max-abs/--max-rel" in err[0]
        assert not report.exists()
    # explicit flags do not need it
    assert main(["-q", "compare", str(golden), str(npu), "--max-abs", "1e-4", "-o", str(report)]) == 0


def test_two_folders_with_different_tolerances_need_a_flag(tmp_path, capsys):
    one = applied(tmp_path, {"default": {"max_abs": 0.05}}, "one")
    two = applied(tmp_path, {"default": {"max_abs": 0.01}}, "two")
    a, b = one / "tiny_bs3.onnx", two / "tiny_bs3.onnx"
    assert main(["-q", "compare", str(a), str(b), "-o", str(tmp_path / "r")]) == 2
    _, err = stderr_lines(capsys)
    assert len(err) == 1 and "hold different parity tolerances (|Δ| <= 0.05" in err[0]
    assert not (tmp_path / "r").exists()
    assert main(["-q", "compare", str(a), str(b), "--max-abs", "1e-4", "-o", str(tmp_path / "r")]) == 0
    same = applied(tmp_path, {"default": {"max_abs": 0.05}}, "same")  # agreeing folders: fine
    assert main(["-q", "compare", str(a), str(same / "tiny_bs3.onnx"), "-o", str(tmp_path / "s")]) == 0
