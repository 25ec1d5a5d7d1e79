"""The recipe's precision section and precision files: apply records the emulated om's parity
figures per batch, gates on ``precision.max_delta``, and writes keep_dtype / modify_mixlist files
beside atc.sh with the flags that name them (tiny Conv1d model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper
from test_apply import error_lines, write_recipe

from graphkit.cli import main
from graphkit.errors import AtcConfigError, RecipeError
from graphkit.recipe import load_recipe

ATC = {"soc_version": "Ascend310P3"}
# every op of the emitted tiny model, by its ONNX type: nothing computes in fp16
KEEP_ALL = "".join(
    f"OpType::{op}\n"
    for op in ("Conv", "Relu", "BatchNormalization", "Add", "Squeeze", "Unsqueeze", "ReduceMean", "Identity")
)


def apply(tmp: Path, **extra: object) -> tuple[int, Path]:
    recipe = write_recipe(tmp, extra=extra or None)
    out = tmp / "out"
    return main(["-q", "apply", str(recipe), "-o", str(out)]), out


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_apply_records_emulated_figures_per_batch(tmp_path, capsys):
    rc, out = apply(tmp_path)
    assert rc == 0
    for b in manifest(out)["batches"]:
        p = b["precision"]
        assert p["mode"] == "force_fp16" and "not measured on an NPU" in p["note"]
        assert set(p["figures"]) == set(b["parity"])  # the same shape as the fp32 figures
        y = p["figures"]["y"]
        assert 1e-5 < y["max_abs"] < 1e-2 and y["max_abs"] > b["parity"]["y"]["max_abs"]
        assert set(y) == set(b["parity"]["y"])
    text = capsys.readouterr().out
    assert "(emulated force_fp16)" in text and "emulated on CPU" in text


def test_max_delta_fails_apply_naming_batch_and_output(tmp_path, capsys):
    rc, out = apply(tmp_path, precision={"max_delta": 1e-6})
    assert rc == 1
    (line,) = error_lines(capsys)
    assert "batch 1: output 'y' moves by max |Δ|" in line and "precision.max_delta 1e-06" in line
    assert "not measured on an NPU" in line and "force_fp16" in line
    assert not (out / "manifest.json").exists()  # nothing published


def test_max_delta_met_and_emulation_skipped(tmp_path):
    rc, out = apply(tmp_path, precision={"max_delta": 0.1})
    assert rc == 0 and manifest(out)["batches"][0]["precision"]["max_delta"] == 0.1
    rc, out = apply(tmp_path, precision={"emulate": False})
    assert rc == 0 and all("precision" not in b for b in manifest(out)["batches"])


def test_no_emulate_skips_the_emulated_run(tmp_path):
    recipe, out = write_recipe(tmp_path), tmp_path / "out"
    assert main(["-q", "apply", str(recipe), "-o", str(out), "--no-emulate"]) == 0
    assert all("precision" not in b for b in manifest(out)["batches"])


def test_recipe_mode_is_emulated(tmp_path):
    rc, out = apply(tmp_path, atc={**ATC, "precision_mode": "must_keep_origin_dtype"})
    b = manifest(out)["batches"][0]
    assert rc == 0 and b["precision"]["mode"] == "must_keep_origin_dtype"
    assert b["precision"]["figures"]["y"]["max_abs"] == b["parity"]["y"]["max_abs"]  # nothing rounded


def test_keep_dtype_file_is_emulated_and_written_beside_atc_sh(tmp_path):
    (tmp_path / "keep.cfg").write_text(KEEP_ALL)
    flags = {"keep_dtype": "keep.cfg", "output_type": "FP32"}
    rc, out = apply(tmp_path, atc={**ATC, "extra_flags": flags}, precision={"max_delta": 1e-6})
    assert rc == 0  # every op kept in fp32: the emulated model is the fp32 one
    assert (out / "keep.cfg").read_text() == KEEP_ALL
    m = manifest(out)
    assert "keep.cfg" in m["files"] and m["atc"]["settings"]["extra_flags"]["keep_dtype"] == "keep.cfg"
    script = (out / "atc.sh").read_text()
    assert script.count("--keep_dtype=keep.cfg --output_type=FP32") == 2


def test_mixlist_file_is_written_with_a_mixed_mode(tmp_path):
    mix = {"black-list": {"to-add": ["Conv2D"]}}
    (tmp_path / "mix.json").write_text(json.dumps(mix))
    atc = {**ATC, "precision_mode": "allow_mix_precision", "extra_flags": {"modify_mixlist": "mix.json"}}
    rc, out = apply(tmp_path, atc=atc)
    assert rc == 0 and json.loads((out / "mix.json").read_text()) == mix
    assert "--modify_mixlist=mix.json" in (out / "atc.sh").read_text()
    assert manifest(out)["batches"][0]["precision"]["mode"] == "allow_mix_precision"


def recipe_with(tmp: Path, **extra: object) -> Path:
    return write_recipe(tmp, extra=extra)


@pytest.mark.parametrize(
    ("extra", "files", "error", "needle"),
    [
        (
            {"precision": {"max_delt": 1}},
            {},
            RecipeError,
            r"precision\.max_delt: unknown key; did you mean 'max_delta'",
        ),
        ({"precision": {"max_delta": -1}}, {}, RecipeError, r"precision\.max_delta: -1 must be positive"),
        ({"precision": {"max_delta": 1, "emulate": False}}, {}, RecipeError, "needs the emulation"),
        ({"precision": {"emulate": "yes"}}, {}, RecipeError, "expected true or false"),
        (
            {"atc": {**ATC, "extra_flags": {"keep_dtype": "k.cfg"}}},
            {"k.cfg": "OpType::Conv 2D\n"},
            RecipeError,
            "OpType:: takes one Ascend IR op type",
        ),
        (
            {"atc": {**ATC, "extra_flags": {"keep_dtype": "k.cfg"}}},
            {"k.cfg": "\n\n"},
            RecipeError,
            "names no node",
        ),
        (
            {
                "atc": {
                    **ATC,
                    "precision_mode": "allow_mix_precision",
                    "extra_flags": {"modify_mixlist": "m.json"},
                }
            },
            {"m.json": '{"black-lst": {"to-add": ["Conv2D"]}}'},
            RecipeError,
            "did you mean 'black-list'",
        ),
        (
            {
                "atc": {
                    **ATC,
                    "precision_mode": "allow_mix_precision",
                    "extra_flags": {"modify_mixlist": "m.json"},
                }
            },
            {"m.json": "{not json"},
            RecipeError,
            "invalid JSON",
        ),
        (
            {"atc": {**ATC, "precision_mode": "force_fp16", "extra_flags": {"modify_mixlist": "m.json"}}},
            {},
            AtcConfigError,
            "needs a mixed precision mode",
        ),
        ({"atc": {**ATC, "extra_flags": {"output_type": "fp32"}}}, {}, AtcConfigError, "did you mean 'FP32'"),
        (
            {"atc": {**ATC, "extra_flags": {"output_type": "y:FP16", "out_nodes": "y"}}},
            {},
            AtcConfigError,
            "node:idx:TYPE",
        ),
    ],
)
def test_precision_settings_are_validated(tmp_path, extra, files, error, needle):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(error, match=needle):
        load_recipe(recipe_with(tmp_path, **extra))


def test_a_file_not_beside_the_recipe_passes_through(tmp_path, caplog):
    recipe = load_recipe(recipe_with(tmp_path, atc={**ATC, "extra_flags": {"keep_dtype": "npu/keep.cfg"}}))
    assert recipe.atc.extra_flags["keep_dtype"] == "npu/keep.cfg"
    (tmp_path / "keep.cfg").write_text("Conv_0\n")
    recipe = load_recipe(recipe_with(tmp_path, atc={**ATC, "extra_flags": {"keep_dtype": "keep.cfg"}}))
    assert recipe.atc.extra_flags["keep_dtype"] == str((tmp_path / "keep.cfg").resolve())
    assert yaml.safe_load(recipe.path.read_text())["atc"]["extra_flags"]["keep_dtype"] == "keep.cfg"


def square_model() -> onnx.ModelProto:
    """y = (x·300)²: up to ~1e6 on N(0,1) rows, past fp16's 65504; exact in fp32."""
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "k"], ["s"]), helper.make_node("Mul", ["s", "s"], ["y"])],
        "square",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 4, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 4, 16])],
        [numpy_helper.from_array(np.array(300.0, np.float32), "k")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_an_fp16_overflow_is_reported_not_failed(tmp_path, capsys):
    extra = {
        "outputs": ["y"],
        "passes": ["set_batch_size"],
        "parity": {"tolerance": {"default": {"max_rel": 1e-5}}},
    }
    recipe = write_recipe(tmp_path, extra=extra, model=square_model())
    assert main(["apply", str(recipe), "-o", str(tmp_path / "out")]) == 0
    p = manifest(tmp_path / "out")["batches"][0]["precision"]
    assert p["non_finite_outputs"] == ["y"] and p["figures"]["y"]["max_abs"] is None
    assert "inf/NaN in y (fp16 overflow)" in capsys.readouterr().out
    json.loads((tmp_path / "out" / "manifest.json").read_text(), parse_constant=pytest.fail)  # strict JSON
