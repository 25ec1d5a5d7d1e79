"""replace_scatternd_with_concat: structure before/after, numbers on onnxruntime, guards."""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
import tiny
from onnx import numpy_helper

from graphkit import testing
from graphkit.passes._infra import EXACT, spec_of
from graphkit.passes.replace_scatternd_with_concat import replace_scatternd_with_concat
from graphkit.testing import build

# -- helpers -------------------------------------------------------------------------------------


def rewrite(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    return testing.rewrite(model, "replace_scatternd_with_concat")


def roundtrip(model: onnx.ModelProto) -> onnx.ModelProto:
    return onnx.load_from_string(testing.roundtrip(model))


def same_graph(a: onnx.ModelProto, b: onnx.ModelProto) -> bool:
    """Same nodes and initializers (inferred value_info may name unknown dims differently)."""
    return [n.SerializeToString() for n in a.graph.node] == [
        n.SerializeToString() for n in b.graph.node
    ] and [i.SerializeToString() for i in a.graph.initializer] == [
        i.SerializeToString() for i in b.graph.initializer
    ]


def assert_identical(before: onnx.ModelProto, after: onnx.ModelProto, seed: int = 0, **dims: int) -> None:
    inputs = testing.feeds(before, seed=seed, symbolic=dims)
    for a, b in zip(testing.run(before, inputs), testing.run(after, inputs)):
        np.testing.assert_array_equal(a, b)  # a Concat of the blocks is the board, bit for bit


ops = tiny.ops


def concats(model: onnx.ModelProto) -> list[tuple[int, list[str]]]:
    return [(n.attribute[0].i, list(n.input)) for n in model.graph.node if n.op_type == "Concat"]


def assert_untouched(model: onnx.ModelProto) -> None:
    out, sites = rewrite(model)
    assert sites == 0
    assert same_graph(out, roundtrip(model))


def index_list(*ranges: range) -> np.ndarray:
    """Every index tuple of the box ``ranges`` in row-major order, shaped (len_0, ..., len_k-1, k)."""
    grid = np.stack(np.meshgrid(*ranges, indexing="ij"), axis=-1)
    return grid.astype(np.int64)


TWO_BLOCKS = """g (float[2,3] u1, float[2,3] u2) => (float[4,3] y) {
    b1 = ScatterND(board, i1, u1)
    y = ScatterND(b1, i2, u2)
}"""


# -- the pass as registered ----------------------------------------------------------------------


def test_registered_as_exact_pass_without_parameters():
    spec = spec_of(replace_scatternd_with_concat)
    assert spec is not None and spec.name == "replace_scatternd_with_concat"
    assert spec.contract == EXACT and not spec.params and spec.doc


# -- before / expected ---------------------------------------------------------------------------


def test_two_row_blocks_become_one_concat():
    before = build(
        TWO_BLOCKS,
        board=np.zeros((4, 3), np.float32),
        i1=np.array([[0], [1]], np.int64),
        i2=np.array([[2], [3]], np.int64),
    )
    expected = build("g (float[2,3] u1, float[2,3] u2) => (float[4,3] y) { y = Concat<axis=0>(u1, u2) }")
    out, sites = rewrite(before)
    assert sites == 1
    assert [(n.op_type, list(n.input), list(n.output)) for n in out.graph.node] == [
        (n.op_type, list(n.input), list(n.output)) for n in expected.graph.node
    ]
    assert not out.graph.initializer  # the board and the indices are gone
    assert_identical(before, out)


def test_blocks_written_in_any_order_tile_the_board():
    # an HS-GAL-like board (B,N,N,D) with n = 2 of N = 5; blocks written TT, SS, TS, ST
    b, n, big, d = 2, 2, 5, 3
    t, s = range(0, n), range(n, big)
    blocks = {"tt": (t, t), "ss": (s, s), "ts": (t, s), "st": (s, t)}
    inits = {f"i_{k}": index_list(range(b), r, c) for k, (r, c) in blocks.items()}
    shapes = {k: f"float[{b},{len(r)},{len(c)},{d}]" for k, (r, c) in blocks.items()}
    before = build(
        f"""g ({shapes["tt"]} tt, {shapes["ss"]} ss, {shapes["ts"]} ts, {shapes["st"]} st) => (float[{b},{big},{big},{d}] y) {{
            b1 = ScatterND(board, i_tt, tt)
            b2 = ScatterND(b1, i_ss, ss)
            b3 = ScatterND(b2, i_ts, ts)
            y = ScatterND(b3, i_st, st)
        }}""",
        board=np.zeros((b, big, big, d), np.float32),
        **inits,
    )
    out, sites = rewrite(before)
    assert sites == 1 and ops(out) == {"Concat": 3}
    outer = next(n for n in out.graph.node if n.output == ["y"])
    assert outer.op_type == "Concat" and outer.attribute[0].i == 1  # rows: T nodes, then S nodes
    inner = {tuple(inputs): axis for axis, inputs in concats(out) if list(inputs) != list(outer.input)}
    assert inner == {("tt", "ts"): 2, ("st", "ss"): 2}  # columns: T, then S
    assert_identical(before, out)


def test_uncovered_regions_become_zero_constants():
    before = build(
        """g (float[2,2] u) => (float[4,5] y) { y = ScatterND(board, i, u) }""",
        board=np.zeros((4, 5), np.float32),
        i=index_list(range(1, 3), range(2, 4)),
    )
    out, sites = rewrite(before)
    assert sites == 1 and ops(out) == {"Concat": 2}
    zeros = {i.name: numpy_helper.to_array(i) for i in out.graph.initializer}
    assert sorted(v.shape for v in zeros.values()) == [(1, 5), (1, 5), (2, 1), (2, 2)]
    assert all(not v.any() for v in zeros.values())
    inner, outer = sorted(concats(out), key=lambda c: c[0], reverse=True)
    assert inner[0] == 1 and inner[1][1] == "u" and outer[0] == 0
    assert_identical(before, out)


@pytest.mark.parametrize(
    "board",
    [
        "board = ConstantOfShape<value = float[1] {0}>(shape)",
        "board = ConstantOfShape(shape)",  # no value: float 0
        "board = Expand(zero, shape)",
    ],
)
def test_boards_from_constant_of_shape_and_expand(board):
    before = build(
        f"""g (float[2,3] u1, float[2,3] u2) => (float[4,3] y) {{
            {board}
            b1 = ScatterND(board, i1, u1)
            y = ScatterND(b1, i2, u2)
        }}""",
        shape=np.array([4, 3], np.int64),
        zero=np.zeros((1, 1), np.float32),
        i1=np.array([[0], [1]], np.int64),
        i2=np.array([[-2], [-1]], np.int64),  # negative indices count from the end
    )
    out, sites = rewrite(before)
    assert sites == 1 and ops(out) == {"Concat": 1}
    assert_identical(before, out)


def test_flattened_index_list_reshapes_the_updates():
    # indices (6, 2) list the 2x3 block [1:3, 0:3] row-major; updates are (6, 2)
    before = build(
        """g (float[6,2] u, float[1,3,2] top) => (float[3,3,2] y) {
            b1 = ScatterND(board, i, u)
            y = ScatterND(b1, i_top, top)
        }""",
        board=np.zeros((3, 3, 2), np.float32),
        i=index_list(range(1, 3), range(3)).reshape(6, 2),
        i_top=np.array([[0]], np.int64),  # k = 1: the whole first row at once
    )
    out, sites = rewrite(before)
    assert sites == 1 and ops(out) == {"Concat": 1, "Reshape": 1}
    reshape = next(n for n in out.graph.node if n.op_type == "Reshape")
    target = {i.name: numpy_helper.to_array(i) for i in out.graph.initializer}[reshape.input[1]]
    assert target.tolist() == [2, 3, 2]
    assert_identical(before, out)


def test_symbolic_trailing_dims_are_allowed():
    before = build(
        """g (float[3,D] x) => (float[3,D] y) {
            s = Shape(x)
            board = ConstantOfShape(s)
            top = Slice(x, c0, c1, c0)
            rest = Slice(x, c1, c3, c0)
            b1 = ScatterND(board, i_top, top)
            y = ScatterND(b1, i_rest, rest)
        }""",
        c0=np.array([0], np.int64),
        c1=np.array([1], np.int64),
        c3=np.array([3], np.int64),
        i_top=np.array([[0]], np.int64),
        i_rest=np.array([[1], [2]], np.int64),
    )
    out, sites = rewrite(before)
    assert sites == 1 and "ScatterND" not in ops(out)
    for d in (4, 7):
        assert_identical(before, out, D=d)


def test_a_board_read_midway_is_two_sites():
    before = build(
        """g (float[2,3] u1, float[2,3] u2) => (float[4,3] y, float[4,3] half) {
            half = ScatterND(board, i1, u1)
            y = ScatterND(half, i2, u2)
        }""",
        board=np.zeros((4, 3), np.float32),
        i1=np.array([[0], [1]], np.int64),
        i2=np.array([[2], [3]], np.int64),
    )
    out, sites = rewrite(before)
    assert sites == 2 and "ScatterND" not in ops(out)
    assert_identical(before, out)
    again, sites = rewrite(out)
    assert sites == 0 and same_graph(again, roundtrip(out))


# -- the HS-GAL board from PyTorch ---------------------------------------------------------------


def hsgal_board_model(opset: int) -> onnx.ModelProto:
    torch = pytest.importorskip("torch")

    class Board(torch.nn.Module):
        """Slice assignment of 4 blocks into torch.zeros, as HtrgGraphAttentionLayer builds its map."""

        def __init__(self, d: int = 3) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(d, d)

        def forward(self, x1, x2):
            n1 = x1.size(1)
            x = torch.cat([x1, x2], dim=1)
            pair = torch.tanh(self.proj(x.unsqueeze(2) * x.unsqueeze(1)))  # (B,N,N,D)
            board = torch.zeros_like(pair)
            board[:, :n1, :n1, :] = pair[:, :n1, :n1, :] * 2
            board[:, :n1, n1:, :] = pair[:, :n1, n1:, :] * 3
            board[:, n1:, :n1, :] = pair[:, n1:, :n1, :] * 5
            board[:, n1:, n1:, :] = pair[:, n1:, n1:, :] * 7
            return board.sum(dim=-1)

    torch.manual_seed(0)
    buf = io.BytesIO()
    torch.onnx.export(
        Board().eval(),
        (torch.randn(2, 3, 3), torch.randn(2, 2, 3)),
        buf,
        dynamo=False,
        opset_version=opset,
        input_names=["x1", "x2"],
        output_names=["y"],
        dynamic_axes={"x1": {0: "B"}, "x2": {0: "B"}, "y": {0: "B"}},
    )
    return onnx.load_from_string(buf.getvalue())


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
@pytest.mark.parametrize("opset", [11, 17])
def test_hsgal_board_after_set_batch_size_and_simplify(opset):
    model = hsgal_board_model(opset)
    # with a symbolic batch the indices are computed from Shape(x): not constants, no site
    dynamic, sites = rewrite(model)
    assert sites == 0 and ops(dynamic)["ScatterND"] == 4
    for batch in (1, 3):
        static, _ = testing.apply_pass(model, "set_batch_size", batch=batch)
        static, _ = testing.apply_pass(static, "simplify")
        assert ops(static)["ScatterND"] == 4
        out, result = testing.apply_pass(static, "replace_scatternd_with_concat")
        assert result.sites == 1 and "ScatterND" not in ops(out)
        new = [axis for axis, inputs in concats(out) if (axis, inputs) not in concats(static)]
        assert sorted(new) == [1, 2, 2]  # rows (T | S) of columns (T | S)
        inputs = testing.feeds(static, seed=batch)
        reference = testing.run(model, inputs)[0]  # the dynamic export, before any pass
        np.testing.assert_array_equal(testing.run(out, inputs)[0], reference)
        again, result = testing.apply_pass(out, "replace_scatternd_with_concat")
        assert result.sites == 0


# -- guards: must not fire -----------------------------------------------------------------------


def test_overlapping_blocks_are_left_alone():
    assert_untouched(
        build(
            TWO_BLOCKS,
            board=np.zeros((4, 3), np.float32),
            i1=np.array([[0], [1]], np.int64),
            i2=np.array([[1], [2]], np.int64),  # row 1 written twice: the later write wins
        )
    )


def test_nonzero_board_is_left_alone():
    board = np.zeros((5, 3), np.float32)
    board[4, 0] = 1.0  # row 4 is not written and is not zero
    model = build(
        """g (float[2,3] u1, float[2,3] u2) => (float[5,3] y) {
            b1 = ScatterND(board, i1, u1)
            y = ScatterND(b1, i2, u2)
        }""",
        board=board,
        i1=np.array([[0], [1]], np.int64),
        i2=np.array([[2], [3]], np.int64),
    )
    assert_untouched(model)


def test_variable_board_is_left_alone():
    assert_untouched(
        build(
            """g (float[4,3] board, float[2,3] u1, float[2,3] u2) => (float[4,3] y) {
                b1 = ScatterND(board, i1, u1)
                y = ScatterND(b1, i2, u2)
            }""",
            i1=np.array([[0], [1]], np.int64),
            i2=np.array([[2], [3]], np.int64),
        )
    )


def test_non_constant_indices_are_left_alone():
    assert_untouched(
        build(
            """g (float[2,3] u1, float[2,3] u2, int64[2,1] i2) => (float[4,3] y) {
                b1 = ScatterND(board, i1, u1)
                y = ScatterND(b1, i2, u2)
            }""",
            board=np.zeros((4, 3), np.float32),
            i1=np.array([[0], [1]], np.int64),
        )
    )


@pytest.mark.parametrize("reduction", ["add", "mul"])
def test_reduction_is_left_alone(reduction):
    assert_untouched(
        build(
            f"""g (float[2,3] u1, float[2,3] u2) => (float[4,3] y) {{
                b1 = ScatterND<reduction="{reduction}">(board, i1, u1)
                y = ScatterND<reduction="{reduction}">(b1, i2, u2)
            }}""",
            opset=16,
            board=np.zeros((4, 3), np.float32),
            i1=np.array([[0], [1]], np.int64),
            i2=np.array([[2], [3]], np.int64),
        )
    )


@pytest.mark.parametrize(
    "indices",
    [
        np.array([[0, 0], [0, 1], [1, 0]], np.int64),  # an L, not a rectangle
        np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.int64),  # a rectangle, column-major
        np.array([[0, 0], [0, 0]], np.int64),  # the same element twice
        np.array([[0, 3]], np.int64),  # out of range
    ],
)
def test_non_rectangular_scatter_is_left_alone(indices):
    assert_untouched(
        build(
            f"""g (float[{len(indices)}] u) => (float[2,3] y) {{ y = ScatterND(board, i, u) }}""",
            board=np.zeros((2, 3), np.float32),
            i=indices,
        )
    )


def test_pinwheel_tiling_has_no_guillotine_cut():
    # five blocks tile 3x3 with no straight cut that crosses none of them
    boxes = [((0, 2), (0, 1)), ((0, 1), (1, 3)), ((1, 3), (2, 3)), ((2, 3), (0, 2)), ((1, 2), (1, 2))]
    inits = {f"i{k}": index_list(range(*r), range(*c)) for k, (r, c) in enumerate(boxes)}
    shapes = [f"float[{r[1] - r[0]},{c[1] - c[0]}] u{k}" for k, (r, c) in enumerate(boxes)]
    chain = "\n".join(f"b{k + 1} = ScatterND(b{k}, i{k}, u{k})" for k in range(4))
    assert_untouched(
        build(
            f"""g ({", ".join(shapes)}) => (float[3,3] y) {{
                {chain}
                y = ScatterND(b4, i4, u4)
            }}""",
            b0=np.zeros((3, 3), np.float32),
            **inits,
        )
    )


def test_int32_board_of_other_values_is_left_alone():
    model = build(
        """g (int32[2,3] u1) => (int32[2,3] y) { y = ScatterND(board, i1, u1) }""",
        board=np.full((2, 3), 7, np.int32),
        i1=np.array([[0], [1]], np.int64),
    )
    assert_untouched(model)


def test_unknown_board_shape_is_left_alone():
    model = build(
        """g (float[2,3] u1, int64[2] shape) => (float[?,?] y) {
            board = ConstantOfShape(shape)
            y = ScatterND(board, i1, u1)
        }""",
        i1=np.array([[0], [1]], np.int64),
    )
    assert_untouched(model)


# -- sites: one per ScatterND chain, labelled by its last ScatterND; near-misses --------------------


def three_boards() -> onnx.ModelProto:
    """Boards y (2 blocks), z (2 blocks, written the other way round), w (1 block and a hole),
    and v, whose blocks overlap."""
    return build(
        """g (float[2,3] u1, float[2,3] u2) => (float[4,3] y, float[4,3] z, float[4,3] w, float[4,3] v) {
            b1 = ScatterND(board, i1, u1)
            [board_y] y = ScatterND(b1, i2, u2)
            c1 = ScatterND(board, i2, u1)
            [board_z] z = ScatterND(c1, i1, u2)
            [board_w] w = ScatterND(board, i1, u2)
            [first] d1 = ScatterND(board, i1, u1)
            [board_v] v = ScatterND(d1, i12, u2)
        }""",
        board=np.zeros((4, 3), np.float32),
        i1=np.array([[0], [1]], np.int64),
        i2=np.array([[2], [3]], np.int64),
        i12=np.array([[1], [2]], np.int64),
    )


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_first_k_boards_are_replaced_and_the_rest_kept(k):
    model = three_boards()
    out, result, sites = testing.run_first(model, "replace_scatternd_with_concat", k)
    assert sites.offered == ["board_y", "board_z", "board_w"]
    assert result.sites == k
    tails = {
        n.name for n in out.graph.node if n.op_type == "ScatterND" and n.output[0] in ("y", "z", "w", "v")
    }
    assert tails == {*sites.offered[k:], "board_v"}
    assert ops(out)["Concat"] == k
    assert_identical(model, out, seed=k)


def test_boards_that_cannot_be_replaced_are_near_misses():
    assert testing.run_sites(three_boards(), "replace_scatternd_with_concat", None)[1].near_misses == [
        ("board_v", "the blocks of first and board_v overlap")
    ]
    two = {"i1": np.array([[0], [1]], np.int64), "i2": np.array([[2], [3]], np.int64)}
    chain = "b1 = ScatterND(board, i1, u1)\n [tail] y = ScatterND(b1, i2, u2)"
    nonzero = np.zeros((4, 3), np.float32)
    nonzero[3, 2] = 1.0
    cases = [
        (
            build(f"g (float[2,3] u1, float[2,3] u2) => (float[4,3] y) {{ {chain} }}", board=nonzero, **two),
            "the board board is not all zeros",
        ),
        (
            build(
                f"g (float[4,3] board, float[2,3] u1, float[2,3] u2) => (float[4,3] y) {{ {chain} }}", **two
            ),
            "the board board is not a constant",
        ),
        (
            build(
                f"g (float[2,3] u1, float[2,3] u2, int64[2,1] i2) => (float[4,3] y) {{ {chain} }}",
                board=np.zeros((4, 3), np.float32),
                i1=two["i1"],
            ),
            "the indices of tail are not constant",
        ),
    ]
    for model, why in cases:
        out, result = testing.run_sites(model, "replace_scatternd_with_concat", None)
        assert result.sites == 0 and result.near_misses == [("tail", why)]


def test_a_pinwheel_is_a_near_miss():
    boxes = [((0, 2), (0, 1)), ((0, 1), (1, 3)), ((1, 3), (2, 3)), ((2, 3), (0, 2)), ((1, 2), (1, 2))]
    inits = {f"i{k}": index_list(range(*r), range(*c)) for k, (r, c) in enumerate(boxes)}
    shapes = [f"float[{r[1] - r[0]},{c[1] - c[0]}] u{k}" for k, (r, c) in enumerate(boxes)]
    chain = "\n".join(f"b{k + 1} = ScatterND(b{k}, i{k}, u{k})" for k in range(4))
    model = build(
        f"""g ({", ".join(shapes)}) => (float[3,3] y) {{
            {chain}
            [pinwheel] y = ScatterND(b4, i4, u4)
        }}""",
        b0=np.zeros((3, 3), np.float32),
        **inits,
    )
    _, result = testing.run_sites(model, "replace_scatternd_with_concat", None)
    assert result.near_misses == [("pinwheel", "no guillotine cut splits the blocks (a pinwheel tiling)")]
