"""replace_pad_value: Pad(x, pads, v) -> Pad(x, pads, 0) + border mask, bit-exact."""

from __future__ import annotations

import numpy as np
import pytest

from graphkit import testing
from graphkit.ascend.lint import lint_model

PAD = """g (float[2,3,5] x) => (float[{out}] y) {{
    y = Pad<mode = "{mode}">(x, pads{value})
}}"""


@pytest.mark.parametrize("value", [-np.inf, 1.0, -3.5])
def test_a_non_zero_pad_becomes_a_zero_pad_plus_a_border_and_lint_is_clean(value):
    model = testing.build(
        PAD.format(out="2,4,8", mode="constant", value=", v"),
        pads=np.array([0, 0, 1, 0, 1, 2], np.int64),
        v=np.array(value, np.float32),
    )
    assert [f.rule for f in lint_model(model, soc="Ascend310P3", cann="8.0")].count("pad-constant-value") == 1
    out, result = testing.apply_pass(model, "replace_pad_value")
    assert result.sites == 1
    assert [n.op_type for n in out.graph.node] == ["Pad", "Add"]
    assert "pad-constant-value" not in [f.rule for f in lint_model(out, soc="Ascend310P3", cann="8.0")]
    x = np.random.default_rng(0).standard_normal((2, 3, 5)).astype(np.float32)
    want, got = testing.run(model, {"x": x})[0], testing.run(out, {"x": x})[0]
    np.testing.assert_array_equal(got, want)  # bit-exact, -inf included


def test_must_not_fire_on_zero_reflect_or_dynamic_pads():
    zero = testing.build(
        PAD.format(out="2,4,8", mode="constant", value=", v"),
        pads=np.array([0, 0, 1, 0, 1, 2], np.int64),
        v=np.array(0.0, np.float32),
    )
    reflect = testing.build(
        PAD.format(out="2,3,8", mode="reflect", value=""), pads=np.array([0, 0, 1, 0, 0, 2], np.int64)
    )
    dynamic = testing.build(
        "g (float[N,5] x) => (float[N,7] y) { y = Pad(x, pads, v) }",
        pads=np.array([0, 1, 0, 1], np.int64),
        v=np.array(1.0, np.float32),
    )
    for model in (zero, reflect, dynamic):
        out, result = testing.apply_pass(model, "replace_pad_value")
        assert result.sites == 0 and out.SerializeToString() == testing.roundtrip(model)
    _, result = testing.apply_pass(dynamic, "replace_pad_value")
    assert any("not static" in why for _, why in result.near_misses)
