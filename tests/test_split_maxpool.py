"""split_maxpool: structure before/after, exact numbers on onnxruntime, guards, properties."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import onnx
import pytest
import tiny
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper

from graphkit import testing
from graphkit.passes._infra import EXACT, spec_of
from graphkit.passes.split_maxpool import split_maxpool
from graphkit.testing import build, roundtrip, run

# -- helpers -------------------------------------------------------------------------------------


def split(model: onnx.ModelProto, **params) -> tuple[onnx.ModelProto, int]:
    return testing.rewrite(model, "split_maxpool", **params)


def assert_identical(before: onnx.ModelProto, after: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> None:
    """Max pooling only selects values: the split form must give the same bits."""
    assert [o.name for o in after.graph.output] == [o.name for o in before.graph.output]
    for a, b in zip(run(before, inputs), run(after, inputs)):
        np.testing.assert_array_equal(a, b)


def randn(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


ops = tiny.ops


nodes = tiny.nodes


attrs = tiny.attrs


def producer(model: onnx.ModelProto, tensor: str) -> onnx.NodeProto | None:
    return next((n for n in model.graph.node if tensor in n.output), None)


inits_of = tiny.inits_of


def assert_untouched(model: onnx.ModelProto, **params) -> None:
    out, sites = split(model, **params)
    assert sites == 0
    assert out.SerializeToString() == roundtrip(model)


# -- the pass as registered --------------------------------------------------------------------


def test_registered_as_exact_pass_with_min_kernel():
    spec = spec_of(split_maxpool)
    assert spec is not None and spec.name == "split_maxpool"
    assert spec.contract == EXACT and list(spec.params) == ["min_kernel"] and spec.doc
    assert spec.params["min_kernel"].default == 2


# -- before / after ----------------------------------------------------------------------------


def test_pool_becomes_width_pool_then_height_pool():
    model = build(
        """g (float[2,3,11,13] x) => (float[2,3,5,5] y) {
            y = MaxPool<kernel_shape=[3,4], strides=[2,3], pads=[1,2,0,1], dilations=[1,1]>(x)
        }"""
    )
    out, sites = split(model)
    assert sites == 1 and ops(out) == Counter(MaxPool=2)
    wpool, hpool = nodes(out, "MaxPool")
    assert wpool.input == ["x"] and hpool.input == wpool.output and hpool.output == ["y"]
    assert attrs(wpool) == {
        "kernel_shape": [1, 4],
        "strides": [1, 3],
        "pads": [0, 2, 0, 1],
        "dilations": [1, 1],
    }
    assert attrs(hpool) == {
        "kernel_shape": [3, 1],
        "strides": [2, 1],
        "pads": [1, 0, 0, 0],
        "dilations": [1, 1],
    }
    mid = next(v for v in out.graph.value_info if v.name == wpool.output[0])
    assert [d.dim_value for d in mid.type.tensor_type.shape.dim] == [2, 3, 11, 5]
    assert_identical(model, out, {"x": randn(2, 3, 11, 13)})


@pytest.mark.parametrize("opset", [10, 12, 17, 22])
def test_ceil_mode_dilations_and_defaults_per_axis(opset):
    model = build(
        """g (float[1,2,10,17] x) => (float[1,2,?,?] y) {
            y = MaxPool<kernel_shape=[2,3], strides=[3,2], dilations=[2,3], ceil_mode=1>(x)
        }""",
        opset=opset,
    )
    out, sites = split(model)
    wpool, hpool = nodes(out, "MaxPool")
    assert sites == 1
    assert attrs(wpool) == {"kernel_shape": [1, 3], "strides": [1, 2], "dilations": [1, 3], "ceil_mode": 1}
    assert attrs(hpool) == {"kernel_shape": [2, 1], "strides": [3, 1], "dilations": [2, 1], "ceil_mode": 1}
    assert_identical(model, out, {"x": randn(1, 2, 10, 17)})


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_auto_pad_is_kept_on_both_pools(auto_pad):
    model = build(
        f"""g (float[2,2,9,14] x) => (float[2,2,?,?] y) {{
            y = MaxPool<kernel_shape=[4,3], strides=[2,3], auto_pad="{auto_pad}">(x)
        }}"""
    )
    out, sites = split(model)
    assert sites == 1 and all(attrs(n)["auto_pad"].decode() == auto_pad for n in nodes(out, "MaxPool"))
    assert_identical(model, out, {"x": randn(2, 2, 9, 14)})


def test_every_pool_is_a_site_and_a_second_run_changes_nothing():
    model = build(
        """g (float[1,2,12,12] x) => (float[1,2,2,2] y, float[1,2,11,11] z) {
            a = MaxPool<kernel_shape=[2,2], strides=[2,2]>(x)
            y = MaxPool<kernel_shape=[3,3], strides=[3,3]>(a)
            z = MaxPool<kernel_shape=[2,2]>(x)
        }"""
    )
    out, sites = split(model)
    assert sites == 3 and ops(out) == Counter(MaxPool=6)
    assert_identical(model, out, {"x": randn(1, 2, 12, 12)})
    again, sites = split(out)
    assert sites == 0 and again.SerializeToString() == roundtrip(out)


def test_integer_pools_split_too():
    model = build(
        """g (int8[1,1,6,6] x) => (int8[1,1,3,3] y) { y = MaxPool<kernel_shape=[2,2], strides=[2,2]>(x) }""",
        opset=12,
    )
    out, sites = split(model)
    assert sites == 1
    x = np.random.default_rng(0).integers(-128, 127, (1, 1, 6, 6)).astype(np.int8)
    assert_identical(model, out, {"x": x})


# -- the layout variant --------------------------------------------------------------------------

LAYOUT = """g (float[B,4,1,20] x) => (float[B,1,2,6] y) {{
    s = Squeeze{sq}
    u = Unsqueeze{unsq}
    {chain}
    y = MaxPool<kernel_shape=[2,3], strides=[2,3], pads=[0,0,0,0]>({last})
}}"""


def layout_model(opset: int = 13, chain: str = "a = Abs(u)\n n = Neg(a)", last: str = "n") -> onnx.ModelProto:
    if opset >= 13:
        sq, unsq = "(x, ax2)", "(s, ax1)"
        inits = {"ax2": np.array([2], np.int64), "ax1": np.array([1], np.int64)}
    else:
        sq, unsq, inits = "<axes=[-2]>(x)", "<axes=[-3]>(s)", {}
    return build(LAYOUT.format(sq=sq, unsq=unsq, chain=chain, last=last), opset=opset, **inits)


@pytest.mark.parametrize("opset", [11, 13, 17])
def test_layout_change_is_moved_after_the_width_pool(opset):
    model = layout_model(opset)
    out, sites = split(model)
    assert sites == 1
    assert ops(out) == Counter(Abs=1, Neg=1, MaxPool=2, Reshape=1)  # Squeeze/Unsqueeze are gone
    wpool, hpool = nodes(out, "MaxPool")
    (reshape,) = nodes(out, "Reshape")
    assert producer(out, wpool.input[0]).op_type == "Neg" and nodes(out, "Abs")[0].input == ["x"]
    assert attrs(wpool)["kernel_shape"] == [1, 3] and attrs(hpool)["kernel_shape"] == [2, 1]
    assert reshape.input[0] == wpool.output[0] and hpool.input == reshape.output
    assert inits_of(out)[reshape.input[1]].tolist() == [0, 1, 4, -1]  # any batch
    for batch in (1, 3):
        assert_identical(model, out, {"x": randn(batch, 4, 1, 20, seed=batch)})


def test_layout_change_without_unary_ops():
    model = layout_model(chain="", last="u")
    out, sites = split(model)
    assert sites == 1 and ops(out) == Counter(MaxPool=2, Reshape=1)
    assert nodes(out, "MaxPool")[0].input == ["x"]
    assert_identical(model, out, {"x": randn(3, 4, 1, 20)})


def test_layout_change_with_symbolic_channels_uses_the_width():
    model = build(
        """g (float[B,C,1,20] x) => (float[B,1,?,6] y) {
            s = Squeeze<axes=[2]>(x)
            u = Unsqueeze<axes=[1]>(s)
            y = MaxPool<kernel_shape=[2,3], strides=[2,3]>(u)
        }""",
        opset=11,
    )
    out, sites = split(model)
    assert sites == 1 and inits_of(out)[nodes(out, "Reshape")[0].input[1]].tolist() == [0, 1, -1, 6]
    assert_identical(model, out, {"x": randn(2, 6, 1, 20)})


def test_a_unary_output_read_twice_keeps_the_layout_and_still_splits():
    model = layout_model(chain="a = Abs(u)\n n = Neg(a)\n z = Relu(a)", last="n")
    model.graph.output.append(helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, None))
    out, sites = split(model)
    assert sites == 1 and ops(out)["Reshape"] == 0 and ops(out)["Squeeze"] == 1
    assert producer(out, nodes(out, "MaxPool")[0].input[0]).op_type == "Neg"
    assert_identical(model, out, {"x": randn(2, 4, 1, 20)})


@pytest.mark.parametrize(
    "shape, sq, unsq",
    [
        ("2,4,20,1", "<axes=[3]>(x)", "<axes=[1]>(s)"),  # not the unit axis of a lifted conv
        ("2,4,1,20", "<axes=[2]>(x)", "<axes=[0]>(s)"),  # not the channel -> row move
        ("2,4,1,20", "(x)", "<axes=[1]>(s)"),  # axes left implicit
    ],
)
def test_other_layout_changes_get_the_plain_split(shape, sq, unsq):
    model = build(
        f"""g (float[{shape}] x) => (float[?,?,?,?] y) {{
            s = Squeeze{sq}
            u = Unsqueeze{unsq}
            y = MaxPool<kernel_shape=[2,3], strides=[2,3]>(u)
        }}""",
        opset=11,
    )
    out, sites = split(model)
    assert sites == 1 and ops(out)["Reshape"] == 0 and ops(out)["Unsqueeze"] == 1
    assert_identical(model, out, {"x": randn(*map(int, shape.split(",")))})


def sinc_front_end(opset: int) -> onnx.ModelProto:
    """AASIST's sinc path at small size: Conv1d 1->8 k9 on (B,600) -> unsqueeze(1) -> abs -> pool 3."""
    torch = pytest.importorskip("torch")

    class Sinc(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv1d(1, 8, 9, bias=False)

        def forward(self, x):
            x = self.conv(x.unsqueeze(1)).unsqueeze(1)
            return torch.nn.functional.max_pool2d(torch.abs(x), 3)

    torch.manual_seed(0)
    buf = io.BytesIO()
    torch.onnx.export(
        Sinc().eval(),
        torch.randn(2, 600),
        buf,
        dynamo=False,
        opset_version=opset,
        input_names=["wav"],
        output_names=["y"],
        dynamic_axes={"wav": {0: "B"}, "y": {0: "B"}},
    )
    return onnx.load_from_string(buf.getvalue())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("opset", [11, 17])
def test_aasist_sinc_path_after_conv1d_to_conv2d(opset):
    model = sinc_front_end(opset)
    lifted, result = testing.apply_pass(model, "conv1d_to_conv2d")
    assert result.sites == 1
    assert [n.op_type for n in lifted.graph.node if n.op_type in ("Squeeze", "Unsqueeze", "Abs")][-3:] == [
        "Squeeze",
        "Unsqueeze",
        "Abs",
    ]
    out, result = testing.apply_pass(lifted, "split_maxpool")
    assert result.sites == 1
    # Conv2d (B,8,1,592) -> Abs -> MaxPool[1,3] -> Reshape -> MaxPool[3,1]: no Squeeze -> Unsqueeze
    conv = nodes(out, "Conv")[0]
    abs_ = nodes(out, "Abs")[0]
    wpool, hpool = nodes(out, "MaxPool")
    assert abs_.input == conv.output and wpool.input == abs_.output
    assert producer(out, hpool.input[0]).op_type == "Reshape"
    assert ops(out)["Squeeze"] == 0
    assert inits_of(out)[nodes(out, "Reshape")[0].input[1]].tolist() == [0, 1, 8, -1]
    for batch in (1, 3):
        wav = randn(batch, 600, seed=batch)
        assert_identical(model, out, {"wav": wav})
    again, result = testing.apply_pass(out, "split_maxpool")
    assert result.sites == 0


# -- guards: must not fire -----------------------------------------------------------------------


def test_indices_output_is_left_alone():
    assert_untouched(
        build(
            """g (float[1,1,6,6] x) => (float[1,1,3,3] y, int64[1,1,3,3] i) {
                y, i = MaxPool<kernel_shape=[2,2], strides=[2,2]>(x)
            }"""
        )
    )


def test_storage_order_is_left_alone():
    assert_untouched(
        build(
            """g (float[1,1,6,6] x) => (float[1,1,3,3] y) {
                y = MaxPool<kernel_shape=[2,2], strides=[2,2], storage_order=1>(x)
            }"""
        )
    )


@pytest.mark.parametrize(
    "shape, kernel, out",
    [("1,2,6,6", "1,3", "1,2,6,4"), ("1,2,6,6", "3,1", "1,2,4,6"), ("1,2,6", "3", "1,2,4")],
)
def test_pools_already_split_or_not_2d_are_left_alone(shape, kernel, out):
    assert_untouched(
        build(f"g (float[{shape}] x) => (float[{out}] y) {{ y = MaxPool<kernel_shape=[{kernel}]>(x) }}")
    )


def test_min_kernel_is_honoured():
    model = build("g (float[1,2,8,8] x) => (float[1,2,6,7] y) { y = MaxPool<kernel_shape=[3,2]>(x) }")
    assert_untouched(model, min_kernel=3)
    assert split(model, min_kernel=1)[1] == 1  # min_kernel below 2 means 2


def test_other_pools_are_left_alone():
    assert_untouched(
        build(
            """g (float[1,2,8,8] x) => (float[1,2,4,4] y, float[1,2,1,1] z) {
                y = AveragePool<kernel_shape=[2,2], strides=[2,2]>(x)
                z = GlobalMaxPool(x)
            }"""
        )
    )


def test_unknown_rank_is_left_alone():
    model = build(
        """g (float[1,2,8,8] x, int64[n] shape) => (float[?,?,?,?] y) {
            r = Reshape(x, shape)
            y = MaxPool<kernel_shape=[2,2]>(r)
        }"""
    )
    assert_untouched(model)


# -- properties ----------------------------------------------------------------------------------


@st.composite
def pool_cases(draw: st.DrawFn) -> dict:
    axes = []
    auto_pad = draw(st.sampled_from(["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    for _ in range(2):
        k, s = draw(st.integers(2, 4)), draw(st.integers(1, 3))
        d = 1 if auto_pad.startswith("SAME") else draw(st.integers(1, 3))
        if auto_pad.startswith("SAME"):
            s = min(s, k)  # onnxruntime rejects SAME padding that would be negative (stride > kernel)
        pads = (draw(st.integers(0, k - 1)), draw(st.integers(0, k - 1))) if auto_pad == "NOTSET" else (0, 0)
        span = (k - 1) * d + 1
        size = max(1, span - sum(pads)) + draw(st.integers(0, 7))
        axes.append({"k": k, "s": s, "d": d, "pads": pads, "size": size})
    return {
        "axes": axes,
        "auto_pad": auto_pad,
        "ceil_mode": draw(st.integers(0, 1)),
        "batch": draw(st.integers(1, 3)),
        "channels": draw(st.integers(1, 3)),
        "opset": draw(st.sampled_from([10, 12, 13, 18, 22])),
        "seed": draw(st.integers(0, 2**16)),
    }


def pool_case_model(c: dict) -> onnx.ModelProto:
    h, w = c["axes"]
    attributes = {
        "kernel_shape": [h["k"], w["k"]],
        "strides": [h["s"], w["s"]],
        "dilations": [h["d"], w["d"]],
        "ceil_mode": c["ceil_mode"],
    }
    if c["auto_pad"] == "NOTSET":
        attributes["pads"] = [h["pads"][0], w["pads"][0], h["pads"][1], w["pads"][1]]
    else:
        attributes["auto_pad"] = c["auto_pad"]
    shape = [c["batch"], c["channels"], h["size"], w["size"]]
    graph = helper.make_graph(
        [helper.make_node("MaxPool", ["x"], ["y"], **attributes)],
        "case",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None] * 4)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", c["opset"])], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


@settings(max_examples=200, deadline=None)
@given(pool_cases())
def test_property_split_is_bit_exact_and_idempotent(case):
    model = pool_case_model(case)
    out, sites = split(model)
    assert sites == 1 and ops(out) == Counter(MaxPool=2)
    x = randn(
        case["batch"], case["channels"], case["axes"][0]["size"], case["axes"][1]["size"], seed=case["seed"]
    )
    # Finite inputs: for -inf, onnxruntime's own pool kernels disagree (some pad with -FLT_MAX,
    # some skip padding), so a window of -inf and padding may give -FLT_MAX in one form only.
    assert_identical(model, out, {"x": x})
    again, sites = split(out)
    assert sites == 0 and again.SerializeToString() == roundtrip(out)
