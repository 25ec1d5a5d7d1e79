"""DET curves as NIST and ASVspoof draw them: both error rates on the normal-deviate (probit) scale.

On that scale the DET curve of two Gaussian score distributions is a straight line, and the
low-error region that matters (0.1 %-5 %) gets as much room as the rest. A rate of 0 or 1 lies
at -inf/+inf there: such points are dropped, never floored to a small value (a floor draws a
spike along the axis that no system has). The EER is marked where the curve meets FRR = FAR,
with the value :func:`graphkit.eval.scoring.compute_eer` gives on the same curve.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

# Tick positions (fractions) of the DET convention; the axes show the range the curves span.
TICKS = (
    0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8,
    0.9, 0.95, 0.98, 0.99, 0.995, 0.999,
)  # fmt: skip
_NORMAL = NormalDist()
_inv_cdf = np.vectorize(_NORMAL.inv_cdf, otypes=[float])
_cdf = np.vectorize(_NORMAL.cdf, otypes=[float])
# batch sizes (and the reference) differ in line style and marker, runners in colour
STYLES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))
MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*")


def probit(p: np.ndarray | Sequence[float] | float) -> np.ndarray:
    """Φ⁻¹(p), the standard normal quantile, elementwise for rates strictly inside (0, 1)."""
    rates = np.asarray(p, dtype=np.float64)
    if not ((rates > 0) & (rates < 1)).all():
        raise ValueError("probit: rates must lie strictly between 0 and 1 (drop the others first)")
    return _inv_cdf(rates)


def det_points(far: np.ndarray, frr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (FAR, FRR) points that have a place on the probit scale: both rates in (0, 1)."""
    far, frr = np.asarray(far, dtype=np.float64), np.asarray(frr, dtype=np.float64)
    keep = (far > 0) & (far < 1) & (frr > 0) & (frr < 1)
    return far[keep], frr[keep]


def frr_at(far: np.ndarray, frr: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """FRR of the operating point with the largest FAR <= each grid value (a DET curve is a
    staircase: FAR falls and FRR rises along it, one score at a time)."""
    far_up, frr_down = np.asarray(far)[::-1], np.asarray(frr)[::-1]  # FAR ascending
    j = np.searchsorted(far_up, grid, side="right") - 1
    return frr_down[np.clip(j, 0, len(far_up) - 1)]


def axis_limits(curves: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
    """The smallest tick range holding every drawable point (default 0.1 %-50 %)."""
    rates = np.concatenate([np.concatenate(det_points(*c)) for c in curves] or [np.zeros(0)])
    if not rates.size:
        return 0.001, 0.5
    lo = max((t for t in TICKS if t <= rates.min()), default=TICKS[0])
    hi = min((t for t in TICKS if t >= rates.max()), default=TICKS[-1])
    return lo, hi


def tick_label(p: float) -> str:
    """0.001 -> '0.1 %', 0.4 -> '40 %'."""
    return f"{100 * p:.4g} %"


def set_probit_axes(ax: Any, limits: tuple[float, float], *, y: bool = True) -> None:
    """Probit-scaled x (and y) axes over ``limits`` with the DET convention's percent ticks."""
    lo, hi = limits
    ticks = [t for t in TICKS if lo <= t <= hi]
    positions, labels = probit(ticks), [tick_label(t) for t in ticks]
    ax.set_xlim(*probit([lo, hi]))
    ax.set_xticks(positions, labels, rotation=45 if len(ticks) > 9 else 0, fontsize=8)
    if y:
        ax.set_ylim(*probit([lo, hi]))
        ax.set_yticks(positions, labels, fontsize=8)


def difference_grid(limits: tuple[float, float], n: int = 400) -> np.ndarray:
    """FAR values evenly spaced on the probit scale over ``limits``."""
    return _cdf(np.linspace(*probit(limits), n))
