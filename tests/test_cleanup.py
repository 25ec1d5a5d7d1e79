import numpy as np
import tiny

from graphkit import testing
from graphkit.testing import build


def test_merges_duplicate_constants_and_unused_inputs():
    model = build(
        """g (float[2] x, float[2] unused) => (float[2] y) {
            a = Constant<value = float[2] {1, 2}>()
            b = Constant<value = float[2] {1, 2}>()
            p = Add(x, a)
            y = Mul(p, b)
        }""",
        opset=17,
    )
    expected = build(
        """g (float[2] x) => (float[2] y) {
            a = Constant<value = float[2] {1, 2}>()
            p = Add(x, a)
            y = Mul(p, a)
        }""",
        opset=17,
    )
    out, result = testing.apply_pass(model, "cleanup", remove_unused_inputs=True)
    assert result.sites == 2  # one constant merged, one input dropped
    testing.assert_same_structure(out, expected)
    assert [i.name for i in out.graph.input] == ["x"]
    x = np.array([3, 4], np.float32)
    np.testing.assert_array_equal(testing.run(out, {"x": x})[0], (x + [1, 2]) * [1, 2])


def test_must_not_fire_on_distinct_constants():
    _, result = testing.apply_pass(tiny.conv1d_chain(), "cleanup")
    assert result.sites == 0
