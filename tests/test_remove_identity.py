import numpy as np
import onnx
import tiny


def test_removes_inner_identity_and_keeps_output_names():
    model = tiny.conv1d_chain()  # y → Identity → y_id → ReduceMean
    out, result = tiny.apply_pass(model, "remove_identity")
    assert result.sites == 1
    assert "Identity" not in {n.op_type for n in out.graph.node}
    assert [o.name for o in out.graph.output] == ["y", "pooled"]
    x = np.random.default_rng(0).standard_normal((2, 4, 16)).astype(np.float32)
    for a, b in zip(tiny.run(out, {"x": x}), tiny.run(model, {"x": x})):
        np.testing.assert_array_equal(a, b)


def test_identity_to_graph_output_is_renamed_into_producer():
    model = tiny.with_shape_plumbing()  # r → Identity → y (graph output)
    out, result = tiny.apply_pass(model, "remove_identity")
    assert result.sites == 1
    assert out.graph.output[0].name == "y"
    assert out.graph.node[-1].op_type == "Reshape" and out.graph.node[-1].output[0] == "y"


def test_must_not_fire_when_input_feeds_output_directly():
    model = onnx.parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[2] x) => (float[2] y) { y = Identity(x) }
    """)
    out, result = tiny.apply_pass(model, "remove_identity")
    assert result.sites == 0
    assert [n.op_type for n in out.graph.node] == ["Identity"]
