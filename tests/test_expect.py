"""Recipe expectations: per-pass ``expect: {sites: ...}`` and the final graph's ``expect_ops``."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import tiny
import yaml

from graphkit import testing
from graphkit.cli import main
from graphkit.errors import RecipeError
from graphkit.pipeline.expect import op_counts
from graphkit.recipe import Condition, load_recipe, parse_condition

POOL_1D = """
<ir_version: 8, opset_import: ["" : 17]>
pool1d (float[B, 4, 16] x) => (float[B, 4, 14] y) {
    y = MaxPool <kernel_shape = [3]> (x)
}
"""


def recipe_file(tmp: Path, passes: list, model: onnx.ModelProto | None = None, **extra) -> Path:
    model = model or tiny.conv1d_chain()
    onnx.save(model, tmp / "m.onnx")
    x = model.graph.input[0]
    shape = [d.dim_param or d.dim_value for d in x.type.tensor_type.shape.dim]
    data = {
        "name": "m",
        "source": {"onnx": "m.onnx"},
        "inputs": {x.name: {"shape": shape}},
        "batch_sizes": [2],
        "passes": passes,
        **extra,
    }
    path = tmp / "m.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("text", "cond"),
    [
        (3, Condition("==", 3)),
        (">= 4", Condition(">=", 4)),
        ("<2", Condition("<", 2)),
        ("!= 0", Condition("!=", 0)),
    ],
)
def test_conditions_parse(text, cond):
    assert parse_condition(text) == cond


@pytest.mark.parametrize("bad", [True, -1, "about 3", ">= -1", 2.5, "=> 3", None])
def test_bad_conditions_are_refused(bad):
    with pytest.raises(ValueError, match="expected a count|cannot be negative"):
        parse_condition(bad)


def test_recipe_errors_name_the_path(tmp_path):
    with pytest.raises(RecipeError, match=r"passes\[0\]\.expect\.sites: expected a count"):
        load_recipe(recipe_file(tmp_path, [{"pass": "cleanup", "expect": {"sites": "lots"}}]))
    with pytest.raises(RecipeError, match=r"passes\[0\]\.expect\.site: unknown key; did you mean 'sites'"):
        load_recipe(recipe_file(tmp_path, [{"pass": "cleanup", "expect": {"site": 1}}]))
    with pytest.raises(
        RecipeError, match=r"expect_ops\.ScaterND: unknown op type 'ScaterND'; did you mean 'ScatterND'"
    ):
        load_recipe(recipe_file(tmp_path, ["cleanup"], expect_ops={"ScaterND": 0}))


def test_op_counts_know_conv_ranks():
    counts = op_counts(tiny.conv1d_chain())
    assert counts["Conv"] == 2 and counts["Conv1d"] == 2 and counts["Conv2d"] == 0
    lifted, _ = testing.rewrite(tiny.conv1d_chain(), "conv1d_to_conv2d")
    assert op_counts(lifted)["Conv2d"] == 2 and op_counts(lifted)["Conv1d"] == 0


def test_a_pass_that_does_nothing_fails_loudly_with_near_misses(tmp_path, capsys):
    model = onnx.parser.parse_model(POOL_1D)
    recipe = recipe_file(tmp_path, [{"pass": "split_maxpool", "expect": {"sites": ">= 1"}}], model)
    out = tmp_path / "out"
    assert main(["apply", str(recipe), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "pass 'split_maxpool' rewrote 0 site(s), expected sites >= 1" in err
    assert "near-misses:" in err and "input rank is 3, not 4" in err
    assert not list(out.glob("*.onnx")) and not (out / "manifest.json").exists()


def test_no_candidate_at_all_says_so(tmp_path, capsys):
    recipe = recipe_file(tmp_path, [{"pass": "split_maxpool", "expect": {"sites": 1}}])
    assert main(["apply", str(recipe), "-o", str(tmp_path / "out")]) == 1
    assert "no near-misses (the graph holds no candidate of this pass)" in capsys.readouterr().err


def test_met_expectations_pass_and_near_misses_reach_the_manifest(tmp_path, capsys):
    import json

    model = onnx.parser.parse_model(POOL_1D)
    recipe = recipe_file(
        tmp_path, ["split_maxpool", {"pass": "remove_identity", "expect": {"sites": 0}}], model
    )
    assert main(["apply", str(recipe), "-o", str(tmp_path / "out"), "-q"]) == 0
    err = capsys.readouterr().err  # warned without an expectation
    assert "pass 'split_maxpool' rewrote nothing; near-misses: <unnamed>: input rank is 3, not 4" in err
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["passes"][0]["near_misses"] == [["", "input rank is 3, not 4"]]


def test_expect_ops_on_the_final_graph(tmp_path, capsys):
    expect = {"Conv1d": 0, "Conv2d": ">= 2", "ScatterND": 0}
    bad = recipe_file(tmp_path, ["remove_identity"], expect_ops=expect)
    assert main(["apply", str(bad), "-o", str(tmp_path / "bad")]) == 1
    err = capsys.readouterr().err
    assert "expect_ops: Conv1d is 2 (expected == 0); Conv2d is 0 (expected >= 2)" in err
    assert not (tmp_path / "bad" / "manifest.json").exists()
    good = recipe_file(tmp_path, ["conv1d_to_conv2d"], expect_ops=expect)
    assert main(["apply", str(good), "-o", str(tmp_path / "good")]) == 0
