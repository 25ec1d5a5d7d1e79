"""graphkit lint: every rule fires on a tiny graph built for it, and stays quiet on its near miss."""

from __future__ import annotations

import json
import logging

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from tiny import conv1d_chain

from graphkit.ascend.lint import RULES, Finding, lint_model, render
from graphkit.cli import main
from graphkit.errors import UsageError


def parse(graph: str, *, opset: int = 17, extra: str = "") -> onnx.ModelProto:
    """A model from ONNX text: ``graph`` is the graph's text after the opset header."""
    return onnx.parser.parse_model(f'<ir_version: 8, opset_import: ["" : {opset}{extra}]>\n{graph}')


def weights(model: onnx.ModelProto, **shapes: tuple[int, ...]) -> onnx.ModelProto:
    """Add seeded float initializers of the given shapes (ONNX text would spell out every value)."""
    rng = np.random.default_rng(0)
    for name, shape in shapes.items():
        model.graph.initializer.append(
            numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
        )
    return model


def hits(model: onnx.ModelProto, rule: str, **kwargs) -> list[Finding]:
    return [f for f in lint_model(model, **kwargs) if f.rule == rule]


def one(model: onnx.ModelProto, rule: str, **kwargs) -> Finding:
    found = hits(model, rule, **kwargs)
    assert len(found) == 1, found
    return found[0]


def check(f: Finding, severity: str, node: str | None, fix: str | None) -> None:
    assert (f.severity, f.node, f.fix) == (severity, node, fix), f
    if node is not None:
        assert node in f.message  # every message names what it is about


CONV2D = weights(
    parse("""
g (float[1,4,8,8] x) => (float[1,4,8,8] y) {
    c = Conv<pads = [1,1,1,1]>(x, w)
    y = Relu(c)
}"""),
    w=(4, 4, 3, 3),
)


def test_a_clean_conv2d_model_has_no_findings():
    assert lint_model(CONV2D) == []
    assert render([]) == "0 errors, 0 warnings"


# --- unsupported-op ---------------------------------------------------------------------------


def test_unsupported_op_names_the_node_and_the_parser_error():
    m = parse("g (float[1,4] x) => (float[1,4] y) { y = CastLike(x, x) }")
    m.graph.node[0].name = "cl"
    f = one(m, "unsupported-op")
    check(f, "error", "cl", None)
    assert f.op_type == "CastLike" and "E16002" in f.message and "replace it with Cast" in f.message


SUBGRAPHS = parse("""
g (float[1,3,8,8] x, bool c) => (float[1,3,16,16] y, float[4] z) <float[4] s = {1.0, 1.0, 2.0, 2.0}, int64 n = {3}> {
    y = If (c) <then_branch = then_g () => (float[1,3,16,16] t) { t = Resize(x, , s) },
                else_branch = else_g () => (float[1,3,16,16] e) { d = Add(s, s)
                                                                   e = Resize(x, , d) }>
    z = Loop (n, c) <body = body_g (int64 i, bool ci) => (bool co, float[4] v) { co = Identity(ci)
                                                                                 v = Unique(s) }>
}""")


def test_unsupported_op_looks_inside_subgraphs_and_flags_loop():
    found = {f.node: f for f in hits(SUBGRAPHS, "unsupported-op")}
    assert set(found) == {"<Loop:z>", "<Unique:v>"}  # If, Resize, Add, Identity are listed
    assert "inside a subgraph" in found["<Unique:v>"].message
    assert "unroll" in found["<Loop:z>"].message


def test_subgraph_nodes_see_the_outer_scope_constants():
    # then: Resize reads the outer initializer s (constant); else: d computed inside the branch
    assert [f.node for f in hits(SUBGRAPHS, "resize-dynamic-scales")] == ["<Resize:e>"]


def test_unsupported_op_domains_custom_ops_and_local_functions():
    m = parse(
        """
g (float[1,4] x) => (float[1,4] y, float[1,4] z, float[1,4] u) {
    y = com.microsoft.FastGelu(x)
    z = npu.NPUFastGelu(x)
    u = local.twice(x)
}
<domain: "local", opset_import: ["" : 17]>
twice (a) => (b) { b = Add(a, a) }""",
        extra=', "com.microsoft" : 1, "npu" : 1, "local" : 1',
    )
    for node, name in zip(m.graph.node, ("fg", "npu_fg", "call")):
        node.name = name
    found = {f.node: f for f in hits(m, "unsupported-op")}
    assert set(found) == {"fg", "call"}  # NPUFastGelu is a custom op the parser accepts
    assert "domain 'com.microsoft'" in found["fg"].message
    assert "inline_local_functions" in found["call"].message


def test_unsupported_op_follows_the_cann_version():
    m = weights(
        parse("g (float[1,4] x) => (float[1,4] y) { y = LayerNormalization(x, s, b) }"), s=(4,), b=(4,)
    )
    m.graph.node[0].name = "ln"
    f = one(m, "unsupported-op", cann="5.0.4", ignore=["opset"])
    check(f, "error", "ln", None)
    assert "5.0.4 list" in f.message
    assert hits(m, "unsupported-op", cann="8.0") == []
    assert hits(m, "unsupported-op", cann="7.0") == []  # 6.x/7.x: the 8.0.0 list


def test_cann_6_and_7_say_which_list_stands_in():
    m = parse("g (float[1,4] x) => (float[1,4] y) { y = CastLike(x, x) }")
    assert "closest published one for CANN 7.x" in one(m, "unsupported-op", cann="7.0.0").message


# --- opset ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("opset", "cann", "severity"),
    [
        (19, "8.0", "error"),
        (7, "8.0", "error"),
        (18, "8.0", "warning"),
        (10, "8.0", "warning"),
        (14, "5.0.4", "error"),
        (17, "6.0.1", "error"),
    ],
)
def test_opset_outside_the_parsers(opset, cann, severity):
    m = parse("g (float[1,4] x) => (float[1,4] y) { y = Relu(x) }", opset=opset)
    f = one(m, "opset", cann=cann)
    check(f, severity, None, None)
    assert str(opset) in f.message
    if severity == "error":
        assert "E16002" in f.message


@pytest.mark.parametrize(("opset", "cann"), [(17, "8.0"), (11, "8.0"), (13, "5.0.4"), (16, "6.0.1")])
def test_opset_in_range_is_quiet(opset, cann):
    m = parse("g (float[1,4] x) => (float[1,4] y) { y = Relu(x) }", opset=opset)
    assert hits(m, "opset", cann=cann) == []


# --- dynamic-dim ------------------------------------------------------------------------------

DYN_BATCH = parse("g (float[N,3,8,8] x) => (float[N,3,8,8] y) { y = Relu(x) }")
DYN_HW = parse("g (float[N,3,H,W] x) => (float[N,3,H,W] y) { y = Relu(x) }")
DYN_IMAGE = parse("g (float[1,3,H,W] x) => (float[1,3,H,W] y) { y = Relu(x) }")


def test_dynamic_batch_without_a_gear():
    f = one(DYN_BATCH, "dynamic-dim")
    check(f, "error", "x", "set_batch_size")
    assert "dim(s) 0" in f.message and "--input_shape" in f.message


def test_dynamic_batch_with_dynamic_batch_size_is_quiet():
    assert hits(DYN_BATCH, "dynamic-dim", gear="dynamic_batch_size") == []
    assert hits(DYN_BATCH, "dynamic-dim", gear="dynamic_dims") == []


def test_dynamic_batch_size_covers_dim_0_only():
    f = one(DYN_HW, "dynamic-dim", gear="dynamic_batch_size")
    check(f, "error", "x", None)
    assert "dim(s) 2, 3" in f.message


def test_dynamic_image_size_covers_h_and_w_only():
    assert hits(DYN_IMAGE, "dynamic-dim", gear="dynamic_image_size") == []
    f = one(DYN_HW, "dynamic-dim", gear="dynamic_image_size")
    check(f, "error", "x", "set_batch_size")
    assert "dim(s) 0 " in f.message


def test_dynamic_dims_holds_four_dims_before_cann_7_1():
    m = parse("g (float[A,B,C] x, float[D,E] z) => (float[A,B,C] y) { y = Relu(x) }")
    f = one(m, "dynamic-dim", gear="dynamic_dims", cann="7.0")
    check(f, "error", None, None)
    assert hits(m, "dynamic-dim", gear="dynamic_dims", cann="8.0") == []


def test_input_shape_range_is_unsupported_before_6_3():
    check(one(DYN_IMAGE, "dynamic-dim", gear="input_shape_range", cann="6.0.1"), "error", "x", None)
    check(one(DYN_IMAGE, "dynamic-dim", gear="input_shape_range", cann="8.0"), "warning", None, None)


# --- topk-int64-arith -------------------------------------------------------------------------

TOPK = """
g (float[1,8] x) => (int64[{out}] y) <int64[1] k = {{3}}, int64[2] shape = {{3, 1}}, int64 one = {{1}}> {{
    vals, idx = TopK<axis = 1>(x, k)
    r = Reshape(idx, shape)
    {body}
}}"""


def test_topk_indices_into_add_through_reshape():
    m = parse(TOPK.format(out="3,1", body="y = Add(r, one)"))
    m.graph.node[0].name, m.graph.node[2].name = "topk", "add"
    f = one(m, "topk-int64-arith")
    check(f, "error", "add", "cast_indices_int32")
    assert "topk" in f.message and "E89999" in f.message and "Cast to int32" in f.message


def test_topk_indices_through_a_cast_are_quiet():
    body = "c = Cast<to = 7>(r)\n    y = Add(c, one)"
    assert hits(parse(TOPK.format(out="3,1", body=body)), "topk-int64-arith") == []


def test_topk_indices_used_as_gather_indices_are_quiet():
    m = parse("""
g (float[1,8] x) => (float[1,3] y) <int64[1] k = {3}> {
    vals, idx = TopK<axis = 1>(x, k)
    y = GatherElements<axis = 1>(x, idx)
}""")
    assert hits(m, "topk-int64-arith") == []


def test_argmax_into_equal():
    m = parse("""
g (float[2,8] x) => (bool[2] y) <int64 z = {0}> {
    a = ArgMax<axis = 1, keepdims = 0>(x)
    y = Equal(a, z)
}""")
    m.graph.node[1].name = "eq"
    check(one(m, "topk-int64-arith"), "error", "eq", "cast_indices_int32")


# --- resize-dynamic-scales --------------------------------------------------------------------


def test_resize_with_computed_scales():
    m = parse("""
g (float[1,3,8,8] x) => (float[1,3,16,16] y) <float[4] a = {1.0, 1.0, 1.0, 1.0}> {
    s = Add(a, a)
    y = Resize(x, , s)
}""")
    m.graph.node[1].name = "up"
    f = one(m, "resize-dynamic-scales")
    check(f, "error", "up", "simplify")
    assert "'s'" in f.message


def test_resize_with_computed_sizes_opset_11():
    m = parse(
        """
g (float[1,3,8,8] x) => (float[1,3,16,16] y) <float[0] roi = {}, float[0] sc = {}> {
    sh = Shape(x)
    y = Resize(x, roi, sc, sh)
}""",
        opset=11,
    )
    assert one(m, "resize-dynamic-scales").fix == "simplify"
    assert hits(m, "empty-tensor") == []  # empty roi/scales placeholders are how exporters say "absent"


def test_resize_with_constant_scales_is_quiet():
    m = parse("""
g (float[1,3,8,8] x) => (float[1,3,16,16] y, float[1,3,16,16] z) <float[4] s = {1.0, 1.0, 2.0, 2.0}> {
    y = Resize(x, , s)
    c = Constant<value = float[4] {1.0, 1.0, 2.0, 2.0}>()
    z = Resize(x, , c)
}""")
    assert hits(m, "resize-dynamic-scales") == []


# --- pad-constant-value and pad-reflect -------------------------------------------------------

PAD = """
g (float[1,3,8,8] x{extra}) => (float[1,3,10,10] y) <int64[8] p = {{0,0,1,1,0,0,1,1}}, float zero = {{0.0}}, float one = {{1.0}}> {{
    y = Pad<mode = "{mode}">(x, p{value})
}}"""


@pytest.mark.parametrize(
    ("value", "extra", "needle", "fix"),
    [(", one", "", "is 1", "replace_pad_value"), (", v", ", float v", "cannot be checked", None)],
)
def test_pad_constant_value_not_zero(value, extra, needle, fix):
    m = parse(PAD.format(mode="constant", value=value, extra=extra))
    m.graph.node[0].name = "pad"
    f = one(m, "pad-constant-value")
    check(f, "error", "pad", fix)
    assert needle in f.message


def test_pad_constant_value_attribute_before_opset_11():
    m = parse(
        "g (float[1,3,8,8] x) => (float[1,3,10,10] y) { y = Pad<pads = [0,0,1,1,0,0,1,1], value = 2.0>(x) }",
        opset=10,
    )
    m.graph.node[0].name = "pad"
    check(one(m, "pad-constant-value"), "error", "pad", None)


@pytest.mark.parametrize("value", ["", ", zero"])
def test_pad_constant_zero_is_quiet(value):
    assert lint_model(parse(PAD.format(mode="constant", value=value, extra=""))) == []


def test_pad_reflect_is_a_warning():
    m = parse(PAD.format(mode="reflect", value="", extra=""))
    m.graph.node[0].name = "pad"
    f = one(m, "pad-reflect")
    check(f, "warning", "pad", None)
    assert "Slice+Concat" in f.message
    assert hits(m, "pad-constant-value") == []
    assert lint_model(parse(PAD.format(mode="edge", value="", extra=""))) == []


# --- wide-conv-kernel and avgpool-kernel ------------------------------------------------------


def test_wide_conv_kernel():
    m = weights(parse("g (float[1,1,1,1000] x) => (float[1,4,1,750] y) { y = Conv(x, w) }"), w=(4, 1, 1, 251))
    m.graph.node[0].name = "big"
    f = one(m, "wide-conv-kernel")
    check(f, "warning", "big", None)  # tile_conv_width tiles wide inputs, not wide kernels
    assert "251" in f.message and "ReduceSum" in f.message
    assert hits(CONV2D, "wide-conv-kernel") == []


def test_avgpool_kernel():
    m = parse("""
g (float[1,1,1,1000] x) => (float[1,1,1,701] y, float[1,1,1,500] z) {
    y = AveragePool<kernel_shape = [1, 300]>(x)
    z = AveragePool<kernel_shape = [1, 2], strides = [1, 2]>(x)
}""")
    m.graph.node[0].name = "pool"
    f = one(m, "avgpool-kernel")
    check(f, "warning", "pool", None)
    assert "300" in f.message and "255" in f.message


# --- empty-tensor -----------------------------------------------------------------------------


def test_empty_slice_into_concat():
    m = parse("""
g (float[1,4] x) => (float[1,4] y) <int64[1] s = {4}, int64[1] e = {4}, int64[1] ax = {1}> {
    empty = Slice(x, s, e, ax)
    y = Concat<axis = 1>(x, empty)
}""")
    m.graph.node[1].name = "cat"
    f = one(m, "empty-tensor")
    check(f, "error", "cat", None)  # data, not shape arithmetic: no pass removes it
    assert "'empty' (1,0)" in f.message and "KnowledgeEmptySliceFix" in f.message


def test_empty_shape_arithmetic_into_concat_is_folded_by_simplify():
    m = parse("""
g (float[N,4,6] x) => (float[N,24] y) <int64[1] s = {3}, int64[1] e = {3}, int64[1] rest = {24}> {
    sh = Shape(x)
    b = Slice(sh, s, e)
    n = Shape<end = 1>(x)
    t = Concat<axis = 0>(n, b, rest)
    y = Reshape(x, t)
}""")
    m.graph.node[3].name = "target"
    f = one(m, "empty-tensor", gear="dynamic_batch_size")
    check(f, "error", "target", "simplify")
    assert "shape arithmetic" in f.message


def test_empty_initializer_and_input_read_as_data():
    m = parse(
        "g (float[0,4] x) => (float[0,4] y, float[3,0] z) <float[3,0] w = {}> { y = Relu(x)\n z = Neg(w) }"
    )
    m.graph.node[1].name = "neg"
    found = {f.node: f for f in hits(m, "empty-tensor")}
    assert set(found) == {"x", "w", "<Relu:y>", "neg"}  # graph input, initializer, producers
    assert found["x"].op_type is None and found["neg"].op_type == "Neg"


def test_no_empty_tensors_is_quiet():
    assert hits(CONV2D, "empty-tensor") == []


# --- conv1d-chain -----------------------------------------------------------------------------


def test_conv1d_chain_is_one_finding():
    m = conv1d_chain()
    m.graph.node[0].name, m.graph.node[3].name = "c1", "c2"
    f = one(m, "conv1d-chain")
    check(f, "warning", "c1", "conv1d_to_conv2d")
    assert "2 Convs" in f.message and "c2" in f.message


def test_separate_conv1d_chains():
    m = parse("""
g (float[1,4,16] x) => (float[1,4,16] y) {
    a = Conv<pads = [1,1]>(x, w)
    b = MatMul(a, a16)
    y = Conv<pads = [1,1]>(b, w)
}""")
    weights(m, w=(4, 4, 3), a16=(16, 16))
    assert [f.node for f in hits(m, "conv1d-chain")] == ["<Conv:a>", "<Conv:y>"]  # unnamed nodes


def test_conv1d_chains_inside_branches_are_found_one_per_graph():
    # was: bodies were not looked at. The branches continue the outer chain (they read a) but
    # are chains of their own, as conv1d_to_conv2d's regions are; both define r (siblings may).
    # The else branch's Conv is 1-D by the inferred shape of its Constant-node weight alone.
    m = parse(
        """
g (float[1,4,16] x, bool c) => (float[1,4,16] y) {
    a = Conv<pads = [1,1]>(x, w)
    y = If (c) <
        then_branch = t () => (float[1,4,16] ty) {
            r = Conv<kernel_shape = [3], pads = [1,1]>(a, w)
            s = Relu(r)
            ty = Conv(s, w1)
        },
        else_branch = e () => (float[1,4,16] ey) {
            k = Constant<value = float[4,4,1] {ONES}>()
            r = Conv(a, k)
            ey = Neg(r)
        }
    >
}""".replace("ONES", ", ".join(["1"] * 16))
    )
    weights(m, w=(4, 4, 3), w1=(4, 4, 1))
    onnx.checker.check_model(m, full_check=True)
    found = hits(m, "conv1d-chain")
    assert [f.node for f in found] == ["<Conv:a>", "<Conv:r>", "<Conv:r>"]
    assert "inside a subgraph" not in found[0].message and "(1 Conv)" in found[0].message
    assert "inside a subgraph (2 Convs, to <Conv:ty>)" in found[1].message
    assert "inside a subgraph (1 Conv)" in found[2].message


def test_conv2d_is_not_a_conv1d_chain():
    assert hits(CONV2D, "conv1d-chain") == []


# --- lint_model as a whole --------------------------------------------------------------------


def test_errors_come_first_then_graph_order():
    m = parse("""
g (float[N,3,8,8] x) => (float[N,3,10,10] y) <int64[8] p = {0,0,1,1,0,0,1,1}, float one = {1.0}> {
    a = Pad<mode = "reflect">(x, p)
    b = Relu(a)
    y = Pad(b, p, one)
}""")
    assert [f.rule for f in lint_model(m)] == ["dynamic-dim", "pad-constant-value", "pad-reflect"]


def test_the_model_is_not_modified():
    m = conv1d_chain()
    before = m.SerializeToString()
    lint_model(m)
    assert m.SerializeToString() == before


def test_ignore_skips_a_rule_and_only_that_rule():
    m = parse(PAD.format(mode="reflect", value="", extra=""), opset=18)
    assert {f.rule for f in lint_model(m)} == {"pad-reflect", "opset"}
    assert {f.rule for f in lint_model(m, ignore=["pad-reflect"])} == {"opset"}
    assert {f.rule for f in lint_model(m, ignore="opset")} == {"pad-reflect"}


def test_unknown_ignore_id_names_the_known_ids():
    with pytest.raises(UsageError, match="did you mean 'pad-reflect'.*known: unsupported-op, opset"):
        lint_model(CONV2D, ignore=["pad-reflct"])


@pytest.mark.parametrize(
    "kwargs", [{"cann": "8"}, {"cann": "eight"}, {"soc": "Ascend311"}, {"gear": "dynamic_batch"}]
)
def test_bad_target_is_a_usage_error(kwargs):
    with pytest.raises(UsageError):
        lint_model(CONV2D, **kwargs)


@pytest.mark.parametrize("cann", ["8.0", "5.0.4", "8.0.RC2"])
def test_cann_spellings(cann):
    lint_model(CONV2D, cann=cann)


def test_failed_shape_inference_keeps_the_shape_free_rules(monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise onnx.shape_inference.InferenceError("no")

    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", refuse)
    m = parse("g (float[1,4] x) => (float[1,4] y) { y = CastLike(x, x) }")
    with caplog.at_level(logging.WARNING, logger="graphkit"):
        assert [f.rule for f in lint_model(m)] == ["unsupported-op"]
    assert "shape inference failed" in caplog.text


def test_every_rule_has_a_summary_and_a_known_severity():
    assert len(RULES) == 11
    for rule_id, rule in RULES.items():
        assert rule.id == rule_id and rule.severity in ("error", "warning") and rule.summary


# --- render and the command -------------------------------------------------------------------


def test_render_is_a_table_with_a_count_line():
    text = render(lint_model(conv1d_chain()))
    head, error, warning, count = text.splitlines()
    assert head.split() == ["SEVERITY", "RULE", "NODE", "OP", "FIX", "MESSAGE"]
    assert error.split()[:5] == ["error", "dynamic-dim", "x", "-", "set_batch_size"]
    assert (
        warning.split()[:5] == ["warning", "conv1d-chain", "<Conv", "->", "w1>"]
        or "conv1d_to_conv2d" in warning
    )
    assert warning.index("conv1d_to_conv2d") == error.index("set_batch_size")  # aligned columns
    assert count == "1 error, 1 warning"


def test_command_prints_findings_and_exits_1_on_errors(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(conv1d_chain(), path)
    assert main(["lint", str(path)]) == 1
    assert "dynamic-dim" in capsys.readouterr().out
    assert main(["lint", str(path), "--gear", "dynamic_batch_size", "--json"]) == 0
    assert [f["rule"] for f in json.loads(capsys.readouterr().out)["findings"]] == ["conv1d-chain"]
    assert main(["lint", str(path), "--ignore", "dynamic-dim,conv1d-chain"]) == 0


def test_command_lists_rules(capsys):
    assert main(["lint", "--list-rules", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == list(RULES)
    assert main(["lint"]) == 2
    assert "MODEL" in capsys.readouterr().err
