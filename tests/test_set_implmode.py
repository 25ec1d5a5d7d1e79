import onnx
import tiny

from graphkit import testing


def test_records_ascend_types_without_changing_the_graph():
    model = onnx.parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[B,3] x) => (float[B,3] y) { s = Sigmoid(x)  y = Softmax(s) }
    """)
    out, result = testing.apply_pass(model, "set_implmode", op_types=["Sigmoid", "Softmax"])
    assert result.sites == 2
    assert result.atc == {
        "op_select_implmode": "high_performance",
        "optypelist_for_implmode": ["Sigmoid", "SoftmaxV2"],
    }

    def nodes(m):
        return [(n.op_type, list(n.input), list(n.output)) for n in m.graph.node]

    assert nodes(out) == nodes(model)


def test_zero_sites_when_the_op_is_absent():
    _, result = testing.apply_pass(tiny.conv1d_chain(), "set_implmode", mode="high_precision")
    assert result.sites == 0 and result.atc["op_select_implmode"] == "high_precision"
