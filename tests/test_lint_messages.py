"""Lint messages cite only what a user has: no section numbers or files of graphkit's own notes.

Every rule runs on a tiny model that triggers it (each message variant once: gears, CANN
releases, both opset sides); a rule without a case here fails the coverage check, so a new rule
gets one.
"""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from tiny import conv1d_chain

from graphkit.ascend.lint import RULES, lint_model
from graphkit.cli import main

# What users do not have: our notes' section signs and file names (ATC and CANN document
# names, flags and error codes are what messages cite instead).
PRIVATE = re.compile(r"§|ascend-toolchain|seed-models|prior-art|eval-design|docs/|\.md\b|toolchain notes")


def parse(graph: str, *, opset: int = 17) -> onnx.ModelProto:
    return onnx.parser.parse_model(f'<ir_version: 8, opset_import: ["" : {opset}]>\n{graph}')


def with_weight(model: onnx.ModelProto, name: str, shape: tuple[int, ...]) -> onnx.ModelProto:
    value = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    model.graph.initializer.append(numpy_helper.from_array(value, name))
    return model


def no_shape(model: onnx.ModelProto) -> onnx.ModelProto:
    model.graph.input[0].type.tensor_type.ClearField("shape")
    return model


RELU = "g (float[1,4] x) => (float[1,4] y) { y = Relu(x) }"
DYN = "g (float[N,3,H,W] x) => (float[N,3,H,W] y) { y = Relu(x) }"
PAD = """
g (float[1,3,8,8] x) => (float[1,3,10,10] y) <int64[8] p = {{0,0,1,1,0,0,1,1}}, float one = {{1.0}}> {{
    y = Pad<mode = "{mode}">(x, p{value})
}}"""

# (model, lint keyword arguments): together they reach every rule and message variant
CASES = {
    "unsupported-op": (parse("g (float[1,4] x) => (float[1,4] y) { y = CastLike(x, x) }"), {}),
    "opset-error": (parse(RELU, opset=19), {}),
    "opset-new": (parse(RELU, opset=18), {}),
    "opset-old": (parse(RELU, opset=10), {}),
    "dynamic-no-gear": (parse(DYN), {}),
    "dynamic-batch-size": (parse(DYN), {"gear": "dynamic_batch_size"}),
    "dynamic-image-size": (parse(DYN), {"gear": "dynamic_image_size"}),
    "dynamic-dims": (
        parse("g (float[A,B,C] x, float[D,E] z) => (float[A,B,C] y) { y = Relu(x) }"),
        {"gear": "dynamic_dims", "cann": "7.0"},
    ),
    "shape-range-old": (parse(DYN), {"gear": "input_shape_range", "cann": "6.0.1"}),
    "shape-range-new": (parse(DYN), {"gear": "input_shape_range", "cann": "8.0"}),
    "no-shape": (no_shape(parse(RELU)), {}),
    "topk-int64-arith": (
        parse("""
g (float[1,8] x) => (int64[3] y) <int64[1] k = {3}, int64 one = {1}> {
    vals, idx = TopK<axis = 1>(x, k)
    y = Add(idx, one)
}"""),
        {},
    ),
    "resize-dynamic-scales": (
        parse("""
g (float[1,3,8,8] x) => (float[1,3,16,16] y) <float[4] a = {1.0, 1.0, 1.0, 1.0}> {
    s = Add(a, a)
    y = Resize(x, , s)
}"""),
        {},
    ),
    "pad-constant-value": (parse(PAD.format(mode="constant", value=", one")), {}),
    "pad-reflect": (parse(PAD.format(mode="reflect", value="")), {}),
    "wide-conv-kernel": (
        with_weight(
            parse("g (float[1,1,1,1000] x) => (float[1,4,1,750] y) { y = Conv(x, w) }"), "w", (4, 1, 1, 251)
        ),
        {},
    ),
    "avgpool-kernel": (
        parse(
            "g (float[1,1,1,1000] x) => (float[1,1,1,701] y) { y = AveragePool<kernel_shape = [1, 300]>(x) }"
        ),
        {},
    ),
    "empty-tensor": (
        parse("""
g (float[1,4] x) => (float[1,4] y, float[3,0] z) <int64[1] s = {4}, int64[1] e = {4}, int64[1] ax = {1}, float[3,0] w = {}> {
    empty = Slice(x, s, e, ax)
    y = Concat<axis = 1>(x, empty)
    z = Neg(w)
}"""),
        {},
    ),
    "conv1d-chain": (conv1d_chain(), {}),
}


def all_findings():
    return [f for model, kwargs in CASES.values() for f in lint_model(model, **kwargs)]


def test_every_rule_is_triggered_by_a_case():
    assert {f.rule for f in all_findings()} == set(RULES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_messages_cite_nothing_private(case):
    model, kwargs = CASES[case]
    findings = lint_model(model, **kwargs)
    assert findings, f"{case} triggers no rule"
    for f in findings:
        assert not PRIVATE.search(f.message), f.message
        assert not PRIVATE.search(f.fix or ""), f.fix


def test_rule_summaries_and_the_rule_list_cite_nothing_private(capsys):
    for rule in RULES.values():
        assert not PRIVATE.search(rule.summary), rule
    assert main(["lint", "--list-rules"]) == 0
    assert not PRIVATE.search(capsys.readouterr().out)
