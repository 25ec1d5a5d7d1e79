"""The gate of ``graphkit eval``: limits on how far every runner may drift from the reference.

A :class:`Gate` holds three kinds of limit, each judged for every non-reference runner and batch
size of an :class:`~graphkit.eval.evaluate.EvalReport`:

* ``max_delta``: per task metric, |candidate − reference| must stay at or below the limit;
* ``max_score_delta``: the max |Δ| of the per-utterance (or per-trial) scores;
* ``min_cosine``: the minimum cosine between embeddings (speaker verification).

A breach is recorded, never raised: eval still writes its report and table, then the CLI prints
one line per breach and exits 1, so that a CI job fails on numbers, not only on crashes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from graphkit._util import did_you_mean, one_line, show
from graphkit.errors import UsageError

# what graphkit.eval.evaluate.task_metrics computes, per task
TASK_METRICS: Mapping[str, tuple[str, ...]] = {
    "anti_spoofing": ("eer_percent", "roc_auc", "min_tdcf"),
    "speaker_verification": (
        "centroid_roc_auc",
        "eer_percent",
        "min_dcf_0.01",
        "min_dcf_0.05",
        "trial_roc_auc",
    ),
}
ALL_METRICS = tuple(sorted({m for names in TASK_METRICS.values() for m in names}))
TRIAL_METRICS = ("eer_percent", "min_dcf_0.01", "min_dcf_0.05", "trial_roc_auc")  # speaker verification


class ResultLike(Protocol):
    """What the gate reads of a :class:`graphkit.eval.evaluate.RunResult`."""

    runner: str
    batch: int | None
    metrics: dict[str, float]
    agreement: dict[str, float]


@dataclass(frozen=True)
class Breach:
    """One limit broken by one runner at one batch size. ``metric`` is a task metric (its
    |Δ| to the reference broke ``max_delta``), ``max_abs_score_delta`` or ``min_cosine``."""

    runner: str
    batch: int | None
    metric: str
    value: float
    limit: float
    reference: str

    def line(self) -> str:
        batch = "-" if self.batch is None else str(self.batch)
        if self.metric == "min_cosine":
            what = f"min cosine {self.value:.7f} < {self.limit:g} (--min-cosine)"
        elif self.metric == "max_abs_score_delta":
            what = f"max |Δ score| {self.value:.3g} > {self.limit:g} (--max-score-delta)"
        else:
            flag = f"--max-delta {self.metric}={self.limit:g}"
            what = f"|Δ {self.metric}| {self.value:.4g} > {self.limit:g} ({flag})"
        return f"eval gate breached: runner '{self.runner}', batch {batch}: {what} against {self.reference}"

    def as_dict(self) -> dict[str, Any]:
        value = self.value if math.isfinite(self.value) else str(self.value)  # JSON has no NaN
        return {
            "runner": self.runner,
            "batch": self.batch,
            "metric": self.metric,
            "value": value,
            "limit": self.limit,
        }


@dataclass(frozen=True)
class Gate:
    """Limits on the drift from the reference runner (none given: the gate is open)."""

    max_delta: Mapping[str, float] = field(default_factory=dict)
    max_score_delta: float | None = None
    min_cosine: float | None = None

    @property
    def active(self) -> bool:
        return bool(self.max_delta) or self.max_score_delta is not None or self.min_cosine is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_delta": dict(self.max_delta),
            "max_score_delta": self.max_score_delta,
            "min_cosine": self.min_cosine,
        }

    def check_task(self, task: str, *, asv_scores: bool, results: int) -> None:
        """Refuse, before anything runs, limits eval cannot judge: a metric the task does not
        compute, the cosine of a task without embeddings, or a gate with no runner to judge."""
        names = TASK_METRICS[task]
        for metric in self.max_delta:
            if metric not in names:
                raise UsageError(
                    f"--max-delta {metric}: not a metric of {task} (its metrics: {', '.join(names)})"
                )
        if "min_tdcf" in self.max_delta and not asv_scores:
            raise UsageError("--max-delta min_tdcf: min t-DCF needs the ASV scores: give --asv-scores FILE")
        if self.min_cosine is not None and task != "speaker_verification":
            raise UsageError(
                f"--min-cosine: {task} gives one score per utterance, no embedding; use --max-score-delta"
            )
        if self.active and results < 2:
            # a gate with no candidate would pass whatever the model does
            raise UsageError(
                "the eval gate compares runners with the reference (the first), but only one runs: "
                "give another --runner or batch size"
            )

    def check_trials(self, has_trials: bool) -> None:
        """Speaker verification's trial metrics exist only with a trial list."""
        missing = [m for m in self.max_delta if m in TRIAL_METRICS]
        if missing and not has_trials:
            raise UsageError(
                f"--max-delta {missing[0]}: the dataset has no trial list, so only centroid_roc_auc "
                "is computed; give --trials FILE"
            )

    def breaches(self, results: Sequence[ResultLike]) -> list[Breach]:
        """Every limit broken by ``results[1:]`` against ``results[0]`` (a NaN breaks any limit)."""
        if not results:
            return []
        ref, found = results[0], []
        for r in results[1:]:

            def add(metric: str, value: float, limit: float, r: ResultLike = r) -> None:
                found.append(Breach(r.runner, r.batch, metric, value, limit, ref.runner))

            for metric, limit in self.max_delta.items():
                delta = abs(r.metrics[metric] - ref.metrics[metric])
                if not delta <= limit:
                    add(metric, delta, limit)
            score = r.agreement.get("max_abs_score_delta", math.nan)
            if self.max_score_delta is not None and not score <= self.max_score_delta:
                add("max_abs_score_delta", score, self.max_score_delta)
            cos = r.agreement.get("min_cosine", math.nan)
            if self.min_cosine is not None and not cos >= self.min_cosine:
                add("min_cosine", cos, self.min_cosine)
        return found


def parse_max_delta(text: str) -> tuple[str, float]:
    """``METRIC=X`` (``--max-delta``): a metric eval computes and a finite limit >= 0."""
    metric, sep, value = text.partition("=")
    metric = metric.strip()
    if not sep:
        raise UsageError(one_line(f"--max-delta: {show(text)} is not METRIC=X (e.g. eer_percent=0.1)"))
    if metric not in ALL_METRICS:
        hint = did_you_mean(metric, ALL_METRICS) or f" (metrics: {', '.join(ALL_METRICS)})"
        raise UsageError(one_line(f"--max-delta: unknown metric {show(metric)}{hint}"))
    try:
        limit = float(value)
    except ValueError:
        raise UsageError(one_line(f"--max-delta {metric}: {show(value)} is not a number")) from None
    if not math.isfinite(limit) or limit < 0:  # NaN compares false with everything: no limit
        raise UsageError(f"--max-delta {metric}: the limit must be a finite number >= 0, got {value}")
    return metric, limit


def gate_from(
    max_delta: Sequence[tuple[str, float]], max_score_delta: float | None, min_cosine: float | None
) -> Gate:
    """The gate of the command line's limits; a metric given twice is a usage error."""
    limits: dict[str, float] = {}
    for metric, limit in max_delta:
        if metric in limits:
            raise UsageError(f"--max-delta {metric} is given twice ({limits[metric]:g} and {limit:g})")
        limits[metric] = limit
    return Gate(limits, max_score_delta, min_cosine)
