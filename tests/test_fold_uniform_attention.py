"""fold_uniform_attention: which maps are provably uniform, the folded structure, numbers, guards."""

from __future__ import annotations

import functools
import io
import math

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import pytest
import tiny
from hypothesis import given, settings
from hypothesis import strategies as st

from graphkit import testing
from graphkit.errors import PassError
from graphkit.passes._infra import APPROXIMATE, PassResult, register_pass, spec_of
from graphkit.passes.fold_uniform_attention import fold_uniform_attention
from graphkit.testing import build

# -- helpers -------------------------------------------------------------------------------------


def fold(
    model: onnx.ModelProto, name: str = "fold_uniform_attention", *, sites=None, **params
) -> tuple[onnx.ModelProto, PassResult]:
    """Run a pass as the manager runs it (under a site selection), the result checked fully."""
    return testing.run_sites(model, name, sites, **params)


def same_graph(a: onnx.ModelProto, b: onnx.ModelProto) -> bool:
    """Same nodes and initializers (inferred value_info may name unknown dims differently)."""
    nodes = [n.SerializeToString() for n in a.graph.node] == [n.SerializeToString() for n in b.graph.node]
    inits = [i.SerializeToString() for i in a.graph.initializer] == [
        i.SerializeToString() for i in b.graph.initializer
    ]
    return nodes and inits


def assert_untouched(model: onnx.ModelProto, **params) -> None:
    out, result = fold(model, **params)
    assert result.sites == 0 and not result.notes
    assert same_graph(out, onnx.load_from_string(testing.roundtrip(model)))


def max_delta(before: onnx.ModelProto, after: onnx.ModelProto, batch: int = 1, seed: int = 0) -> float:
    inputs = testing.feeds(before, seed=seed, symbolic=batch)
    pairs = list(zip(testing.run(before, inputs), testing.run(after, inputs)))
    assert all(a.shape == b.shape for a, b in pairs)
    return max(float(np.abs(a - b).max()) for a, b in pairs)


ops = tiny.ops


inits_of = tiny.inits_of


# -- a graph attention layer from PyTorch (GAT / HS-GAL shaped) ----------------------------------


def attention_layer(n1: int, weights: str, dim: int = 4):
    """Node map (an HS-GAL ScatterND board when ``n1``) and master map, as in AASIST §2.3."""
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.att_proj, self.att_projM = nn.Linear(dim, dim), nn.Linear(dim, dim)
            self.w11, self.w22, self.w12, self.wM = (nn.Parameter(torch.randn(dim, 1)) for _ in range(4))
            self.with_att, self.without_att = nn.Linear(dim, dim), nn.Linear(dim, dim)
            self.with_attM, self.without_attM = nn.Linear(dim, dim), nn.Linear(dim, dim)
            self.master = nn.Parameter(torch.randn(1, 1, dim))

        def forward(self, x):
            e = torch.tanh(self.att_proj(x.unsqueeze(2) * x.unsqueeze(1)))  # (B,N,N,D)
            if n1:
                board = torch.zeros_like(e[:, :, :, :1])
                board[:, :n1, :n1, :] = torch.matmul(e[:, :n1, :n1, :], self.w11)
                board[:, n1:, n1:, :] = torch.matmul(e[:, n1:, n1:, :], self.w22)
                board[:, :n1, n1:, :] = torch.matmul(e[:, :n1, n1:, :], self.w12)
                board[:, n1:, :n1, :] = torch.matmul(e[:, n1:, :n1, :], self.w12)
            else:
                board = torch.matmul(e, self.w11)
            att = torch.softmax(board / 2.0, dim=-2)
            y = self.with_att(torch.matmul(att.squeeze(-1), x)) + self.without_att(x)
            m = torch.matmul(torch.tanh(self.att_projM(x * self.master)), self.wM) / 2.0
            m = torch.softmax(m, dim=-2)  # (B,N,1): over the nodes
            master = self.with_attM(torch.matmul(m.squeeze(-1).unsqueeze(1), x)) + self.without_attM(
                self.master
            )
            return y, master

    torch.manual_seed(0)
    net = Attention().eval()
    scoring = [net.w11, net.w22, net.w12, net.wM]
    with torch.no_grad():
        if weights == "denormal":  # AASIST-L's HS-GAL: every attention parameter ~1e-40 (§2.4)
            for p in [*scoring, *net.att_proj.parameters(), *net.att_projM.parameters()]:
                p.copy_(torch.sign(torch.randn_like(p)) * 1e-40)
        elif weights == "zero":  # zero scoring vectors, ordinary projections
            for p in scoring:
                p.zero_()
    return net


@functools.cache
def exported(opset: int, nodes: int, n1: int, weights: str) -> bytes:
    import warnings

    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            attention_layer(n1, weights),
            torch.randn(2, nodes, 4),
            buf,
            dynamo=False,
            opset_version=opset,
            input_names=["x"],
            output_names=["y", "master"],
            dynamic_axes={"x": {0: "B"}},
        )
    return buf.getvalue()


@functools.cache
def static_layer(opset: int, nodes: int, n1: int, weights: str, batch: int) -> onnx.ModelProto:
    """The usual pipeline before this pass: set_batch_size, then simplify."""
    model = onnx.load_from_string(exported(opset, nodes, n1, weights))
    model, _ = testing.apply_pass(model, "set_batch_size", batch=batch)
    model, _ = testing.apply_pass(model, "simplify")
    return model


# -- the pass as registered ----------------------------------------------------------------------


def test_registered_as_approximate_with_a_tolerance():
    spec = spec_of(fold_uniform_attention)
    assert spec is not None and spec.name == "fold_uniform_attention" and spec.doc
    assert spec.contract == APPROXIMATE and list(spec.params) == ["tolerance"]
    assert spec.params["tolerance"].default == 1e-6
    with pytest.raises(PassError, match="tolerance"):
        fold(build("g (float[2,3] x) => (float[2,3] y) { y = Softmax(x) }"), tolerance=-1.0)


# -- (a) denormal weights, (b) zero scoring vectors: both maps fold, numbers unchanged ---------


@pytest.mark.parametrize("opset", [11, 17])
@pytest.mark.parametrize("n1", [0, 3], ids=["gat", "hsgal-board"])
@pytest.mark.parametrize("weights", ["denormal", "zero"])
def test_provably_uniform_maps_fold_exactly(opset, n1, weights):
    batch = 3
    model = static_layer(opset, 5, n1, weights, batch)
    assert ops(model)["Softmax"] == 2
    out, result = fold(model)
    assert result.sites == 2 and "Softmax" not in ops(out)
    assert "Tanh" not in ops(out)  # the logit subgraphs died with the maps
    if n1:
        assert "ScatterND" not in ops(out)
    if opset == 11:
        assert "Transpose" not in ops(out)  # the 1/N constant was pushed through the wrappers
    assert all("N=5" in note for note in result.notes)
    if weights == "zero":
        assert all("width <= 0," in note for note in result.notes)  # exact: logits are exactly 0
    uniform = [
        v for v in inits_of(out).values() if v.dtype == np.float32 and v.size > 1 and np.all(v == v.flat[0])
    ]
    assert sorted(v.shape for v in uniform if v.flat[0] == np.float32(1 / 5)) == [
        (batch, 1, 5),
        (batch, 5, 5),
    ]
    assert max_delta(model, out, batch) == 0.0
    again, result = fold(out)
    assert result.sites == 0 and same_graph(again, out)


# -- (c) ordinary weights, (d) a bound just above the tolerance: no fold -------------------------


@pytest.mark.parametrize("opset", [11, 17])
def test_ordinary_attention_is_left_alone(opset):
    assert_untouched(static_layer(opset, 5, 3, "ordinary", 2))


def scored(width: float, opset: int = 13) -> onnx.ModelProto:
    """Logits Tanh(x) @ w / 2 with sum|w| = width, so they lie in [-width/2, width/2]."""
    w = (np.array([[1.0], [-2.0], [1.0]]) * width / 4).astype(np.float32)
    return build(
        """g (float[2,4,3] x) => (float[2,4,3] y) {
            e = Tanh(x)
            s = MatMul(e, w)
            z = Div(s, t)
            a = Softmax<axis=1>(z)
            y = Mul(a, x)
        }""",
        opset=opset,
        w=w,
        t=np.array(2.0, np.float32),
    )


def test_bound_just_above_the_tolerance_is_left_alone():
    assert_untouched(scored(1.02e-6))
    out, result = fold(scored(0.98e-6))
    assert result.sites == 1 and "width <= 9.8e-07" in result.notes[0]
    # a looser tolerance admits the first one; the notes give the bound on |p - 1/N|
    out, result = fold(scored(1.02e-6), tolerance=1.05e-6)
    assert result.sites == 1
    assert max_delta(scored(1.02e-6), out) <= 1e-6


def test_tolerance_zero_folds_only_exact_zeros():
    assert_untouched(scored(1e-30), tolerance=0.0)
    out, result = fold(scored(0.0), tolerance=0.0)
    assert result.sites == 1 and max_delta(scored(0.0), out) == 0.0


# -- (e) N per opset -----------------------------------------------------------------------------


@pytest.mark.parametrize("opset, n", [(11, 12), (12, 12), (13, 3), (17, 3)])
def test_group_size_follows_the_opset(opset, n):
    # Softmax<axis=1> on (2,3,4): before 13 over 3*4 = 12 elements, from 13 over the 3 of axis 1
    model = build(
        """g (float[2,3,4] x) => (float[2,3,4] y) {
            e = Tanh(x)
            z = Mul(e, zero)
            a = Softmax<axis=1>(z)
            y = Mul(a, x)
        }""",
        opset=opset,
        zero=np.zeros(1, np.float32),
    )
    out, result = fold(model)
    assert result.sites == 1 and f"N={n}," in result.notes[0]
    (value,) = [v for v in inits_of(out).values() if v.shape == (2, 3, 4)]
    assert np.all(value == np.float32(1 / n))
    assert max_delta(model, out) == 0.0


def test_default_axis_follows_the_opset():
    # no axis: 1 before 13 (N = 3*4), -1 from 13 (N = 4)
    for opset, n in ((11, 12), (13, 4)):
        model = build(
            "g (float[2,3,4] x) => (float[2,3,4] y) { z = Mul(x, zero)\n a = Softmax(z)\n y = Mul(a, x) }",
            opset=opset,
            zero=np.zeros(1, np.float32),
        )
        out, result = fold(model)
        assert result.sites == 1 and f"N={n}," in result.notes[0]
        assert max_delta(model, out) == 0.0


# -- symbolic batch: constants with batch 1 where the readers broadcast --------------------------

DYNAMIC = """g (float[B,4,3] x) => (float[B,1,3] pooled, float[B,4,3] scaled) {
    e = Tanh(x)
    z = MatMul(e, w)
    a = Softmax<axis=1>(z)
    at = Transpose<perm=[0,2,1]>(a)
    pooled = MatMul(at, x)
    scaled = Mul(a, x)
}"""


def test_symbolic_batch_folds_into_broadcast_constants():
    model = build(DYNAMIC, w=np.zeros((3, 1), np.float32))
    out, result = fold(model)
    assert result.sites == 1 and ops(out) == {"MatMul": 1, "Mul": 1}
    shapes = sorted(v.shape for v in inits_of(out).values())
    assert shapes == [(1, 1, 4), (1, 4, 1)]  # (B,1,4) for the MatMul, (B,4,1) for the Mul
    for batch in (1, 3):
        assert max_delta(model, out, batch, seed=batch) == 0.0


@pytest.mark.parametrize(
    "reader, output",
    [
        ("y = Add(a, x)", "float[B,4,3] y"),  # Add is not trusted to broadcast the constant
        ("y = Identity(a)", "float[B,4,1] y"),  # the map itself is an output
        ("at = Transpose<perm=[1,2,0]>(a)\n y = MatMul(at, a2)", "float[4,1,5] y"),  # K would become 1
    ],
)
def test_symbolic_batch_readers_that_need_the_batch_are_left_alone(reader, output):
    model = build(
        f"""g (float[B,4,3] x, float[B,5] a2) => ({output}) {{
            z = MatMul(x, w)
            a = Softmax<axis=1>(z)
            {reader}
        }}""",
        w=np.zeros((3, 1), np.float32),
    )
    assert_untouched(model)


def test_static_map_that_is_a_graph_output_is_left_alone():
    model = build(
        "g (float[2,4,3] x) => (float[2,4,1] a) { z = MatMul(x, w)\n a = Softmax<axis=1>(z) }",
        w=np.zeros((3, 1), np.float32),
    )
    assert_untouched(model)


# -- which sources are bounded -------------------------------------------------------------------


@pytest.mark.parametrize(
    "logits, folds",
    [
        ("z = MatMul(x, w)", False),  # x is unbounded: a small weight proves nothing
        ("e = Sigmoid(x)\n z = MatMul(e, w)", True),
        ("e = Clip(x, lo, hi)\n z = MatMul(e, w)", True),
        ("e = Relu(x)\n z = MatMul(e, w)", False),  # Relu keeps x's upper side: unbounded
        ("e = Tanh(x)\n f = Add(e, big)\n z = MatMul(f, w)", True),  # 2 + 1e-9 * ... stays small
        ("e = Tanh(x)\n f = Mul(e, x)\n z = MatMul(f, w)", False),  # times x: unbounded
        (
            "e = Tanh(x)\n e2 = Reshape(e, flat)\n z0 = Gemm<transB=1>(e2, w2, bias)\n z = Reshape(z0, shape)",
            True,
        ),
        ("e = Tanh(x)\n f = Div(e, half)\n z = MatMul(f, w)", True),
        ("e = Tanh(x)\n f = Div(e, x)\n z = MatMul(f, w)", False),  # divisor may be 0
        ("z0 = MatMul(x, zero)\n z = Add(z0, tiny)", True),  # 0 * anything finite is 0
        ("e = Tanh(x)\n s = MatMul(e, w)\n f = Mul(s, big)\n z = Add(s, f)", True),  # s read twice
    ],
)
def test_bounded_sources_and_propagation(logits, folds):
    model = build(
        f"""g (float[2,4,3] x) => (float[2,4,3] y) {{
            {logits}
            a = Softmax<axis=1>(z)
            y = Mul(a, x)
        }}""",
        w=np.full((3, 1), 1e-9, np.float32),
        w2=np.full((1, 3), 1e-9, np.float32),
        bias=np.full((1,), 1e-9, np.float32),
        zero=np.zeros((3, 1), np.float32),
        tiny=np.full((1,), 1e-9, np.float32),
        big=np.full((1,), 2.0, np.float32),
        half=np.full((1,), -0.5, np.float32),
        lo=np.array(-1.0, np.float32),
        hi=np.array(3.0, np.float32),
        flat=np.array([8, 3], np.int64),
        shape=np.array([2, 4, 1], np.int64),
    )
    out, result = fold(model)
    assert result.sites == int(folds)
    if folds:
        assert max_delta(model, out, seed=1) <= 1e-7


# -- soundness: whenever the pass folds, the probabilities move by at most (e^w - 1)/N ------------


@settings(max_examples=40, deadline=None)
@given(
    scale=st.floats(1e-9, 1e-2),
    nodes=st.integers(2, 9),
    temperature=st.sampled_from([0.5, 1.0, 100.0]),
    seed=st.integers(0, 2**16),
)
def test_property_folded_maps_stay_within_the_bound(scale, nodes, temperature, seed):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((3, 1)) * scale).astype(np.float32)
    b = (rng.standard_normal(1) * scale).astype(np.float32)
    model = build(
        f"""g (float[2,{nodes},3] x) => (float[2,{nodes},1] p) {{
            e = Tanh(x)
            s = MatMul(e, w)
            s2 = Add(s, b)
            z = Div(s2, t)
            a = Softmax<axis=1>(z)
            p = Mul(a, one)
        }}""",
        w=w,
        b=b,
        t=np.array(temperature, np.float32),
        one=np.ones(1, np.float32),
    )
    tolerance = 1e-4
    out, result = fold(model, tolerance=tolerance)
    width = 2 * float(np.abs(w).sum()) / temperature  # the bias shifts every logit alike
    if width <= 0.99 * tolerance:
        assert result.sites == 1
    elif width >= 1.01 * tolerance:
        assert result.sites == 0
    if result.sites:
        inputs = {"x": 10 * testing.feeds(model, seed=seed)["x"]}  # saturate Tanh: the extremes of the bound
        p = testing.run(model, inputs)[0]
        assert float(np.abs(p - np.float32(1 / nodes)).max()) <= math.expm1(tolerance) / nodes + 1e-7
        assert np.all(testing.run(out, inputs)[0] == np.float32(1 / nodes))


# -- the Ascend guide's 1/16 for 15-node maps (seed-models.md §3.3), told apart -----------------


@register_pass("fill_node_maps_one_sixteenth", contract=APPROXIMATE)
def fill_node_maps_one_sixteenth(graph: gs.Graph) -> int:
    """The guide's remove_zero_weights constant: every (B,N,N,1) node map becomes 1/16."""
    sites = 0
    for node in list(graph.nodes):
        out = node.outputs[0] if node.op == "Softmax" else None
        if out is None or out.shape is None or len(out.shape) != 4:
            continue
        value = gs.Constant(f"{out.name}_one_sixteenth", np.full(out.shape, 1 / 16, np.float32))
        for reader in list(out.outputs):
            reader.inputs[reader.inputs.index(out)] = value
        sites += 1
    return sites


@pytest.mark.parametrize("opset", [11, 17])
def test_one_sixteenth_on_fifteen_nodes_is_far_outside_the_tolerance(opset):
    # an HS-GAL layer on 9 + 6 = 15 nodes with AASIST-L-like denormal attention weights
    model = static_layer(opset, 15, 9, "denormal", 2)
    exact, result = fold(model)
    assert result.sites == 2 and all("N=15" in note for note in result.notes)
    guide, _ = fold(model, f"{__name__}:fill_node_maps_one_sixteenth")  # a module:function reference
    assert max_delta(model, exact, batch=2) == 0.0
    wrong = max_delta(model, guide, batch=2)
    # A*x scaled by 15/16: the node outputs move by ~1e-2 here (0.043 on AASIST-L's logits,
    # §3.3), four orders of magnitude above what the exact 1/15 changes (nothing)
    assert 1e-3 < wrong < 1.0


# -- sites: selection and near-misses ------------------------------------------------------------


# map2's logits are a1 * 2e-6: 2e-6 wide while a1 is a Softmax in [0, 1], exactly flat once map1
# is the constant 1/4. So map2 is a site only behind map1's fold, and is offered all the same
# when map1 is left out. map4's logits are unbounded.
MAPS = """g (float[2,4,3] x) => (float[2,4,3] y, float[2,4,3] v, float[2,4,3] w) {
    e = Tanh(x)
    z1 = Mul(e, zero)
    [map1] a1 = Softmax<axis=1>(z1)
    z2 = Mul(a1, c)
    [map2] a2 = Softmax<axis=1>(z2)
    y = Mul(a2, x)
    z3 = Mul(e, zero)
    [map3] a3 = Softmax<axis=2>(z3)
    v = Mul(a3, x)
    [map4] a4 = Softmax<axis=2>(x)
    w = Mul(a4, x)
}"""


def maps() -> onnx.ModelProto:
    return build(MAPS, zero=np.array(0.0, np.float32), c=np.array(2e-6, np.float32))


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_first_k_maps_are_folded_and_the_rest_kept(k):
    from graphkit.passes._infra import first_sites

    model = maps()
    sites = first_sites(k)
    out, result = fold(model, sites=sites)
    assert sites.offered == ["map1", "map2", "map3"]
    assert result.sites == k == len(result.notes) and result.site_labels == sites.offered[:k]
    assert {n.name for n in out.graph.node if n.op_type == "Softmax"} == {*sites.offered[k:], "map4"}
    assert max_delta(model, out, seed=k) == 0.0  # every folded map is exactly flat here


def test_map2_needs_map1_folded():
    # with map1's logits in [-1, 1], map1 stays a Softmax in [0, 1], and map2 is too wide
    model = build(
        MAPS.replace("z1 = Mul(e, zero)", "z1 = Identity(e)"),
        zero=np.array(0.0, np.float32),
        c=np.array(2e-6, np.float32),
    )
    _, result = fold(model)
    assert result.site_labels == ["map3"]
    assert dict(result.near_misses)["map2"] == "logit width 2e-06 > tolerance 1e-06"


def test_a_map_too_wide_for_the_tolerance_is_a_near_miss():
    model = scored(1.02e-6)
    model.graph.node[3].name = "att"
    _, result = fold(model)
    assert result.sites == 0 and result.near_misses == [("att", "logit width 1.02e-06 > tolerance 1e-06")]
    _, result = fold(model, tolerance=1.05e-6)
    assert result.sites == 1 and result.near_misses == []
    _, result = fold(maps())
    assert result.near_misses == [("map4", "logit width inf > tolerance 1e-06")]
    output = build(
        "g (float[2,4,3] x) => (float[2,4,1] a) { z = MatMul(x, w)\n [m] a = Softmax<axis=1>(z) }",
        w=np.zeros((3, 1), np.float32),
    )
    assert fold(output)[1].near_misses == [("m", "a is a graph output")]
