import numpy as np
import pytest
import tiny

from graphkit import testing
from graphkit.errors import PassError


@pytest.mark.parametrize("batch", [1, 5])
def test_static_batch_and_folded_shape_arithmetic(batch):
    model = tiny.with_shape_plumbing()
    out, result = testing.apply_pass(model, "set_batch_size", batch=batch)
    assert result.sites == 1
    assert [d.dim_value for d in out.graph.input[0].type.tensor_type.shape.dim] == [batch, 4, 6]
    assert [d.dim_value for d in out.graph.output[0].type.tensor_type.shape.dim] == [batch, 24]
    ops = [n.op_type for n in out.graph.node]
    assert "Shape" not in ops and "Gather" not in ops and "Concat" not in ops  # folded
    x = np.random.default_rng(0).standard_normal((batch, 4, 6)).astype(np.float32)
    np.testing.assert_array_equal(testing.run(out, {"x": x})[0], testing.run(model, {"x": x})[0])


def test_second_run_changes_nothing():
    once, _ = testing.apply_pass(tiny.conv1d_chain(), "set_batch_size", batch=3)
    twice, result = testing.apply_pass(once, "set_batch_size", batch=3)
    assert result.sites == 0
    assert twice.graph.SerializeToString() == once.graph.SerializeToString()


def test_refuses_a_different_static_batch():
    once, _ = testing.apply_pass(tiny.conv1d_chain(), "set_batch_size", batch=3)
    with pytest.raises(PassError, match="static dim 3 on its batch axis 0"):
        testing.apply_pass(once, "set_batch_size", batch=4)


@pytest.mark.parametrize(
    ("body", "want"),
    [
        ("y = Shape<end = 1>(x)", [3]),
        ("y = Shape<start = -2>(x)", [4, 5]),
        ("s = Shape<start = 1>(x)\n zero = Constant<value = int64[1] {0}>()\n y = Gather(s, zero)", [4]),
    ],
)
def test_shape_start_end_fold_to_the_right_dims(body, want):
    """gs's shape folding ignores Shape's start/end (found by benchmarks/node_tests.py)."""
    import onnx

    model = onnx.parser.parse_model(
        f'<ir_version: 8, opset_import: ["" : 17]>\ng (float[N, 4, 5] x) => (int64[{len(want)}] y) {{ {body} }}'
    )
    out, _ = testing.rewrite(model, "set_batch_size", batch=3)
    (got,) = testing.run(out, {"x": np.zeros((3, 4, 5), np.float32)})
    assert got.tolist() == want
    assert [n.op_type for n in out.graph.node] == []  # folded to a constant output


def test_optional_graph_inputs_are_refused_clearly():
    import onnx

    from graphkit.errors import ModelError

    model = onnx.parser.parse_model(
        '<ir_version: 8, opset_import: ["" : 17]>\n'
        "g (optional(seq(float[5])) x) => (optional(seq(float[5])) y) { y = Identity(x) }"
    )
    with pytest.raises(ModelError, match="optional-typed graph inputs or outputs"):
        testing.rewrite(model, "set_batch_size", batch=1)


STATEFUL = """g (float[B,4] x, float[2,B,3] state, float[1,1,5] h) => (float[B,4] y, float[2,B,3] state_out) {
    s = Shape(x)
    b = Gather<axis = 0>(s, zero)
    target = Concat<axis = 0>(b, four)
    r = Reshape(x, target)
    y = Relu(r)
    state_out = Neg(state)
}"""


def test_sets_only_the_declared_batch_axes():
    """A state [2, B, 3] has its batch on axis 1; h [1, 1, 5] has none and keeps its shape
    (today's tools read axis 0 of every input as the batch and refuse the state)."""
    model = testing.build(STATEFUL, zero=np.array([0], np.int64), four=np.array([4], np.int64))
    once, result = testing.apply_pass(model, "set_batch_size", batch=3, axes={"x": 0, "state": 1})
    assert result.sites == 2
    dims = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim] for vi in once.graph.input}
    assert dims == {"x": [3, 4], "state": [2, 3, 3], "h": [1, 1, 5]}
    outs = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim] for vi in once.graph.output}
    assert outs == {"y": [3, 4], "state_out": [2, 3, 3]}
    testing.assert_same_numbers(model, once)
    with pytest.raises(PassError, match="static dim 2 on its batch axis 0"):
        testing.apply_pass(model, "set_batch_size", batch=3)  # axis 0 everywhere: the state's 2
