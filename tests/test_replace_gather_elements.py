"""replace_gather_elements: structure before/after, numbers on onnxruntime at several batches, guards."""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
import tiny

from graphkit import testing
from graphkit.passes._infra import EXACT, spec_of
from graphkit.passes.replace_gather_elements import EXAMPLES, replace_gather_elements
from graphkit.testing import build

# -- helpers -------------------------------------------------------------------------------------


def rewrite(model: onnx.ModelProto, **params) -> tuple[onnx.ModelProto, int]:
    return testing.rewrite(model, "replace_gather_elements", **params)


def same_graph(a: onnx.ModelProto, b: onnx.ModelProto) -> bool:
    """Same nodes and initializers (inferred value_info may name unknown dims differently)."""
    nodes = [n.SerializeToString() for n in a.graph.node] == [n.SerializeToString() for n in b.graph.node]
    inits = [i.SerializeToString() for i in a.graph.initializer] == [
        i.SerializeToString() for i in b.graph.initializer
    ]
    return nodes and inits


def assert_untouched(model: onnx.ModelProto) -> None:
    out, sites = rewrite(model)
    assert sites == 0
    assert same_graph(out, onnx.load_from_string(testing.roundtrip(model)))


def assert_identical(before: onnx.ModelProto, after: onnx.ModelProto, batches: tuple[int, ...]) -> None:
    for batch in batches:
        inputs = testing.feeds(before, seed=batch, symbolic=batch)
        for a, b in zip(testing.run(before, inputs), testing.run(after, inputs)):
            assert a.shape == b.shape
            np.testing.assert_array_equal(a, b)  # a gather moves values; nothing is computed


ops = tiny.ops


inits_of = tiny.inits_of


# the pass's examples: the GraphPool gather h (B,5,3) -> TopK k=2 over nodes -> rows of h*scores,
# at batch 2 and at a symbolic batch B
STATIC, SYMBOLIC = EXAMPLES


# -- the pass as registered ----------------------------------------------------------------------


def test_registered_as_exact_pass_without_parameters():
    spec = spec_of(replace_gather_elements)
    assert spec is not None and spec.name == "replace_gather_elements"
    assert spec.contract == EXACT and list(spec.params) == ["index_dtype"] and spec.doc
    assert spec.params["index_dtype"].default == "int32"


# -- before / expected ---------------------------------------------------------------------------


def test_static_batch_gets_constant_offsets():
    before = STATIC.model()
    out, sites = rewrite(before)
    assert sites == 1
    assert ops(out) == {
        "MatMul": 1,
        "Sigmoid": 1,
        "TopK": 1,
        "Mul": 1,
        "Squeeze": 1,
        "Cast": 1,
        "Add": 1,
        "Reshape": 1,
        "Gather": 1,
    }
    nodes = {n.op_type: n for n in out.graph.node}
    inits = inits_of(out)
    # y = Gather<axis=0>(Reshape(hs, [-1, 3]), Squeeze(idx, 2) + [[0], [5]])
    assert nodes["Gather"].output == ["y"] and nodes["Gather"].attribute[0].i == 0
    assert nodes["Gather"].input == [nodes["Reshape"].output[0], nodes["Add"].output[0]]
    assert nodes["Reshape"].input[0] == "hs" and inits[nodes["Reshape"].input[1]].tolist() == [-1, 3]
    assert nodes["Squeeze"].input[0] == "idx"
    offsets = next(v for k, v in inits.items() if k in nodes["Add"].input)
    assert offsets.tolist() == [[0], [5]] and offsets.dtype == np.int32
    assert_identical(before, out, (2,))


def test_symbolic_batch_gets_offsets_from_the_shape():
    before = SYMBOLIC.model()
    out, sites = rewrite(before)
    assert sites == 1 and "GatherElements" not in ops(out)
    assert {"Shape", "Range", "Mul"} <= set(ops(out))
    assert_identical(before, out, (1, 2, 5))
    # once the batch is set, the offsets fold to a constant
    folded, _ = testing.apply_pass(out, "set_batch_size", batch=3)
    assert "Range" not in ops(folded) and "Shape" not in ops(folded)
    assert_identical(before, folded, (3,))


def test_indices_unsqueezed_from_topk_on_a_rank2_score():
    before = build(
        """g (float[B,5,3] h, float[B,5] scores) => (float[B,2,3] y) {
            top, idx2 = TopK<axis=1>(scores, k)
            idx = Unsqueeze(idx2, axes)
            wide = Expand(idx, shape)
            y = GatherElements<axis=-2>(h, wide)
        }""",
        axes=np.array([2], np.int64),
        **STATIC.constants,  # k and shape
    )
    out, sites = rewrite(before)
    assert sites == 1 and "Squeeze" not in ops(out) and "Unsqueeze" not in ops(out)
    add = next(n for n in out.graph.node if n.op_type == "Add")
    cast = next(n for n in out.graph.node if n.op_type == "Cast")
    assert list(cast.input) == ["idx2"] and cast.output[0] in add.input  # the Unsqueeze's input
    assert_identical(before, out, (1, 4))


def test_negative_indices_are_wrapped():
    before = build(
        """g (float[2,5,3] h) => (float[2,2,3] y) {
            wide = Expand(idx, shape)
            y = GatherElements<axis=1>(h, wide)
        }""",
        idx=np.array([[[-1], [0]], [[3], [-5]]], np.int64),
        shape=np.array([3], np.int64),  # a shorter shape broadcasts from the right
    )
    out, sites = rewrite(before)
    assert sites == 1 and ops(out)["Mod"] == 1
    assert_identical(before, out, (2,))


def test_int32_indices_keep_their_type():
    before = build(
        """g (float[B,5,3] h) => (float[B,2,3] y) {
            h3 = Slice(h, zero, one, two)
            top, idx64 = TopK<axis=1>(h3, k)
            idx = Cast<to=6>(idx64)
            wide = Expand(idx, shape)
            y = GatherElements<axis=1>(h, wide)
        }""",
        zero=np.array([0], np.int64),
        one=np.array([1], np.int64),
        two=np.array([2], np.int64),
        k=np.array([2], np.int64),
        shape=np.array([1, 1, 3], np.int64),
    )
    out, sites = rewrite(before)
    assert sites == 1 and ops(out)["Cast"] == 2  # the int32 indices, and the offsets to int32
    assert_identical(before, out, (1, 3))


# -- GraphPool from PyTorch ----------------------------------------------------------------------


def graph_pool_model(opset: int) -> onnx.ModelProto:
    torch = pytest.importorskip("torch")

    class GraphPool(torch.nn.Module):
        """Linear -> sigmoid scores -> top-k nodes -> rows of h * scores (AASIST's GraphPool)."""

        def __init__(self, dim: int = 4, ratio: float = 0.5) -> None:
            super().__init__()
            self.proj, self.ratio = torch.nn.Linear(dim, 1), ratio

        def forward(self, h):
            scores = torch.sigmoid(self.proj(h))
            _, nodes, feats = h.size()
            _, idx = torch.topk(scores, max(int(nodes * self.ratio), 1), dim=1)
            return torch.gather(h * scores, 1, idx.expand(-1, -1, feats))

    torch.manual_seed(0)
    buf = io.BytesIO()
    torch.onnx.export(
        GraphPool().eval(),
        torch.randn(2, 7, 4),
        buf,
        dynamo=False,
        opset_version=opset,
        input_names=["h"],
        output_names=["y"],
        dynamic_axes={"h": {0: "B"}, "y": {0: "B"}},
    )
    return onnx.load_from_string(buf.getvalue())


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("opset", [11, 17])
def test_graph_pool_from_torch_every_batch(opset):
    model = graph_pool_model(opset)
    assert ops(model)["GatherElements"] == 1
    out, result = testing.apply_pass(model, "replace_gather_elements")
    assert result.sites == 1 and "GatherElements" not in ops(out)
    assert_identical(model, out, (1, 2, 5))
    again, result = testing.apply_pass(out, "replace_gather_elements")
    assert result.sites == 0
    # the usual pipeline: static batch, simplify, then the pass
    static, _ = testing.apply_pass(model, "set_batch_size", batch=3)
    static, _ = testing.apply_pass(static, "simplify")
    out, result = testing.apply_pass(static, "replace_gather_elements")
    assert result.sites == 1 and {"GatherElements", "Range", "Shape"}.isdisjoint(ops(out))
    assert_identical(model, out, (3,))


# -- guards: must not fire -----------------------------------------------------------------------


def test_elementwise_gather_is_left_alone():
    # indices vary along D: each output element picks its own row
    assert_untouched(
        build(
            """g (float[2,5,3] h) => (float[2,2,3] y) { y = GatherElements<axis=1>(h, idx) }""",
            idx=np.array([[[0, 1, 2], [3, 4, 0]], [[1, 1, 1], [2, 2, 3]]], np.int64),
        )
    )
    # an Expand that broadcasts nothing along D: idx already (B,k,D)
    assert_untouched(
        build(
            """g (float[2,5,3] h, int64[2,2,3] idx) => (float[2,2,3] y) {
                wide = Expand(idx, shape)
                y = GatherElements<axis=1>(h, wide)
            }""",
            shape=np.array([1, 1, 3], np.int64),
        )
    )


@pytest.mark.parametrize("axis", [0, 2, -1])
def test_other_axes_are_left_alone(axis):
    # along D, Expand(idx (2,5,1)) picks one column per row: not a row gather
    assert_untouched(
        build(
            f"""g (float[2,5,3] h, int64[2,5,1] idx) => (float[2,5,3] y) {{
                wide = Expand(idx, shape)
                y = GatherElements<axis={axis}>(h, wide)
            }}""",
            shape=np.array([2, 5, 3], np.int64),
        )
    )


def test_expand_that_repeats_one_row_list_is_left_alone():
    # idx (B,1,1) expanded to (B,2,3): the k axis is broadcast too
    assert_untouched(
        build(
            """g (float[2,5,3] h, int64[2,1,1] idx) => (float[2,2,3] y) {
                wide = Expand(idx, shape)
                y = GatherElements<axis=1>(h, wide)
            }""",
            shape=np.array([1, 2, 3], np.int64),
        )
    )


def test_partial_width_is_left_alone():
    # indices (B,k,2) on data (B,N,3): the output keeps only the first 2 columns
    assert_untouched(
        build(
            """g (float[2,5,3] h, int64[2,2,1] idx) => (float[2,2,2] y) {
                wide = Expand(idx, shape)
                y = GatherElements<axis=1>(h, wide)
            }""",
            shape=np.array([1, 1, 2], np.int64),
        )
    )


def test_unknown_expand_shape_is_left_alone():
    assert_untouched(
        build(
            """g (float[2,5,3] h, int64[2,2,1] idx, int64[3] shape) => (float[?,?,?] y) {
                wide = Expand(idx, shape)
                y = GatherElements<axis=1>(h, wide)
            }"""
        )
    )


# -- sites: selection and near-misses ------------------------------------------------------------


def three_gathers() -> onnx.ModelProto:
    """Three row gathers (gb reads ga's rows), and two GatherElements that are no row gathers."""
    return build(
        """g (float[2,5,3] h) => (float[2,2,3] b, float[2,2,3] c, float[2,5,3] d, float[2,2,3] e) {
            wa = Expand(ia, shape)
            [ga] a = GatherElements<axis=1>(h, wa)
            wb = Expand(ib, shape)
            [gb] b = GatherElements<axis=1>(a, wb)
            wc = Expand(ic, shape)
            [gc] c = GatherElements<axis=1>(h, wc)
            wd = Expand(id, shape)
            [gd] d = GatherElements<axis=2>(h, wd)
            [ge] e = GatherElements<axis=1>(h, ie)
        }""",
        ia=np.array([[[4], [0]], [[1], [3]]], np.int64),
        ib=np.array([[[1], [1]], [[1], [0]]], np.int64),
        ic=np.array([[[2], [2]], [[0], [4]]], np.int64),
        id=np.zeros((2, 5, 1), np.int64),
        ie=np.array([[[0, 1, 2], [3, 4, 0]], [[1, 1, 1], [2, 2, 3]]], np.int64),
        shape=np.array([1, 1, 3], np.int64),
    )


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_first_k_sites_are_replaced_and_the_rest_kept(k):
    model = three_gathers()
    out, result, sites = testing.run_first(model, "replace_gather_elements", k)
    assert sites.offered == ["ga", "gb", "gc"]
    assert result.sites == k
    left = {n.name for n in out.graph.node if n.op_type == "GatherElements"}
    assert left == {*sites.offered[k:], "gd", "ge"}
    assert ops(out)["Gather"] == k
    assert_identical(model, out, (2,))


def test_gathers_that_are_no_row_gathers_are_near_misses():
    _, result = testing.run_sites(three_gathers(), "replace_gather_elements", None)
    assert result.near_misses == [("gd", "axis 2, not 1"), ("ge", "indices ie are not an Expand")]
    unknown = build(
        """g (float[2,5,3] h, int64[2,2,1] idx, int64[3] shape) => (float[?,?,?] y) {
            wide = Expand(idx, shape)
            [g] y = GatherElements<axis=1>(h, wide)
        }"""
    )
    assert testing.run_sites(unknown, "replace_gather_elements", None)[1].near_misses == [
        ("g", "Expand shape shape is not constant")
    ]


@pytest.mark.parametrize("index_dtype", ["int32", "int64"])
def test_row_arithmetic_dtype_and_lint(index_dtype):
    """int32 (default): the TopK indices are cast before the Add, so ATC's int32 TopK output
    never meets int64 offsets (E89999); lint agrees. int64 keeps the ONNX types as they were."""
    from graphkit.ascend.lint import lint_model

    before = STATIC.model()
    out, sites = rewrite(before, index_dtype=index_dtype)
    assert sites == 1
    add = next(n for n in out.graph.node if n.op_type == "Add")
    types = {
        vi.name: vi.type.tensor_type.elem_type
        for vi in onnx.shape_inference.infer_shapes(out).graph.value_info
    }
    want = onnx.TensorProto.INT32 if index_dtype == "int32" else onnx.TensorProto.INT64
    assert all(types[i] == want for i in add.input if i in types)
    rules = {f.rule for f in lint_model(out)}
    assert ("topk-int64-arith" in rules) == (index_dtype == "int64")
