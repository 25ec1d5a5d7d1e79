"""The plots of ``graphkit eval`` (DET curves) and ``graphkit bench`` (throughput, latency).

Curves that coincide (every runner of a correct model) must stay visible: runners differ in
colour, batch sizes in line style and marker, the reference is drawn wide and pale beneath the
others, and a second panel shows each curve's difference from the reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from graphkit.eval import det
from graphkit.eval.bench import BenchReport
from graphkit.eval.evaluate import EvalReport, RunResult
from graphkit.eval.scoring import eer_point
from graphkit.ir.io import atomic_path


def plot_eval(report: EvalReport, path: Path) -> None:
    """:func:`eval_figure` as a PNG, written atomically."""
    _save(eval_figure(report), path)


def eval_figure(report: EvalReport) -> Any:
    """DET curves per runner on the probit scale with each EER marked (a point on FRR = FAR,
    gid ``eer <runner>``), and below them the FRR difference from the reference at equal FAR."""
    plt = _pyplot()
    results = [r for r in report.results if r.curve is not None]
    several = len(results) > 1
    fig, axes = plt.subplots(
        2 if several else 1,
        1,
        figsize=(7, 9.5 if several else 7),
        gridspec_kw={"height_ratios": [3, 1.2]} if several else None,
        squeeze=False,
    )
    ax = axes[0][0]
    limits = det.axis_limits([r.curve for r in results if r.curve is not None])
    styles = _styles(results)
    for result in results:
        _det_curve(ax, result, styles[result.runner])
    diagonal = det.probit(limits)
    ax.plot(diagonal, diagonal, color="0.6", linewidth=0.8, linestyle=":", label="FRR = FAR", zorder=1)
    det.set_probit_axes(ax, limits)
    ax.set_xlabel("false acceptance rate")
    ax.set_ylabel("false rejection rate")
    ax.set_title(f"{report.recipe.name}: DET curves, {_scores_described(report)}", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper right", framealpha=0.9)
    if several:
        _difference_panel(axes[1][0], results, styles, limits)
    return fig  # laid out when saved


def _styles(results: list[RunResult]) -> dict[str, dict[str, Any]]:
    """Colour per runner, line style and marker per batch size; the reference wide and pale."""
    names = list(dict.fromkeys(_runner_name(r) for r in results))
    batches = list(dict.fromkeys(r.batch for r in results))
    colours = [f"C{i % 10}" for i in range(len(names))]
    out = {}
    for i, r in enumerate(results):
        k = batches.index(r.batch)
        style: dict[str, Any] = {
            "color": colours[names.index(_runner_name(r))],
            "linestyle": det.STYLES[k % len(det.STYLES)],
            "marker": det.MARKERS[i % len(det.MARKERS)],
            "markevery": (0.03 + 0.04 * (i % 6), 0.25),  # markers of coinciding curves side by side
            "linewidth": 1.2,
            "markersize": 5,
            "fillstyle": "none",
        }
        if i == 0:
            style.update(linewidth=4, alpha=0.35, linestyle="-")
        out[r.runner] = style
    return out


def _runner_name(r: RunResult) -> str:
    return r.runner if r.batch is None else r.runner.removesuffix(f" bs{r.batch}")


def _det_curve(ax: Any, result: RunResult, style: dict[str, Any]) -> None:
    assert result.curve is not None
    far, frr = result.curve
    eer, _ = eer_point(frr, far)
    x, y = det.det_points(far, frr)
    reference = " (reference)" if style.get("alpha") else ""
    label = f"{result.runner}{reference} — EER {100 * eer:.2f} %"
    if not x.size:  # every drawable point is at a rate of 0 or 1: scores fully separated
        label += " (no curve: scores separate fully)"
    points = (det.probit(x), det.probit(y)) if x.size else ([], [])
    ax.plot(*points, label=label, gid=f"det {result.runner}", **style)
    if 0 < eer < 1:
        e = float(det.probit(eer))
        ax.plot([e], [e], linestyle="none", marker=style["marker"], markersize=9, color=style["color"],
                markeredgewidth=1.5, fillstyle="none", zorder=5, gid=f"eer {result.runner}")  # fmt: skip


def _difference_panel(
    ax: Any, results: list[RunResult], styles: dict[str, dict[str, Any]], limits: tuple[float, float]
) -> None:
    """FRR − FRR(reference) in percentage points at equal FAR: zero where the curves coincide."""
    reference = results[0]
    assert reference.curve is not None
    grid = det.difference_grid(limits)
    base = det.frr_at(*reference.curve, grid)
    worst = 0.0
    for r in results[1:]:
        assert r.curve is not None
        delta = 100 * (det.frr_at(*r.curve, grid) - base)
        worst = max(worst, float(np.abs(delta).max()))
        ax.plot(det.probit(grid), delta, label=r.runner, **styles[r.runner])
    ax.axhline(0, color="0.5", linewidth=0.8)
    det.set_probit_axes(ax, limits, y=False)
    if worst == 0:
        ax.set_ylim(-1, 1)
    ax.set_xlabel("false acceptance rate")
    ax.set_ylabel("ΔFRR (points)")
    what = "every curve coincides with it" if worst == 0 else f"largest |ΔFRR| {worst:.3g} points"
    ax.set_title(f"FRR − FRR({reference.runner}) at equal FAR: {what}", fontsize=9)
    ax.grid(True, alpha=0.3)


def _scores_described(report: EvalReport) -> str:
    if report.task != "speaker_verification":
        return f"bona fide vs spoof scores ({report.utterances} utterances)"
    if report.trials:
        return f"trial scores ({report.trials} trials)"
    return f"all-vs-centroid scores ({report.utterances} utterances)"


def plot_bench(report: BenchReport, path: Path) -> None:
    """Throughput and latency (mean; p50 to p99 as a bar) per batch size and runner (PNG)."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.5, 7), sharex=True)
    batches = sorted(report.batch_sizes)
    for i, name in enumerate(report.kinds):
        rows = sorted((r for r in report.rows if r.runner == name), key=lambda r: r.batch)
        style = {"marker": det.MARKERS[i % len(det.MARKERS)], "linestyle": det.STYLES[i % len(det.STYLES)]}
        x = [r.batch for r in rows]
        top.plot(x, [r.throughput for r in rows], label=name, **style)
        line = bottom.plot(x, [r.mean_ms for r in rows], label=name, **style)[0]
        bottom.vlines(x, [r.p50_ms for r in rows], [r.p99_ms for r in rows], color=line.get_color(),
                      linewidth=4, alpha=0.35)  # fmt: skip
    top.set_ylim(bottom=0)  # the bars' heights compare runners; a cut axis would not
    top.set_ylabel("throughput (rows/s)")
    top.set_title(f"{report.recipe.name}: throughput and latency per batch size", fontsize=10)
    bottom.set_ylabel("latency per batch (ms)\nmean, bar p50–p99")
    bottom.set_xlabel("batch size")
    bottom.set_xscale("log", base=2)
    bottom.set_xticks(batches, [str(b) for b in batches])
    bottom.minorticks_off()
    bottom.set_yscale("log")
    _plain_log_ticks(bottom.yaxis)
    for ax in (top, bottom):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    _save(fig, path)


def _plain_log_ticks(axis: Any) -> None:
    """Ticks at 1, 2 and 5 of each decade, written 200 and 1000, not 2×10² and 10³."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
