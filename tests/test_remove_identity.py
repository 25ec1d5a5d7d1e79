import numpy as np
import onnx
import pytest
import tiny

from graphkit import testing
from graphkit.numerics import Tolerance
from graphkit.passes.remove_identity import EXAMPLES
from graphkit.testing import build

BIT_EXACT = Tolerance(max_abs=0.0, max_rel=None, min_cosine=None)  # removing a copy computes nothing


def test_removes_inner_identity_and_keeps_output_names():
    model = tiny.conv1d_chain()  # y → Identity → y_id → ReduceMean
    out, result = testing.apply_pass(model, "remove_identity")
    assert result.sites == 1
    assert "Identity" not in {n.op_type for n in out.graph.node}
    assert [o.name for o in out.graph.output] == ["y", "pooled"]
    x = np.random.default_rng(0).standard_normal((2, 4, 16)).astype(np.float32)
    for a, b in zip(testing.run(out, {"x": x}), testing.run(model, {"x": x})):
        np.testing.assert_array_equal(a, b)


def test_before_and_expected():
    # the pass's example: an inner Identity goes; Neg, the producer of the last one, writes y
    (example,) = EXAMPLES
    expected = build("g (float[2,3] x) => (float[2,3] y) { a = Relu(x)  y = Neg(a) }")
    assert (
        testing.assert_rewrite(example.model(), "remove_identity", expected, tolerance=BIT_EXACT).sites == 2
    )


def test_identity_to_graph_output_is_renamed_into_producer():
    model = tiny.with_shape_plumbing()  # r → Identity → y (graph output)
    out, result = testing.apply_pass(model, "remove_identity")
    assert result.sites == 1
    assert out.graph.output[0].name == "y"
    assert out.graph.node[-1].op_type == "Reshape" and out.graph.node[-1].output[0] == "y"


def test_must_not_fire_when_input_feeds_output_directly():
    model = onnx.parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[2] x) => (float[2] y) { y = Identity(x) }
    """)
    out, result = testing.apply_pass(model, "remove_identity")
    assert result.sites == 0
    assert [n.op_type for n in out.graph.node] == ["Identity"]


# -- sites: selection and near-misses ------------------------------------------------------------

CHAIN = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[2,3] x) => (float[2,3] y, float[2,3] z) {
    a = Relu(x)
    [id_b] b = Identity(a)
    c = Neg(b)
    [id_d] d = Identity(c)
    e = Exp(d)
    [id_y] y = Identity(e)
    [id_z] z = Identity(x)
}
"""


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_first_k_sites_are_removed_and_the_rest_kept(k):
    from graphkit.passes._infra import first_sites

    model = onnx.parser.parse_model(CHAIN)
    sites = first_sites(k)
    out, result = testing.run_sites(model, "remove_identity", sites)
    assert sites.offered == ["id_b", "id_d", "id_y"]  # the same whichever are taken
    assert result.sites == k and result.site_labels == sites.offered[:k]
    kept = {n.name for n in out.graph.node if n.op_type == "Identity"}
    assert kept == {*sites.offered[k:], "id_z"}
    assert [o.name for o in out.graph.output] == ["y", "z"]
    x = np.random.default_rng(k).standard_normal((2, 3)).astype(np.float32)
    for a, b in zip(testing.run(out, {"x": x}), testing.run(model, {"x": x})):
        np.testing.assert_array_equal(a, b)


def test_an_identity_that_must_stay_is_a_near_miss():
    model = onnx.parser.parse_model(CHAIN)
    _, result = testing.run_sites(model, "remove_identity", None)
    assert result.sites == 3
    assert result.near_misses == [("id_z", "its output is a graph output and its input x is a graph input")]


def test_identity_behind_a_left_out_identity_is_still_offered():
    # id_a -> id_o: once id_a is gone, id_o reads the graph input x and must stay; it is a
    # near-miss whether or not id_a is taken
    from graphkit.passes._infra import first_sites

    model = onnx.parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[2] x) => (float[2] y) { [id_a] a = Identity(x)
        [id_o] y = Identity(a) }
    """)
    for sites in (None, first_sites(0)):
        out, result = testing.run_sites(model, "remove_identity", sites)
        assert result.near_misses == [
            ("id_o", "its output is a graph output and its input x is a graph input")
        ]
    assert result.sites == 0 and len(out.graph.node) == 2


@pytest.mark.parametrize("chosen", [{0}, {1}, {2}, {0, 2}, {1, 2}])
def test_any_selection_of_sites_is_valid(chosen):
    from graphkit.passes._infra import Sites

    model = onnx.parser.parse_model(CHAIN)
    sites = Sites(lambda i: i in chosen)
    out, result = testing.run_sites(model, "remove_identity", sites)
    assert sites.offered == ["id_b", "id_d", "id_y"] and result.sites == len(chosen)
    kept = {n.name for n in out.graph.node if n.op_type == "Identity"}
    assert kept == {"id_z", *(label for i, label in enumerate(sites.offered) if i not in chosen)}
    x = np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32)
    for a, b in zip(testing.run(out, {"x": x}), testing.run(model, {"x": x})):
        np.testing.assert_array_equal(a, b)
