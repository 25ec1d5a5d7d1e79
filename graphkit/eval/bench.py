"""``graphkit bench``: latency and throughput per batch size and runner.

Per runner and batch size: ``warmup`` untimed runs, then ``loops`` timed runs on seeded input.
Latency mean / p50 / p99 in ms; throughput = 1000 · batch / mean latency (ais_bench's
definition; for ais_bench the device compute time it reports is used, otherwise wall time).

Before the first run, :func:`check_batch_memory` sizes every batch size a runner on this machine
takes, and refuses one that would not fit (ECAPA-TDNN at ``--batch 4096`` took 8 GB and
counting); ``graphkit eval`` checks its batch sizes the same way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from graphkit._progress import Stopwatch
from graphkit.errors import UsageError
from graphkit.ir.memory import check_fits, run_bytes
from graphkit.pipeline.provenance import environment, execution_provider, weights_identity
from graphkit.pipeline.reference import seeded_rows
from graphkit.recipe import Recipe
from graphkit.runners.base import Runner
from graphkit.runners.select import BENCH_RUNNERS, RecipeRunners, RunnerChoice, parse_runner

log = logging.getLogger("graphkit")


@dataclass(frozen=True)
class Timing:
    """One runner at one batch size."""

    runner: str  # the --runner kind
    batch: int
    mean_ms: float
    p50_ms: float
    p99_ms: float
    throughput: float  # rows per second
    loops: int
    timing: str  # "device" (the backend's own compute time) or "wall"
    execution_provider: str | None = None  # where it ran (graphkit.pipeline.provenance)


@dataclass
class BenchReport:
    recipe: Recipe
    runners: list[str]  # as given (files=..., ais_bench=1)
    batch_sizes: list[int]
    rows: list[Timing]
    provenance: dict[str, Any] = field(default_factory=dict)  # environment, weights, data

    @property
    def kinds(self) -> list[str]:
        return [r.partition("=")[0] for r in self.runners]

    def row(self, kind: str, batch: int) -> Timing:
        return next(r for r in self.rows if r.runner == kind and r.batch == batch)

    def as_dict(self) -> dict[str, Any]:
        return {
            "recipe": {"name": self.recipe.name, "sha256": self.recipe.sha256},
            "runners": list(self.runners),
            "batch_sizes": list(self.batch_sizes),
            "rows": [asdict(r) for r in self.rows],
            **self.provenance,
        }


def measure(runner: Runner, feeds: dict[str, np.ndarray], *, loops: int, warmup: int) -> dict[str, Any]:
    """Latency and throughput of ``runner`` on one batch: ``warmup`` untimed runs, ``loops`` timed."""
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
) -> BenchReport:
    choices = [parse_runner(r, BENCH_RUNNERS) for r in runners]
    if loops < 1 or warmup < 0:
        raise UsageError("--loops must be >= 1 and --warmup >= 0")
    batch_sizes = list(batch_sizes or recipe.batch_sizes)
    factory = RecipeRunners(recipe, models_dir=models_dir, weights=weights)
    factory.check(choices, batch_sizes)  # every model is there before the first timing
    check_batch_memory(factory, choices, batch_sizes, batch_free=True)
    provenance = {  # taken when the run starts: its timestamp is the run's
        "environment": environment(),
        "weights": weights_identity(recipe, weights),
        "data": {"seeded_rows": {"seed": recipe.parity.seed}},
    }
    rows: list[Timing] = []
    heads = _heads(choices, batch_sizes)
    for b in batch_sizes:
        feeds = seeded_rows(recipe.inputs, b, recipe.parity.seed)
        for choice in choices:
            head = heads[choice.kind, b]
            log.info("%s  %d warmup + %d timed runs ...", head, warmup, loops)  # bs64: a minute or two
            watch = Stopwatch()
            with factory.open(choice, b, label=choice.label) as runner:
                stats = measure(runner, feeds, loops=loops, warmup=warmup)
                provider = execution_provider(runner)
            mean, rate = stats["mean_ms"], stats["throughput"]
            log.info("%s  %9.2f ms  %10.2f rows/s  (in %s)", head, mean, rate, watch)
            rows.append(Timing(choice.kind, b, **stats, execution_provider=provider))
    return BenchReport(recipe, list(runners), batch_sizes, rows, provenance)


def _heads(choices: Sequence[RunnerChoice], batch_sizes: Sequence[int]) -> dict[tuple[str, int], str]:
    """The start of every progress line, ``bench bs16  graphkit``, padded to one width."""
    kinds = [c.kind for c in choices]
    bw, kw = max(len(f"bs{b}") for b in batch_sizes), max(map(len, kinds))
    return {(k, b): f"bench {f'bs{b}':<{bw}}  {k:<{kw}}" for k in kinds for b in batch_sizes}


# Runners whose runs take this machine's memory (ort_cuda's take the GPU's, ais_bench's the NPU's).
_LOCAL = ("graphkit", "export", "torch")


def check_batch_memory(
    factory: RecipeRunners,
    choices: Sequence[RunnerChoice],
    batch_sizes: Sequence[int],
    *,
    batch_free: bool,
) -> None:
    """Refuse (MemoryLimitError, one line) a batch size whose run on a local runner would not
    fit in memory. ``batch_free``: the export and torch runners run at those batch sizes too
    (bench), not at a small batch of their own (eval). The rows eval reads ahead (a few
    batches) are small beside one run's activations and are not counted. The run is sized by
    the emitted model of that size, or that of another size scaled (the export is the same
    model before the rewrites, the PyTorch module the same computation), else by an ONNX
    source; a torch source with no emitted model is not sized."""
    kinds = {c.kind for c in choices if c.kind in _LOCAL and (batch_free or c.per_batch)}
    if not kinds:
        return
    for b in batch_sizes:
        model = _sizing_model(factory, b)
        if model is None:
            log.debug("batch %d: no model to size the run by", b)
            continue
        check_fits(
            run_bytes(model, b),
            f"--batch {b}: one run of {factory.recipe.name} at batch {b}",
            "give smaller --batch sizes",
        )


def _sizing_model(factory: RecipeRunners, batch: int) -> onnx.ModelProto | None:
    candidates = [factory.model_path(batch)]
    candidates += sorted(factory.models_dir.glob(f"{factory.recipe.name}_bs*.onnx"))
    source = factory.recipe.source.onnx
    candidates += [source] if source is not None else []
    for path in candidates:
        try:  # the weights' sizes are in the file; their external data is not needed
            return onnx.load(str(path), load_external_data=False)
        except Exception:  # missing or unreadable: opening the runner says so, clearly
            continue
    return None
