"""``graphkit bench``: latency and throughput per batch size and runner.

Per runner and batch size: ``warmup`` untimed runs, then ``loops`` timed runs on seeded input.
Latency mean / p50 / p99 in ms; throughput = 1000 · batch / mean latency (ais_bench's
definition; for ais_bench the device compute time it reports is used, otherwise wall time).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from graphkit.errors import UsageError
from graphkit.recipe import Recipe

log = logging.getLogger("graphkit")
BENCH_RUNNERS = ("graphkit", "export", "torch", "ais_bench", "ort_cuda")


def measure(runner: Any, feeds: dict[str, np.ndarray], *, loops: int, warmup: int) -> dict[str, float]:
    key = "bench"
    for _ in range(warmup):
        runner.infer(feeds, key=key)
    times = []
    for _ in range(loops):
        t = time.perf_counter()
        runner.infer(feeds, key=key)
        times.append((time.perf_counter() - t) * 1000)
    device = runner.device_times_ms()
    if device:  # the backend's own compute time (ais_bench: NPU_compute_time)
        times = list(device)[-loops:]
    batch = next(iter(feeds.values())).shape[0]
    arr = np.asarray(times)
    return {
        "mean_ms": float(arr.mean()),
        "p50_ms": float(np.percentile(arr, 50)),
        "p99_ms": float(np.percentile(arr, 99)),
        "throughput": 1000.0 * batch / float(arr.mean()),
        "loops": loops,
        "timing": "device" if device else "wall",
    }


def bench(
    recipe: Recipe,
    *,
    runners: Sequence[str] = ("export", "graphkit"),
    batch_sizes: Sequence[int] | None = None,
    models_dir: Path | None = None,
    weights: Path | None = None,
    loops: int = 10,
    warmup: int = 2,
) -> dict[str, Any]:
    from graphkit.parity import seeded_rows
    from graphkit.runners.onnxruntime import OnnxruntimeRunner

    for r in runners:
        if r.partition("=")[0] not in BENCH_RUNNERS:
            from graphkit.suggest import did_you_mean

            raise UsageError(
                f"--runner: unknown runner '{r}' (runners: {', '.join(BENCH_RUNNERS)})"
                f"{did_you_mean(r, BENCH_RUNNERS)}"
            )
    if loops < 1 or warmup < 0:
        raise UsageError("--loops must be >= 1 and --warmup >= 0")
    batch_sizes = list(batch_sizes or recipe.batch_sizes)
    models_dir = models_dir or Path("out") / recipe.name
    plain = module = None
    rows: list[dict[str, Any]] = []
    for b in batch_sizes:
        feeds = seeded_rows(recipe.inputs, b, recipe.parity.seed)
        for spec in runners:
            kind, _, arg = spec.partition("=")
            if kind == "export":
                if plain is None:
                    from graphkit.source import load_source

                    plain = load_source(recipe, weights=weights).model
                runner = OnnxruntimeRunner(plain, label="plain export")
            elif kind in ("graphkit", "ort_cuda"):
                path = models_dir / f"{recipe.name}_bs{b}.onnx"
                if not path.is_file():
                    raise UsageError(
                        f"{path}: not found; run `graphkit apply {recipe.path} -o {models_dir}` first"
                    )
                runner = OnnxruntimeRunner(
                    path, providers="auto" if kind == "ort_cuda" else "cpu", label="graphkit"
                )
            elif kind == "torch":
                from graphkit.runners.torch import TorchRunner
                from graphkit.source import build_module

                module = module or build_module(recipe, weights)
                runner = TorchRunner(
                    module,
                    input_names=[i.name for i in recipe.inputs],
                    output_names=list(recipe.outputs),
                    label="torch",
                )
            else:
                from graphkit.runners.ais_bench import AisBenchRunner

                runner = AisBenchRunner(
                    models_dir / f"{recipe.name}_bs{b}", device_id=int(arg or 0), batch=b, label="ais_bench"
                )
            with runner:
                stats = measure(runner, feeds, loops=loops, warmup=warmup)
            log.info("  bs%-3d %-13s %8.2f ms  %8.2f rows/s", b, kind, stats["mean_ms"], stats["throughput"])
            rows.append({"runner": kind, "batch": b, **stats})
    return {
        "recipe": {"name": recipe.name, "sha256": recipe.sha256},
        "runners": list(runners),
        "batch_sizes": batch_sizes,
        "rows": rows,
    }


def render_table(report: dict[str, Any]) -> str:
    runners = [r.partition("=")[0] for r in report["runners"]]
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
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    out = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from graphkit.io import atomic_path

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in [r.partition("=")[0] for r in report["runners"]]:
        pts = [(r["batch"], r["throughput"]) for r in report["rows"] if r["runner"] == name]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("throughput (rows/s)")
    ax.set_title(f"{report['recipe']['name']}: throughput per batch size")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
