"""The one tensor comparator of graphkit: parity, ``graphkit compare`` and the node sweep use it.

Two things, kept apart:

**The pass/fail rule** (:func:`check` against a :class:`Tolerance`), Polygraphy's elementwise
mode: every element must satisfy ``|candidate - reference| <= max_abs + max_rel * |reference|``.
A non-finite value equals the same non-finite value at the same place (NaN equals NaN, +inf
equals +inf); any other non-finite value on either side is an infinite error. Where the
tolerance asks for it, the cosine similarity must also reach ``min_cosine`` — except where every
value of both tensors lies within ``max_abs`` of zero: such a tensor (a sigmoid map of 1e-8,
a residual that cancels) has no direction worth comparing, and the elementwise rule already
bounds it. Every result carries the *minimum tolerance that would have passed*: the smallest
``max_abs`` that passes with the tolerance's ``max_rel``, and the smallest ``max_rel`` that
passes with its ``max_abs``.

**The metrics** (:func:`stats`) msit's compare reports, per tensor in float64: cosine, max and
mean absolute error, max / mean / accumulated relative error, RMSE, relative Euclidean
distance, KL divergence and mean/std of each side. Relative errors count 0 where the reference
is at or below float32 eps in magnitude, as msit does: a floor on the divisor instead would turn
an exact zero of a ReLU into an error of ~1e7·|d| (and a recipe's ``max_rel`` into a failure on
every output that contains a zero).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

REL_FLOOR = float(np.finfo(np.float32).eps)  # |reference| at or below this counts as zero
KL_EPS = 1e-10  # floor for the candidate's probabilities in KL(golden || candidate)


@dataclass(frozen=True)
class Tolerance:
    """``|candidate - reference| <= max_abs + max_rel * |reference|`` per element (``max_rel``
    None: 0), and a cosine similarity of at least ``min_cosine`` (None: not checked)."""

    max_abs: float = 1e-4
    max_rel: float | None = None
    min_cosine: float | None = 0.99999

    def describe(self, extra_abs: float = 0.0) -> str:
        rule = f"|Δ| <= {self.max_abs + extra_abs:g}" + (f" + {self.max_rel:g}·|ref|" if self.max_rel else "")
        return rule + (f", cosine >= {self.min_cosine}" if self.min_cosine is not None else "")


@dataclass(frozen=True)
class Check:
    """One tensor judged against a :class:`Tolerance`.

    ``worst_index`` is the element furthest beyond its bound (where every element passes: the
    largest ``|d|``); ``reference``/``candidate`` are its values. ``min_abs`` and ``min_rel``
    are the minimum tolerance that passes, failing or not: the smallest ``max_abs`` with the
    tolerance's ``max_rel``, and the smallest ``max_rel`` with its ``max_abs`` (inf where an
    element off by more than ``max_abs`` has a zero reference). ``cosine_checked`` is False where both tensors
    lie within ``max_abs`` of zero.
    """

    ok: bool
    why: str | None  # the first rule broken, or None
    max_abs: float  # max |d|
    max_rel: float  # max |d| / |reference| over |reference| > REL_FLOOR
    cosine: float
    worst_index: tuple[int, ...]
    reference: float
    candidate: float
    min_abs: float
    min_rel: float
    failing: int  # elements outside the elementwise bound
    size: int
    cosine_checked: bool = True

    def as_dict(self) -> dict[str, object]:
        """For manifest.json: the figures, the worst element and the minimum passing tolerance."""
        return {
            "max_abs": self.max_abs,
            "max_rel": self.max_rel,
            "cosine": self.cosine,
            "worst_index": list(self.worst_index),
            "reference": self.reference,
            "candidate": self.candidate,
            "min_tolerance": {
                "max_abs": self.min_abs,
                "max_rel": self.min_rel if math.isfinite(self.min_rel) else None,
            },
        }

    def min_tolerance(self) -> str:
        """``max_abs >= a or max_rel >= r`` (each with the tolerance's other bound kept)."""
        if not math.isfinite(self.min_abs):
            return "no tolerance (a NaN or inf where the other side holds something else)"
        if not math.isfinite(self.min_rel):
            return (
                f"max_abs >= {self.min_abs:.3g} (no max_rel does: an element is off where the reference is 0)"
            )
        return f"max_abs >= {self.min_abs:.3g} or max_rel >= {self.min_rel:.3g}"


def check(reference: np.ndarray, candidate: np.ndarray, tol: Tolerance, *, extra_abs: float = 0.0) -> Check:
    """Judge ``candidate`` against ``reference`` (same shape; ValueError otherwise).

    ``extra_abs`` widens ``max_abs`` (a pass's ``fp_reorder`` allowance). Complex tensors are
    compared by modulus; their cosine is not checked.
    """
    ref, got = np.asarray(reference), np.asarray(candidate)
    if ref.shape != got.shape:
        raise ValueError(f"shape {got.shape} differs from the reference {ref.shape}")
    wide = np.complex128 if "c" in (ref.dtype.kind, got.dtype.kind) else np.float64
    r, g = ref.astype(wide).ravel(), got.astype(wide).ravel()
    max_abs = tol.max_abs + extra_abs
    max_rel = tol.max_rel or 0.0
    if r.size == 0:
        return Check(True, None, 0.0, 0.0, 1.0, (), 0.0, 0.0, 0.0, 0.0, 0, 0)
    if wide is np.float64 and _all_finite(r, g):
        return _check_finite(r, g, ref.shape, tol, max_abs, max_rel, extra_abs)
    same = (r == g) | (np.isnan(r) & np.isnan(g))  # also inf == inf; a NaN equals a NaN
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.where(same, 0.0, np.abs(g - r))
    d = np.nan_to_num(d, nan=np.inf, posinf=np.inf)  # a NaN or inf against anything else
    mag = np.nan_to_num(np.abs(r), nan=0.0, posinf=0.0)  # a non-finite reference bounds nothing
    excess = d - (max_abs + max_rel * mag)
    bad = excess > 0
    failing = int(bad.sum())
    i = int(np.argmax(excess)) if failing else int(np.argmax(d))
    with np.errstate(divide="ignore", invalid="ignore"):
        need_rel = np.where(d > max_abs, (d - max_abs) / mag, 0.0)
    need_rel = np.nan_to_num(need_rel, nan=np.inf, posinf=np.inf)
    big = mag > REL_FLOOR
    rel = np.where(big, d / np.where(big, mag, 1.0), 0.0)
    cosine, checked = _cosine(r, g, max_abs) if wide is np.float64 else (1.0, False)
    why = _why(failing, r.size, cosine, checked, tol, extra_abs)
    return Check(
        ok=why is None,
        why=why,
        max_abs=float(d.max()),
        max_rel=float(rel.max()),
        cosine=cosine,
        worst_index=tuple(int(x) for x in np.unravel_index(i, ref.shape)),
        reference=_real(r[i]),
        candidate=_real(g[i]),
        min_abs=max(0.0, float(np.max(d - max_rel * mag))),
        min_rel=float(need_rel.max()),
        failing=failing,
        size=int(r.size),
        cosine_checked=checked,
    )


def _why(
    failing: int, size: int, cosine: float, checked: bool, tol: Tolerance, extra_abs: float
) -> str | None:
    """Why a check fails (None: it passes): elements beyond the tolerance, else the cosine."""
    if failing:
        return f"{failing} of {size} elements beyond {tol.describe(extra_abs).split(',')[0]}"
    if tol.min_cosine is not None and checked and not cosine >= tol.min_cosine:
        return f"cosine {cosine:.7f} < {tol.min_cosine}"
    return None


def _all_finite(*arrays: np.ndarray) -> bool:
    return all(bool(np.isfinite(a).all()) for a in arrays)


def _check_finite(
    r: np.ndarray,
    g: np.ndarray,
    shape: tuple[int, ...],
    tol: Tolerance,
    max_abs: float,
    max_rel: float,
    extra_abs: float,
) -> Check:
    """:func:`check` where every value is finite and real: the same float64 arithmetic and
    figures, bit for bit, with 3 temporaries the size of the tensor instead of a dozen (a fresh
    array that size costs more than the arithmetic: the general path took 6-8 s on a batch-64
    ECAPA attention map of 20 M elements, this one under 1 s)."""
    with np.errstate(over="ignore"):
        d = np.subtract(g, r)  # |d| is 0 where the two are equal: there is no NaN to mask
    np.abs(d, out=d)
    mag = np.abs(r)
    buf = np.subtract(d, max_abs + max_rel * mag if max_rel else max_abs)  # the excess
    failing = int(np.count_nonzero(buf > 0))
    i = int(np.argmax(buf)) if failing else int(np.argmax(d))
    worst = float(d.max())
    over = d > max_abs
    if over.any():  # (d - max_abs) / mag > 0 there: inf where mag is 0, never NaN
        with np.errstate(divide="ignore"):
            min_rel = float(np.max((d[over] - max_abs) / mag[over]))
    else:
        min_rel = 0.0
    rel = buf  # reused for d / |r| where |r| > REL_FLOOR, 0 elsewhere
    rel.fill(0.0)
    np.divide(d, mag, out=rel, where=mag > REL_FLOOR)
    # _cosine's figures: not checked where both sides lie within max_abs of zero
    checked = not max(float(mag.max()), float(g.max()), -float(g.min())) <= max_abs
    nr, ng = float(np.linalg.norm(r)), float(np.linalg.norm(g))
    if nr == 0.0 or ng == 0.0:
        cosine = 1.0 if nr == ng else 0.0
    else:
        cosine = float(np.clip(np.dot(r, g) / (nr * ng), -1.0, 1.0))
    why = _why(failing, r.size, cosine, checked, tol, extra_abs)
    return Check(
        ok=why is None,
        why=why,
        max_abs=worst,
        max_rel=float(rel.max()),
        cosine=cosine,
        worst_index=tuple(int(x) for x in np.unravel_index(i, shape)),
        reference=float(r[i]),
        candidate=float(g[i]),
        min_abs=max(0.0, float(np.max(d - max_rel * mag)) if max_rel else worst),
        min_rel=min_rel,
        failing=failing,
        size=int(r.size),
        cosine_checked=checked,
    )


def _real(value: complex) -> float:
    return float(value.real) if isinstance(value, complex) else float(value)


def _cosine(r: np.ndarray, g: np.ndarray, near_zero: float) -> tuple[float, bool]:
    """Cosine similarity of the finite elements, and whether it is meaningful: False where every
    value of both sides lies within ``near_zero`` of zero (direction is noise there)."""
    keep = np.isfinite(r) & np.isfinite(g)
    r, g = r[keep], g[keep]
    if r.size == 0:
        return 1.0, False
    checked = not negligible(r, g, near_zero)
    nr, ng = float(np.linalg.norm(r)), float(np.linalg.norm(g))
    if nr == 0.0 or ng == 0.0:
        return (1.0 if nr == ng else 0.0), checked
    return float(np.clip(np.dot(r, g) / (nr * ng), -1.0, 1.0)), checked


def worse(a: Check, b: Check) -> bool:
    """Whether ``a`` is the worse of two checks of one output (failing, then the tolerance it
    needs, then the cosine)."""
    return (not a.ok, a.min_abs, a.max_abs, -a.cosine) > (not b.ok, b.min_abs, b.max_abs, -b.cosine)


def first_failure(checks: Mapping[str, Check]) -> tuple[str, Check] | None:
    return next(((name, c) for name, c in checks.items() if not c.ok), None)


def failure_message(where: str, name: str, c: Check, tol: Tolerance, extra_abs: float = 0.0) -> str:
    """``parity failure <where>: output 'y' <why>; worst element ...; passes with ...``."""
    idx = ",".join(str(i) for i in c.worst_index)
    return (
        f"parity failure {where}: output '{name}' {c.why}; worst element [{idx}] "
        f"reference {c.reference:.7g} vs {c.candidate:.7g} (max|Δ| {c.max_abs:.3g}); "
        f"would pass with {c.min_tolerance()} (tolerance {tol.describe(extra_abs)})"
    )


# -- msit's metrics --------------------------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    """msit's per-tensor metrics of golden g against candidate c (n elements, d = c - g).

    - cosine: g·c / (‖g‖‖c‖); 1 when both are all zero, 0 when only one is.
    - max_abs, mean_abs: max and mean of |d|.
    - Relative errors use r_i = |d_i| / |g_i| where |g_i| > REL_FLOOR (float32 eps) and r_i = 0
      where g_i is zero or below it: max_rel = max r_i, mean_rel = Σ r_i / n,
      accumulated_rel = Σ r_i.
    - rmse: sqrt(Σ d_i² / n). rel_euclid: ‖d‖ / ‖g‖ (0 when both are zero, inf when only g is).
    - kl: KL(p ‖ q) = Σ p_i ln(p_i / max(q_i, KL_EPS)) with p = g / Σg, q = c / Σc, terms with
      p_i = 0 dropped; only when both sides are non-negative with positive sums (scores,
      probabilities, energies), else None: signed data is no distribution.
    - mean/std of each side (msit's StandardDeviation column).
    Empty tensors give the metrics of two equal tensors.
    """

    cosine: float
    max_abs: float
    mean_abs: float
    max_rel: float
    mean_rel: float
    accumulated_rel: float
    rmse: float
    rel_euclid: float
    kl: float | None
    golden_mean: float
    golden_std: float
    candidate_mean: float
    candidate_std: float


def stats(golden: np.ndarray, candidate: np.ndarray) -> Stats:
    """The metrics of two finite tensors of one shape (see :class:`Stats`)."""
    g = np.asarray(golden, dtype=np.float64).ravel()
    c = np.asarray(candidate, dtype=np.float64).ravel()
    if g.shape != c.shape:
        raise ValueError(f"{g.size} golden values vs {c.size} candidate values")
    if g.size == 0:
        return Stats(1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, None, 0.0, 0.0, 0.0, 0.0)
    d = c - g
    ad = np.abs(d)
    ng, nc, nd = (float(np.linalg.norm(v)) for v in (g, c, d))
    if ng == 0.0 or nc == 0.0:
        cosine = 1.0 if ng == nc else 0.0
    else:
        cosine = float(np.clip(np.dot(g, c) / (ng * nc), -1.0, 1.0))
    big = np.abs(g) > REL_FLOOR
    rel = np.zeros_like(g)
    rel[big] = ad[big] / np.abs(g[big])
    return Stats(
        cosine=cosine,
        max_abs=float(ad.max()),
        mean_abs=float(ad.mean()),
        max_rel=float(rel.max()),
        mean_rel=float(rel.mean()),
        accumulated_rel=float(rel.sum()),
        rmse=float(np.sqrt(np.mean(d * d))),
        rel_euclid=nd / ng if ng > 0 else (0.0 if nd == 0 else math.inf),
        kl=kl_divergence(g, c),
        golden_mean=float(g.mean()),
        golden_std=float(g.std()),
        candidate_mean=float(c.mean()),
        candidate_std=float(c.std()),
    )


def kl_divergence(golden: np.ndarray, candidate: np.ndarray) -> float | None:
    """KL(golden ‖ candidate) of the two tensors normalised to sum 1, or None (see Stats)."""
    g = np.asarray(golden, dtype=np.float64).ravel()
    c = np.asarray(candidate, dtype=np.float64).ravel()
    if g.size == 0 or (g < 0).any() or (c < 0).any() or g.sum() <= 0 or c.sum() <= 0:
        return None
    p, q = g / g.sum(), c / c.sum()
    keep = p > 0  # p ln p -> 0 as p -> 0
    return max(0.0, float(np.sum(p[keep] * np.log(p[keep] / np.maximum(q[keep], KL_EPS)))))


def negligible(golden: np.ndarray, candidate: np.ndarray, near_zero: float) -> bool:
    """Whether every finite value of both tensors lies within ``near_zero`` of zero."""
    values = np.concatenate([np.ravel(golden), np.ravel(candidate)]).astype(np.float64)
    values = values[np.isfinite(values)]
    return bool(values.size == 0 or np.abs(values).max() <= near_zero)
