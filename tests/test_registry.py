"""Meta-tests over the registry: docs, idempotence, checker, and third-party registration."""

from __future__ import annotations

import inspect

import onnx
import pytest
import tiny

from graphkit.errors import PassError
from graphkit.registry import PassRegistry, register_pass

REGISTRY = PassRegistry()
NEEDS = {"set_batch_size": {"batch": 2}}


@pytest.mark.parametrize("name", REGISTRY.names())
def test_every_pass_is_documented(name):
    spec = REGISTRY.get(name)
    assert spec.doc, f"{name} has no docstring"
    module = inspect.getmodule(spec.fn)
    doc = (module.__doc__ or "").lower()
    assert "before" in doc and "after" in doc, f"{name}: the module docstring states before/after"
    assert module.__name__ == f"graphkit.passes.{name}"  # file, registered name and function agree
    assert spec.fn.__name__ == name


@pytest.mark.parametrize("name", REGISTRY.names())
@pytest.mark.parametrize("opset", [11, 17])
def test_twice_changes_nothing_and_checker_passes(name, opset):
    once, _ = tiny.apply_pass(tiny.conv1d_chain(opset=opset), name, **NEEDS.get(name, {}))
    onnx.checker.check_model(once, full_check=True)
    twice, result = tiny.apply_pass(once, name, **NEEDS.get(name, {}))
    if name != "set_implmode":  # it reports sites without rewriting anything
        assert result.sites == 0
    assert twice.graph.SerializeToString() == once.graph.SerializeToString()


def test_signature_rules():
    with pytest.raises(TypeError, match="keyword-only"):
        register_pass("bad_one")(lambda graph, x: 0)
    with pytest.raises(TypeError, match="annotation"):

        def f(graph, *, x=1):  # noqa: ANN001
            return 0

        register_pass("bad_two")(f)
    with pytest.raises(ValueError, match="snake_case"):
        register_pass("BadName")


def test_param_checking():
    spec = REGISTRY.get("set_implmode")
    with pytest.raises(PassError, match="'fast' is not one of"):
        spec.check_params({"mode": "fast"}, "here")
    with pytest.raises(PassError, match="item 0"):
        spec.check_params({"op_types": [1]}, "here")
    assert spec.check_params({}, "here")["mode"] == "high_performance"
