"""graphkit.numerics: the one comparator (elementwise rule, minimum passing tolerance, near zero)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from graphkit.debug.compare import Thresholds, compare_tensor
from graphkit.numerics import Tolerance, check, negligible, stats


def test_a_zero_reference_does_not_fail_max_rel():
    """The defect this module fixes: max_rel divided by max(|ref|, tiny) gave 8.5e28 here."""
    ref = np.array([0.0, 1.0], dtype=np.float32)
    got = np.array([1e-9, 1.0], dtype=np.float32)
    c = check(ref, got, Tolerance(max_abs=1e-4, max_rel=1e-3))
    assert c.ok and c.why is None
    assert c.max_rel == 0.0  # msit's rule: |ref| <= float32 eps counts 0
    assert stats(ref, got).max_rel == 0.0


def test_max_rel_widens_the_bound_with_the_reference():
    ref = np.array([1000.0, 1.0])
    got = np.array([1000.5, 1.0])
    assert not check(ref, got, Tolerance(max_abs=1e-4, max_rel=None)).ok
    assert check(ref, got, Tolerance(max_abs=1e-4, max_rel=1e-3)).ok  # 0.5 <= 1e-4 + 1e-3 * 1000


def test_near_zero_outputs_do_not_fail_on_cosine():
    """A sigmoid map of ~1e-8 with max|Δ| 1.5e-7 failed on its cosine before."""
    rng = np.random.default_rng(0)
    ref = np.full((4, 64), 1e-8)
    got = ref + rng.uniform(0, 1.5e-7, ref.shape)
    c = check(ref, got, Tolerance(max_abs=1e-4, min_cosine=0.99999))
    assert c.cosine < 0.99999 and not c.cosine_checked
    assert c.ok
    assert negligible(ref, got, 1e-4) and not negligible(ref, got + 1.0, 1e-4)
    row = compare_tensor("sigmoid_map", ref, got, is_output=True)  # compare: no cosine/KL/rel trip
    assert not row.abnormal, row.tripped
    assert "not applied: every value is within 0.0001 of zero" in row.fail_reason


def test_cosine_still_guards_tensors_that_are_not_near_zero():
    ref = np.array([2.0, 2.0])
    got = np.array([2.0, 1.2])  # every |Δ| within max_abs 1, but the direction moved
    c = check(ref, got, Tolerance(max_abs=1.0, min_cosine=0.999))
    assert c.cosine_checked and not c.ok and c.why.startswith("cosine")


def test_failure_reports_the_worst_element_and_the_minimum_tolerance():
    ref = np.array([[1.0, 2.0], [3.0, 0.0]])
    got = np.array([[1.0, 2.003], [3.0005, 0.0]])
    tol = Tolerance(max_abs=1e-4, max_rel=None, min_cosine=None)
    c = check(ref, got, tol)
    assert not c.ok and c.failing == 2 and c.size == 4
    assert c.worst_index == (0, 1) and c.reference == 2.0 and c.candidate == pytest.approx(2.003)
    assert c.min_abs == pytest.approx(0.003)
    assert c.min_rel == pytest.approx((0.003 - 1e-4) / 2.0)  # the one at [0, 1] needs the most
    assert "max_abs >= 0.003" in c.min_tolerance()
    assert check(ref, got, Tolerance(max_abs=c.min_abs, min_cosine=None)).ok
    assert check(ref, got, Tolerance(max_abs=1e-4, max_rel=c.min_rel * (1 + 1e-9), min_cosine=None)).ok


def test_a_zero_reference_that_differs_passes_no_max_rel():
    c = check(np.array([0.0, 1.0]), np.array([0.1, 1.0]), Tolerance(max_abs=1e-4, max_rel=1e-3))
    assert not c.ok and math.isinf(c.min_rel) and "no max_rel" in c.min_tolerance()
    assert c.as_dict()["min_tolerance"] == {"max_abs": pytest.approx(0.1), "max_rel": None}


def test_non_finite_values_are_equal_only_to_themselves():
    ref = np.array([1.0, np.nan, np.inf, -np.inf])
    assert check(ref, ref.copy(), Tolerance()).ok
    bad = check(ref, np.array([1.0, 0.0, np.inf, -np.inf]), Tolerance())
    assert not bad.ok and bad.worst_index == (1,) and math.isinf(bad.max_abs)
    nan = check(np.array([1.0, 2.0]), np.array([1.0, np.nan]), Tolerance())
    assert not nan.ok and "no tolerance" in nan.min_tolerance()


def test_extra_abs_widens_max_abs_and_shapes_must_match():
    ref, got = np.zeros(3), np.full(3, 2e-4)
    assert not check(ref, got, Tolerance()).ok
    assert check(ref, got, Tolerance(), extra_abs=1e-4).ok
    with pytest.raises(ValueError, match="shape"):
        check(np.zeros(3), np.zeros(4), Tolerance())


def test_empty_and_complex_tensors():
    assert check(np.zeros((0, 3)), np.zeros((0, 3)), Tolerance()).ok
    z = np.array([1 + 1j, 2 - 1j])
    assert check(z, z, Tolerance()).ok
    assert not check(z, z + 1e-3, Tolerance(min_cosine=None)).ok


def test_compare_shows_the_elementwise_rule_and_minimum_tolerance():
    ref = np.linspace(-1, 1, 12).reshape(3, 4)
    row = compare_tensor("t", ref, ref + 5e-4, thresholds=Thresholds(elemwise=Tolerance(1e-4, None, None)))
    assert row.elemwise is not None and not row.elemwise.ok
    assert row.elemwise.min_abs == pytest.approx(5e-4)
    assert not row.abnormal  # msit's limits decide what is abnormal; the rule is reported beside them


finite = st.floats(-1e3, 1e3, allow_nan=False, width=32)


@settings(max_examples=200, deadline=None)
@given(
    ref=hnp.arrays(np.float64, st.integers(1, 12), elements=finite),
    noise=hnp.arrays(np.float64, 12, elements=st.floats(-1.0, 1.0)),
    max_abs=st.floats(1e-6, 1e-1),
    max_rel=st.none() | st.floats(1e-6, 1e-1),
)
def test_the_minimum_tolerance_is_exactly_the_boundary(ref, noise, max_abs, max_rel):
    """With max_abs raised to min_abs (max_rel kept) the check passes; every element then lies
    inside its bound, and min_abs is attained by one of them."""
    got = ref + noise[: ref.size] * 1e-2
    c = check(ref, got, Tolerance(max_abs, max_rel, None))
    d = np.abs(got - ref)
    assert c.ok == bool(np.all(d <= max_abs + (max_rel or 0.0) * np.abs(ref)))
    assert c.max_abs == pytest.approx(d.max())
    raised = check(ref, got, Tolerance(max(c.min_abs, 1e-300) * (1 + 1e-9) + 1e-300, max_rel, None))
    assert raised.ok
    if c.failing and math.isfinite(c.min_rel):
        assert check(ref, got, Tolerance(max_abs, c.min_rel * (1 + 1e-9) + 1e-15, None)).ok


@settings(max_examples=300, deadline=None)
@given(
    ref=hnp.arrays(np.float32, st.integers(1, 12), elements=st.floats(-1e3, 1e3, width=32)),
    noise=hnp.arrays(np.float32, 12, elements=st.floats(-0.25, 0.25, width=32)),
    zeros=st.integers(0, 12),
    max_abs=st.sampled_from([0.0, 1e-6, 1e-4, 1e3]),
    max_rel=st.none() | st.sampled_from([0.0, 1e-4, 2.0]),
    min_cosine=st.none() | st.sampled_from([0.99999, 1.0]),
    extra_abs=st.sampled_from([0.0, 1e-5]),
)
def test_the_finite_fast_path_gives_the_general_paths_figures(
    ref, noise, zeros, max_abs, max_rel, min_cosine, extra_abs
):
    """check() takes a shortcut where every value is finite (a 20 M-element output took seconds
    on the general path); every figure it reports is the general path's, bit for bit."""
    import graphkit.numerics as numerics

    ref = ref.copy()
    ref[:zeros] = 0.0  # zero references: max_rel's and min_rel's edge cases
    got = ref + noise[: ref.size]
    tol = Tolerance(max_abs, max_rel, min_cosine)
    fast = check(ref, got, tol, extra_abs=extra_abs)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(numerics, "_all_finite", lambda *arrays: False)
        general = check(ref, got, tol, extra_abs=extra_abs)
    assert repr(fast) == repr(general)  # repr: exact floats, and NaN == NaN
