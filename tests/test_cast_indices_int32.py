"""cast_indices_int32: arithmetic on TopK/ArgMax indices in int32, so ATC accepts it."""

from __future__ import annotations

import numpy as np

from graphkit import testing
from graphkit.ascend.lint import lint_model

THROUGH_RESHAPE = """g (float[2,6] x) => (int64[2,3] y, bool[2,3] eq) {
    v, i = TopK<axis = 1>(x, k)
    r = Reshape(i, shape)
    y = Add(r, offset)
    eq = Equal(r, offset)
}"""


def rules(model):
    return [f.rule for f in lint_model(model, soc="Ascend310P3", cann="8.0")]


def test_index_arithmetic_runs_in_int32_with_the_same_results_and_lint_is_clean():
    model = testing.build(
        THROUGH_RESHAPE,
        k=np.array([3], np.int64),
        shape=np.array([2, 3], np.int64),
        offset=np.array([[0, 6, 12]], np.int64),
    )
    assert rules(model).count("topk-int64-arith") == 2
    out, result = testing.apply_pass(model, "cast_indices_int32")
    assert result.sites == 2
    assert "topk-int64-arith" not in rules(out)
    assert [o.type.tensor_type.elem_type for o in out.graph.output] == [7, 9]  # int64, bool kept
    x = np.random.default_rng(0).standard_normal((2, 6)).astype(np.float32)
    for want, got in zip(testing.run(model, {"x": x}), testing.run(out, {"x": x})):
        np.testing.assert_array_equal(got, want)


def test_must_not_fire_on_a_constant_beyond_int32_or_on_other_int64_arithmetic():
    big = testing.build(
        "g (float[1,7] x) => (int64[1] y) { i = ArgMax<axis = 1, keepdims = 0>(x)  y = Add(i, k) }",
        k=np.array([2**40], np.int64),
    )
    out, result = testing.apply_pass(big, "cast_indices_int32")
    assert result.sites == 0 and out.SerializeToString() == testing.roundtrip(big)
    assert any("may not fit int32" in why for _, why in result.near_misses)
    plain = testing.build("g (int64[3] a, int64[3] b) => (int64[3] y) { y = Add(a, b) }")
    out, result = testing.apply_pass(plain, "cast_indices_int32")
    assert result.sites == 0 and out.SerializeToString() == testing.roundtrip(plain)
