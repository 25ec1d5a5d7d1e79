"""bind_inputs: an input becomes a constant, its readers (in bodies too) read it, Ifs fold."""

from __future__ import annotations

import numpy as np
import pytest

from graphkit import testing
from graphkit.errors import PassError

BRANCHY = """g (float[1,4] x, int64 sr) => (float[1,4] y, float[1,4] z) {
    k = Constant<value = int64 {16000}>()
    is16 = Equal(sr, k)
    y, z = If(is16) <
        then_branch = t () => (float[1,4] a, float[1,4] a2) { a = Relu(x)  a2 = Neg(a) },
        else_branch = e () => (float[1,4] b, float[1,4] b2) { b = Neg(x)  b2 = Abs(b) }
    >
}"""


@pytest.mark.parametrize("rate", [16000, 8000])
def test_a_two_output_if_on_the_bound_input_folds_to_its_branch(rate):
    model = testing.build(BRANCHY)
    once, result = testing.apply_pass(model, "bind_inputs", values={"sr": rate})
    assert result.sites == 1
    assert [i.name for i in once.graph.input] == ["x"]
    assert "If" not in {n.op_type for n in once.graph.node}
    x = np.array([[-1.0, 0.5, 2.0, -3.0]], np.float32)
    testing.assert_same_numbers(model, once, feeds={"x": x, "sr": np.array(rate, np.int64)})


BODY_READER = """g (float[1,4] x, float[1,4] scale, bool c) => (float[1,4] y) {
    y = If(c) <
        then_branch = t () => (float[1,4] a) { a = Mul(x, scale) },
        else_branch = e () => (float[1,4] b) { b = Add(x, scale) }
    >
}"""


def test_readers_inside_bodies_read_the_constant_and_a_vector_value_fills_the_shape():
    model = testing.build(BODY_READER)
    once, _ = testing.apply_pass(model, "bind_inputs", values={"scale": 2.0})
    assert [i.name for i in once.graph.input] == ["x", "c"]
    for c in (True, False):
        feeds = {
            "x": np.arange(4, dtype=np.float32)[None],
            "c": np.array(c),
            "scale": np.full((1, 4), 2.0, np.float32),
        }
        testing.assert_same_numbers(model, once, feeds=feeds)
    listed, _ = testing.apply_pass(model, "bind_inputs", values={"scale": [[1.0, 2.0, 3.0, 4.0]]})
    assert [i.name for i in listed.graph.input] == ["x", "c"]


def test_bad_values_are_refused_with_the_input_named():
    model = testing.build(BODY_READER)
    with pytest.raises(PassError, match="input 'scale' has shape \\[1, 4\\]; the value has shape \\[3\\]"):
        testing.apply_pass(model, "bind_inputs", values={"scale": [1.0, 2.0, 3.0]})
    with pytest.raises(PassError, match="input 'scale'"):
        testing.apply_pass(model, "bind_inputs", values={"scale": "fast"})
    dynamic = testing.build("g (float[N] x) => (float[N] y) { y = Relu(x) }")
    with pytest.raises(PassError, match="only inputs of static shape"):
        testing.apply_pass(dynamic, "bind_inputs", values={"x": 1.0})


def test_must_not_fire_on_names_that_are_not_inputs():
    model = testing.build(BODY_READER)
    once, result = testing.apply_pass(model, "bind_inputs", values={"nothing": 1.0})
    assert result.sites == 0 and once.SerializeToString() == testing.roundtrip(model)
