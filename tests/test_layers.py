"""The architecture, checked: layers import only downwards, no module cycle, modules stay short.

Every ``import`` of a graphkit module counts, at module level or inside a function (a lazy
import is still a dependency), under ``if TYPE_CHECKING`` too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "graphkit"

# Lowest first: a module may import its own layer and the layers above it in this list.
LAYERS = (
    ("graphkit._version", "graphkit.errors", "graphkit._util", "graphkit._progress"),
    ("graphkit.models",),  # the PyTorch model definitions: torch and the error tree only
    ("graphkit.ir",),
    ("graphkit.numerics",),
    ("graphkit.ascend",),
    ("graphkit.passes",),
    ("graphkit.recipe",),
    ("graphkit.data",),
    ("graphkit.pipeline",),
    ("graphkit.runners",),
    ("graphkit.eval",),
    ("graphkit.debug",),
    ("graphkit.cli",),
    ("graphkit.testing",),
    ("graphkit", "graphkit.__main__"),  # the public facade: it names every layer's API
)
MAX_LINES = 450


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    best, rank = -1, None
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best:
                best, rank = len(name), i
    assert rank is not None, f"{module} is in no layer: add it to LAYERS"
    return rank


def imports(module: str) -> set[str]:
    """The graphkit modules ``module`` imports (``from a import b`` is module a.b where that is
    one, else a; relative imports resolved)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return {m for m in found if m in MODULES and m != module}


GRAPH = nx.DiGraph((m, d) for m in MODULES for d in imports(m))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_the_layers(module):
    upward = sorted(d for d in imports(module) if layer(d) > layer(module))
    assert not upward, f"{module} (layer {LAYERS[layer(module)][0]}) imports upward: {upward}"


def test_no_module_cycle():
    cycles = list(nx.simple_cycles(GRAPH))
    assert not cycles, f"import cycles: {cycles[:5]}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_short(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{module}: {lines} lines (split it; the house limit is ~{MAX_LINES})"


def test_every_layer_is_a_real_package_or_module():
    for names in LAYERS:
        for name in names:
            assert name in MODULES, f"LAYERS names {name}, which does not exist"


def test_recipe_validation_imports_no_pass_graphsurgeon_or_networkx(tmp_path):
    """Validation gets the pass table, lint rule ids and model names; it imports none of them."""
    script = f"""
import sys
from pathlib import Path
from graphkit.errors import PassError
from graphkit.recipe import Catalog, parse_recipe

class Spec:
    name = "my_pass"
    def check_params(self, params, where):
        return dict(params)

class Table:
    def get(self, name):
        if name != "my_pass":
            raise PassError(f"unknown pass '{{name}}'")
        return Spec()

data = {{"name": "m", "source": {{"model": "mine"}}, "inputs": {{"x": {{"shape": ["B", 4]}}}},
        "passes": ["my_pass"], "lint": {{"ignore": ["rule-a"]}}}}
recipe = parse_recipe(data, path=Path({str(tmp_path / "r.yaml")!r}),
                      catalog=Catalog(Table(), ["rule-a"], ["mine"]))
assert recipe.passes[0].name == "my_pass"
heavy = sorted(m for m in sys.modules
               if m.split(".")[0] in ("onnx_graphsurgeon", "networkx", "onnxsim", "onnxruntime", "torch")
               or (m.startswith("graphkit.passes.") and m != "graphkit.passes._infra")
               or m.startswith(("graphkit.ascend.lint", "graphkit.pipeline")))
print(heavy)
assert not heavy, heavy
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr + done.stdout


def test_the_public_api_is_importable_from_the_package():
    import graphkit

    for name in graphkit.__all__:
        assert getattr(graphkit, name) is not None, name
    assert {"register_pass", "PassResult", "Sites", "load_recipe", "apply_recipe", "PassManager"} <= set(
        graphkit.__all__
    )
    assert {"Instrument", "Runner", "lint_model", "compare_paths", "GraphkitError", "EXACT"} <= set(
        graphkit.__all__
    )
