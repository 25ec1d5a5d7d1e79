"""apply --save-golden (and the NPU round trip through graphkit compare), and lint inside apply."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from test_apply import error_lines, write_recipe

from graphkit.cli import main
from graphkit.data.golden import load_golden
from graphkit.ir.ort import session

PAD_ONE = """
<ir_version: 8, opset_import: ["" : 17]>
padded (float[B, 4, 16] x) => (float[B, 4, 18] y) {
    pads = Constant <value = int64[6] {0, 0, 1, 0, 0, 1}> ()
    one = Constant <value = float {1.0}> ()
    y = Pad <mode = "constant"> (x, pads, one)
}
"""


def test_save_golden_then_compare_npu_outputs(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["-q", "apply", str(write_recipe(tmp_path)), "-o", str(out), "--save-golden"]) == 0
    golden = load_golden(out / "golden" / "bs3.npz")
    assert golden.meta["recipe_sha256"] and golden.meta["seed"] == 0 and golden.batch == 3
    assert list(golden.outputs) == ["y", "pooled"] and golden.key == "x0"
    x = np.fromfile(out / "golden" / "bs3" / "x" / "x0.bin", dtype="<f4").reshape(3, 4, 16)
    np.testing.assert_array_equal(x, golden.inputs["x"])

    # the emitted model against the golden outputs: within msit's thresholds
    assert main(["-q", "compare", str(out / "golden" / "bs3.npz"), str(out / "tiny_bs3.onnx"),
                 "-o", str(tmp_path / "c1")]) == 0  # fmt: skip

    # as if on the NPU host: run the bs3 model on x0.bin, write ais_bench BIN outputs, perturb one
    y, pooled = session((out / "tiny_bs3.onnx").read_bytes()).run(["y", "pooled"], {"x": x})
    npu = tmp_path / "npu" / "2024_01_01-12_00_00"
    npu.mkdir(parents=True)
    y.astype("<f4").tofile(npu / "x0_0.bin")
    (pooled * 1.3 + 0.5).astype("<f4").tofile(npu / "x0_1.bin")
    capsys.readouterr()
    rc = main(
        [
            "compare",
            str(out / "golden" / "bs3.npz"),
            str(tmp_path / "npu"),
            "-o",
            str(tmp_path / "c2"),
            "--json",
        ]
    )
    assert rc == 1
    report = json.loads(capsys.readouterr().out)
    flagged = {r["tensor"]: r["abnormal"] for r in report["rows"]}
    assert flagged == {"y": False, "pooled": True}
    assert (tmp_path / "c2" / "compare.csv").is_file()


def test_golden_is_refreshed_on_a_second_run(tmp_path):
    out = tmp_path / "out"
    recipe = write_recipe(tmp_path)
    assert main(["-q", "apply", str(recipe), "-o", str(out), "--save-golden"]) == 0
    assert main(["-q", "apply", str(recipe), "-o", str(out), "--save-golden", "--batch", "2"]) == 0
    assert (out / "golden" / "bs2.npz").is_file()
    assert not (out / "golden" / "bs3.npz").exists()  # golden/ describes this run only


def pad_recipe(tmp: Path, **extra) -> Path:
    model = onnx.parser.parse_model(PAD_ONE)
    recipe = write_recipe(tmp, "- set_batch_size", model=model)
    data = yaml.safe_load(recipe.read_text())
    data["outputs"] = ["y"]
    data.update(extra)
    recipe.write_text(yaml.safe_dump(data))
    return recipe


def test_lint_error_stops_apply_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["apply", str(pad_recipe(tmp_path)), "-o", str(out)]) == 1
    (line,) = error_lines(capsys)
    assert "batch 1: the final model would fail ATC: [pad-constant-value]" in line
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("how", ["ignore", "flag"])
def test_lint_can_be_told_to_skip(tmp_path, how):
    out = tmp_path / "out"
    if how == "ignore":
        args = [
            "-q",
            "apply",
            str(pad_recipe(tmp_path, lint={"ignore": ["pad-constant-value"]})),
            "-o",
            str(out),
        ]
    else:
        args = ["-q", "apply", str(pad_recipe(tmp_path)), "-o", str(out), "--no-lint"]
    assert main(args) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert ("lint" in manifest["batches"][0]) == (how == "ignore")


def test_lint_warnings_are_shown_once_and_kept_in_the_manifest(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["apply", str(write_recipe(tmp_path, "- remove_identity")), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("lint [conv1d-chain]") == 1  # two batch sizes, one warning
    manifest = json.loads((out / "manifest.json").read_text())
    assert [f["rule"] for f in manifest["batches"][1]["lint"]] == ["conv1d-chain"]


def test_unknown_lint_rule_in_recipe(tmp_path, capsys):
    assert (
        main(["apply", str(pad_recipe(tmp_path, lint={"ignore": ["pad-const"]})), "-o", str(tmp_path / "o")])
        == 2
    )
    (line,) = error_lines(capsys)
    assert "lint.ignore[0]: 'pad-const' is not one of" in line
