"""The generic pipeline over a sample of the onnx package's node tests (graphkit.testing.sweep).

``python benchmarks/node_tests.py`` runs all of them; this sample covers the kinds of graph
that matter to the pipeline: convolutions and pools (1-D among them), control flow (If, Loop,
Scan) and sequences, shape arithmetic that set_batch_size folds, dynamic dims, strings, an
expanded function or two, a model onnxruntime cannot run (skipped) and one onnxsim refuses.

Regressions the full sweep found, kept in the sample: Shape with start/end (gs's shape
folding ignored them: test_shape_end_1, test_shape_end_negative_1, the *_expanded attention
tests) and optional-typed graph inputs (gs cannot export them: now a clean refusal).
"""

from __future__ import annotations

import os
import time

import numpy as np
import onnx
import pytest

from graphkit.errors import InvalidRewrite, ParityError, PassError
from graphkit.testing.cases import (
    CRASH,
    OK,
    PARITY,
    REFUSED,
    SKIPPED,
    TIMEOUT,
    Case,
    _failure,
    batch_of,
    compare_outputs,
    with_dynamic_batch,
)
from graphkit.testing.node_tests import node_cases
from graphkit.testing.sweep import sweep

# Per module of onnx.backend.test.case.node (building only these takes seconds, not all 1,900).
SAMPLE = {
    # convolutions, pools, normalisations (1-D: convtranspose_1d, maxpool_1d)
    "conv": ["test_basic_conv_with_padding", "test_conv_with_strides_and_asymmetric_padding"],
    "convtranspose": ["test_convtranspose_1d"],
    "maxpool": ["test_maxpool_1d_default", "test_maxpool_2d_default"],
    "globalaveragepool": ["test_globalaveragepool"],
    "batch_normalization": ["test_batchnorm_example"],
    "instance_normalization": ["test_instancenorm_example"],
    "groupnormalization": ["test_group_normalization_example_expanded"],
    "layernormalization": ["test_layer_normalization_3d_axis1_epsilon_expanded"],
    # elementwise, activations, integer and boolean outputs
    "abs": ["test_abs"],
    "identity": ["test_identity", "test_identity_opt"],
    "softmax": ["test_softmax_axis_0", "test_softmax_example_expanded"],
    "gelu": ["test_gelu_tanh_1_expanded"],
    "where": ["test_where_example"],
    "bitwiseand": ["test_bitwise_and_i32_2d"],
    "less_or_equal": ["test_less_equal"],
    # matrix products and recurrences
    "gemm": ["test_gemm_default_no_bias"],
    "matmul": ["test_matmul_3d"],
    "matmulinteger": ["test_matmulinteger"],
    "lstm": ["test_lstm_defaults"],
    "attention": ["test_attention_4d", "test_attention_4d_gqa_expanded"],
    # control flow and sequences (sequence_map_identity_1_sequence_1_tensor has symbolic dims)
    "if_": ["test_if", "test_if_seq", "test_if_opt"],
    "loop": ["test_loop11", "test_loop13_seq"],
    "scan": ["test_scan_sum", "test_scan9_sum"],
    "sequenceinsert": ["test_sequence_insert_at_back"],
    "sequence_map": ["test_sequence_map_identity_1_sequence_1_tensor"],
    # shape arithmetic, data-dependent shapes, strings, no inputs at all
    "shape": ["test_shape", "test_shape_start_1", "test_shape_end_1", "test_shape_end_negative_1"],
    "reshape": ["test_reshape_allowzero_reordered"],
    "expand": ["test_expand_dim_changed"],
    "squeeze": ["test_squeeze"],
    "constantofshape": ["test_constantofshape_float_ones"],
    "center_crop_pad": ["test_center_crop_pad_crop_and_pad_expanded"],
    "nonzero": ["test_nonzero_example"],
    "topk": ["test_top_k"],
    "resize": ["test_resize_upsample_scales_linear"],
    "constant": ["test_constant"],
    "stringnormalizer": ["test_strnormalizer_nostopwords_nochangecase"],
    "stft": ["test_stft"],
    # out of scope: onnxruntime cannot run it (skipped)
    "adam": ["test_adam"],
    # onnxsim's optimizer cannot sort it topologically: simplify retries without the optimizer
    "affinegrid": ["test_affine_grid_3d_align_corners_expanded"],
}
NAMES = [name for names in SAMPLE.values() for name in names]
OPTIONAL_IO = ["test_identity_opt", "test_if_opt"]  # refused: optional-typed graph inputs/outputs


class _OnArrival:
    """Unpickled in a worker, it calls ``fn(*args)`` there: ends the worker, as a segfault
    would, or keeps it busy, as a runaway onnxsim would."""

    def __init__(self, fn, *args):
        self.call = (fn, args)

    def __reduce__(self):
        return self.call


def _identity_case(name: str, value) -> Case:
    model = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[2, 3] x) => (float[2, 3] y) { y = Identity(x) }"""
    )
    return Case(name, model.SerializeToString(), (value,))


# First in the queue, so that the pool replaces their workers while it runs the sample.
SABOTEURS = [
    _identity_case("saboteur_dies", _OnArrival(os._exit, 3)),
    _identity_case("saboteur_hangs", _OnArrival(time.sleep, 600)),
]
TIMEOUT_S = 5  # the sample's models take 0.2 s at most on a loaded 2-core machine


@pytest.fixture(scope="module")
def sample_outcomes():
    cases = {c.name: c for c in node_cases(list(SAMPLE))}
    missing = [n for n in NAMES if n not in cases]
    assert not missing, f"onnx no longer ships these node tests: {missing}"
    queue = [*SABOTEURS, *(cases[n] for n in NAMES)]
    return {o.name: o for o in sweep(queue, workers=2, timeout=TIMEOUT_S)}


def test_sample_has_no_crash_parity_break_or_timeout(sample_outcomes):
    outcomes = {n: o for n, o in sample_outcomes.items() if not n.startswith("saboteur")}
    assert set(outcomes) == set(NAMES)
    bad = [
        f"{o.name} {o.kind} [{o.pass_name}]: {o.detail}"
        for o in outcomes.values()
        if o.kind in (CRASH, PARITY, TIMEOUT)
    ]
    assert not bad, "\n".join(bad)
    for o in outcomes.values():
        if o.kind in (REFUSED, SKIPPED):
            assert o.detail.strip(), f"{o.name}: {o.kind} without a reason"
    assert outcomes["test_adam"].kind == SKIPPED
    assert "onnxruntime cannot run the original" in outcomes["test_adam"].detail
    assert outcomes["test_affine_grid_3d_align_corners_expanded"].kind == OK
    for name in OPTIONAL_IO:
        assert outcomes[name].kind == REFUSED and "optional-typed" in outcomes[name].detail


def test_a_dying_or_hanging_worker_is_replaced(sample_outcomes):
    dies, hangs = sample_outcomes["saboteur_dies"], sample_outcomes["saboteur_hangs"]
    assert dies.kind == CRASH and "worker died (exit code 3)" in dies.detail
    assert hangs.kind == TIMEOUT and f"{TIMEOUT_S} s" in hangs.detail


def test_sample_exercises_set_batch_size(sample_outcomes):
    ok = [o for o in sample_outcomes.values() if o.kind == OK]
    assert len(ok) == len(NAMES) - 1 - len(OPTIONAL_IO)
    batched = [o for o in ok if o.batch is not None]
    assert len(batched) >= 15
    assert all(o.sites.get("set_batch_size", 0) >= 1 for o in batched)  # dim 0 was made symbolic


# -- the rules --------------------------------------------------------------------------------------


def test_floats_compare_with_a_tolerance_and_nan_equal():
    ref = np.array([1.0, np.nan, np.inf, -2.0], dtype=np.float32)
    assert compare_outputs(ref, ref + np.float32(5e-7)) is None
    assert compare_outputs(ref, ref.copy()) is None
    why = compare_outputs(ref, np.array([1.0, np.nan, np.inf, -2.01], dtype=np.float32))
    assert why is not None and "[3]" in why
    assert compare_outputs(ref, np.array([1.0, 0.0, np.inf, -2.0], dtype=np.float32)) is not None
    assert compare_outputs(ref, ref.astype(np.float64)) is not None  # dtype
    assert compare_outputs(ref, ref[:3]) is not None  # shape
    half = np.array([1000.0], dtype=np.float16)
    assert compare_outputs(half, np.array([1001.0], dtype=np.float16)) is None  # one float16 ulp


def test_integers_strings_and_sequences_compare_exactly():
    assert compare_outputs(np.array([1, 2]), np.array([1, 3])) is not None
    assert compare_outputs(np.array(["a", "b"]), np.array(["a", "b"])) is None
    assert compare_outputs(np.array([True]), np.array([False])) is not None
    seq = [np.zeros(2, np.float32), np.ones(3, np.int64)]
    assert compare_outputs(seq, [s.copy() for s in seq]) is None
    assert "sequence item 1" in compare_outputs(seq, [seq[0], np.zeros(3, np.int64)])
    assert compare_outputs(seq, seq[:1]) is not None
    assert compare_outputs(None, None) is None
    assert compare_outputs(None, seq) is not None


def _model(*inputs: tuple[str, list[int | str]]) -> onnx.ModelProto:
    names = [n for n, _ in inputs]
    text = ", ".join(f"float[{', '.join(map(str, dims))}] {n}" for n, dims in inputs)
    return onnx.parser.parse_model(
        f"""<ir_version: 8, opset_import: ["" : 17]>
        g ({text}) => (float y) {{ y = Sum({", ".join(names)}) }}"""
    )


def test_batch_dim_rule():
    feed = {"a": np.zeros((2, 3), np.float32), "b": np.zeros((2, 5), np.float32)}
    assert batch_of(_model(("a", [2, 3]), ("b", [2, 5])), feed) == 2
    assert batch_of(_model(("a", ["B", 3]), ("b", [2, 5])), feed) == 2
    other = {**feed, "b": np.zeros((4, 5), np.float32)}
    assert batch_of(_model(("a", [2, 3]), ("b", [4, 5])), other) is None  # dims 0 disagree
    scalar = {"a": np.zeros((2, 3), np.float32), "b": np.zeros((), np.float32)}
    assert batch_of(_model(("a", [2, 3]), ("b", [])), scalar) is None  # a rank-0 input
    assert batch_of(_model(), {}) is None  # no inputs
    dynamic = with_dynamic_batch(_model(("a", [2, 3]), ("b", [2, 5])))
    assert [i.type.tensor_type.shape.dim[0].dim_param for i in dynamic.graph.input] == ["N", "N"]
    assert dynamic.graph.input[0].type.tensor_type.shape.dim[1].dim_value == 3


def test_failures_are_classified():
    """By the error's type and fields (pass_name), never by its text."""
    wrapped = PassError("x: pass 'simplify' raised TypeError: boom", pass_name="simplify")
    wrapped.__cause__ = TypeError("boom")
    crash = _failure("m", None, {}, wrapped)  # a bug the manager had to wrap
    assert crash.kind == CRASH and crash.pass_name == "simplify"
    own = PassError("onnxsim failed: RuntimeError: no")
    own.__cause__ = RuntimeError("no")
    said = PassError("x (simplify): onnxsim failed: RuntimeError: no", pass_name="simplify")
    said.__cause__ = own
    refused = _failure("m", None, {}, said)
    assert refused.kind == REFUSED and refused.pass_name == "simplify"
    assert _failure("m", None, {}, PassError("mentions pass 'cleanup' only in its text")).pass_name is None
    invalid = InvalidRewrite("x: pass 'cleanup' produced an invalid model: bad", pass_name="cleanup")
    assert _failure("m", None, {}, invalid).kind == CRASH
    assert _failure("m", None, {}, ParityError("differs")).kind == REFUSED
    assert _failure("m", None, {}, KeyError("k")).kind == CRASH
