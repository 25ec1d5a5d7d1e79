import numpy as np
import tiny

from graphkit import testing
from graphkit.testing import build


def test_folds_constant_subgraph():
    model = build(
        """g (float[B,3] x) => (float[B,3] y) {
            a = Constant<value = float[3] {1, 2, 3}>()
            b = Constant<value = float[3] {4, 5, 6}>()
            c = Mul(a, b)
            y = Add(x, c)
        }""",
        opset=17,
    )
    expected = build(
        "g (float[B,3] x) => (float[B,3] y) { y = Add(x, c) }", opset=17, c=np.float32([4, 10, 18])
    )
    out, result = testing.apply_pass(model, "fold_constants")
    assert result.sites == 3  # two Constants and the Mul
    assert [n.op_type for n in out.graph.node] == ["Add"]
    testing.assert_same_structure(out, expected)
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(testing.run(out, {"x": x})[0], testing.run(model, {"x": x})[0])


def test_must_not_fire_on_dynamic_shape_without_batch():
    # The Reshape target depends on the symbolic batch: nothing can be folded yet.
    model = tiny.with_shape_plumbing()
    out, result = testing.apply_pass(model, "fold_constants", fold_shapes=True)
    assert "Shape" in {n.op_type for n in out.graph.node}
