"""Argument groups the subcommands share, and the validators (argparse ``type=``) behind them.

A validator raises :class:`~graphkit.errors.UsageError` with the flag's name, which argparse lets
through unchanged: the user reads one line saying which flag is wrong and why.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from graphkit._util import check_path, one_line, show
from graphkit.errors import UsageError

DataSource = tuple[Path, "str | None"]  # a dataset folder and its label (anti-spoofing), if any
LABELS = ("bonafide", "spoof")


def batch_list(text: str) -> tuple[int, ...]:
    """'1,4,8' (--batch of apply, eval and bench)."""
    from graphkit.recipe import MAX_BATCH  # here: importing the recipe layer imports onnx (--help)

    try:
        sizes = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise UsageError(
            one_line(f"--batch: {show(text)} is not a comma-separated list of integers")
        ) from None
    if not sizes or any(not 1 <= s <= MAX_BATCH for s in sizes):
        raise UsageError(
            one_line(f"--batch: batch sizes must be between 1 and {MAX_BATCH}, got {show(text)}")
        )
    if len(set(sizes)) != len(sizes):
        raise UsageError(one_line(f"--batch: batch sizes must be unique, got {show(text)}"))
    return sizes


def int_at_least(minimum: int, flag: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise UsageError(one_line(f"{flag}: {show(text)} is not an integer")) from None
        if value < minimum:
            raise UsageError(f"{flag} must be at least {minimum}")
        return value

    return parse


def finite_float(flag: str, *, minimum: float | None = None) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise UsageError(one_line(f"{flag}: {show(text)} is not a number")) from None
        if not math.isfinite(value):  # NaN compares false with everything: no limit would hold
            raise UsageError(f"{flag} must be a finite number, got {value}")
        if minimum is not None and value < minimum:
            raise UsageError(f"{flag} must be >= {minimum:g}, got {value:g}")
        return value

    return parse


def existing_file(flag: str) -> Callable[[str], Path]:
    def parse(text: str) -> Path:
        path = Path(text)
        check_path(path, flag)
        if not path.is_file():
            raise UsageError(one_line(f"{flag}: file not found: {path}"))
        return path

    return parse


def data_source(text: str) -> DataSource:
    """``DIR`` or ``DIR=LABEL`` (LABEL: bonafide or spoof). A folder whose own name holds '='
    is taken whole: the label is split off only where the text does not name a folder and
    ends in ``=bonafide`` or ``=spoof``."""
    path, sep, label = text.rpartition("=")
    if not sep or Path(text).exists() or label not in LABELS:
        if sep and not Path(text).exists() and Path(path).is_dir():
            raise UsageError(one_line(f"--data {text}: the label after '=' is bonafide or spoof"))
        check_path(Path(text), "--data")
        return Path(text), None
    check_path(Path(path), "--data")
    return Path(path), label


def add_recipe(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", type=Path, help="the recipe (YAML) of the model")


def add_batches(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--batch",
        type=batch_list,
        default=None,
        metavar="N[,N...]",
        help="comma-separated batch sizes (default: the recipe's batch_sizes)",
    )


def add_batch(p: argparse.ArgumentParser, help: str, *, required: bool = False) -> None:  # noqa: A002
    p.add_argument(
        "--batch", type=int_at_least(1, "--batch"), default=None, required=required, metavar="N", help=help
    )


def add_weights(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--weights",
        type=existing_file("--weights"),
        default=None,
        metavar="PATH",
        help="checkpoint of the recipe's built-in model (default: the recipe's source.weights)",
    )


# what each --runner value runs (the kinds are graphkit.runners.select's EVAL_RUNNERS)
RUNNER_HELP = {
    "torch": ("torch", "the recipe's PyTorch model, the reference"),
    "export": ("export", "the recipe's unmodified ONNX export on onnxruntime CPU"),
    "graphkit": ("graphkit", "the emitted model of each batch size on onnxruntime CPU"),
    "ort_cuda": (
        "ort_cuda",
        "the emitted models on onnxruntime's CUDA execution provider; needs onnxruntime-gpu",
    ),
    "emulate": ("emulate[=MODE]", "the emitted models under ATC's precision mode, emulated on CPU"),
    "ais_bench": ("ais_bench[=DEVICE]", "the .om on an Ascend NPU"),
    "files": ("files=DIR[,dtype=float16][,fmt=F]", "the outputs an NPU host wrote"),
}


def add_runners(p: argparse.ArgumentParser, choices: Sequence[str], default: str) -> None:
    listed = ", ".join(f"{RUNNER_HELP[k][0]} ({RUNNER_HELP[k][1]})" for k in choices)
    p.add_argument(
        "--runner",
        action="append",
        default=[],
        metavar="RUNNER",
        help=f"{listed}; repeat --runner for several (default: {default})",
    )


def add_models(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--models",
        type=Path,
        default=None,
        metavar="DIR",
        help="graphkit apply's output (default out/<name>)",
    )


def add_data(p: argparse.ArgumentParser, help: str, *, required: bool) -> None:  # noqa: A002
    p.add_argument(
        "--data",
        type=data_source,
        action="append",
        required=required,
        default=None if required else [],
        metavar="DIR[=LABEL]",
        help=help,
    )


def add_trials(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trials", type=Path, default=None, metavar="FILE", help="trial list (VoxCeleb format)")


def add_limit(p: argparse.ArgumentParser, minimum: int) -> None:
    p.add_argument(
        "--limit",
        type=int_at_least(minimum, "--limit"),
        default=None,
        metavar="N",
        help="use N evenly spaced utterances of the dataset",
    )


def add_out(p: argparse.ArgumentParser, help: str, *, required: bool = False) -> None:  # noqa: A002
    p.add_argument("-o", "--out", type=Path, default=None, required=required, metavar="DIR", help=help)


def add_json(p: argparse.ArgumentParser, what: str = "the report") -> None:
    p.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def add_metric(p: argparse.ArgumentParser) -> None:
    from graphkit.eval.gate import ALL_METRICS, TASK_METRICS

    listed = "; ".join(
        f"{task.replace('_', ' ')}: {', '.join(names)}" for task, names in TASK_METRICS.items()
    )
    p.add_argument(
        "--metric",
        choices=ALL_METRICS,
        default=None,
        metavar="METRIC",
        help=f"metric to gate on ({listed}; default: the task's main one, eer_percent, "
        "or centroid_roc_auc for speaker verification without --trials)",
    )


def add_gate_limit(p: Any, flag: str, help: str) -> None:
    """A flag taking a non-negative, finite number X (a gate's limit), None when absent."""
    p.add_argument(flag, type=finite_float(flag, minimum=0.0), default=None, metavar="X", help=help)
