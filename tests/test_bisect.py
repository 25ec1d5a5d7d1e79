"""graphkit bisect: the first bad pass, then the first bad site within it."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import tiny
import yaml

from graphkit.cli import main
from graphkit.debug.bisect import bisect_recipe, render
from graphkit.passes._infra import PassRegistry
from graphkit.recipe import load_recipe

TESTS = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _plugin_path(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))


def mlp_recipe(tmp: Path, passes: list, layers: int = 10) -> Path:
    onnx.save(tiny.relu_mlp(layers=layers), tmp / "mlp.onnx")
    data = {
        "name": "mlp",
        "source": {"onnx": "mlp.onnx"},
        "inputs": {"x": {"shape": ["B", 8]}},
        "outputs": ["y"],
        "batch_sizes": [1, 4],
        "passes": passes,
    }
    path = tmp / "mlp.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def planted(bad: int, factor: float = 1.05) -> list:
    return [
        "remove_identity",
        {"pass": "plugin_passes:scale_after_relu", "with": {"bad": bad, "factor": factor}},
        "set_batch_size",
        "fold_constants",
    ]


@pytest.mark.parametrize("bad", [0, 5, 9])
def test_bisect_finds_the_planted_site_among_ten(tmp_path, bad):
    report = bisect_recipe(load_recipe(mlp_recipe(tmp_path, planted(bad))), batch=4)
    assert report.final_breach is not None
    assert report.first_bad_step == 2 and report.first_bad_pass == "plugin_passes:scale_after_relu"
    assert report.exposes_sites and report.sites_total == 10
    assert report.first_bad_site == bad + 1 and report.site_label == f"relu_{bad}"  # sites count from 1
    assert report.site_alone_breach is not None  # wrong by itself
    # prefix search: log2(4 passes) + site search: log2(10) + the final, whole-pass, alone checks
    assert report.checks <= 2 + 4 + 4
    text = render(report)
    assert f"first bad site: #{bad + 1} of 10: relu_{bad}" in text


def test_bisect_cli_exit_codes(tmp_path, capsys):
    bad = mlp_recipe(tmp_path, planted(6))
    assert main(["bisect", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "at batch 1" in out  # the first batch size that fails
    assert "first bad pass: #2 'plugin_passes:scale_after_relu'" in out
    assert "relu_6" in out
    good = mlp_recipe(
        tmp_path, ["remove_identity", {"pass": "plugin_passes:scale_after_relu"}, "set_batch_size"]
    )
    assert main(["bisect", str(good), "--batch", "4"]) == 0
    assert "nothing to bisect" in capsys.readouterr().out


def test_a_site_wrong_only_together_with_earlier_ones(tmp_path):
    """Every site scales by 1.001: a few are within tolerance, their product is not."""
    passes = [{"pass": "plugin_passes:scale_after_relu", "with": {"drift": 1.001}}, "set_batch_size"]
    report = bisect_recipe(load_recipe(mlp_recipe(tmp_path, passes, layers=12)), batch=4)
    assert report.first_bad_step == 1 and report.first_bad_site is not None
    assert report.first_bad_site > 1  # needs the ones before it
    assert report.site_alone_breach is None
    assert "only together with the sites before it" in render(report)


def test_a_pass_without_sites_is_named_but_not_narrowed(tmp_path):
    passes = [{"pass": "plugin_passes:scale_first_conv_weight", "with": {"factor": 1.1}}, "set_batch_size"]
    onnx.save(tiny.conv1d_chain(), tmp_path / "tiny.onnx")
    data = {
        "name": "tiny",
        "source": {"onnx": "tiny.onnx"},
        "inputs": {"x": {"shape": ["B", 4, 16]}},
        "batch_sizes": [2],
        "passes": passes,
    }
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(data))
    report = bisect_recipe(load_recipe(tmp_path / "t.yaml"))
    assert report.first_bad_step == 1 and not report.exposes_sites
    assert "does not expose its sites" in render(report)


def test_sites_selection_is_reserved_from_recipes(tmp_path, capsys):
    recipe = mlp_recipe(tmp_path, [{"pass": "plugin_passes:scale_after_relu", "with": {"sites": 3}}])
    assert main(["bisect", str(recipe)]) == 2
    assert "has no parameter 'sites'" in capsys.readouterr().err
    spec = PassRegistry().get("plugin_passes:scale_after_relu")
    assert spec.takes_sites and "sites" not in spec.params


@pytest.mark.slow
def test_bisect_on_the_task_metric(tmp_path, librispeech, capsys):
    """ECAPA-TDNN (seeded weights) with one of its Relus negated: the EER gate finds it."""
    pytest.importorskip("torch")
    root = TESTS.parent
    data = yaml.safe_load((root / "recipes" / "ecapa.yaml").read_text())
    data["passes"] = [
        {"pass": "plugin_passes:scale_after_relu", "with": {"bad": 11, "factor": -3.0}},
        "set_batch_size",
    ]
    data["parity"].pop("samples", None)
    recipe = tmp_path / "ecapa_planted.yaml"
    recipe.write_text(yaml.safe_dump(data, sort_keys=False))
    args = [
        "-q",
        "bisect",
        str(recipe),
        "--batch",
        "4",
        "--data",
        str(librispeech),
        "--limit",
        "12",  # the fewest that keep target trials; each of the ~9 checks evaluates them all
        "--metric",
        "trial_roc_auc",
    ]
    assert main([*args, "--json"]) == 1
    import json

    report = json.loads(capsys.readouterr().out)
    assert report["gate"] == "trial_roc_auc within 0 of the unmodified model"
    assert report["first_bad_pass"]["step"] == 1 and report["sites"]["total"] >= 8
    assert report["sites"]["first_bad"]["site"] == 12  # 1-based: the 12th site offered, planted at [11]
