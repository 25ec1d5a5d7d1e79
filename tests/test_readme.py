"""The README's commands and code are executed, not just shown."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import yaml

from graphkit import testing
from graphkit.cli import main
from graphkit.passes._infra import PassRegistry

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_quick_start_is_two_make_targets_and_ci_runs_the_test_one():
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick.splitlines() if line.startswith("    ")]
    assert commands == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert "graphkit apply recipes/ecapa.yaml" in makefile and "pytest" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_recipe_example_is_a_valid_recipe(tmp_path):
    (tmp_path / "r.yaml").write_text(next(b for b in blocks("yaml") if b.startswith("name:")))
    from graphkit.recipe import load_recipe

    recipe = load_recipe(tmp_path / "r.yaml")
    assert [p.name for p in recipe.passes][-1] == "set_implmode"


def test_pass_example_runs_from_a_recipe(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_passes.py").write_text(blocks("python")[0])
    monkeypatch.syspath_prepend(str(tmp_path))
    model = onnx.parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[B,3] x) => (float[B,3] y) { a = Neg(x)  b = Neg(a)  y = Relu(b) }
    """)
    onnx.save(model, tmp_path / "m.onnx")
    recipe = {
        "name": "negs",
        "source": {"onnx": "m.onnx"},
        "inputs": {"x": {"shape": ["B", 3]}},
        "batch_sizes": [2],
        "passes": [{"pass": "my_passes:remove_double_neg"}, "set_batch_size"],
    }
    (tmp_path / "negs.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["apply", str(tmp_path / "negs.yaml"), "-o", str(tmp_path / "out")]) == 0
    out = onnx.load(str(tmp_path / "out" / "negs_bs2.onnx"))
    assert [n.op_type for n in out.graph.node] == ["Relu"]
    x = np.array([[1, -2, 3], [-4, 5, -6]], np.float32)
    np.testing.assert_array_equal(testing.run(out, {"x": x})[0], np.maximum(x, 0))


def test_pass_test_example_runs(tmp_path, monkeypatch):
    """The README's test of the example pass, with graphkit.testing, passes as written."""
    (tmp_path / "my_passes.py").write_text(blocks("python")[0])
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace: dict = {}
    exec(compile(blocks("python")[1], "README.md", "exec"), namespace)  # noqa: S102 - our own README
    tests = [f for name, f in namespace.items() if name.startswith("test_")]
    assert tests
    for test in tests:
        test()


def test_pass_table_lists_every_builtin_pass():
    table = README.split("## Passes", 1)[1].split("##", 1)[0]
    listed = re.findall(r"^\| `(\w+)` \| (\w+) \|", table, flags=re.M)
    registry = PassRegistry()
    assert sorted(name for name, _ in listed) == registry.names()
    for name, contract in listed:
        assert str(registry.get(name).contract).startswith(contract)


def test_lint_rule_table_matches_the_rules():
    from graphkit.ascend.lint import RULES

    section = README.split("**Lint**", 1)[1].split("## ", 1)[0]
    listed = re.findall(r"^\| `([a-z0-9-]+)` \| (error|warning) \| `?([a-z0-9_-]+)`? \|", section, flags=re.M)
    assert listed == [(r.id, r.severity, r.fix or "-") for r in RULES.values()]
