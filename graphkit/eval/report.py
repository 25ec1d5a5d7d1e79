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
        data = report.as_dict()
        note = emulation_note(report)
        if note:
            data["emulation_note"] = note
        write_bytes(out / "eval.json", (json.dumps(data, indent=2) + "\n").encode())
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
    """The main metric per batch size and runner, with the agreement with the reference; the
    emulated runners' agreement in columns of their own (an emulated om, not the fp32 model)."""
    report = eval_report.as_dict()
    metric = report["main_metric"]
    ref = report["reference"]
    by = {(r["runner"], r["batch"]): r for r in report["results"]}
    fixed = [r for r in report["results"] if r["batch"] is None]
    per_batch = sorted({r["runner"].rsplit(" bs", 1)[0] for r in report["results"] if r["batch"] is not None})
    groups = ["", *(["emulated"] if any(_emulated(n) for n in per_batch) else [])]
    head = ["batch", *[r["runner"] for r in fixed], *per_batch]
    for g in groups:
        head += (
            [f"Δ vs {ref}", "max|Δ| score", "min cos"]
            if not g
            else [f"Δ {g}", f"max|Δ| score {g}", f"min cos {g}"]
        )
    rows = [head]
    for b in report["batch_sizes"]:
        cells = [str(b)] + [f"{r['metrics'][metric]:.4f}" for r in fixed]
        worst = {g: [0.0, 0.0, 1.0] for g in groups}  # metric delta, score delta, min cosine
        compared = [(r["runner"], r) for r in fixed[1:]]
        for name in per_batch:
            r = by.get((f"{name} bs{b}", b))
            cells.append("-" if r is None else f"{r['metrics'][metric]:.4f}")
            compared += [] if r is None else [(name, r)]
        for name, r in compared:
            w = worst["emulated" if _emulated(name) else ""]
            w[0] = max(w[0], abs(r["delta_to_reference"][metric]))
            w[1] = max(w[1], r["agreement"].get("max_abs_score_delta", 0.0))
            w[2] = min(w[2], r["agreement"].get("min_cosine", 1.0))
        for g in groups:
            delta, score, cos = worst[g]
            sv = report["task"] == "speaker_verification"
            cells += [f"{delta:.1e}", f"{score:.1e}", f"{cos:.7f}" if sv else "-"]
        rows.append(cells)
    note = emulation_note(eval_report)
    return (
        f"{metric} ({report['utterances']} utterances"
        + (f", {report['trials']} trials)" if report["trials"] else ")")
        + "\n"
        + text_table(rows)
        + (f"\n{note}" if note else "")
    )


def _emulated(runner: str) -> bool:
    from graphkit.runners.emulate import label

    return runner.startswith(label(None))


def emulation_note(report: EvalReport) -> str:
    """One line where an emulated runner is in the report: its mode, and that its figures are
    an emulation on CPU, not an NPU measurement (:data:`graphkit.ascend.precision.NOTE`)."""
    from graphkit.runners.emulate import recipe_mode

    emulated = [r.runner for r in report.results if _emulated(r.runner)]
    if not emulated:
        return ""
    from graphkit.ascend.precision import NOTE

    plain = any(len(r.split()) < 3 for r in emulated)  # "emulated bs4", not "emulated MODE bs4"
    which = f"'emulated' is {recipe_mode(report.recipe.atc)}, the recipe's ATC mode; " if plain else ""
    return f"emulated: {which}{NOTE}"


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
