import numpy as np
import onnx
import tiny


def test_merges_duplicate_constants_and_unused_inputs():
    model = onnx.parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[2] x, float[2] unused) => (float[2] y) {
        a = Constant<value = float[2] {1, 2}>()
        b = Constant<value = float[2] {1, 2}>()
        p = Add(x, a)
        y = Mul(p, b)
    }
    """)
    out, result = tiny.apply_pass(model, "cleanup", remove_unused_inputs=True)
    assert result.sites == 2  # one constant merged, one input dropped
    assert [i.name for i in out.graph.input] == ["x"]
    x = np.array([3, 4], np.float32)
    np.testing.assert_array_equal(tiny.run(out, {"x": x})[0], (x + [1, 2]) * [1, 2])


def test_must_not_fire_on_distinct_constants():
    _, result = tiny.apply_pass(tiny.conv1d_chain(), "cleanup")
    assert result.sites == 0
