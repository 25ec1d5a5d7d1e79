"""The reports of ``graphkit eval`` and ``graphkit bench``: tables, plots and their files."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from graphkit._util import text_table
from graphkit.eval.bench import BenchReport
from graphkit.eval.evaluate import EvalReport
from graphkit.ir.io import atomic_path, write_bytes


def write_eval(report: EvalReport, out: Path | None = None) -> tuple[Path, Path]:
    """``eval.json`` and ``eval.png`` in ``out`` (default ``<models>/eval``); returns their paths."""
    out = report.models_dir / "eval" if out is None else Path(out)
    with _result_folder_lock(out, "eval"):
        plot_eval(report, out / "eval.png")
        write_bytes(out / "eval.json", (json.dumps(report.as_dict(), indent=2) + "\n").encode())
    return out / "eval.json", out / "eval.png"


def write_bench(
    report: BenchReport, out: Path | None = None, *, models_dir: Path | None = None
) -> tuple[Path, Path]:
    """``bench.json`` and ``bench.png`` in ``out`` (default ``<models>/bench``); returns their paths."""
    if out is None:
        out = (models_dir or Path("out") / report.recipe.name) / "bench"
    with _result_folder_lock(out, "bench"):
        write_bytes(out / "bench.json", (json.dumps(report.as_dict(), indent=2) + "\n").encode())
        plot_bench(report, out / "bench.png")
    return out / "bench.json", out / "bench.png"


def _result_folder_lock(out: Path, command: str) -> contextlib.AbstractContextManager[None]:
    """The lock of the apply output folder ``out`` lies in, if it lies in one: an apply
    publishing that folder meanwhile would swap away a report written into it."""
    from graphkit.ir.publish import folder_lock
    from graphkit.pipeline.outputs import MANIFEST

    for folder in Path(out).absolute().parents:
        if (folder / MANIFEST).is_file():
            return folder_lock(folder, command)
    return contextlib.nullcontext()


def render_eval(eval_report: EvalReport) -> str:
    """The main metric per batch size and runner, with the agreement with the reference."""
    report = eval_report.as_dict()
    metric = report["main_metric"]
    ref = report["reference"]
    by = {(r["runner"], r["batch"]): r for r in report["results"]}
    fixed = [r for r in report["results"] if r["batch"] is None]
    per_batch = sorted({r["runner"].rsplit(" bs", 1)[0] for r in report["results"] if r["batch"] is not None})
    head = ["batch", *[r["runner"] for r in fixed], *per_batch, "Δ vs " + ref, "max|Δ| score", "min cos"]
    rows = [head]
    for b in report["batch_sizes"]:
        cells = [str(b)] + [f"{r['metrics'][metric]:.4f}" for r in fixed]
        worst_delta, worst_score, min_cos = 0.0, 0.0, 1.0
        for name in per_batch:
            r = by.get((f"{name} bs{b}", b))
            if r is None:
                cells.append("-")
                continue
            cells.append(f"{r['metrics'][metric]:.4f}")
            worst_delta = max(worst_delta, abs(r["delta_to_reference"][metric]))
            worst_score = max(worst_score, r["agreement"].get("max_abs_score_delta", 0.0))
            min_cos = min(min_cos, r["agreement"].get("min_cosine", 1.0))
        for r in fixed[1:]:
            worst_delta = max(worst_delta, abs(r["delta_to_reference"][metric]))
            worst_score = max(worst_score, r["agreement"].get("max_abs_score_delta", 0.0))
            min_cos = min(min_cos, r["agreement"].get("min_cosine", 1.0))
        cells += [
            f"{worst_delta:.1e}",
            f"{worst_score:.1e}",
            f"{min_cos:.7f}" if report["task"] == "speaker_verification" else "-",
        ]
        rows.append(cells)
    return (
        f"{metric} ({report['utterances']} utterances"
        + (f", {report['trials']} trials)" if report["trials"] else ")")
        + "\n"
        + text_table(rows)
    )


def render_gate(report: EvalReport) -> list[str]:
    """One line per breach of the eval gate (none where it holds or was not set)."""
    return [b.line() for b in report.breaches]


def plot_eval(report: EvalReport, path: Path) -> None:
    """DET-style FRR/FAR curves per runner (PNG, written atomically)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    floor = 1e-4
    for result in report.results:
        assert result.curve is not None
        far, frr = result.curve
        name = result.runner
        ax.plot(np.maximum(far, floor), np.maximum(frr, floor), label=name, linewidth=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("false acceptance rate")
    ax.set_ylabel("false rejection rate")
    ax.set_title(f"{report.recipe.name}: DET curve ({report.main_metric}) per runner")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)


def render_bench(bench_report: BenchReport) -> str:
    """Latency and throughput per batch size and runner, and the throughput ratios."""
    report = bench_report.as_dict()
    runners = bench_report.kinds
    by = {(r["runner"], r["batch"]): r for r in report["rows"]}
    head = ["batch"]
    for name in runners:
        head += [f"{name} mean ms", "p50", "p99", "rows/s"]
    base = "export" if "export" in runners else runners[0]
    others = [n for n in runners if n != base]
    head += [f"{n}/{base}" for n in others]
    lines = [head]
    for b in report["batch_sizes"]:
        cells = [str(b)]
        for name in runners:
            r = by[(name, b)]
            cells += [
                f"{r['mean_ms']:.2f}",
                f"{r['p50_ms']:.2f}",
                f"{r['p99_ms']:.2f}",
                f"{r['throughput']:.1f}",
            ]
        cells += [f"{by[(n, b)]['throughput'] / by[(base, b)]['throughput']:.2f}" for n in others]
        lines.append(cells)
    return text_table(lines)


def plot_bench(report: BenchReport, path: Path) -> None:
    """Throughput per batch size and runner (PNG, written atomically)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in report.kinds:
        pts = [(r.batch, r.throughput) for r in report.rows if r.runner == name]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("throughput (rows/s)")
    ax.set_title(f"{report.recipe.name}: throughput per batch size")
    ax.grid(True, alpha=0.3)
    ax.legend()
    _save(fig, path)


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
