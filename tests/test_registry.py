"""Meta-tests over the registry: docs, signatures, and, on every built-in pass's own EXAMPLES
(each a model it rewrites), the checker, the numbers, idempotence and site selection."""

from __future__ import annotations

import dataclasses
import importlib
import inspect

import onnx
import pytest
import tiny

from graphkit import testing
from graphkit.errors import PassError
from graphkit.ir.graph import export_model, import_graph
from graphkit.passes._infra import BUILTIN_MODULES, Example, PassRegistry, Sites, first_sites, register_pass

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


def examples() -> list:
    """(pass name, Example) for every example of every built-in pass module."""
    found = []
    for module_name in BUILTIN_MODULES:
        name = module_name.rpartition(".")[2]  # the module registers the pass of its name
        for i, example in enumerate(getattr(importlib.import_module(module_name), "EXAMPLES", ())):
            found.append(pytest.param(name, example, id=f"{name}-{i}"))
    return found


EXAMPLES = examples()


@pytest.mark.parametrize("module_name", BUILTIN_MODULES)
def test_every_built_in_pass_module_has_examples(module_name):
    found = getattr(importlib.import_module(module_name), "EXAMPLES", None)
    assert isinstance(found, tuple) and found, f"{module_name} has no EXAMPLES"
    assert all(isinstance(e, Example) for e in found)


@pytest.mark.parametrize(("name", "example"), EXAMPLES)
def test_each_example_is_rewritten_checker_clean_and_twice_changes_nothing(name, example):
    """Once: at least one site, the full checker passes, and the numbers hold where the contract
    promises them. Twice: no site (set_implmode reports its sites again), the same graph."""
    spec, model = REGISTRY.get(name), example.model()
    once, result = testing.apply_pass(model, name, **example.params)
    assert result.sites >= 1, f"{name} rewrote nothing on its example; near-misses: {result.near_misses}"
    onnx.checker.check_model(once, full_check=True)
    if spec.contract.kind != "approximate":
        tolerance = testing.TOLERANCE
        tolerance = dataclasses.replace(tolerance, max_abs=tolerance.max_abs + spec.contract.tolerance)
        renames = {**example.params.get("inputs", {}), **example.params.get("outputs", {})}
        renames = renames if name == "rename_io" else {}
        testing.assert_same_numbers(
            model, once, tolerance=tolerance, feeds=dict(example.inputs), renames=renames
        )
    twice, again = testing.apply_pass(once, name, **example.params)
    if name == "set_implmode":  # it reports its sites, each time, and never rewrites them
        assert again.sites == result.sites and once.SerializeToString() == testing.roundtrip(model)
    else:
        assert again.sites == 0
    assert twice.graph.SerializeToString() == once.graph.SerializeToString()


def test_the_checks_can_fail_and_say_what_differs():
    """What the example meta-tests rest on: structure without names, numbers under a tolerance."""
    before = testing.build("g (float[2,3] x) => (float[2,3] y) { a = Identity(x)  y = Relu(a) }")
    relu = testing.build("g (float[2,3] x) => (float[2,3] y) { [named] y = Relu(x) }")  # names ignored
    assert testing.assert_rewrite(before, "remove_identity", relu).sites == 1
    wrong = testing.build("g (float[2,3] x) => (float[2,3] y) { y = Abs(x) }")
    with pytest.raises(AssertionError, match=r"remove_identity \(1 sites\): the structure differs") as info:
        testing.assert_rewrite(before, "remove_identity", wrong)
    assert "-#0 Abs<>(in0)\n+#0 Relu<>(in0)" in str(info.value)
    with pytest.raises(AssertionError, match="y: 2 of 6 elements beyond"):
        testing.assert_same_numbers(relu, wrong)
    # the listing order of independent nodes does not matter
    a = testing.build("g (float[2] x) => (float[2] y, float[2] z) { y = Neg(x)  z = Abs(x) }")
    b = testing.build("g (float[2] x) => (float[2] y, float[2] z) { z = Abs(x)  y = Neg(x) }")
    assert testing.canonical(a) == testing.canonical(b)


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


SITED = [spec.name for spec in REGISTRY.specs() if spec.takes_sites]


def test_the_built_in_rewrites_expose_their_sites():
    assert {
        "conv1d_to_conv2d",
        "fold_transpose_softmax",
        "fold_uniform_attention",
        "remove_identity",
        "replace_gather_elements",
        "replace_scatternd_with_concat",
        "split_maxpool",
        "tile_conv_width",
    } <= set(SITED)


def selection_holds(model: onnx.ModelProto, name: str, params: dict) -> Sites:
    """Selecting no site rewrites nothing; an unrestricted run offers the same sites, in the
    same order, and takes them all. Returns the unrestricted run's sites."""
    spec = REGISTRY.get(name)
    params = spec.check_params(params, name)
    none = first_sites(0)
    graph = import_graph(model)
    result = spec.run(graph, params, none)
    assert result.sites == 0 and result.site_labels == [] and none.taken == []
    graph.cleanup().toposort()
    assert export_model(graph, like=model).SerializeToString() == testing.roundtrip(model)
    every = Sites()
    everything = spec.run(import_graph(model), params, every)
    assert none.offered == every.offered == every.taken
    assert (everything.sites > 0) == bool(every.taken)
    return every


@pytest.mark.parametrize("name", SITED)
@pytest.mark.parametrize("sample", ["conv1d_chain", "with_shape_plumbing"])
def test_selecting_no_site_rewrites_nothing_and_offers_the_same_sites(name, sample):
    every = selection_holds(getattr(tiny, sample)(), name, NEEDS.get(name, {}))
    holds = {
        "conv1d_chain": {"conv1d_to_conv2d", "remove_identity"},
        "with_shape_plumbing": {"remove_identity"},
    }
    if name in holds[sample]:  # so the test is not vacuous
        assert every.taken


@pytest.mark.parametrize(("name", "example"), [p for p in EXAMPLES if p.values[0] in SITED])
def test_selecting_no_site_of_an_example_rewrites_nothing(name, example):
    assert selection_holds(example.model(), name, dict(example.params)).taken  # never vacuous
