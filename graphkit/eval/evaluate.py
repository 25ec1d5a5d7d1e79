"""``graphkit eval``: the task's metric per batch size and runner, against the reference.

For each batch size the dataset's inputs are grouped into batches exactly as
``graphkit preprocess`` writes them (so outputs an NPU host wrote can be read back by key),
every runner infers them, and the task's metric is computed from the valid rows:

* speaker verification: the ECAPA guide's all-vs-centroid ROC AUC, and with a trial list the
  trial-based EER, minDCF (p_target 0.01 and 0.05) and ROC AUC;
* anti-spoofing: EER and ROC AUC of the bona fide score, and min t-DCF when ASV scores are given.

Agreement with the reference runner (torch when it is evaluated) is reported per utterance:
max |Δ| of the scores and the minimum cosine between embeddings. Features are extracted in
background threads a few batches ahead of inference, afresh for each run, so that memory does
not grow with the dataset (:class:`~graphkit.eval.inputs.RowReader`). A :class:`~graphkit.eval.gate.Gate` puts
limits on those deltas; the report records each breach (the CLI exits 1 on any).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from graphkit._progress import Clock, Counter, Stopwatch, eta_seconds, seconds_text
from graphkit.data.scorefiles import read_asv_scores
from graphkit.errors import DataError, UsageError
from graphkit.eval import scoring as M
from graphkit.eval.bench import check_batch_memory
from graphkit.eval.gate import Breach, Gate
from graphkit.eval.inputs import DataSource, EvalData, load_eval_data, run_batches, utterance_outputs
from graphkit.pipeline.provenance import data_identity, environment, execution_provider, weights_identity
from graphkit.recipe import Recipe
from graphkit.runners.select import EVAL_RUNNERS, RecipeRunners, RunnerChoice, parse_runner, runner_labels

log = logging.getLogger("graphkit")


@dataclass
class RunResult:
    runner: str
    batch: int | None
    metrics: dict[str, float]
    scores: np.ndarray  # per utterance (anti-spoofing) or per centroid/trial score
    embeddings: np.ndarray | None = None
    agreement: dict[str, float] = field(default_factory=dict)
    curve: tuple[np.ndarray, np.ndarray] | None = None  # (false accept, false reject) rates
    execution_provider: str | None = None  # where it ran (graphkit.pipeline.provenance)


@dataclass
class EvalReport:
    """What ``graphkit eval`` measured: one :class:`RunResult` per runner and batch size, the
    first being the reference the others are compared with."""

    recipe: Recipe
    task: str
    utterances: int
    trials: int
    main_metric: str
    batch_sizes: list[int]
    models_dir: Path
    results: list[RunResult]
    gate: Gate = field(default_factory=Gate)
    breaches: list[Breach] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)  # environment, weights, data

    @property
    def reference(self) -> RunResult:
        return self.results[0]

    def as_dict(self) -> dict[str, Any]:
        ref = self.reference
        return {
            "recipe": {"name": self.recipe.name, "path": str(self.recipe.path), "sha256": self.recipe.sha256},
            "task": self.task,
            "utterances": self.utterances,
            "trials": self.trials,
            "main_metric": self.main_metric,
            "reference": ref.runner,
            "batch_sizes": list(self.batch_sizes),
            "models_dir": str(self.models_dir),
            "results": [
                {
                    "runner": r.runner,
                    "batch": r.batch,
                    "execution_provider": r.execution_provider,
                    "metrics": r.metrics,
                    "agreement": r.agreement,
                    "delta_to_reference": {k: v - ref.metrics[k] for k, v in r.metrics.items()},
                }
                for r in self.results
            ],
            "gate": {
                **self.gate.as_dict(),
                "passed": not self.breaches,
                "breaches": [b.as_dict() for b in self.breaches],
            },
            **self.provenance,
        }


def task_metrics(
    values: np.ndarray, data: EvalData, asv: Any = None
) -> tuple[dict[str, float], np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The task's metrics, the scores they were computed from, and the DET curve (FAR, FRR)
    of the main metric's positives and negatives."""
    if data.kind == "spoof":
        labels = np.array(data.labels)
        bona, spoof = values[labels == "bonafide"], values[labels == "spoof"]
        if not len(bona) or not len(spoof):
            raise DataError("anti-spoofing needs both bona fide and spoof utterances")
        eer, _ = M.compute_eer(bona, spoof)
        out = {"eer_percent": 100 * float(eer), "roc_auc": M.roc_auc(bona, spoof)}
        if asv is not None:
            out["min_tdcf"] = float(M.min_tdcf(bona, spoof, *asv))
        frr, far, _ = M.compute_det_curve(bona, spoof)
        return out, values, (far, frr)
    tgt, non = M.centroid_scores(values, data.speakers)
    out = {"centroid_roc_auc": M.roc_auc(tgt, non)}
    scores = np.concatenate([tgt, non])
    pos, neg = tgt, non
    if data.trials:
        by_id = dict(zip(data.utterance_ids, values))
        trial_scores, labels = M.trial_scores(by_id, data.trials)
        t, n = trial_scores[labels], trial_scores[~labels]
        eer, _ = M.compute_eer(t, n)
        out.update(
            {
                "eer_percent": 100 * float(eer),
                "min_dcf_0.01": M.min_dcf(t, n, 0.01),
                "min_dcf_0.05": M.min_dcf(t, n, 0.05),
                "trial_roc_auc": M.roc_auc(t, n),
            }
        )
        scores = np.concatenate([scores, trial_scores])
        pos, neg = t, n
    frr, far, _ = M.compute_det_curve(pos, neg)
    return out, scores, (far, frr)


def agreement(result: RunResult, reference: RunResult) -> dict[str, float]:
    out = {"max_abs_score_delta": float(np.max(np.abs(result.scores - reference.scores)))}
    if result.embeddings is not None and reference.embeddings is not None:
        a, b = result.embeddings, reference.embeddings
        cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        out["min_cosine"] = float(np.min(cos))
    return out


def main_metric(kind: str, has_trials: bool) -> str:
    if kind == "spoof":
        return "eer_percent"
    return "eer_percent" if has_trials else "centroid_roc_auc"


def evaluate(
    recipe: Recipe,
    data: Sequence[DataSource],
    *,
    runners: Sequence[str] = (),
    batch_sizes: Sequence[int] | None = None,
    models_dir: Path | None = None,
    weights: Path | None = None,
    trials: Path | None = None,
    asv_scores: Path | None = None,
    limit: int | None = None,
    gate: Gate = Gate(),  # noqa: B008 - frozen, so a shared default is safe
) -> EvalReport:
    """The task's metric for every runner (``--runner`` values; default torch where the source is
    a built-in model, export and graphkit) and batch size, against the first runner's; the
    ``gate``'s breaches are in the report."""
    task = recipe.task
    if task is None:
        raise UsageError(f"{recipe.path}: the recipe has no 'task' section; graphkit eval needs one")
    choices = [parse_runner(r, EVAL_RUNNERS) for r in runners] or _default_runners(recipe)
    batch_sizes = list(batch_sizes or recipe.batch_sizes)
    n_results = sum(len(batch_sizes) if c.per_batch else 1 for c in choices)
    gate.check_task(task.kind, asv_scores=asv_scores is not None, results=n_results)
    factory = RecipeRunners(recipe, models_dir=models_dir, weights=weights)
    factory.check(choices, batch_sizes)  # before any feature is extracted or reference run
    check_batch_memory(factory, choices, batch_sizes, batch_free=False)
    asv = read_asv_scores(asv_scores) if asv_scores else None
    prepared = load_eval_data(recipe, data, trials=trials, limit=limit, workers=2)
    provenance = {  # taken when the run starts: its timestamp is the run's
        "environment": environment(),
        "weights": weights_identity(recipe, weights),
        "data": data_identity(data, trials=trials, limit=limit),
    }
    if task.kind == "speaker_verification":
        gate.check_trials(bool(prepared.trials))
    log.info(
        "eval %s: %d utterances, %d rows, runners %s, batch sizes %s",
        recipe.name,
        len(prepared.utterance_ids),
        prepared.n_rows,
        ", ".join(str(c) for c in choices),
        batch_sizes,
    )
    results: list[RunResult] = []

    def run(choice: RunnerChoice, label: str, batch: int | None, head: str, eta: str) -> None:
        several = len(batch_sizes) > 1
        b = batch or min(8, prepared.n_rows)
        log.info("%s  %d rows in batches of %d ...%s", head, prepared.n_rows, b, eta)
        with factory.open(choice, batch, label=label, several=several, input_names=[task.input]) as runner:
            progress = progress_lines(head, prepared.n_rows)
            rows = run_batches(runner, prepared, b, task.input, task.output, progress)
            provider = execution_provider(runner)
        values = utterance_outputs(rows, prepared, task)
        metrics, scores, curve = task_metrics(values, prepared, asv)
        emb = values if task.kind == "speaker_verification" else None
        results.append(
            RunResult(label, batch, metrics, scores, emb, curve=curve, execution_provider=provider)
        )

    labels = runner_labels(choices)  # two files= folders: files:om_a, files:om_b
    plan = [(c, name, None) for c, name in zip(choices, labels) if not c.per_batch]
    plan += [(c, f"{name} bs{b}", b) for b in batch_sizes for c, name in zip(choices, labels) if c.per_batch]
    width, digits = max(len(label) for _, label, _ in plan), len(str(len(plan)))
    watch, eta = Stopwatch(), ""
    for k, (choice, label, batch) in enumerate(plan):
        run(choice, label, batch, f"eval [{k + 1:>{digits}}/{len(plan)}] {label:<{width}}", eta)
        left = eta_seconds(k + 1, len(plan), watch.seconds)  # at the average run's pace so far
        eta = f" (all runs: ETA {seconds_text(left)})" if left is not None else ""
    for r in results[1:]:
        r.agreement = agreement(r, results[0])
    metric = main_metric(prepared.kind, bool(prepared.trials))
    n_utts, n_trials = len(prepared.utterance_ids), len(prepared.trials)
    report = EvalReport(recipe, task.kind, n_utts, n_trials, metric, batch_sizes, factory.models_dir, results)
    report.gate, report.breaches = gate, gate.breaches(results)
    report.provenance = provenance
    return report


def _default_runners(recipe: Recipe) -> list[RunnerChoice]:
    kinds = ["torch"] if recipe.source.model is not None else []
    return [RunnerChoice(k) for k in [*kinds, "export", "graphkit"]]


def progress_lines(head: str, total: int, clock: Clock = time.monotonic) -> Callable[[int, int], None]:
    """A :func:`~graphkit.eval.inputs.run_batches` callback: ``head`` then rows done of
    ``total``, elapsed and ETA, throttled (:class:`graphkit._progress.Counter`: at most a line
    every 5 s, about one per 10 %), and always the last line with the run's time."""
    counter = Counter(total, "rows", clock=clock)

    def report(done: int, _total: int) -> None:
        text = counter.update(done)
        if text is not None:
            log.info("%s  %s", head, text)

    return report
