import numpy as np
import tiny

from graphkit import testing


def test_folds_shape_plumbing_and_keeps_numbers():
    model = tiny.with_shape_plumbing()
    out, result = testing.apply_pass(model, "simplify")
    assert result.sites >= 3
    assert "Shape" not in {n.op_type for n in out.graph.node}
    x = np.random.default_rng(0).standard_normal((2, 4, 6)).astype(np.float32)
    np.testing.assert_array_equal(testing.run(out, {"x": x})[0], testing.run(model, {"x": x})[0])
    assert out.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "B"  # batch stays dynamic


def test_skip_constant_folding_keeps_plumbing():
    out, _ = testing.apply_pass(
        tiny.with_shape_plumbing(), "simplify", skip_constant_folding=True, perform_optimization=False
    )
    assert "Shape" in {n.op_type for n in out.graph.node}
