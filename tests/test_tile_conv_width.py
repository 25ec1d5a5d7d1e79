"""tile_conv_width: structure before/after, numbers on onnxruntime, guards, properties."""

from __future__ import annotations

import functools
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
from graphkit.passes.tile_conv_width import tile_conv_width
from graphkit.testing import build, roundtrip, run, weights

# -- helpers -------------------------------------------------------------------------------------


def tile(model: onnx.ModelProto, **params) -> tuple[onnx.ModelProto, int]:
    return testing.rewrite(model, "tile_conv_width", **params)


def assert_same_numbers(before: onnx.ModelProto, after: onnx.ModelProto, inputs: dict) -> None:
    """Exact up to the conv's summation order: <= 1e-5 relative to the output's scale."""
    assert [o.name for o in after.graph.output] == [o.name for o in before.graph.output]
    for a, b in zip(run(before, inputs), run(after, inputs)):
        assert a.shape == b.shape
        assert float(np.abs(a - b).max()) <= 1e-5 * max(1.0, float(np.abs(a).max()))


ops = tiny.ops


nodes = tiny.nodes


attrs = tiny.attrs


inits_of = tiny.inits_of


def slice_cols(model: onnx.ModelProto, node: onnx.NodeProto) -> tuple[int, int]:
    if "starts" in attrs(node):
        return attrs(node)["starts"][0], attrs(node)["ends"][0]
    init = inits_of(model)
    assert init[node.input[3]].tolist() == [3]
    return int(init[node.input[1]][0]), int(init[node.input[2]][0])


def assert_untouched(model: onnx.ModelProto, **params) -> None:
    out, sites = tile(model, **params)
    assert sites == 0
    assert out.SerializeToString() == roundtrip(model)


def randn(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# -- the pass as registered --------------------------------------------------------------------


def test_registered_as_exact_pass_with_tiles_and_min_width():
    spec = spec_of(tile_conv_width)
    assert spec is not None and spec.name == "tile_conv_width" and spec.contract == EXACT and spec.doc
    assert {k: p.default for k, p in spec.params.items()} == {"tiles": 5, "min_width": 4096}


# -- before / after ----------------------------------------------------------------------------


@pytest.mark.parametrize("opset", [9, 13])
def test_conv_relu_in_three_tiles(opset):
    model = build(
        """g (float[1,2,3,12] x) => (float[1,2,3,12] y) {
            c = Conv<kernel_shape=[1,3], pads=[0,1,0,1]>(x, w, b)
            y = Relu(c)
        }""",
        opset=opset,
        w=weights(2, 2, 1, 3),
        b=weights(2, seed=1),
    )
    out, sites = tile(model, tiles=3, min_width=8)
    assert sites == 1
    assert ops(out) == Counter(Slice=3, Conv=3, Relu=3, Concat=1)
    # y columns [0,4) [4,8) [8,12) need x columns [0,5) [3,9) [7,12)
    assert [slice_cols(out, n) for n in nodes(out, "Slice")] == [(0, 5), (3, 9), (7, 12)]
    # the outer edges keep the zero padding, the interior edges read real neighbour columns
    assert [attrs(n)["pads"] for n in nodes(out, "Conv")] == [[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]
    assert all(n.input[1:] == ["w", "b"] for n in nodes(out, "Conv"))  # weights shared
    (concat,) = nodes(out, "Concat")
    assert attrs(concat) == {"axis": 3} and concat.output == ["y"]
    assert concat.input == [n.output[0] for n in nodes(out, "Relu")]
    assert_same_numbers(model, out, {"x": randn(1, 2, 3, 12)})
    again, sites = tile(out, tiles=3, min_width=8)
    assert sites == 0 and again.SerializeToString() == roundtrip(out)


def test_halo_grows_through_a_chain_and_tensors_read_twice_are_sliced_per_reader():
    # c1 (k3 d2, pads 2,2) feeds c2 (k3, pads 1,1) and the Add: c1 is computed over the hull of
    # what both read, and sliced for the Add
    model = build(
        """g (float[2,2,2,30] x) => (float[2,2,2,30] y) {
            c1 = Conv<kernel_shape=[1,3], dilations=[1,2], pads=[0,2,0,2]>(x, w1)
            r = Selu(c1)
            c2 = Conv<kernel_shape=[2,3], pads=[1,1,0,1]>(r, w2)
            y = Add(c2, c1)
        }""",
        w1=weights(2, 2, 1, 3),
        w2=weights(2, 2, 2, 3, seed=1),
    )
    out, sites = tile(model, tiles=2, min_width=16)
    assert sites == 1
    assert ops(out) == Counter(Slice=4, Conv=4, Selu=2, Add=2, Concat=1)
    x_slices = [slice_cols(out, n) for n in nodes(out, "Slice") if n.input[0] == "x"]
    assert x_slices == [(0, 18), (12, 30)]  # [0,15) + 1 + 2 and [15,30) - 1 - 2
    # c1 over [0,16) and [14,30), c2 over [0,15) and [15,30)
    assert sorted(attrs(n)["pads"] for n in nodes(out, "Conv")) == [
        [0, 0, 0, 2],
        [0, 2, 0, 0],
        [1, 0, 0, 1],
        [1, 1, 0, 0],
    ]
    assert_same_numbers(model, out, {"x": randn(2, 2, 2, 30)})


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_auto_pad_is_resolved_to_explicit_pads(auto_pad):
    model = build(
        f"""g (float[1,2,5,40] x) => (float[1,2,?,?] y) {{
            c = Conv<kernel_shape=[3,4], strides=[2,1], auto_pad="{auto_pad}">(x, w)
            y = LeakyRelu<alpha=0.2>(c)
        }}""",
        w=weights(2, 2, 3, 4),
    )
    out, sites = tile(model, tiles=4, min_width=16)
    assert sites == 1 and all("auto_pad" not in attrs(n) for n in nodes(out, "Conv"))
    assert_same_numbers(model, out, {"x": randn(1, 2, 5, 40)})


def test_operands_constant_along_the_width_and_batchnorm_are_kept():
    model = build(
        """g (float[B,3,4,50] x, float[B,3,4,1] gate) => (float[B,3,4,50] y) {
            c = Conv<kernel_shape=[1,5], pads=[0,2,0,2], group=3>(x, w)
            n = BatchNormalization(c, s, bb, m, v)
            g = Mul(n, gate)
            p = PRelu(g, slope)
            y = Add(p, half)
        }""",
        w=weights(3, 1, 1, 5),
        s=np.abs(weights(3, seed=1)) + 0.5,
        bb=weights(3, seed=2),
        m=weights(3, seed=3),
        v=np.abs(weights(3, seed=4)) + 0.5,
        slope=weights(3, 1, 1, seed=5),
        half=np.array(0.5, np.float32),
    )
    out, sites = tile(model, tiles=5, min_width=32)
    assert sites == 1 and ops(out)["Conv"] == 5 and ops(out)["Mul"] == 5
    assert all(n.input[1] == "gate" for n in nodes(out, "Mul"))
    for batch in (1, 3):
        feeds = {"x": randn(batch, 3, 4, 50, seed=batch), "gate": randn(batch, 3, 4, 1, seed=9)}
        assert_same_numbers(model, out, feeds)


def test_more_tiles_than_columns_gives_one_column_each():
    model = build(
        """g (float[1,1,1,6] x) => (float[1,1,1,4] y) { y = Conv<kernel_shape=[1,3]>(x, w) }""",
        w=weights(1, 1, 1, 3),
    )
    out, sites = tile(model, tiles=9, min_width=4)
    assert sites == 1 and ops(out)["Conv"] == 4
    assert_same_numbers(model, out, {"x": randn(1, 1, 1, 6)})


# -- an AASIST-like first residual block from PyTorch --------------------------------------------


@functools.cache
def aasist_block(opset: int, variant: str = "plain", width: int = 6000) -> bytes:
    """first_bn -> SELU -> conv1 (2×3) -> bn2 -> SELU -> conv2 (2×3) + conv_downsample (1×3) -> pool (1,3)."""
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            stride = (1, 2) if variant == "stride2" else (1, 1)
            self.first_bn, self.selu = nn.BatchNorm2d(1), nn.SELU()
            self.conv1, self.bn2 = nn.Conv2d(1, 8, (2, 3), padding=(1, 1)), nn.BatchNorm2d(8)
            if variant == "transpose":  # conv2 runs on (B,8,W,24): it mixes width columns
                self.conv2 = nn.Conv2d(8, 8, (3, 2), padding=(1, 0))
            else:
                self.conv2 = nn.Conv2d(8, 8, (2, 3), padding=(0, 1), stride=stride)
            self.conv_downsample = nn.Conv2d(1, 8, (1, 3), padding=(0, 1), stride=stride)
            self.mix = nn.Parameter(torch.randn(width, width) / width**0.5)
            self.pool = nn.MaxPool2d((1, 3))

        def forward(self, x):
            x = self.selu(self.first_bn(x))
            h = self.selu(self.bn2(self.conv1(x)))
            if variant == "gate":  # squeeze-excitation over the width
                h = h * torch.sigmoid(h.mean(dim=3, keepdim=True))
            if variant == "matmul":
                h = torch.matmul(h, self.mix)
            if variant == "transpose":
                out = self.conv2(h.transpose(2, 3)).transpose(2, 3)
            else:
                out = self.conv2(h)
            return self.pool(out + self.conv_downsample(x))

    torch.manual_seed(0)
    net = Block()
    for mod in net.modules():
        if isinstance(mod, nn.BatchNorm2d):  # non-trivial statistics
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
    net.eval()
    buf = io.BytesIO()
    torch.onnx.export(
        net,
        torch.randn(2, 1, 23, width),
        buf,
        dynamo=False,
        opset_version=opset,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "B"}, "y": {0: "B"}},
    )
    return buf.getvalue()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("tiles", [2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("opset", [11, 17])
def test_aasist_first_block_is_tiled_exactly(opset, tiles):
    model = onnx.load_from_string(aasist_block(opset))
    out, result = testing.apply_pass(model, "tile_conv_width", tiles=tiles)
    onnx.checker.check_model(out, full_check=True)
    assert result.sites == 1
    assert ops(model)["Conv"] == 3 and ops(out)["Conv"] == 3 * tiles
    assert ops(out)["Concat"] == 1 and ops(out)["MaxPool"] == 1
    (concat,) = nodes(out, "Concat")
    assert nodes(out, "MaxPool")[0].input == concat.output  # the block's pool reads the tiles
    # width pads (begin, end): the first tile pads left, the last right, interior tiles not at all
    pads = Counter(tuple(attrs(n)["pads"][1::2]) for n in nodes(out, "Conv"))
    assert pads == Counter({(1, 0): 3, (0, 1): 3, (0, 0): 3 * (tiles - 2)}) - Counter()
    for batch in (1, 3):
        assert_same_numbers(model, out, {"x": randn(batch, 1, 23, 6000, seed=batch)})
    again, result = testing.apply_pass(out, "tile_conv_width", tiles=tiles)
    assert result.sites == 0


# -- guards: must not fire -----------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("variant", ["stride2", "transpose", "gate", "matmul"])
def test_region_with_a_width_stride_or_a_width_mixing_op_is_left_alone(variant):
    width = 64 if variant == "matmul" else 6000  # a (W, W) matrix: keep it small
    model = onnx.load_from_string(aasist_block(13, variant, width))
    assert_untouched(model, tiles=3, min_width=32)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_narrow_inputs_are_left_alone():
    model = onnx.load_from_string(aasist_block(13))
    assert_untouched(model, min_width=6001)
    assert_untouched(model, tiles=1)  # one tile is no tiling


def test_operand_varying_along_the_width_from_outside_is_left_alone():
    model = build(
        """g (float[1,2,3,40] x, float[1,2,3,40] z) => (float[1,2,3,40] y) {
            c = Conv<kernel_shape=[1,3], pads=[0,1,0,1]>(x, w)
            r = Relu(c)
            y = Add(r, z)
        }""",
        w=weights(2, 2, 1, 3),
    )
    assert_untouched(model, tiles=2, min_width=16)


def test_region_read_halfway_by_an_outside_node_is_left_alone():
    model = build(
        """g (float[1,2,3,40] x) => (float[1,2,3,40] y, float[1,2,3] m) {
            c = Conv<kernel_shape=[1,3], pads=[0,1,0,1]>(x, w)
            r = Relu(c)
            y = Conv<kernel_shape=[1,3], pads=[0,1,0,1]>(r, w)
            m = ReduceMax<axes=[3], keepdims=0>(c)
        }""",
        w=weights(2, 2, 1, 3),
    )
    assert_untouched(model, tiles=2, min_width=16)


def test_region_whose_output_feeds_further_width_local_ops_is_left_alone():
    # y = Add(conv(x), z): the region {conv} could only be tiled as half of what reads it
    model = build(
        """g (float[1,2,3,40] x, float[1,2,3,40] z) => (float[1,2,3,40] y) {
            c = Conv<kernel_shape=[1,3], pads=[0,1,0,1]>(x, w)
            y = Add(c, z)
        }""",
        w=weights(2, 2, 1, 3),
    )
    assert_untouched(model, tiles=2, min_width=16)


@pytest.mark.parametrize(
    "conv",
    [
        "Conv<kernel_shape=[1,1], pads=[0,1,0,1]>(x, w1)",  # pads wider than the kernel's span
        "Conv<kernel_shape=[1,3], strides=[1,2], pads=[0,1,0,1]>(x, w3)",  # width stride 2
    ],
)
def test_convs_that_do_not_keep_columns_are_left_alone(conv):
    model = build(
        f"""g (float[1,2,3,40] x) => (float[1,2,3,?] y) {{
            c = {conv}
            y = Relu(c)
        }}""",
        w1=weights(2, 2, 1, 1),
        w3=weights(2, 2, 1, 3),
    )
    assert_untouched(model, tiles=2, min_width=16)


def test_unknown_width_and_slices_of_the_width_are_left_alone():
    symbolic = build(
        """g (float[1,2,3,W] x) => (float[1,2,3,W] y) {
            c = Conv<kernel_shape=[1,3], pads=[0,1,0,1]>(x, w)
            y = Relu(c)
        }""",
        w=weights(2, 2, 1, 3),
    )
    assert_untouched(symbolic, tiles=2, min_width=1)
    # a region fed by a width Slice is a tile already (ours, or the model's own)
    sliced = build(
        """g (float[1,2,3,40] x) => (float[1,2,3,30] y) {
            s = Slice(x, starts, ends, axes)
            c = Conv<kernel_shape=[1,3], pads=[0,1,0,1]>(s, w)
            y = Relu(c)
        }""",
        w=weights(2, 2, 1, 3),
        starts=np.array([5], np.int64),
        ends=np.array([35], np.int64),
        axes=np.array([-1], np.int64),
    )
    assert_untouched(sliced, tiles=2, min_width=16)


def test_regions_without_a_conv_are_left_alone():
    model = build("g (float[1,2,3,40] x) => (float[1,2,3,40] y) { r = Relu(x)\n y = Neg(r) }")
    assert_untouched(model, tiles=2, min_width=16)


# -- properties ----------------------------------------------------------------------------------


@st.composite
def chain_cases(draw: st.DrawFn) -> dict:
    """x -> [Conv -> elementwise] * n (+ a residual 1×1 conv when shapes allow) -> y."""
    opset = draw(st.sampled_from([11, 13, 17]))
    channels = draw(st.integers(1, 3))
    height = draw(st.integers(1, 4))
    convs, h, span_total = [], height, 0
    for _ in range(draw(st.integers(1, 3))):
        auto_pad = draw(st.sampled_from(["NOTSET"] * 4 + ["SAME_UPPER", "SAME_LOWER", "VALID"]))
        kw, kh = draw(st.integers(1, 5)), draw(st.integers(1, 2))
        dw = 1 if auto_pad.startswith("SAME") else draw(st.integers(1, 3))
        span = (kw - 1) * dw
        pw = [draw(st.integers(0, span)), draw(st.integers(0, span))]
        ph = [draw(st.integers(0, kh - 1)), draw(st.integers(0, kh - 1))]
        sh = draw(st.integers(1, 2))
        convs.append(
            {
                "kw": kw,
                "kh": kh,
                "dw": dw,
                "sh": sh,
                "pads": [ph[0], pw[0], ph[1], pw[1]],
                "auto_pad": auto_pad,
                "out": draw(st.integers(1, 3)),
                "then": draw(st.sampled_from(["Relu", "Selu", "Scale", "None"])),
            }
        )
        if auto_pad.startswith("SAME"):
            h = -(-h // sh)  # SAME keeps the width (stride 1)
        else:
            hp = 0 if auto_pad == "VALID" else sum(ph)
            h = max(h + hp - (kh - 1), 0)
            h = (h - 1) // sh + 1 if h > 0 else 0
            span_total += span - (0 if auto_pad == "VALID" else sum(pw))
        if h < 1:
            convs.pop()
            break
    if not convs:
        convs.append(
            {
                "kw": 3,
                "kh": 1,
                "dw": 1,
                "sh": 1,
                "pads": [0, 1, 0, 1],
                "auto_pad": "NOTSET",
                "out": 2,
                "then": "Relu",
            }
        )
        h = height
    width = max(8, span_total + 1) + draw(st.integers(0, 30))
    return {
        "opset": opset,
        "channels": channels,
        "height": height,
        "width": width,
        "convs": convs,
        "residual": draw(st.booleans()) and h == height and span_total == 0,
        "tiles": draw(st.integers(2, 7)),
        "batch": draw(st.integers(1, 2)),
        "seed": draw(st.integers(0, 2**16)),
    }


def chain_model(c: dict) -> onnx.ModelProto:
    rng_seed = c["seed"]
    nodes_, inits = [], []
    cur, cin = "x", c["channels"]
    for i, conv in enumerate(c["convs"]):
        w = weights(conv["out"], cin, conv["kh"], conv["kw"], seed=rng_seed + i)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        attributes = {
            "kernel_shape": [conv["kh"], conv["kw"]],
            "dilations": [1, conv["dw"]],
            "strides": [conv["sh"], 1],
        }
        if conv["auto_pad"] == "NOTSET":
            attributes["pads"] = conv["pads"]
        else:
            attributes["auto_pad"] = conv["auto_pad"]
        nodes_.append(helper.make_node("Conv", [cur, f"w{i}"], [f"c{i}"], **attributes))
        cur, cin = f"c{i}", conv["out"]
        if conv["then"] == "Scale":
            inits.append(numpy_helper.from_array(weights(cin, 1, 1, seed=rng_seed + 50 + i), f"s{i}"))
            nodes_.append(helper.make_node("Mul", [cur, f"s{i}"], [f"e{i}"]))
            cur = f"e{i}"
        elif conv["then"] != "None":
            nodes_.append(helper.make_node(conv["then"], [cur], [f"e{i}"]))
            cur = f"e{i}"
    if c["residual"]:
        w = weights(cin, c["channels"], 1, 1, seed=rng_seed + 99)
        inits.append(numpy_helper.from_array(w, "wr"))
        nodes_.append(helper.make_node("Conv", ["x", "wr"], ["skip"], kernel_shape=[1, 1]))
        nodes_.append(helper.make_node("Add", [cur, "skip"], ["sum"]))
        cur = "sum"
    nodes_.append(helper.make_node("Identity", [cur], ["y"]))
    graph = helper.make_graph(
        nodes_,
        "chain",
        [
            helper.make_tensor_value_info(
                "x", onnx.TensorProto.FLOAT, ["B", c["channels"], c["height"], c["width"]]
            )
        ],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None] * 4)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", c["opset"])], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


@settings(max_examples=150, deadline=None)
@given(chain_cases())
def test_property_tiling_matches_and_is_idempotent(case):
    model = chain_model(case)
    out, sites = tile(model, tiles=case["tiles"], min_width=8)
    assert sites == 1
    x = randn(case["batch"], case["channels"], case["height"], case["width"], seed=case["seed"])
    assert_same_numbers(model, out, {"x": x})
    again, sites = tile(out, tiles=case["tiles"], min_width=8)
    assert sites == 0 and again.SerializeToString() == roundtrip(out)


# -- sites: one per region, labelled by its first Conv; near-misses --------------------------------


def three_regions() -> onnx.ModelProto:
    """Regions from x1, from x2, and from a Transpose of the second one's exit."""
    return build(
        """g (float[1,2,3,40] x1, float[1,2,3,40] x2) => (float[1,2,3,40] y1, float[1,2,3,40] y2, float[1,2,3,40] y3) {
            [conv1] c1 = Conv<kernel_shape=[1,3], pads=[0,1,0,1]>(x1, w)
            y1 = Relu(c1)
            [conv2] c2 = Conv<kernel_shape=[2,3], pads=[1,1,0,1]>(x2, w2)
            y2 = Selu(c2)
            t = Transpose<perm=[0,1,2,3]>(y2)
            [conv3] c3 = Conv<kernel_shape=[1,3], dilations=[1,2], pads=[0,2,0,2]>(t, w)
            y3 = Neg(c3)
        }""",
        w=weights(2, 2, 1, 3),
        w2=weights(2, 2, 2, 3, seed=1),
    )


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_first_k_regions_are_tiled_and_the_rest_kept(k):
    from graphkit.passes._infra import first_sites

    model = three_regions()
    sites = first_sites(k)
    out, result = testing.run_sites(model, "tile_conv_width", sites, tiles=2, min_width=16)
    assert sites.offered == ["conv1", "conv2", "conv3"]
    assert result.sites == k and result.site_labels == sites.offered[:k]
    assert {n.name for n in nodes(out, "Conv")} == {*sites.offered[k:]} | {
        f"{label}_tile{t}" for label in sites.offered[:k] for t in range(2)
    }
    assert ops(out)["Concat"] == k
    inputs = {"x1": randn(1, 2, 3, 40, seed=k), "x2": randn(1, 2, 3, 40, seed=k + 10)}
    assert_same_numbers(model, out, inputs)


@pytest.mark.parametrize(
    "body, inputs, why",
    [
        (
            "[c] c = Conv<kernel_shape=[1,3], strides=[1,2], pads=[0,1,0,1]>(x, w)\n y = Relu(c)",
            "float[1,2,3,40] x",
            "cannot join the region from x: width stride 2",
        ),
        (
            "[c] c = Conv<kernel_shape=[1,1], pads=[0,1,0,1]>(x, w1)\n y = Relu(c)",
            "float[1,2,3,40] x",
            "cannot join the region from x: width pads [1, 1] are wider than the kernel's span 0",
        ),
        (
            "[c] c = Conv<kernel_shape=[1,3], pads=[0,1,0,1]>(x, w)\n r = Relu(c)\n y = Add(r, z)",
            "float[1,2,3,40] x, float[1,2,3,40] z",
            "its exit r feeds Add y, which cannot join: operand z varies along the width from outside",
        ),
        (
            "[c] c = Conv<kernel_shape=[1,3], pads=[0,1,0,1]>(x, w)\n y = Relu(c)\n"
            " m = ReduceMax<axes=[3], keepdims=0>(c)",
            "float[1,2,3,40] x",
            "2 exits (c to ReduceMax m, y is a graph output): its columns mix or leave halfway",
        ),
        (
            "s = Slice(x, starts, ends, axes)\n [c] c = Conv<kernel_shape=[1,3], pads=[0,1,0,1]>(s, w)\n"
            " y = Relu(c)",
            "float[1,2,3,40] x",
            "its input s is a width Slice (a tile) already",
        ),
        (
            "[c] c = Conv<kernel_shape=[1,3], pads=[0,1,0,1]>(x, w)\n y = Relu(c)",
            "float[1,2,3,W] x",
            "its input x has no static width (W)",
        ),
    ],
)
def test_refused_regions_are_near_misses(body, inputs, why):
    model = build(
        f"g ({inputs}) => (float[?,?,?,?] y) {{ {body} }}",
        w=weights(2, 2, 1, 3),
        w1=weights(2, 2, 1, 1),
        starts=np.array([5], np.int64),
        ends=np.array([35], np.int64),
        axes=np.array([-1], np.int64),
    )
    out, result = testing.run_sites(model, "tile_conv_width", None, tiles=2, min_width=16)
    assert result.sites == 0 and result.near_misses == [("c", why)]
