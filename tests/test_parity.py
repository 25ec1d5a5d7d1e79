"""Parity through the one comparator: zero references, near-zero outputs, the minimum tolerance
in apply's output and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import tiny
import yaml

from graphkit.cli import main
from graphkit.errors import ParityError
from graphkit.numerics import Tolerance
from graphkit.pipeline.reference import Reference
from graphkit.recipe import ParitySpec

TESTS = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _plugin_path(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))


def sigmoid_map(shift: float = 40.0) -> onnx.ModelProto:
    """y = Sigmoid(x - shift): a map of ~1e-18 (shift 40), all near zero."""
    text = f"""
    <ir_version: 8, opset_import: ["" : 17]>
    sig (float[B,16] x) => (float[B,16] y) {{
        k = Constant<value = float {{{shift}}}>()
        d = Sub(x, k)
        y = Sigmoid(d)
    }}
    """
    return onnx.parser.parse_model(text)


def with_noise(model: onnx.ModelProto, noise: np.ndarray) -> onnx.ModelProto:
    """The model with ``noise`` (a constant) added to its output."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    g.node[-1].output[0] = "y_pre"
    g.initializer.append(onnx.numpy_helper.from_array(noise.astype(np.float32), "noise"))
    g.node.append(onnx.helper.make_node("Add", ["y_pre", "noise"], ["y"]))
    return out


def feeds(rows: int = 2) -> list[dict[str, np.ndarray]]:
    return [{"x": np.random.default_rng(0).standard_normal((rows, 16)).astype(np.float32)}]


def test_a_near_zero_output_passes_despite_its_cosine():
    model = sigmoid_map()
    ref = Reference(model, feeds(), ["y"], ParitySpec())
    noise = np.random.default_rng(1).uniform(0, 1.5e-7, (2, 16))
    measured = ref.measure(with_noise(model, noise).SerializeToString(), where="here")
    c = measured.checks["y"]
    assert measured.failure is None, measured.failure
    assert c.cosine < 0.99999 and not c.cosine_checked
    assert measured.figures()["y"]["min_tolerance"]["max_abs"] == pytest.approx(noise.max(), rel=1e-3)


def test_a_zero_reference_with_max_rel_passes():
    model = tiny.relu_mlp(layers=2)  # a Relu output: exact zeros in the reference
    x = np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32)
    spec = ParitySpec(tolerance=Tolerance(max_abs=1e-4, max_rel=1e-3))
    ref = Reference(model, [{"x": x}], ["y"], spec)
    assert (ref.values[0]["y"] == 0).any()
    noise = np.full((8, 8), 1e-9)
    measured = ref.measure(with_noise(model, noise).SerializeToString(), where="here")
    assert measured.failure is None and measured.checks["y"].max_rel < 1e-3


def test_a_breach_names_where_the_rule_and_the_minimum_tolerance():
    model = sigmoid_map(shift=0.0)  # values around 0.5: not near zero
    ref = Reference(model, feeds(), ["y"], ParitySpec())
    noise = np.zeros((2, 16))
    noise[1, 3] = 3e-4
    measured = ref.measure(with_noise(model, noise).SerializeToString(), where="at pass 'p'")
    assert measured.failure is not None
    assert measured.failure.startswith("parity failure at pass 'p': output 'y' 1 of 32 elements beyond")
    assert "worst element [1,3]" in measured.failure
    assert "would pass with max_abs >= 0.0003" in measured.failure
    assert "tolerance |Δ| <= 0.0001, cosine >= 0.99999" in measured.failure


def test_shape_changes_are_parity_errors():
    model = sigmoid_map()
    ref = Reference(model, feeds(), ["y"], ParitySpec())
    sliced = onnx.ModelProto()
    sliced.CopyFrom(model)
    sliced.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 8
    sliced.graph.node[-1].output[0] = "y_full"
    for name, values in (("st", [0]), ("en", [8]), ("ax", [1])):
        sliced.graph.initializer.append(onnx.numpy_helper.from_array(np.array(values, np.int64), name))
    sliced.graph.node.append(onnx.helper.make_node("Slice", ["y_full", "st", "en", "ax"], ["y"]))
    with pytest.raises(ParityError, match="output 'y' .*shape"):
        ref.measure(sliced.SerializeToString(), where="here")


def write_recipe(tmp: Path, tolerance: dict, passes: list) -> Path:
    onnx.save(tiny.relu_mlp(layers=3), tmp / "mlp.onnx")
    data = {
        "name": "mlp",
        "source": {"onnx": "mlp.onnx"},
        "inputs": {"x": {"shape": ["B", 8]}},
        "batch_sizes": [2],
        "passes": passes,
        "parity": {"tolerance": {"default": tolerance}},
    }
    path = tmp / "mlp.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_apply_with_max_rel_on_zero_outputs_and_its_report(tmp_path, capsys):
    nudge = {"pass": "plugin_passes:nudge_outputs", "with": {"offset": 1e-9}}
    recipe = write_recipe(tmp_path, {"max_abs": 1e-6, "max_rel": 1e-3}, [nudge, "set_batch_size"])
    out = tmp_path / "out"
    assert main(["apply", str(recipe), "-o", str(out), "--no-lint"]) == 0
    table = capsys.readouterr().out
    assert "min tolerance (abs | rel)" in table
    assert "parity: every element |Δ| <= max_abs + max_rel·|ref|" in table
    assert "|Δ| <= 1e-06 + 0.001·|ref|" in table
    manifest = json.loads((out / "manifest.json").read_text())
    fig = manifest["batches"][0]["parity"]["y"]
    assert fig["max_rel"] < 1e-3 and fig["min_tolerance"]["max_abs"] == pytest.approx(1e-9, rel=0.1)


def test_apply_failure_shows_the_minimum_tolerance(tmp_path, capsys):
    nudge = {"pass": "plugin_passes:nudge_outputs", "with": {"offset": 1e-3}}
    recipe = write_recipe(tmp_path, {"max_abs": 1e-4}, [nudge, "set_batch_size"])
    assert main(["apply", str(recipe), "-o", str(tmp_path / "out"), "--no-lint"]) == 1
    err = capsys.readouterr().err
    assert "at pass 'nudge_outputs'" in err
    assert "would pass with max_abs >= 0.001" in err
