"""The reports of ``graphkit eval`` and ``graphkit bench``: their tables, and their files (one
folder per run, :mod:`graphkit.eval.runs`; the plots are :mod:`graphkit.eval.plots`)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from graphkit._util import text_table
from graphkit.eval.bench import BenchReport
from graphkit.eval.evaluate import EvalReport
from graphkit.eval.plots import plot_bench, plot_eval
from graphkit.eval.runs import RunFolder, write_run
from graphkit.ir.io import write_bytes

EVAL_FILES = ("eval.json", "eval.png")
BENCH_FILES = ("bench.json", "bench.png")


def write_eval(report: EvalReport, out: Path | None = None) -> RunFolder:
    """``eval.json`` and ``eval.png`` of this run in a new folder under ``out`` (default
    ``<models>/eval``), which ``out/latest`` then names (:mod:`graphkit.eval.runs`)."""
    out = report.models_dir / "eval" if out is None else Path(out)
    data = report.as_dict()
    note = emulation_note(report)
    if note:
        data["emulation_note"] = note

    def write(folder: Path) -> None:
        plot_eval(report, folder / "eval.png")
        write_bytes(folder / "eval.json", (json.dumps(data, indent=2) + "\n").encode())

    with _result_folder_lock(out, "eval"):
        return write_run(out, EVAL_FILES, write)


def write_bench(report: BenchReport, out: Path | None = None, *, models_dir: Path | None = None) -> RunFolder:
    """``bench.json`` and ``bench.png`` of this run in a new folder under ``out`` (default
    ``<models>/bench``), which ``out/latest`` then names."""
    if out is None:
        out = (models_dir or Path("out") / report.recipe.name) / "bench"

    def write(folder: Path) -> None:
        write_bytes(folder / "bench.json", (json.dumps(report.as_dict(), indent=2) + "\n").encode())
        plot_bench(report, folder / "bench.png")

    with _result_folder_lock(out, "bench"):
        return write_run(out, BENCH_FILES, write)


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
    """Every metric the task computed, one row per runner and batch size (main metric first,
    columns named as ``--max-delta`` names them), with the agreement with the reference."""
    report = eval_report.as_dict()
    metric, ref, results = report["main_metric"], report["reference"], report["results"]
    names = list(dict.fromkeys([metric, *results[0]["metrics"]]))
    sv = report["task"] == "speaker_verification"
    head = ["runner", "batch", *names, f"Δ {metric}", "max|Δ| score", *(["min cos"] if sv else [])]
    rows = [head]
    for i, r in enumerate(results):
        batch = r["batch"]
        runner = r["runner"] if batch is None else r["runner"].removesuffix(f" bs{batch}")
        cells = [runner, "-" if batch is None else str(batch)]
        cells += [_metric(r["metrics"].get(k)) for k in names]
        if i == 0:
            cells += ["(reference)", "-", *(["-"] if sv else [])]
        else:
            a = r["agreement"]
            cells += [_delta(r["delta_to_reference"][metric]), f"{a.get('max_abs_score_delta', 0.0):.1e}"]
            cells += [f"{a['min_cosine']:.7f}" if "min_cosine" in a else "-"] if sv else []
        rows.append(cells)
    trials = f", {report['trials']} trials" if report["trials"] else ""
    title = (
        f"{report['recipe']['name']}: {report['utterances']} utterances{trials}; "
        f"main metric {metric}; Δ and agreement against {ref}"
        + ("; batch '-': runs once, at any batch size" if any(r["batch"] is None for r in results) else "")
    )
    note = emulation_note(eval_report)
    return f"{title}\n{text_table(rows)}" + (f"\n{note}" if note else "")


def _metric(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _delta(value: float) -> str:
    return "0" if value == 0 else f"{value:+.1e}"


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
