"""The pipeline, the pass manager and its instruments: stages, overrides, selections, located errors."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import tiny
import yaml

from graphkit.cli import main
from graphkit.errors import ExpectationError, InvalidRewrite, ParityError, PassError
from graphkit.passes import PassRegistry, first_sites
from graphkit.pipeline.instruments import Check, Checker, Expect, Keep, Only, SelectSites, Timing
from graphkit.pipeline.manager import PassManager
from graphkit.pipeline.steps import Pipeline
from graphkit.recipe import Condition, PassStep, load_recipe

TESTS = Path(__file__).resolve().parent
REGISTRY = PassRegistry()


@pytest.fixture(autouse=True)
def _plugin_path(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))


def step(name: str, i: int = 0, **params) -> PassStep:
    spec = REGISTRY.get(name)
    return PassStep(
        spec.name if ":" not in name else name, spec.check_params(params, name), f"r.yaml: passes[{i}]"
    )


def test_stages_split_at_set_batch_size_or_add_it():
    steps = [step("remove_identity"), step("set_batch_size", 1), step("fold_constants", 2)]
    p = Pipeline.from_steps(steps, where="r.yaml: passes")
    assert [s.name for s in p.once] == ["remove_identity"]
    assert [s.name for s in p.per_batch] == ["set_batch_size", "fold_constants"]
    implicit = Pipeline.from_steps(steps[:1], where="r.yaml: passes")
    assert [s.name for s in implicit.per_batch] == ["set_batch_size"]
    assert implicit.per_batch[0].where == "r.yaml: passes (implicit set_batch_size)"
    flat = Pipeline.from_steps(steps, where="x", batched=False)  # a model without a batch dim
    assert [s.name for s in flat.once] == ["remove_identity", "fold_constants"] and flat.per_batch == ()
    with pytest.raises(ValueError, match="needs a batch size"):
        p.run(PassManager(REGISTRY), tiny.conv1d_chain(), stage="per_batch")


def test_the_batch_reaches_set_batch_size_as_an_override_and_is_recorded():
    p = Pipeline.from_steps([step("set_batch_size")], where="x")
    model, records = p.run(PassManager(REGISTRY, [Timing()]), tiny.conv1d_chain(), stage="per_batch", batch=3)
    assert records[0].params == {"batch": 3, "axis": 0, "axes": None} and records[0].batch == 3
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 3
    assert 0 < records[0].seconds < 60  # Timing keeps its start to itself; the record gets the time
    # the manager alone knows no pass by name: without an override the recipe's value runs
    _, plain = PassManager(REGISTRY).run(tiny.conv1d_chain(), [step("set_batch_size")], batch=3)
    assert plain[0].params["batch"] == 1


def test_the_manifest_records_the_parameters_each_pass_ran_with(tmp_path):
    onnx.save(tiny.conv1d_chain(), tmp_path / "tiny.onnx")
    data = {
        "name": "tiny",
        "source": {"onnx": "tiny.onnx"},
        "inputs": {"x": {"shape": ["B", 4, 16]}},
        "batch_sizes": [1, 4],
        "passes": ["conv1d_to_conv2d", "set_batch_size"],
    }
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(data))
    assert main(["-q", "apply", str(tmp_path / "r.yaml"), "-o", str(tmp_path / "out"), "--no-lint"]) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    ran = {b["batch"]: b["passes"][0]["params"] for b in manifest["batches"]}
    axes = {"x": 0}  # the batch axis of each input, from the recipe shapes
    assert ran == {1: {"batch": 1, "axis": 0, "axes": axes}, 4: {"batch": 4, "axis": 0, "axes": axes}}


def test_keep_only_and_select_sites_drive_a_partial_run():
    model = tiny.relu_mlp(layers=4)
    steps = [step("remove_identity"), step("plugin_passes:scale_after_relu", 1, factor=2.0, bad=3)]
    p = Pipeline.from_steps(steps, where="x", batched=False)
    keep = Keep()
    final, records = p.run(PassManager(REGISTRY), model, stage="once", extra=[keep])
    assert keep.indices == [0, 1] and keep.models[-1] is final and len(records) == 2
    sites = first_sites(2)
    _, only = p.run(PassManager(REGISTRY), model, stage="once", extra=[Only({1}), SelectSites(1, sites)])
    assert [r.name for r in only] == ["scale_after_relu"] and only[0].sites == 2
    assert sites.taken == ["relu_0", "relu_1"] and len(sites.offered) == 4


def test_errors_carry_the_pass_the_step_and_the_batch():
    def breaks(model, contract):  # noqa: ANN001, ANN202 - any model after fold_constants is "bad"
        return "it changed"

    p = Pipeline.from_steps(
        [step("remove_identity"), step("set_batch_size", 1), step("fold_constants", 2)], where="x"
    )
    with pytest.raises(ParityError) as caught:
        p.localise(PassManager(REGISTRY), tiny.conv1d_chain(), check=Check(breaks), batch=2)
    err = caught.value
    assert (err.pass_name, err.where, err.batch) == ("set_batch_size", "r.yaml: passes[1]", 2)

    expect = PassStep(
        "remove_identity", {}, "r.yaml: passes[0]", {"sites": Condition(">=", 5)}, Path("r.yaml")
    )
    with pytest.raises(ExpectationError) as caught:
        PassManager(REGISTRY, [Expect()]).run(tiny.relu_mlp(layers=1), [expect])
    assert caught.value.pass_name == "remove_identity" and caught.value.recipe == Path("r.yaml")

    with pytest.raises(InvalidRewrite) as caught:
        PassManager(REGISTRY, [Checker()]).run(tiny.relu_mlp(layers=1), [step("plugin_passes:break_graph")])
    assert caught.value.pass_name == "break_graph" and isinstance(caught.value, PassError)

    with pytest.raises(PassError, match="returned NoneType") as caught:
        PassManager(REGISTRY).run(tiny.relu_mlp(layers=1), [step("plugin_passes:returns_nothing", 3)])
    assert caught.value.pass_name == "returns_nothing" and caught.value.where == "r.yaml: passes[3]"


def test_apply_localises_a_per_batch_breach_with_the_pipeline(tmp_path, capsys):
    onnx.save(tiny.relu_mlp(layers=3), tmp_path / "mlp.onnx")
    data = {
        "name": "mlp",
        "source": {"onnx": "mlp.onnx"},
        "inputs": {"x": {"shape": ["B", 8]}},
        "batch_sizes": [2],
        "passes": ["set_batch_size", {"pass": "plugin_passes:scale_after_relu", "with": {"bad": 1}}],
    }
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(data))
    recipe = load_recipe(tmp_path / "r.yaml")
    assert Pipeline.from_recipe(recipe).once == ()
    assert main(["apply", str(tmp_path / "r.yaml"), "-o", str(tmp_path / "out"), "--no-lint"]) == 1
    err = capsys.readouterr().err
    assert "re-running the per-batch passes" in err
    assert "parity failure at pass 'scale_after_relu'" in err and ", batch 2)" in err
    assert not (tmp_path / "out").exists()  # nothing published
