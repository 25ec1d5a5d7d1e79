"""graphkit apply end to end on a tiny Conv1d model: outputs, parity stop, CLI exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import tiny
import yaml
from conftest import staging_leftovers

from graphkit import testing
from graphkit.cli import main

TESTS = Path(__file__).resolve().parent
DEFAULT_PASSES = "- conv1d_to_conv2d\n- remove_identity\n- set_batch_size\n- fold_constants"


def write_recipe(
    tmp: Path, passes: str = "", extra: dict | None = None, model: onnx.ModelProto | None = None
) -> Path:
    onnx.save(model or tiny.conv1d_chain(), tmp / "tiny.onnx")
    data = {
        "name": "tiny",
        "source": {"onnx": "tiny.onnx"},
        "inputs": {"x": {"shape": ["B", 4, 16]}},
        "outputs": ["y", "pooled"],
        "batch_sizes": [1, 3],
        "passes": yaml.safe_load(passes or DEFAULT_PASSES),
        "atc": {
            "soc_version": "Ascend310P3",
            "fusion_switches": {"UBFusion": {"TbeEltwiseFusionPass": "off"}},
        },
        **(extra or {}),
    }
    recipe = tmp / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(data, sort_keys=False))
    return recipe


def error_lines(capsys) -> list[str]:
    """The error lines on stderr: exactly one, the last line, no traceback."""
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if line.startswith("graphkit: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], lines
    assert not any("Traceback" in line for line in lines)
    return errors


@pytest.fixture(autouse=True)
def _plugin_path(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))


def test_apply_writes_models_script_and_manifest(tmp_path, capsys):
    recipe = write_recipe(tmp_path)
    out = tmp_path / "out"
    assert main(["apply", str(recipe), "-o", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["atc.sh", "fusion_switch.cfg", "manifest.json", "tiny_bs1.onnx", "tiny_bs3.onnx"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert [b["batch"] for b in manifest["batches"]] == [1, 3]
    assert manifest["passes"][0]["name"] == "conv1d_to_conv2d"
    assert manifest["passes"][0]["sites"] == 2
    for b in manifest["batches"]:
        model = onnx.load(str(out / b["file"]))
        onnx.checker.check_model(model, full_check=True)
        dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
        assert dims == [b["batch"], 4, 16]
        convs = [n for n in model.graph.node if n.op_type == "Conv"]
        assert all(len(next(a.ints for a in n.attribute if a.name == "kernel_shape")) == 2 for n in convs)
        assert b["parity"]["y"]["max_abs"] <= 1e-4
        assert f'--input_shape="x:{b["batch"]},4,16"' in b["atc_command"]
        x = np.random.default_rng(1).standard_normal((b["batch"], 4, 16)).astype(np.float32)
        ref = testing.run(tiny.conv1d_chain(), {"x": x})
        got = testing.run(model, {"x": x})
        for r, g in zip(ref, got):
            np.testing.assert_allclose(g, r, atol=1e-5)
    script = (out / "atc.sh").read_text()
    assert script.count("atc --framework=5") == 2
    assert (out / "atc.sh").stat().st_mode & 0o111
    assert json.loads((out / "fusion_switch.cfg").read_text()) == {
        "Switch": {"UBFusion": {"TbeEltwiseFusionPass": "off"}}
    }
    table = capsys.readouterr().out
    assert "conv1d_to_conv2d" in table and "worst parity" in table


def test_parity_failure_names_the_pass_and_writes_nothing(tmp_path, capsys):
    passes = "- conv1d_to_conv2d\n- pass: plugin_passes:scale_first_conv_weight\n- set_batch_size"
    recipe = write_recipe(tmp_path, passes)
    out = tmp_path / "out"
    assert main(["apply", str(recipe), "-o", str(out)]) == 1
    err = error_lines(capsys)
    assert "scale_first_conv_weight" in err[0] and "passes[1]" in err[0]
    assert "worst element" in err[0] and "tolerance |Δ| <= 0.0001" in err[0]
    assert "would pass with max_abs >=" in err[0]
    assert not out.exists() and staging_leftovers(out) == []  # no output, no staging leftovers


def test_per_batch_breach_is_localised_to_its_pass(tmp_path, capsys):
    passes = "- set_batch_size\n- pass: plugin_passes:scale_first_conv_weight\n  with: {factor: 1.5}"
    recipe = write_recipe(tmp_path, passes)
    assert main(["apply", str(recipe), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "at pass 'scale_first_conv_weight'" in err and "batch 1" in err


def test_no_parity_skips_checks(tmp_path):
    passes = "- pass: plugin_passes:scale_first_conv_weight\n- set_batch_size"
    recipe = write_recipe(tmp_path, passes)
    assert main(["apply", str(recipe), "-o", str(tmp_path / "out"), "--no-parity", "--batch", "2"]) == 0
    assert (tmp_path / "out" / "tiny_bs2.onnx").is_file()


def test_dump_passes_writes_every_intermediate(tmp_path):
    recipe = write_recipe(tmp_path)
    out = tmp_path / "out"
    assert main(["apply", str(recipe), "-o", str(out), "--dump-passes", "--batch", "2"]) == 0
    dumped = sorted(p.name for p in (out / "passes").iterdir())
    assert dumped == [
        "all_00_source.onnx",  # what the first pass got: the source (a PyTorch one: all_00_export)
        "all_01_conv1d_to_conv2d.onnx",
        "all_02_remove_identity.onnx",
        "bs2_01_set_batch_size.onnx",
        "bs2_02_fold_constants.onnx",
    ]
    start = onnx.load(str(out / "passes" / "all_00_source.onnx"))
    assert start.graph.node == tiny.conv1d_chain().graph.node  # before any pass


def test_dump_passes_names_a_pytorch_source_the_export(tmp_path, monkeypatch):
    from graphkit.pipeline import apply as apply_mod

    real = apply_mod.load_source

    def exported(*args, **kwargs):  # the ONNX source, described as a built-in model's export
        source = real(*args, **kwargs)
        source.info["kind"] = "torch"
        return source

    monkeypatch.setattr(apply_mod, "load_source", exported)
    out = tmp_path / "out"
    assert main(["apply", str(write_recipe(tmp_path)), "-o", str(out), "--dump-passes", "--batch", "2"]) == 0
    assert sorted(p.name for p in (out / "passes").iterdir())[0] == "all_00_export.onnx"


@pytest.mark.parametrize(
    "passes, message",
    [
        ("- returns_nothing_at_all", "unknown pass 'returns_nothing_at_all'"),
        ("- pass: plugin_passes:returns_nothing", "returned NoneType"),
        ("- pass: plugin_passes:break_graph", "produced an invalid model"),
        ("- pass: plugin_passes:not_a_pass", "not decorated with @graphkit.register_pass"),
        ("- pass: no_such_module:thing", "cannot import module 'no_such_module'"),
    ],
)
def test_broken_passes_give_one_line(tmp_path, capsys, passes, message):
    recipe = write_recipe(tmp_path, passes)
    assert main(["apply", str(recipe), "-o", str(tmp_path / "out")]) == 2
    err = error_lines(capsys)
    assert message in err[0], err


def test_source_is_a_corrupt_file(tmp_path, capsys):
    recipe = write_recipe(tmp_path)
    (tmp_path / "tiny.onnx").write_bytes(b"\x08\x07garbage" * 10)
    assert main(["apply", str(recipe), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "tiny.onnx" in err and "Traceback" not in err


def test_python_dash_m_graphkit(tmp_path):
    recipe = write_recipe(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "graphkit", "apply", str(recipe), "-o", str(tmp_path / "o"), "--batch", "1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "[1/2] conv1d_to_conv2d" in proc.stderr  # progress per pass
    assert "bs1 [1/2] set_batch_size" in proc.stderr  # and per batch


def test_set_implmode_reaches_every_atc_line(tmp_path):
    model = onnx.parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[B,4,16] x) => (float[B,4,16] y, float[B,4] pooled) {
        y = Sigmoid(x)
        pooled = ReduceMean<axes = [2], keepdims = 0>(y)
    }
    """)
    passes = "- pass: set_implmode\n  with: {op_types: [Sigmoid]}\n- set_batch_size"
    recipe = write_recipe(tmp_path, passes, model=model)
    out = tmp_path / "out"
    assert main(["apply", str(recipe), "-o", str(out)]) == 0
    lines = [line for line in (out / "atc.sh").read_text().splitlines() if line.startswith("atc ")]
    assert len(lines) == 2
    for line in lines:
        assert '--optypelist_for_implmode="Sigmoid"' in line
        assert "--op_select_implmode=high_performance" in line
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["atc"]["settings"]["optypelist_for_implmode"] == ["Sigmoid"]
    assert manifest["passes"][0]["sites"] == 1


@pytest.mark.parametrize("stage", ["before", "after"])
def test_a_model_onnxruntime_cannot_run_is_stopped_at_its_pass(tmp_path, capsys, stage):
    broken = "- pass: plugin_passes:add_incompatible_constant"
    passes = f"{broken}\n- set_batch_size" if stage == "before" else f"- set_batch_size\n{broken}"
    recipe = write_recipe(tmp_path, passes)
    out = tmp_path / "out"
    assert main(["apply", str(recipe), "-o", str(out)]) == 1
    err = error_lines(capsys)[0]
    assert "at pass 'add_incompatible_constant'" in err and "onnxruntime cannot run" in err, err
    assert not out.exists() and staging_leftovers(out) == []


@pytest.mark.parametrize(
    ("umask", "file_mode", "script_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)]
)
def test_written_files_get_the_mode_the_umask_gives(tmp_path, umask, file_mode, script_mode):
    """Not mkstemp's 0600: the ATC user on an NPU host must be able to read what apply wrote."""
    recipe = write_recipe(tmp_path)
    old = os.umask(umask)
    try:
        assert main(["-q", "apply", str(recipe), "-o", str(tmp_path / "out"), "--save-golden"]) == 0
    finally:
        os.umask(old)
    modes = {
        p.relative_to(tmp_path / "out").as_posix(): p.stat().st_mode & 0o777
        for p in (tmp_path / "out").rglob("*")
        if p.is_file()
    }
    assert modes.pop("atc.sh") == script_mode
    assert modes and set(modes.values()) == {file_mode}, modes
