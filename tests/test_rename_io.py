"""rename_io: graph inputs and outputs under new names, bodies following."""

from __future__ import annotations

import numpy as np
import pytest

from graphkit import testing
from graphkit.errors import PassError

TF = """g (float[2,3] "serving_default_input_2:0", bool c) => (float[2,3] "StatefulPartitionedCall:0") {
    "StatefulPartitionedCall:0" = If(c) <
        then_branch = t () => (float[2,3] a) { a = Relu("serving_default_input_2:0") },
        else_branch = e () => (float[2,3] b) { b = Neg("serving_default_input_2:0") }
    >
}"""
RENAMES = {"serving_default_input_2:0": "audio", "StatefulPartitionedCall:0": "notes"}


def test_renames_inputs_and_outputs_and_bodies_follow():
    model = testing.build(TF)
    once, result = testing.apply_pass(
        model,
        "rename_io",
        inputs={"serving_default_input_2:0": "audio"},
        outputs={"StatefulPartitionedCall:0": "notes"},
    )
    assert result.sites == 2
    assert [i.name for i in once.graph.input] == ["audio", "c"]
    assert [o.name for o in once.graph.output] == ["notes"]
    for c in (True, False):
        feeds = {
            "serving_default_input_2:0": np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3),
            "c": np.array(c),
        }
        testing.assert_same_numbers(model, once, feeds=feeds, renames=RENAMES)


def test_refuses_unknown_names_and_collisions():
    model = testing.build(TF)
    with pytest.raises(PassError, match="no input 'input_2' to rename"):
        testing.apply_pass(model, "rename_io", inputs={"input_2": "audio"})
    with pytest.raises(PassError, match="already has a tensor named 'c'"):
        testing.apply_pass(model, "rename_io", inputs={"serving_default_input_2:0": "c"})


def test_must_not_fire_without_renames():
    model = testing.build(TF)
    once, result = testing.apply_pass(model, "rename_io")
    assert result.sites == 0 and once.SerializeToString() == testing.roundtrip(model)
