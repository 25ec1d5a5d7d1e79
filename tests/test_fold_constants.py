import numpy as np
import tiny


def test_folds_constant_subgraph():
    import onnx

    model = onnx.parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[B,3] x) => (float[B,3] y) {
        a = Constant<value = float[3] {1, 2, 3}>()
        b = Constant<value = float[3] {4, 5, 6}>()
        c = Mul(a, b)
        y = Add(x, c)
    }
    """)
    out, result = tiny.apply_pass(model, "fold_constants")
    assert result.sites == 3  # two Constants and the Mul
    assert [n.op_type for n in out.graph.node] == ["Add"]
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(tiny.run(out, {"x": x})[0], tiny.run(model, {"x": x})[0])


def test_must_not_fire_on_dynamic_shape_without_batch():
    # The Reshape target depends on the symbolic batch: nothing can be folded yet.
    model = tiny.with_shape_plumbing()
    out, result = tiny.apply_pass(model, "fold_constants", fold_shapes=True)
    assert "Shape" in {n.op_type for n in out.graph.node}
