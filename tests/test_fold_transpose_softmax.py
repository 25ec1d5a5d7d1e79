"""fold_transpose_softmax: structure before/after, numbers on onnxruntime, guards, properties."""

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

from graphkit import testing
from graphkit.passes._infra import EXACT, Sites, spec_of
from graphkit.passes.fold_transpose_softmax import fold_transpose_softmax
from graphkit.testing import roundtrip, run

# -- helpers -------------------------------------------------------------------------------------


build = functools.partial(testing.build, opset=11)  # the exporters' opset < 13 form is the main case


def fold(model: onnx.ModelProto, *, shapes: bool = True) -> tuple[onnx.ModelProto, int]:
    return testing.rewrite(model, "fold_transpose_softmax", shapes=shapes)


def randn(*shape: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * 2).astype(np.float32)


def assert_same_numbers(before: onnx.ModelProto, after: onnx.ModelProto, inputs: dict) -> None:
    assert [o.name for o in after.graph.output] == [o.name for o in before.graph.output]
    for a, b in zip(run(before, inputs), run(after, inputs)):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


ops = tiny.ops


attrs = tiny.attrs


def softmaxes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.op_type == "Softmax"]


def assert_untouched(model: onnx.ModelProto, *, shapes: bool = True) -> None:
    out, sites = fold(model, shapes=shapes)
    assert sites == 0
    if shapes:
        assert out.SerializeToString() == roundtrip(model)


def wrapped(
    shape: str, perm: list[int], axis: int | None, opset: int = 11, out: str | None = None
) -> onnx.ModelProto:
    """x -> Transpose(perm) -> Softmax(axis) -> Transpose(perm^-1) -> y."""
    inverse = np.argsort(perm).tolist()
    axis_attr = "" if axis is None else f"<axis={axis}>"
    return build(
        f"""g (float[{shape}] x) => (float[{out or shape}] y) {{
            t = Transpose<perm={perm}>(x)
            s = Softmax{axis_attr}(t)
            y = Transpose<perm={inverse}>(s)
        }}""",
        opset=opset,
    )


# -- the pass as registered --------------------------------------------------------------------


def test_registered_as_exact_pass_without_parameters():
    spec = spec_of(fold_transpose_softmax)
    assert spec is not None and spec.name == "fold_transpose_softmax"
    assert spec.contract == EXACT and not spec.params and spec.doc


# -- before / after ----------------------------------------------------------------------------


@pytest.mark.parametrize("opset", [11, 12])
def test_aasist_attention_map_at_opset_11(opset):
    # GAT: softmax over the second node axis of (B,N,N,1), exported at opset < 13
    model = wrapped("B,7,7,1", [0, 1, 3, 2], 3, opset=opset)
    out, sites = fold(model)
    assert sites == 1 and ops(out) == Counter(Softmax=1)
    (softmax,) = softmaxes(out)
    assert softmax.input == ["x"] and softmax.output == ["y"] and attrs(softmax) == {"axis": 2}
    for batch in (1, 3):
        assert_same_numbers(model, out, {"x": randn(batch, 7, 7, 1, seed=batch)})


def test_master_attention_map_at_opset_11():
    # (B,N,1) with softmax over N: perm [0,2,1], axis 2 -> axis 1
    model = wrapped("B,9,1", [0, 2, 1], 2)
    out, sites = fold(model)
    assert sites == 1 and attrs(softmaxes(out)[0]) == {"axis": 1}
    assert_same_numbers(model, out, {"x": randn(2, 9, 1)})


@pytest.mark.parametrize("opset", [13, 17, 21])
def test_opset_13_folds_to_perm_of_axis_whatever_the_shape(opset):
    model = wrapped("2,3,4,5", [0, 2, 3, 1], 1, opset=opset)
    out, sites = fold(model)
    assert sites == 1 and attrs(softmaxes(out)[0]) == {"axis": 2}
    assert_same_numbers(model, out, {"x": randn(2, 3, 4, 5)})
    # default axis (-1) and no perm (reversed axes): t axis 2 is x axis 0
    model = build(
        """g (float[2,3,4] x) => (float[2,3,4] y) { t = Transpose(x)  s = Softmax(t)  y = Transpose(s) }""",
        opset=opset,
    )
    out, sites = fold(model)
    assert sites == 1 and attrs(softmaxes(out)[0]) == {"axis": 0}
    assert_same_numbers(model, out, {"x": randn(2, 3, 4)})


def test_opset_11_joint_axes_fold_to_the_first_of_them():
    # t = (2,3,5,4): opset-11 Softmax(axis 2) normalises x's axes {3, 2} jointly = Softmax_2(x);
    # the guide's rule (perm[a] = 3) would normalise over axis 3 only
    model = wrapped("2,3,4,5", [0, 1, 3, 2], 2)
    out, sites = fold(model)
    assert sites == 1 and attrs(softmaxes(out)[0]) == {"axis": 2}
    assert_same_numbers(model, out, {"x": randn(2, 3, 4, 5)})


def test_opset_11_default_axis_and_unit_axes_inside_the_group():
    # default axis 1: t = x^(0,2,1,3) (2,1,3,4) normalises over everything but axis 0 -> axis 1
    model = wrapped("2,3,1,4", [0, 2, 1, 3], None)
    out, sites = fold(model)
    assert sites == 1 and attrs(softmaxes(out)[0]) == {"axis": 1}
    assert_same_numbers(model, out, {"x": randn(2, 3, 1, 4)})


def test_symbolic_axes_count_as_larger_than_one():
    # (B,N,M,1) with N, M symbolic: still exact, only the trailing 1 is used
    model = wrapped("B,N,M,1", [0, 1, 3, 2], 3)
    out, sites = fold(model)
    assert sites == 1 and attrs(softmaxes(out)[0]) == {"axis": 2}
    assert_same_numbers(model, out, {"x": randn(3, 4, 6, 1)})


def test_every_wrapped_softmax_is_a_site_and_a_second_run_changes_nothing():
    model = build(
        """g (float[B,5,5,1] x) => (float[B,5,5,1] y, float[B,5,1] z) {
            t = Transpose<perm=[0,1,3,2]>(x)
            s = Softmax<axis=3>(t)
            y = Transpose<perm=[0,1,3,2]>(s)
            r = ReduceSum<axes=[2], keepdims=0>(y)
            u = Transpose<perm=[0,2,1]>(r)
            v = Softmax<axis=2>(u)
            z = Transpose<perm=[0,2,1]>(v)
        }"""
    )
    out, sites = fold(model)
    assert sites == 2 and ops(out)["Transpose"] == 0 and ops(out)["Softmax"] == 2
    assert_same_numbers(model, out, {"x": randn(2, 5, 5, 1)})
    again, sites = fold(out)
    assert sites == 0 and again.SerializeToString() == roundtrip(out)


def gat_attention(opset: int) -> onnx.ModelProto:
    """AASIST's GraphAttentionLayer map: pairwise products -> Linear -> tanh -> @w -> softmax(dim -2)."""
    torch = pytest.importorskip("torch")

    class Attention(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(8, 6)
            self.w = torch.nn.Parameter(torch.randn(6, 1))

        def forward(self, x):
            pair = x.unsqueeze(2) * x.unsqueeze(1)  # (B,N,N,D)
            att = torch.matmul(torch.tanh(self.proj(pair)), self.w) / 2.0  # (B,N,N,1)
            att = torch.softmax(att, dim=-2)
            return torch.matmul(att.squeeze(-1), x)

    torch.manual_seed(0)
    buf = io.BytesIO()
    torch.onnx.export(
        Attention().eval(),
        torch.randn(2, 5, 8),
        buf,
        dynamo=False,
        opset_version=opset,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "B"}, "y": {0: "B"}},
    )
    return onnx.load_from_string(buf.getvalue())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("opset", [11, 13])
def test_torch_graph_attention(opset):
    model = gat_attention(opset)
    out, sites = fold(model)
    assert sites == (1 if opset < 13 else 0)  # opset 13 exports Softmax(axis=-2) directly
    assert ops(out)["Transpose"] == 0 and len(softmaxes(out)) == 1
    for batch in (1, 3):
        assert_same_numbers(model, out, {"x": randn(batch, 5, 8, seed=batch)})


# -- guards: must not fire -----------------------------------------------------------------------


def coerced_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """Softmax with the opset < 13 semantics: over all axes from ``axis`` on."""
    flat = x.reshape(int(np.prod(x.shape[:axis])), -1).astype(np.float64)
    e = np.exp(flat - flat.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).reshape(x.shape)


def test_opset_11_coercion_over_a_wide_trailing_axis_is_left_alone():
    # (B,N,M,K) K>1, perm [0,1,3,2], axis 3: normalises over M only, which no single opset-11
    # Softmax on x does (axis 2 would normalise over M and K jointly)
    model = wrapped("2,4,5,3", [0, 1, 3, 2], 3)
    assert_untouched(model)
    x = randn(2, 4, 5, 3)
    (y,) = run(model, {"x": x})
    # the guide's rule (axis := perm[a] = 2) would be wrong here
    assert not np.allclose(y, coerced_softmax(x, 2), atol=1e-3)


def test_unknown_shape_at_opset_11_is_left_alone():
    model = build(
        """g (float[2,4,5,1] x, int64[4] shape) => (float[?,?,?,?] y) {
            r = Reshape(x, shape)
            t = Transpose<perm=[0,1,3,2]>(r)
            s = Softmax<axis=3>(t)
            y = Transpose<perm=[0,1,3,2]>(s)
        }"""
    )
    assert_untouched(model)
    plain = build(
        """g (float[2,4,5,1] x) => (float[2,4,5,1] y) {
            r = Relu(x)
            t = Transpose<perm=[0,1,3,2]>(r)
            s = Softmax<axis=3>(t)
            y = Transpose<perm=[0,1,3,2]>(s)
        }"""
    )
    assert_untouched(plain, shapes=False)  # without shape inference r's shape is unknown
    assert fold(plain)[1] == 1


def test_unknown_rank_without_perm_is_left_alone():
    model = build(
        """g (float[2,4,5] x, int64[n] shape) => (float[?,?,?] y) {
            r = Reshape(x, shape)
            t = Transpose(r)
            s = Softmax(t)
            y = Transpose(s)
        }""",
        opset=13,
    )
    assert_untouched(model)


def test_second_perm_not_the_inverse_is_left_alone():
    # perm [1,2,0] twice is not the identity
    model = build(
        """g (float[2,3,4] x) => (float[4,2,3] y) {
            t = Transpose<perm=[1,2,0]>(x)
            s = Softmax<axis=2>(t)
            y = Transpose<perm=[1,2,0]>(s)
        }""",
        opset=13,
    )
    assert_untouched(model)


@pytest.mark.parametrize(
    "extra, outputs",
    [
        ("z = Relu(t)", "float[2,3,5,4] z"),  # the transposed input is read twice
        ("z = Relu(s)", "float[2,3,5,4] z"),  # the softmax output is read twice
        ("", "float[2,3,5,4] s"),  # the softmax output is a graph output
    ],
)
def test_other_readers_keep_the_transposes(extra, outputs):
    model = build(
        f"""g (float[2,3,4,5] x) => (float[2,3,4,5] y, {outputs}) {{
            t = Transpose<perm=[0,1,3,2]>(x)
            s = Softmax<axis=3>(t)
            y = Transpose<perm=[0,1,3,2]>(s)
            {extra}
        }}""",
        opset=13,
    )
    assert_untouched(model)


def test_softmax_without_transposes_is_left_alone():
    assert_untouched(build("g (float[2,3,4] x) => (float[2,3,4] y) { y = Softmax<axis=1>(x) }"))
    assert_untouched(
        build(
            """g (float[2,3,4] x) => (float[2,4,3] y) {
                t = Transpose<perm=[0,2,1]>(x)
                y = Softmax<axis=1>(t)
            }"""
        )
    )


# -- properties ----------------------------------------------------------------------------------


@st.composite
def wrapped_cases(draw: st.DrawFn) -> dict:
    r = draw(st.integers(2, 5))
    return {
        "shape": draw(st.lists(st.sampled_from([1, 1, 2, 3]), min_size=r, max_size=r)),
        "perm": draw(st.permutations(list(range(r)))),
        "axis": draw(st.one_of(st.none(), st.integers(-r, r - 1))),
        "opset": draw(st.sampled_from([11, 12, 13, 18])),
        "seed": draw(st.integers(0, 2**16)),
    }


def case_model(c: dict) -> onnx.ModelProto:
    return wrapped(",".join(map(str, c["shape"])), list(c["perm"]), c["axis"], opset=c["opset"])


def foldable(c: dict, x: np.ndarray, y: np.ndarray) -> bool:
    """Whether some single Softmax on x gives y (numerically: the oracle, not the pass's rule)."""
    r = len(c["shape"])
    if c["opset"] >= 13:
        return True
    return any(np.allclose(coerced_softmax(x, b), y, rtol=1e-5, atol=1e-6) for b in range(r))


@settings(max_examples=300, deadline=None)
@given(wrapped_cases())
def test_property_fires_exactly_when_a_single_softmax_fits(case):
    model = case_model(case)
    x = randn(*case["shape"], seed=case["seed"])
    (y,) = run(model, {"x": x})
    out, sites = fold(model)
    assert sites == int(foldable(case, x, y))
    if sites:
        assert ops(out) == Counter(Softmax=1)
        (z,) = run(out, {"x": x})
        np.testing.assert_allclose(z, y, rtol=1e-6, atol=1e-7)
        again, sites = fold(out)
        assert sites == 0 and again.SerializeToString() == roundtrip(out)
    else:
        assert out.SerializeToString() == roundtrip(model)


# -- sites: selection and near-misses ------------------------------------------------------------


def fold_sites(model: onnx.ModelProto, sites: Sites | None):
    """Run the pass as the manager does, with a site selection; returns (model, PassResult)."""
    return testing.run_sites(model, "fold_transpose_softmax", sites)


THREE_MAPS = """g (float[B,5,5,1] x) => (float[B,5,5,1] y, float[B,5,1] z, float[B,5,1] w) {
    t = Transpose<perm=[0,1,3,2]>(x)
    [map_s] s = Softmax<axis=3>(t)
    y = Transpose<perm=[0,1,3,2]>(s)
    r = ReduceSum<axes=[2], keepdims=0>(y)
    u = Transpose<perm=[0,2,1]>(r)
    [map_v] v = Softmax<axis=2>(u)
    z = Transpose<perm=[0,2,1]>(v)
    e = Transpose<perm=[0,2,1]>(z)
    [map_f] f = Softmax<axis=2>(e)
    w = Transpose<perm=[0,2,1]>(f)
}"""


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_first_k_sites_are_folded_and_the_rest_kept(k):
    from graphkit.passes._infra import first_sites

    model = build(THREE_MAPS)
    sites = first_sites(k)
    out, result = fold_sites(model, sites)
    assert sites.offered == ["map_s", "map_v", "map_f"]
    assert result.sites == k and result.site_labels == sites.offered[:k]
    wrapped_left = {
        n.name for n in softmaxes(out) if getattr(producer(out, n.input[0]), "op_type", "") == "Transpose"
    }
    assert wrapped_left == set(sites.offered[k:])
    assert ops(out)["Transpose"] == 6 - 2 * k and ops(out)["Softmax"] == 3
    assert_same_numbers(model, out, {"x": randn(2, 5, 5, 1, seed=k)})


def producer(model: onnx.ModelProto, tensor: str) -> onnx.NodeProto | None:
    return next((n for n in model.graph.node if tensor in n.output), None)


def test_a_transpose_shared_by_two_maps_is_offered_once_whatever_is_taken():
    # T -> Softmax -> T^-1 -> Softmax -> T: the middle Transpose belongs to the first fold
    from graphkit.passes._infra import first_sites

    model = build(
        """g (float[2,4,3] x) => (float[2,3,4] y) {
            t = Transpose<perm=[0,2,1]>(x)
            [first] s = Softmax<axis=2>(t)
            u = Transpose<perm=[0,2,1]>(s)
            [second] v = Softmax<axis=2>(u)
            y = Transpose<perm=[0,2,1]>(v)
        }""",
        opset=13,
    )
    shared = [("second", "its Transpose u is folded with first")]
    for sites in (first_sites(0), first_sites(1)):
        out, result = fold_sites(model, sites)
        assert sites.offered == ["first"] and result.near_misses == shared
        assert_same_numbers(model, out, {"x": randn(2, 4, 3)})


@pytest.mark.parametrize(
    "body, opset, why",
    [
        (
            "t = Transpose<perm=[1,2,0]>(x)\n [m] s = Softmax<axis=2>(t)\n y = Transpose<perm=[1,2,0]>(s)",
            13,
            "perm [1, 2, 0] does not invert [1, 2, 0]",
        ),
        (
            "t = Transpose<perm=[0,2,1]>(x)\n z = Relu(t)\n [m] s = Softmax<axis=2>(t)\n"
            " y = Transpose<perm=[0,2,1]>(s)",
            13,
            "the Transpose output t has another reader",
        ),
        (
            "t = Transpose<perm=[0,2,1]>(x)\n [m] s = Softmax<axis=2>(t)\n y = Transpose<perm=[0,2,1]>(s)",
            11,
            "at opset 11 the Softmax normalises axes [1] jointly, as no axis does",
        ),
    ],
)
def test_refused_maps_are_near_misses(body, opset, why):
    model = build(f"g (float[2,3,4] x) => (float[?,?,?] y) {{ {body} }}", opset=opset)
    out, result = fold_sites(model, None)
    assert result.sites == 0 and result.near_misses == [("m", why)]
    assert (
        fold_sites(build("g (float[2,3] x) => (float[2,3] y) { y = Softmax(x) }"), None)[1].near_misses == []
    )
