"""Meta-tests over the registry: docs, idempotence, checker, and third-party registration."""

from __future__ import annotations

import inspect

import onnx
import pytest
import tiny

from graphkit.errors import PassError
from graphkit.passes._infra import PassRegistry, register_pass

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


@pytest.mark.parametrize("name", SITED)
@pytest.mark.parametrize("sample", ["conv1d_chain", "with_shape_plumbing"])
def test_selecting_no_site_rewrites_nothing_and_offers_the_same_sites(name, sample):
    from graphkit.ir.graph import export_model, import_graph
    from graphkit.passes._infra import Sites, first_sites

    model = getattr(tiny, sample)()
    spec = REGISTRY.get(name)
    params = spec.check_params(NEEDS.get(name, {}), name)
    none = first_sites(0)
    graph = import_graph(model)
    result = spec.run(graph, params, none)
    assert result.sites == 0 and result.site_labels == [] and none.taken == []
    graph.cleanup().toposort()
    assert export_model(graph, like=model).SerializeToString() == tiny.roundtrip(model)
    every = Sites()  # an unrestricted run offers the same sites, in the same order, and takes all
    everything = spec.run(import_graph(model), params, every)
    assert none.offered == every.offered == every.taken
    assert (everything.sites > 0) == bool(every.taken)
    holds = {
        "conv1d_chain": {"conv1d_to_conv2d", "remove_identity"},
        "with_shape_plumbing": {"remove_identity"},
    }
    if name in holds[sample]:  # so the test is not vacuous
        assert every.taken
