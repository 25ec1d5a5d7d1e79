"""conv1d_to_conv2d: structure before/after, numbers on onnxruntime, guards, properties."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import onnx
import pytest
import tiny
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper

from graphkit import testing
from graphkit.passes._infra import EXACT, spec_of
from graphkit.passes.conv1d_to_conv2d import conv1d_to_conv2d
from graphkit.testing import build, roundtrip, run, weights

# -- helpers -------------------------------------------------------------------------------------


def lift(model: onnx.ModelProto, *, shapes: bool = True) -> tuple[onnx.ModelProto, int]:
    return testing.rewrite(model, "conv1d_to_conv2d", shapes=shapes)


def assert_same_numbers(before: onnx.ModelProto, after: onnx.ModelProto, seed: int = 0) -> None:
    inputs = testing.feeds(before, seed=seed)
    assert [o.name for o in after.graph.output] == [o.name for o in before.graph.output]
    for name, a, b in zip([o.name for o in before.graph.output], run(before, inputs), run(after, inputs)):
        assert a.shape == b.shape, name
        scale = max(1.0, float(np.abs(a).max()))
        assert float(np.abs(a - b).max()) <= 1e-5 * scale, name


ops = tiny.ops


nodes = tiny.nodes


attrs = tiny.attrs


inits_of = tiny.inits_of


def axes(model: onnx.ModelProto, node: onnx.NodeProto) -> list[int]:
    if "axes" in attrs(node):
        return list(attrs(node)["axes"])
    return inits_of(model)[node.input[1]].tolist()


def producer(model: onnx.ModelProto, tensor: str) -> onnx.NodeProto | None:
    return next((n for n in model.graph.node if tensor in n.output), None)


def readers(model: onnx.ModelProto, tensor: str) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if tensor in n.input]


def producer_output(model: onnx.ModelProto, source: str) -> str:
    """The output of the Unsqueeze that reads ``source``."""
    (node,) = [n for n in nodes(model, "Unsqueeze") if n.input[0] == source]
    return node.output[0]


def conv1d_left(model: onnx.ModelProto) -> int:
    return sum(len(attrs(n).get("kernel_shape", [0, 0])) == 1 for n in nodes(model, "Conv"))


def assert_untouched(model: onnx.ModelProto) -> None:
    out, sites = lift(model)
    assert sites == 0
    assert out.SerializeToString() == roundtrip(model)


# -- the pass as registered --------------------------------------------------------------------


def test_registered_as_exact_pass_without_parameters():
    spec = spec_of(conv1d_to_conv2d)
    assert spec is not None and spec.name == "conv1d_to_conv2d"
    assert spec.contract == EXACT and not spec.params and spec.doc


# -- before / after ----------------------------------------------------------------------------


def test_single_conv_is_lifted_faithfully():
    model = build(
        """g (float[2,4,16] x) => (float[2,6,15] y) {
            y = Conv<kernel_shape=[3], pads=[1,2], dilations=[2], strides=[1], group=2>(x, w, b)
        }""",
        w=weights(6, 2, 3),
        b=weights(6, seed=1),
    )
    out, sites = lift(model)
    assert sites == 1
    assert ops(out) == Counter(Unsqueeze=1, Conv=1, Squeeze=1)
    (conv,) = nodes(out, "Conv")
    assert attrs(conv) == {
        "kernel_shape": [1, 3],
        "pads": [0, 1, 0, 2],
        "dilations": [1, 2],
        "strides": [1, 1],
        "group": 2,
    }
    assert inits_of(out)[conv.input[1]].shape == (6, 2, 1, 3)
    np.testing.assert_array_equal(inits_of(out)[conv.input[1]][:, :, 0, :], inits_of(model)["w"])
    assert conv.input[2] == "b"  # bias unchanged
    assert producer(out, conv.input[0]).op_type == "Unsqueeze"
    assert axes(out, producer(out, conv.input[0])) == [2]
    squeeze = producer(out, "y")
    assert squeeze.op_type == "Squeeze" and squeeze.input[0] == conv.output[0]
    assert axes(out, squeeze) == [2]
    assert_same_numbers(model, out)


def test_kernel_shape_is_inferred_from_the_weight():
    model = build("g (float[1,3,10] x) => (float[1,5,6] y) { y = Conv(x, w) }", w=weights(5, 3, 5))
    out, sites = lift(model)
    assert sites == 1 and attrs(nodes(out, "Conv")[0])["kernel_shape"] == [1, 5]
    assert_same_numbers(model, out)


@pytest.mark.parametrize("opset", [11, 13])
def test_unsqueeze_and_squeeze_take_the_opset_form(opset):
    model = build(
        "g (float[1,3,10] x) => (float[1,3,10] y) { y = Conv<kernel_shape=[1]>(x, w) }",
        opset=opset,
        w=weights(3, 3, 1),
    )
    out, _ = lift(model)
    for node in nodes(out, "Unsqueeze") + nodes(out, "Squeeze"):
        assert ("axes" in attrs(node)) == (opset < 13)
        assert axes(out, node) == [2]
    assert_same_numbers(model, out)


CHAIN = """g (float[2,4,12] x) => (float[2,4,12] y) {
    c1 = Conv<kernel_shape=[3], pads=[1,1]>(x, w1, b1)
    n1 = BatchNormalization(c1, s, bb, m, v)
    r1 = Relu(n1)
    a, b = Split<axis=1>(r1, sizes)
    a2 = Conv<kernel_shape=[3], pads=[2,2], dilations=[2]>(a, w2)
    b2 = Add(b, cl)
    cat = Concat<axis=1>(a2, b2)
    g1 = Mul(cat, gate)
    l1 = LeakyRelu<alpha=0.1>(g1)
    k1 = Clip(l1, lo, hi)
    y = Conv<kernel_shape=[1]>(k1, w3)
}"""


def chain_model() -> onnx.ModelProto:
    return build(
        CHAIN,
        w1=weights(4, 4, 3),
        b1=weights(4, seed=1),
        s=np.abs(weights(4, seed=2)) + 0.5,
        bb=weights(4, seed=3),
        m=weights(4, seed=4),
        v=np.abs(weights(4, seed=5)) + 0.5,
        sizes=np.array([2, 2], dtype=np.int64),
        w2=weights(2, 2, 3, seed=6),
        cl=weights(2, 12, seed=7),  # a (C, L) constant operand
        gate=np.abs(weights(1, 4, 1, seed=8)),  # a rank-3 constant gate
        lo=np.array(-0.5, dtype=np.float32),
        hi=np.array(0.5, dtype=np.float32),
        w3=weights(4, 4, 1, seed=9),
    )


def test_chain_is_one_region_with_one_unsqueeze_in_and_one_squeeze_out():
    model = chain_model()
    out, sites = lift(model)
    assert sites == 3
    assert ops(out) == ops(model) + Counter(Unsqueeze=1, Squeeze=1)
    (unsq,) = nodes(out, "Unsqueeze")
    (sq,) = nodes(out, "Squeeze")
    assert unsq.input[0] == "x" and sq.output[0] == "y"
    assert conv1d_left(out) == 0
    assert attrs(nodes(out, "Split")[0])["axis"] == 1 and attrs(nodes(out, "Concat")[0])["axis"] == 1
    init = inits_of(out)
    add = nodes(out, "Add")[0]
    assert init[add.input[1]].shape == (2, 1, 12)  # (C, L) -> (C, 1, L)
    assert init[nodes(out, "Mul")[0].input[1]].shape == (1, 4, 1, 1)
    clip = nodes(out, "Clip")[0]
    assert clip.input[1:] == ["lo", "hi"]  # parameters stay as they are
    bn = nodes(out, "BatchNormalization")[0]
    assert bn.input[1:] == ["s", "bb", "m", "v"]
    assert nodes(out, "Split")[0].input[1] == "sizes"
    assert_same_numbers(model, out)


@pytest.mark.parametrize("axis", [0, 2, -1, -2, -3])
@pytest.mark.parametrize("opset", [11, 13, 18])
def test_split_and_concat_axes_map_to_4d(axis, opset):
    dims = [2, 4, 8]
    a3 = axis % 3
    half = [d // 2 if i == a3 else d for i, d in enumerate(dims)]
    if opset < 13:
        split = f"p, q = Split<axis={axis}, split=[{dims[a3] // 2}, {dims[a3] // 2}]>(r)"
        extra = {}
    elif opset < 18:
        split = f"p, q = Split<axis={axis}>(r, sizes)"
        extra = {"sizes": np.array([dims[a3] // 2] * 2, dtype=np.int64)}
    else:
        split = f"p, q = Split<axis={axis}, num_outputs=2>(r)"
        extra = {}
    model = build(
        f"""g (float[2,4,8] x) => (float[2,4,8] y, float[{",".join(map(str, half))}] p) {{
            c = Conv<kernel_shape=[3], pads=[1,1]>(x, w)
            r = Relu(c)
            {split}
            qq = Neg(q)
            y = Concat<axis={axis}>(qq, p)
        }}""",
        opset=opset,
        w=weights(4, 4, 3),
        **extra,
    )
    out, sites = lift(model)
    assert sites == 1
    expected = (0, 1, 3)[a3]
    assert attrs(nodes(out, "Split")[0])["axis"] == expected
    assert attrs(nodes(out, "Concat")[0])["axis"] == expected
    if opset >= 18:
        assert attrs(nodes(out, "Split")[0])["num_outputs"] == 2
    assert ops(out)["Squeeze"] == 2  # y and p leave the region
    assert_same_numbers(model, out)


def test_outside_operands_broadcast_the_same_once_lifted():
    model = build(
        """g (float[2,3,8] x, float[3,8] cl, float[8] l, float[2,3,1] gate) => (float[2,3,8] y) {
            c = Conv<kernel_shape=[3], pads=[1,1]>(x, w)
            a = Add(c, cl)
            m = Mul(a, l)
            s = Sub(m, half)
            d = Div(s, colscale)
            p = PRelu(d, slope)
            q = Pow(p, two)
            g1 = Mul(q, gate)
            g2 = Max(g1, gate, row)
            y = Conv<kernel_shape=[1]>(g2, w2)
        }""",
        w=weights(3, 3, 3),
        w2=weights(3, 3, 1, seed=1),
        half=np.array(0.5, dtype=np.float32),
        colscale=np.abs(weights(3, 1, seed=2)) + 1,  # (C, 1)
        slope=weights(3, 1, seed=3),
        two=np.array(2.0, dtype=np.float32),
        row=weights(8, seed=4),
    )
    out, sites = lift(model)
    assert sites == 2
    unsq = {n.input[0]: axes(out, n) for n in nodes(out, "Unsqueeze")}
    # one Unsqueeze per entering tensor: x and gate at 2, the (C, L) variable at -2 -> 1;
    # the (L,) variable, scalars and (L,) constants need none
    assert unsq == {"x": [2], "cl": [1], "gate": [2]}
    assert len(readers(out, producer_output(out, "gate"))) == 2  # both Muls share it
    init = inits_of(out)
    assert init[nodes(out, "Div")[0].input[1]].shape == (3, 1, 1)
    assert init[nodes(out, "PRelu")[0].input[1]].shape == (3, 1, 1)
    assert nodes(out, "Pow")[0].input[1] == "two" and "row" in nodes(out, "Max")[0].input
    assert ops(out)["Squeeze"] == 1
    assert_same_numbers(model, out)


def test_graph_outputs_keep_names_and_outside_readers_read_3d():
    model = build(
        """g (float[1,4,10] x) => (float[1,4,10] c, float[1,10,4] t, float[1,4,10] y) {
            c = Conv<kernel_shape=[3], pads=[1,1]>(x, w)
            t = Transpose<perm=[0,2,1]>(c)
            r = Relu(c)
            y = Conv<kernel_shape=[3], pads=[1,1]>(r, w)
        }""",
        w=weights(4, 4, 3),
    )
    out, sites = lift(model)
    assert sites == 2
    assert [o.name for o in out.graph.output] == ["c", "t", "y"]
    assert producer(out, "c").op_type == "Squeeze" and producer(out, "y").op_type == "Squeeze"
    assert ops(out)["Squeeze"] == 2 and ops(out)["Unsqueeze"] == 1
    assert [n.op_type for n in readers(out, "c")] == ["Transpose"]  # Relu reads the 4-D tensor
    relu = nodes(out, "Relu")[0]
    assert producer(out, relu.input[0]).op_type == "Conv"
    # both convs share the weight: one lifted copy, the (unused) 3-D one is gone
    convs = nodes(out, "Conv")
    assert convs[0].input[1] == convs[1].input[1] and "w" not in inits_of(out)
    assert_same_numbers(model, out)


def test_tensors_read_twice_by_one_node():
    model = build(
        """g (float[1,4,10] x) => (float[1,4,10] y, float[1,4,10] c) {
            s = Add(x, x)
            c = Conv<kernel_shape=[3], pads=[1,1]>(s, w)
            y = Mul(c, c)
        }""",
        w=weights(4, 4, 3),
    )
    out, sites = lift(model)
    assert sites == 1 and ops(out)["Unsqueeze"] == 1 and ops(out)["Squeeze"] == 2
    add, mul = nodes(out, "Add")[0], nodes(out, "Mul")[0]
    assert add.input[0] == add.input[1] == producer_output(out, "x")
    assert mul.input[0] == mul.input[1] == nodes(out, "Conv")[0].output[0]
    assert_same_numbers(model, out)


def test_weight_shared_with_an_outside_node_is_not_mutated():
    w = weights(4, 4, 3)
    model = build(
        """g (float[1,4,10] x) => (float[1,4,10] y, float[4,4,3] wn) {
            y = Conv<kernel_shape=[3], pads=[1,1]>(x, w)
            wn = Neg(w)
        }""",
        w=w,
    )
    out, sites = lift(model)
    assert sites == 1
    init = inits_of(out)
    np.testing.assert_array_equal(init["w"], w)
    assert nodes(out, "Neg")[0].input == ["w"]
    assert init[nodes(out, "Conv")[0].input[1]].shape == (4, 4, 1, 3)
    assert_same_numbers(model, out)


@pytest.mark.parametrize(
    "auto_pad, dilation",
    # onnxruntime rejects dilation > 1 with SAME_* (for Conv1d and Conv2d alike)
    [("SAME_UPPER", 1), ("SAME_LOWER", 1), ("VALID", 1), ("VALID", 2)],
)
def test_auto_pad_is_kept(auto_pad, dilation):
    model = build(
        f"""g (float[1,3,11] x) => (float[1,4,?] y) {{
            y = Conv<kernel_shape=[4], strides=[2], dilations=[{dilation}], auto_pad="{auto_pad}">(x, w)
        }}""",
        w=weights(4, 3, 4),
    )
    out, sites = lift(model)
    conv = nodes(out, "Conv")[0]
    assert sites == 1 and attrs(conv)["auto_pad"].decode() == auto_pad
    assert "pads" not in attrs(conv)
    assert_same_numbers(model, out)


def test_region_reader_inside_a_subgraph_is_served_and_the_subgraph_untouched():
    model = build(
        """g (float[1,4,10] x, bool cond) => (float[1,4,10] y, float[1,4,10] z) {
            c = Conv<kernel_shape=[3], pads=[1,1]>(x, w)
            r = Relu(c)
            y = Conv<kernel_shape=[1]>(r, w2)
            z = If(cond) <
                then_branch = t () => (float[1,4,10] r_4d) { r_4d = Neg(r) },
                else_branch = e () => (float[1,4,10] o) { o = Abs(r) }
            >
        }""",
        w=weights(4, 4, 3),
        w2=weights(4, 4, 1, seed=1),
    )
    out, sites = lift(model)
    assert sites == 2
    # the branches are exported exactly as without the pass (gs adds value_info for r to both)
    before_if = nodes(onnx.ModelProto.FromString(roundtrip(model)), "If")[0]
    assert nodes(out, "If")[0].SerializeToString() == before_if.SerializeToString()
    assert producer(out, "r").op_type == "Squeeze"  # the branches read the 3-D r
    outer = [t for n in out.graph.node for t in n.output]
    assert len(outer) == len(set(outer)) and "r_4d" not in outer  # no clash with the branch
    for flag in (True, False):
        inputs = testing.feeds(model) | {"cond": np.array(flag)}
        for a, b in zip(run(model, inputs), run(out, inputs)):
            np.testing.assert_allclose(a, b, atol=1e-5)


def all_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """The nodes of a graph and of its bodies, at any depth."""
    found = []
    for node in graph.node:
        found.append(node)
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else attr.graphs:
                found.extend(all_nodes(sub))
    return found


def test_regions_inside_branches_are_lifted_in_each_branch():
    # then: Conv -> Relu -> Conv on the graph input; else: Conv on an outer value, then an inner
    # If (on the same cond) whose branch holds a Conv of its own. Every Conv is 1-D; the
    # branches' outputs, and the outer tensors they read, stay 3-D.
    model = build(
        """g (float[2,4,12] x, bool cond) => (float[2,4,12] y) {
            a = Relu(x)
            y = If(cond) <
                then_branch = t () => (float[2,4,12] ty) {
                    c1 = Conv<kernel_shape=[3], pads=[1,1]>(x, w1, b1)
                    r1 = Relu(c1)
                    ty = Conv<kernel_shape=[1]>(r1, w2)
                },
                else_branch = e () => (float[2,4,12] ey) {
                    c2 = Conv<kernel_shape=[3], pads=[2,2], dilations=[2]>(a, w1)
                    m2 = Mul(c2, a)
                    ey = If(cond) <
                        then_branch = et () => (float[2,4,12] ety) {
                            c3 = Conv<kernel_shape=[1]>(m2, w2)
                            ety = Sigmoid(c3)
                        },
                        else_branch = ee () => (float[2,4,12] eey) { eey = Neg(m2) }
                    >
                }
            >
        }""",
        w1=weights(4, 4, 3),
        b1=weights(4, seed=1),
        w2=weights(4, 4, 1, seed=2),
    )
    out, sites = lift(model)
    assert sites == 4  # Convs lifted: c1 and ty (one region), c2, c3
    convs = [n for n in all_nodes(out.graph) if n.op_type == "Conv"]
    assert len(convs) == 4 and all(len(attrs(c)["kernel_shape"]) == 2 for c in convs)
    names = [t for n in all_nodes(out.graph) for t in n.output]
    assert len(names) == len(set(names))
    for flag in (True, False):
        inputs = testing.feeds(model) | {"cond": np.array(flag)}
        for a, b in zip(run(model, inputs), run(out, inputs)):
            np.testing.assert_allclose(a, b, atol=1e-5)
    again, sites = lift(out)
    assert sites == 0


def test_regions_inside_a_loop_body_are_lifted():
    # the carried state h enters the body 3-D and leaves it 3-D; the Conv between is 2-D
    model = build(
        """g (float[1,4,8] x, int64 n) => (float[1,4,8] y) {
            t = Constant<value = bool {1}>()
            y = Loop(n, t, x) <
                body = b (int64 i, bool ci, float[1,4,8] h) => (bool co, float[1,4,8] h2) {
                    c = Conv<kernel_shape=[3], pads=[1,1]>(h, w)
                    h2 = Tanh(c)
                    co = Identity(ci)
                }
            >
        }""",
        w=weights(4, 4, 3),
    )
    out, sites = lift(model)
    assert sites == 1
    (conv,) = [n for n in all_nodes(out.graph) if n.op_type == "Conv"]
    assert attrs(conv)["kernel_shape"] == [1, 3]
    inputs = testing.feeds(model) | {"n": np.array(3)}
    np.testing.assert_allclose(run(out, inputs)[0], run(model, inputs)[0], atol=1e-5)


def test_second_application_changes_nothing():
    once, sites = lift(chain_model())
    assert sites == 3
    again, sites = lift(once)
    assert sites == 0
    assert again.SerializeToString() == roundtrip(once)


# -- guards: must not fire -----------------------------------------------------------------------


def test_conv_with_a_variable_weight_is_left_alone():
    assert_untouched(
        build("g (float[1,4,10] x, float[4,4,3] w) => (float[1,4,8] y) { y = Conv<kernel_shape=[3]>(x, w) }")
    )


def test_conv2d_is_left_alone():
    assert_untouched(
        build(
            "g (float[1,4,5,10] x) => (float[1,4,3,8] y) { y = Conv<kernel_shape=[3,3]>(x, w) }",
            w=weights(4, 4, 3, 3),
        )
    )


def test_unknown_rank_is_left_alone():
    # the shape tensor's length is unknown, so is the rank of the Reshape and the Conv
    model = build(
        """g (float[1,4,10] x, int64[n] shape) => (float[?,?,?] y) {
            r = Reshape(x, shape)
            y = Conv<kernel_shape=[3]>(r, w)
        }""",
        w=weights(4, 4, 3),
    )
    assert_untouched(model)
    # without shape inference the intermediate ranks are unknown too: nothing is lifted
    plain = build(
        """g (float[1,4,10] x) => (float[1,4,10] y) {
            r = Relu(x)
            y = Conv<kernel_shape=[1]>(r, w)
        }""",
        w=weights(4, 4, 1),
    )
    _, sites = lift(plain, shapes=False)
    assert sites == 0


def test_region_without_a_conv_is_left_alone():
    assert_untouched(
        build("g (float[1,4,10] x, float[1,4,10] z) => (float[1,4,10] y) { r = Relu(x)\n y = Add(r, z) }")
    )


@pytest.mark.parametrize(
    "between", ["Softmax<axis=1>(a)", "Transpose<perm=[0,1,2]>(a)", "ReduceMax<axes=[2]>(a)"]
)
def test_ops_outside_the_liftable_set_split_regions(between):
    model = build(
        f"""g (float[1,4,10] x) => (float[1,4,?] y) {{
            a = Conv<kernel_shape=[3], pads=[1,1]>(x, w)
            b = {between}
            y = Conv<kernel_shape=[1]>(b, w2)
        }}""",
        w=weights(4, 4, 3),
        w2=weights(4, 4, 1, seed=1),
    )
    out, sites = lift(model)
    assert sites == 2 and conv1d_left(out) == 0
    assert ops(out)["Unsqueeze"] == 2 and ops(out)["Squeeze"] == 2
    assert_same_numbers(model, out)


def test_conv_with_variable_weight_splits_the_chain():
    model = build(
        """g (float[1,4,10] x, float[4,4,1] wv) => (float[1,4,10] y) {
            a = Conv<kernel_shape=[3], pads=[1,1]>(x, w)
            b = Relu(a)
            c = Conv<kernel_shape=[1]>(b, wv)
            d = Relu(c)
            y = Conv<kernel_shape=[3], pads=[1,1]>(d, w)
        }""",
        w=weights(4, 4, 3),
    )
    out, sites = lift(model)
    assert sites == 2 and conv1d_left(out) == 1
    middle = next(n for n in nodes(out, "Conv") if n.input[1] == "wv")
    assert producer(out, middle.input[0]).op_type == "Squeeze"
    assert_same_numbers(model, out)


def test_batchnorm_in_training_mode_is_left_alone():
    model = build(
        """g (float[2,4,10] x) => (float[2,4,10] y, float[4] rm, float[4] rv) {
            a = Conv<kernel_shape=[1]>(x, w)
            y, rm, rv = BatchNormalization<training_mode=1>(a, s, bb, m, v)
        }""",
        opset=15,
        w=weights(4, 4, 1),
        s=np.ones(4, np.float32),
        bb=np.zeros(4, np.float32),
        m=np.zeros(4, np.float32),
        v=np.ones(4, np.float32),
    )
    out, sites = lift(model)
    assert sites == 1
    bn = nodes(out, "BatchNormalization")[0]
    assert producer(out, bn.input[0]).op_type == "Squeeze"  # the BN stays 3-D


# -- properties ----------------------------------------------------------------------------------


@st.composite
def conv_cases(draw: st.DrawFn) -> dict:
    kind = draw(st.sampled_from(["1", "2", "C"]))
    if kind == "1":
        group, channels = 1, draw(st.integers(1, 5))
    elif kind == "2":
        group, channels = 2, 2 * draw(st.integers(1, 3))
    else:
        channels = draw(st.integers(1, 5))
        group = channels
    k, d, s = draw(st.integers(1, 7)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    auto_pad = draw(st.sampled_from(["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    if auto_pad.startswith("SAME"):
        d = 1  # onnxruntime rejects dilation > 1 with SAME_* (Conv1d and Conv2d alike)
    pads = [draw(st.integers(0, 3)), draw(st.integers(0, 3))] if auto_pad == "NOTSET" else None
    span = (k - 1) * d + 1
    length = max(1, span - (sum(pads) if pads else 0)) + draw(st.integers(0, 6))
    if auto_pad.startswith("SAME"):
        out_length = -(-length // s)
    else:
        out_length = (length + (sum(pads) if pads else 0) - span) // s + 1
    return {
        "out_length": out_length,
        "group": group,
        "channels": channels,
        "out_channels": group * draw(st.integers(1, 3)),
        "k": k,
        "d": d,
        "s": s,
        "auto_pad": auto_pad,
        "pads": pads,
        "length": length,
        "batch": draw(st.integers(1, 3)),
        "bias": draw(st.booleans()),
        "opset": draw(st.sampled_from([11, 13, 17])),
        "seed": draw(st.integers(0, 2**16)),
    }


def conv_case_model(c: dict) -> onnx.ModelProto:
    attributes = {"kernel_shape": [c["k"]], "dilations": [c["d"]], "strides": [c["s"]], "group": c["group"]}
    if c["pads"] is not None:
        attributes["pads"] = c["pads"]
    if c["auto_pad"] != "NOTSET" or c["seed"] % 2:  # NOTSET is sometimes written, sometimes implied
        attributes["auto_pad"] = c["auto_pad"]
    w = weights(c["out_channels"], c["channels"] // c["group"], c["k"], seed=c["seed"])
    inits = [numpy_helper.from_array(w, "w")]
    inputs = ["x", "w"]
    if c["bias"]:
        inits.append(numpy_helper.from_array(weights(c["out_channels"], seed=c["seed"] + 1), "b"))
        inputs.append("b")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", inputs, ["c"], **attributes),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("Conv", ["r", "w1x1"], ["y"], kernel_shape=[1]),
        ],
        "case",
        [
            helper.make_tensor_value_info(
                "x", onnx.TensorProto.FLOAT, [c["batch"], c["channels"], c["length"]]
            )
        ],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [c["batch"], 2, c["out_length"]])],
        [*inits, numpy_helper.from_array(weights(2, c["out_channels"], 1, seed=c["seed"] + 2), "w1x1")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", c["opset"])], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


@settings(max_examples=250, deadline=None)
@given(conv_cases())
def test_property_lift_matches_and_is_idempotent(case):
    model = conv_case_model(case)
    out, sites = lift(model)
    assert sites == 2 and conv1d_left(out) == 0
    assert ops(out)["Unsqueeze"] == 1 and ops(out)["Squeeze"] == 1
    assert_same_numbers(model, out, seed=case["seed"])
    again, sites = lift(out)
    assert sites == 0 and again.SerializeToString() == roundtrip(out)


# -- an ECAPA-TDNN-like trunk from PyTorch ------------------------------------------------------


def ecapa_like_model() -> onnx.ModelProto:
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class SERes2Block(nn.Module):
        def __init__(self, c: int, scale: int, d: int) -> None:
            super().__init__()
            self.c, self.scale = c, scale
            self.expand, self.bn_e = nn.Conv1d(c, c * scale, 1), nn.BatchNorm1d(c * scale)
            self.convs = nn.ModuleList(nn.Conv1d(c, c, 3, dilation=d, padding=d) for _ in range(scale - 1))
            self.bns = nn.ModuleList(nn.BatchNorm1d(c) for _ in range(scale - 1))
            self.collapse, self.bn_c = nn.Conv1d(c * scale, c, 1), nn.BatchNorm1d(c)
            self.fc1, self.fc2 = nn.Linear(c, c // 2), nn.Linear(c // 2, c)

        def forward(self, x):
            x = self.bn_e(torch.relu(self.expand(x)))
            chunks = torch.split(x, self.c, dim=1)
            outs, prev = [chunks[0]], None
            for i in range(1, self.scale):
                h = chunks[i] if prev is None else chunks[i] + prev
                prev = self.bns[i - 1](torch.relu(self.convs[i - 1](h)))
                outs.append(prev)
            x = self.bn_c(torch.relu(self.collapse(torch.cat(outs, dim=1))))
            gate = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean(dim=2)))))
            return x * gate.unsqueeze(-1)

    class EcapaLike(nn.Module):
        def __init__(self, mel: int = 6, c: int = 8, scale: int = 4) -> None:
            super().__init__()
            self.conv_in, self.bn_in = nn.Conv1d(mel, c, 5, padding=2), nn.BatchNorm1d(c)
            self.b1, self.b2, self.b3 = (SERes2Block(c, scale, d) for d in (2, 3, 4))
            self.conv_out = nn.Conv1d(3 * c, 3 * c, 1)
            self.att = nn.Linear(3 * c, 3 * c)

        def forward(self, x):
            t = self.bn_in(torch.relu(self.conv_in(x)))
            t1 = self.b1(t) + t
            t2 = self.b2(t1) + t1 + t
            t3 = self.b3(t2) + t2 + t1 + t
            h = torch.relu(self.conv_out(torch.cat([t1, t2, t3], dim=1))).transpose(1, 2)
            w = torch.softmax(self.att(h), dim=1)
            return (w * h).sum(dim=1)

    torch.manual_seed(0)
    net = EcapaLike()
    for mod in net.modules():
        if isinstance(mod, nn.BatchNorm1d):  # non-trivial statistics, so BN is not an identity
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
    net.eval()
    buf = io.BytesIO()
    torch.onnx.export(
        net,
        torch.randn(2, 6, 20),
        buf,
        dynamo=False,
        opset_version=12,
        input_names=["mel"],
        output_names=["emb"],
    )
    return onnx.load_from_string(buf.getvalue())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_ecapa_like_trunk_is_one_region():
    model = ecapa_like_model()
    convs = ops(model)["Conv"]
    out, sites = lift(model)
    assert sites == convs == 17 and conv1d_left(out) == 0
    # one region: mel enters once; each SE gate re-enters once; the SE pooling and the
    # attentive pooling read 3-D tensors through one Squeeze each
    assert ops(out)["Unsqueeze"] == ops(model)["Unsqueeze"] + 1 + 3
    assert ops(out)["Squeeze"] == 3 + 1
    for sq in nodes(out, "Squeeze"):
        assert all(r.op_type != "Unsqueeze" for r in readers(out, sq.output[0]))
    for unsq in nodes(out, "Unsqueeze"):
        src = producer(out, unsq.input[0])
        assert src is None or src.op_type != "Squeeze"
    assert_same_numbers(model, out)
    again, sites = lift(out)
    assert sites == 0 and again.SerializeToString() == roundtrip(out)


# -- sites: one per region, labelled by its first Conv; near-misses --------------------------------


def three_regions() -> onnx.ModelProto:
    """Regions {conv_a, Relu}, {Relu, conv_e}, {conv_g, conv_y}: a variable-weight Conv and a
    Softmax cut the chain."""
    return build(
        """g (float[1,4,10] x, float[4,4,1] wv) => (float[1,4,10] y) {
            [conv_a] a = Conv<kernel_shape=[3], pads=[1,1]>(x, w)
            b = Relu(a)
            [conv_v] c = Conv<kernel_shape=[1]>(b, wv)
            d = Relu(c)
            [conv_e] e = Conv<kernel_shape=[3], pads=[1,1]>(d, w)
            f = Softmax<axis=1>(e)
            [conv_g] g = Conv<kernel_shape=[1]>(f, w2)
            [conv_y] y = Conv<kernel_shape=[3], pads=[1,1]>(g, w)
        }""",
        w=weights(4, 4, 3),
        w2=weights(4, 4, 1, seed=1),
    )


@pytest.mark.parametrize("k, convs", [(0, 0), (1, 1), (2, 2), (3, 4)])
def test_first_k_regions_are_lifted_and_the_others_left_as_they_are(k, convs):
    from graphkit.passes._infra import first_sites

    model = three_regions()
    sites = first_sites(k)
    out, result = testing.run_sites(model, "conv1d_to_conv2d", sites)
    assert sites.offered == ["conv_a", "conv_e", "conv_g"]
    assert result.sites == convs and result.site_labels == sites.offered[:k]  # sites counts Convs
    lifted = {n.name for n in nodes(out, "Conv") if len(attrs(n)["kernel_shape"]) == 2}
    regions = [{"conv_a"}, {"conv_e"}, {"conv_g", "conv_y"}]
    assert lifted == set().union(*regions[:k])
    assert conv1d_left(out) == 5 - convs
    assert_same_numbers(model, out, seed=k)


def test_convs_that_cannot_be_lifted_are_near_misses():
    _, result = testing.run_sites(three_regions(), "conv1d_to_conv2d", None)
    assert result.near_misses == [("conv_v", "weight wv is not a constant")]
    unknown = build(
        """g (float[1,4,10] x, int64[n] shape) => (float[?,?,?] y) {
            r = Reshape(x, shape)
            [conv] y = Conv<kernel_shape=[3]>(r, w)
        }""",
        w=weights(4, 4, 3),
    )
    out, result = testing.run_sites(unknown, "conv1d_to_conv2d", None)
    assert result.sites == 0 and result.near_misses == [("conv", "input rank unknown")]
    # a 2-D Conv is no near-miss: there is nothing to lift
    conv2d = build(
        "g (float[1,4,5,10] x) => (float[1,4,3,8] y) { y = Conv<kernel_shape=[3,3]>(x, w) }",
        w=weights(4, 4, 3, 3),
    )
    assert testing.run_sites(conv2d, "conv1d_to_conv2d", None)[1].near_misses == []
