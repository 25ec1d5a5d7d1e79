"""``graphkit bisect``: the first pass, and within it the first rewrite site, that breaks a model.

The recipe's passes run once, in order, at one batch size, keeping every intermediate model.
A *gate* says whether a model is still good: by default the recipe's parity tolerance against
the unmodified model on the parity rows (the check ``apply`` makes on each final model), or,
with eval data, the task's metric within ``max_delta`` of the unmodified model's.

1. The final model is checked; when it passes there is nothing to find.
2. Binary search over the prefixes of the pass list finds the first k whose model fails while
   the model of k-1 passes: pass k is the one that breaks it.
3. When that pass exposes its sites (``sites: Sites``), binary search over "rewrite only the
   first j of its sites" finds the first j that fails: site j is the first bad one. The site is
   then also checked alone, to tell a site that is wrong by itself from one that is wrong only
   together with the sites before it.

Both searches assume that once broken a model stays broken as more passes or sites apply; the
boundary they report is checked on both sides either way (k-1 passes, k fails).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from graphkit.errors import UsageError
from graphkit.eval.inputs import DataSource
from graphkit.ir.ort import OrtFailure
from graphkit.passes._infra import PassRegistry, Sites, first_sites
from graphkit.pipeline.instruments import Checker, Keep, Only, OpCount, Progress, SelectSites, Timing
from graphkit.pipeline.manager import PassManager
from graphkit.pipeline.reference import Reference
from graphkit.pipeline.steps import Pipeline
from graphkit.recipe import PassStep, Recipe

log = logging.getLogger("graphkit")

Gate = Callable[[onnx.ModelProto], "str | None"]  # None: the model is good; else why not


@dataclass
class BisectReport:
    """What bisect found. Passes and sites are numbered from 1, in the text and the JSON alike:
    step k is ``passes[k - 1]``; site j is the j-th the pass offers (its label is the model's
    own name for the place, whatever number that name holds)."""

    recipe: str
    batch: int
    gate: str
    passes: list[str]
    final_breach: str | None = None
    first_bad_step: int | None = None  # 1-based: passes[first_bad_step - 1] broke the model
    pass_where: str | None = None
    pass_breach: str | None = None
    exposes_sites: bool = False
    sites_total: int | None = None
    first_bad_site: int | None = None  # 1-based, in the order the pass offers its sites
    site_label: str | None = None
    site_breach: str | None = None
    site_alone_breach: str | None = None  # None: the site alone keeps the model good
    checks: int = 0
    provenance: dict[str, Any] = field(default_factory=dict)  # environment, weights

    @property
    def first_bad_pass(self) -> str | None:
        """The name of the pass that broke the model."""
        return None if self.first_bad_step is None else self.passes[self.first_bad_step - 1]

    def as_dict(self) -> dict[str, Any]:
        """``graphkit bisect --json``: every number as the text shows it (``"step": 2`` is the
        text's "#2", ``"site": 7`` its "#7 of 10")."""
        return {
            "recipe": self.recipe,
            "batch": self.batch,
            "gate": self.gate,
            "checks": self.checks,
            "passes": [{"step": k, "name": name} for k, name in enumerate(self.passes, 1)],
            "final_breach": self.final_breach,
            "first_bad_pass": self._bad_pass(),
            "sites": self._sites() if self.first_bad_step is not None else None,
            **self.provenance,
        }

    def _bad_pass(self) -> dict[str, Any] | None:
        if self.first_bad_step is None:
            return None
        step, where, breach = self.first_bad_step, self.pass_where, self.pass_breach
        return {"step": step, "name": self.first_bad_pass, "where": where, "breach": breach}

    def _sites(self) -> dict[str, Any]:
        bad = None
        if self.first_bad_site is not None:
            bad = {
                "site": self.first_bad_site,
                "label": self.site_label,
                "breach": self.site_breach,  # with sites 1..site rewritten
                "alone_breach": self.site_alone_breach,  # with this site alone (null: it passes)
            }
        return {"exposed": self.exposes_sites, "total": self.sites_total, "first_bad": bad}


class ToleranceGate:
    """The recipe's parity tolerance against the unmodified model (no per-pass allowance)."""

    name = "parity tolerance"

    def __init__(self, reference: Reference, batch: int) -> None:
        self.reference = reference
        self.batch = batch

    def __call__(self, model: onnx.ModelProto) -> str | None:
        try:
            measured = self.reference.measure(model.SerializeToString(), where=f"at batch {self.batch}")
        except OrtFailure as exc:
            return f"onnxruntime cannot run it: {exc}"
        return measured.failure


def bisect_recipe(
    recipe: Recipe,
    *,
    batch: int | None = None,
    weights: Path | None = None,
    registry: PassRegistry | None = None,
    data: Sequence[DataSource] = (),
    trials: Path | None = None,
    limit: int | None = None,
    metric: str | None = None,
    max_delta: float = 0.0,
    gate_factory: Callable[[Any, int], tuple[str, Gate]] | None = None,
) -> BisectReport:
    """Find the first pass and site that break the recipe's model (see the module docstring).

    The gate is the parity tolerance; with ``data`` (eval datasets; ``trials``, ``limit``,
    ``metric`` and ``max_delta`` apply to it) the task's metric, or ``gate_factory(source,
    batch)`` returning (a name, a gate). Without ``batch``, the recipe's batch sizes are tried
    in order and the first one whose final model fails is bisected.
    """
    if batch is not None and batch < 1:
        raise UsageError("--batch must be at least 1")
    if data:
        from graphkit.eval.inputs import load_eval_data

        if limit is not None and limit < 2:
            raise UsageError("--limit must be at least 2")
        prepared = load_eval_data(recipe, data, trials=trials, limit=limit, workers=2)
        gate_factory = metric_gate_factory(recipe, prepared, metric, max_delta)
    elif metric or trials or limit is not None:
        raise UsageError("--metric, --trials and --limit gate on a metric: give --data too")
    from graphkit.pipeline.reference import Feeds
    from graphkit.pipeline.source import load_source

    registry = registry or PassRegistry()
    source = load_source(recipe, weights=weights)
    pipeline = Pipeline.from_recipe(recipe)
    steps = pipeline.steps
    feeds = Feeds(recipe, source.reference, source.outputs) if gate_factory is None else None

    def make_gate(b: int) -> tuple[str, Gate]:
        if gate_factory is not None:
            return gate_factory(source, b)
        assert feeds is not None
        return ToleranceGate.name, ToleranceGate(feeds.for_batch(b), b)

    candidates = [batch] if batch is not None else list(recipe.batch_sizes)
    provenance = _provenance(recipe, weights, data, trials, limit)
    manager = PassManager(registry, [Timing(), OpCount(), Checker(), Progress("bisect ")])
    report = None
    for b in candidates:
        gate_name, gate = make_gate(b)
        models = _run_prefixes(pipeline, manager, source.model, b)
        report = BisectReport(str(recipe.path), b, gate_name, [s.name for s in steps], provenance=provenance)
        report.final_breach = _check(gate, models[-1], report)
        if report.final_breach is not None:
            _find_pass(gate, models, steps, report)
            _find_site(gate, pipeline, manager, models, registry, report)
            return report
        log.info("batch %d: the final model passes the %s", b, gate_name)
    assert report is not None
    return report


def _provenance(
    recipe: Recipe, weights: Path | None, data: Sequence[DataSource], trials: Path | None, limit: int | None
) -> dict[str, Any]:
    """The environment, weights and data of the run; every gate runs on graphkit's onnxruntime
    CPU sessions."""
    from graphkit.ir.ort import CPU
    from graphkit.pipeline.provenance import data_identity, environment, parity_data, weights_identity

    return {
        "environment": environment(),
        "execution_provider": CPU,
        "weights": weights_identity(recipe, weights),
        "data": data_identity(data, trials=trials, limit=limit) if data else parity_data(recipe),
    }


def _run_prefixes(
    pipeline: Pipeline, manager: PassManager, model: onnx.ModelProto, batch: int
) -> list[onnx.ModelProto]:
    """models[k] = the model after the first k passes (models[0] is the source): one run of
    every pass at ``batch``, keeping each intermediate model."""
    keep = Keep()
    pipeline.run(manager, model, stage="all", batch=batch, extra=[keep])
    return [model, *keep.models]


def _check(gate: Gate, model: onnx.ModelProto, report: BisectReport) -> str | None:
    report.checks += 1
    return gate(model)


def _find_pass(
    gate: Gate, models: list[onnx.ModelProto], steps: Sequence[PassStep], report: BisectReport
) -> None:
    good, bad = 0, len(steps)  # models[0] is the reference itself; models[-1] failed
    breach = report.final_breach
    while bad - good > 1:
        mid = (good + bad) // 2
        why = _check(gate, models[mid], report)
        if why is None:
            good = mid
        else:
            bad, breach = mid, why
    report.first_bad_step = bad  # models[bad] is the model after passes 1..bad
    report.pass_where = steps[bad - 1].where
    report.pass_breach = breach


def _find_site(
    gate: Gate,
    pipeline: Pipeline,
    manager: PassManager,
    models: list[onnx.ModelProto],
    registry: PassRegistry,
    report: BisectReport,
) -> None:
    assert report.first_bad_step is not None
    k = report.first_bad_step - 1  # 0-based below: the pipeline's own indices
    step, before = pipeline.steps[k], models[k]
    spec = registry.get(step.name)
    report.exposes_sites = spec.takes_sites
    if not spec.takes_sites:
        return
    batch = report.batch

    def with_sites(sites: Sites) -> onnx.ModelProto:  # pass k alone, rewriting the selected sites
        selection = [Only({k}), SelectSites(k, sites)]
        after, _ = pipeline.run(manager, before, stage="all", batch=batch, extra=selection)
        return after

    everything = Sites()
    full = with_sites(everything)
    report.sites_total = len(everything.offered)
    if report.sites_total == 0:
        return
    whole = _check(gate, full, report)  # as in the prefix search, but it costs one check to be sure
    if whole is None:
        return  # the pass's damage is not in its sites (e.g. a change it makes everywhere)
    good, bad, breach = 0, report.sites_total, whole
    while bad - good > 1:
        mid = (good + bad) // 2
        why = _check(gate, with_sites(first_sites(mid)), report)
        if why is None:
            good = mid
        else:
            bad, breach = mid, why
    site = bad - 1
    if good == 0 and _check(gate, with_sites(first_sites(0)), report) is not None:
        return  # even with no site rewritten the pass breaks the model: not a site's doing
    report.first_bad_site = site + 1
    report.site_label = everything.offered[site]
    report.site_breach = breach
    report.site_alone_breach = _check(gate, with_sites(Sites(lambda i: i == site)), report)


def render(report: BisectReport) -> str:
    lines = [f"bisect {report.recipe} at batch {report.batch} (gate: {report.gate}, {report.checks} checks)"]
    if report.final_breach is None:
        lines.append("the final model passes: nothing to bisect")
        return "\n".join(lines)
    lines.append(f"final model: {report.final_breach}")
    step, name = report.first_bad_step, report.first_bad_pass
    assert step is not None
    before = ", ".join(report.passes[: step - 1]) or "none"
    lines.append(f"first bad pass: #{step} '{name}' ({report.pass_where}); passes before it: {before}")
    lines.append(f"  {report.pass_breach}")
    if not report.exposes_sites:
        lines.append(f"  '{name}' does not expose its sites; it cannot be narrowed further")
    elif report.first_bad_site is None:
        lines.append(
            f"  {report.sites_total} site(s); no single site is to blame (the pass breaks the model "
            "even with none of its sites rewritten, or only with all of them)"
        )
    else:
        site = report.first_bad_site
        lines.append(f"first bad site: #{site} of {report.sites_total}: {report.site_label}")
        lines.append(f"  with sites 1..{site}: {report.site_breach}")
        alone = report.site_alone_breach
        lines.append(
            "  alone: "
            + (alone if alone else "passes (it breaks the model only together with the sites before it)")
        )
    return "\n".join(lines)


class MetricGate:
    """The task's metric on real data within ``max_delta`` (absolute) of the unmodified model's.

    Every checked model runs the whole (``--limit``-ed) dataset, so this gate costs a full
    evaluation per check; bisection keeps that to about log2(passes) + log2(sites) checks.
    """

    def __init__(self, recipe: Recipe, data: Any, metric: str, max_delta: float, batch: int) -> None:
        self.recipe, self.data, self.metric = recipe, data, metric
        self.max_delta, self.batch = max_delta, batch
        self.name = f"{metric} within {max_delta:g} of the unmodified model"
        self.reference: float | None = None

    def value(self, model: onnx.ModelProto) -> float:
        from graphkit.eval.evaluate import task_metrics
        from graphkit.eval.inputs import run_batches, utterance_outputs
        from graphkit.runners.select import open_runner

        task = self.recipe.task
        assert task is not None
        with open_runner("onnxruntime", model=model, output_names=[task.output]) as runner:
            rows = run_batches(runner, self.data, self.batch, task.input, task.output)
        metrics, _, _ = task_metrics(utterance_outputs(rows, self.data, task), self.data)
        if self.metric not in metrics:
            raise UsageError(f"--metric {self.metric}: this task reports {', '.join(sorted(metrics))}")
        return float(metrics[self.metric])

    def __call__(self, model: onnx.ModelProto) -> str | None:
        got = self.value(model)
        assert self.reference is not None
        delta = abs(got - self.reference)
        if delta <= self.max_delta:
            return None
        return (
            f"{self.metric} {got:.6g} vs {self.reference:.6g} for the unmodified model "
            f"(|Δ| {delta:.3g} > {self.max_delta:g}) at batch {self.batch}"
        )


def metric_gate_factory(
    recipe: Recipe, data: Any, metric: str | None, max_delta: float
) -> Callable[[Any, int], tuple[str, Gate]]:
    """A ``gate_factory`` for :func:`bisect_recipe` that gates on the task's metric."""
    from graphkit.eval.evaluate import main_metric

    chosen = metric or main_metric(data.kind, bool(data.trials))
    if not max_delta >= 0:
        raise UsageError("--max-delta must be >= 0")

    def factory(source: Any, batch: int) -> tuple[str, Gate]:
        gate = MetricGate(recipe, data, chosen, max_delta, batch)
        gate.reference = gate.value(source.reference)
        log.info("bisect gate: %s = %.6g for the unmodified model", chosen, gate.reference)
        return gate.name, gate

    return factory
