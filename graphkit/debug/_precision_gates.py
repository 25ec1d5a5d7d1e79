"""The advisor's gates on a recipe's emitted model, and the run behind ``graphkit precision``.

- :class:`ParityGate`: the emulated model's outputs against the fp32 emitted model's on the
  parity feed (the recipe's seeded rows and real samples, at the model's batch), each output
  judged with :func:`graphkit.numerics.check` and the recipe's parity tolerance (or ``max_abs``).
- :class:`DataGate`: over an eval dataset, the task's metric (``max_delta``) or the per-utterance
  scores (``max_score_delta``) of the emulated model against the fp32 emitted model's. Each
  check is a whole evaluation of the dataset: use ``--limit``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from graphkit.ascend.precision import PrecisionConfig
from graphkit.data.samples import load_samples
from graphkit.debug.precision import KEEP_DTYPE_FILE, Advice, Verdict, advise, keep_dtype_text
from graphkit.errors import ModelError, UsageError
from graphkit.eval.inputs import DataSource
from graphkit.ir.io import load_model, write_bytes
from graphkit.ir.ort import Feed, OrtFailure, run_model
from graphkit.numerics import Check, Tolerance, check, failure_message, first_failure, worse
from graphkit.pipeline.reference import seeded_rows
from graphkit.recipe import Recipe

log = logging.getLogger("graphkit")


class ParityGate:
    """The emulated model against the fp32 one on fixed feeds, per output and tolerance."""

    def __init__(
        self, model: onnx.ModelProto, feeds: Sequence[Feed], tolerances: dict[str, Tolerance]
    ) -> None:
        self.feeds, self.tolerances = list(feeds), dict(tolerances)
        self.outputs = list(tolerances)
        tol = next(iter(tolerances.values()))
        self.name = f"parity tolerance ({tol.describe()})"
        try:
            self.reference = run_model(model, self.feeds, self.outputs)
        except OrtFailure as exc:
            raise ModelError(f"onnxruntime cannot run the emitted model: {exc}") from None

    def __call__(self, model: onnx.ModelProto) -> Verdict:
        try:
            got = run_model(model, self.feeds, self.outputs)
        except OrtFailure as exc:
            return Verdict(float("inf"), f"onnxruntime cannot run the emulated model: {exc}")
        worst: dict[str, Check] = {}
        for ref, cand in zip(self.reference, got):
            for name in self.outputs:
                c = check(ref[name], cand[name], self.tolerances[name])
                if name not in worst or worse(c, worst[name]):
                    worst[name] = c
        figure = max(c.max_abs for c in worst.values())
        found = first_failure(worst)
        if found is None:
            return Verdict(figure)
        name, c = found
        return Verdict(figure, failure_message("emulated", name, c, self.tolerances[name]))


class DataGate:
    """The emulated model's task metric (or scores) over a dataset against the fp32 model's."""

    def __init__(
        self,
        recipe: Recipe,
        data: Any,
        model: onnx.ModelProto,
        batch: int,
        *,
        metric: str | None,
        max_delta: float | None,
        max_score_delta: float | None,
    ) -> None:
        from graphkit.eval.evaluate import main_metric

        if (max_delta is None) == (max_score_delta is None):
            raise UsageError("with --data, give one of --max-delta (a metric) or --max-score-delta")
        self.recipe, self.data, self.batch = recipe, data, batch
        self.metric = metric or main_metric(data.kind, bool(data.trials))
        self.limit = max_delta if max_delta is not None else max_score_delta
        self.on_scores = max_score_delta is not None
        what = "per-utterance score" if self.on_scores else self.metric
        self.name = f"{what} within {self.limit:g} of the fp32 emitted model's"
        self.ref_metrics, self.ref_scores = self.evaluate(model)
        if not self.on_scores and self.metric not in self.ref_metrics:
            raise UsageError(
                f"--metric {self.metric}: this task reports {', '.join(sorted(self.ref_metrics))}"
            )

    def evaluate(self, model: onnx.ModelProto) -> tuple[dict[str, float], np.ndarray]:
        from graphkit.eval.evaluate import task_metrics
        from graphkit.eval.inputs import run_batches, utterance_outputs
        from graphkit.runners.base import Renamed
        from graphkit.runners.select import open_runner

        task = self.recipe.task
        assert task is not None
        ins, outs, bound = self.recipe.io_names()
        inner = open_runner("onnxruntime", model=model, label="precision")
        with Renamed(inner, ins, outs, set(bound)) as runner:
            rows = run_batches(runner, self.data, self.batch, task.input, task.output)
        metrics, scores, _ = task_metrics(utterance_outputs(rows, self.data, task), self.data)
        return {k: float(v) for k, v in metrics.items()}, np.asarray(scores, dtype=np.float64)

    def __call__(self, model: onnx.ModelProto) -> Verdict:
        metrics, scores = self.evaluate(model)
        if self.on_scores:
            with np.errstate(invalid="ignore"):
                d = np.abs(scores - self.ref_scores)
            figure = float(np.max(np.nan_to_num(d, nan=np.inf)))
            what = "max |Δ score|"
        else:
            figure = abs(metrics[self.metric] - self.ref_metrics[self.metric])
            what = f"|Δ {self.metric}| ({metrics[self.metric]:.6g} vs {self.ref_metrics[self.metric]:.6g})"
        if figure <= self.limit:
            return Verdict(figure)
        return Verdict(figure, f"{what} {figure:.3g} > {self.limit:g}")


def parity_feeds(recipe: Recipe, model: onnx.ModelProto, batch: int) -> list[Feed]:
    """The parity feed at ``batch`` under the emitted model's input names: the recipe's seeded
    rows, and its real samples (taken in turn to fill the batch) where it has any."""
    ins, _, bound = recipe.io_names()
    have = {i.name for i in model.graph.input}
    feeds = [seeded_rows(recipe.inputs, batch, recipe.parity.seed)]
    real: dict[str, np.ndarray] = {}
    for spec in recipe.parity.samples:
        inp = next(i for i in recipe.inputs if i.name == spec.input)
        rows = load_samples(spec, inp)
        if rows is not None and inp.batch_axis is not None:
            real[inp.name] = rows if inp.name not in real else np.concatenate([real[inp.name], rows])
    if real:
        feed = dict(feeds[0])
        for name, rows in real.items():
            axis = next(i.batch_axis for i in recipe.inputs if i.name == name)
            taken = np.take(rows, np.arange(batch) % len(rows), axis=0)
            feed[name] = np.moveaxis(taken, 0, axis or 0).astype(feed[name].dtype)
        feeds.append(feed)
    return [
        {ins.get(k, k): v for k, v in f.items() if k not in bound and ins.get(k, k) in have} for f in feeds
    ]


@dataclass(frozen=True)
class PrecisionRun:
    """Where the advice came from and where it went."""

    advice: Advice
    model: Path
    batch: int
    written: Path | None


def run_precision(
    recipe: Recipe,
    *,
    models_dir: Path | None = None,
    batch: int | None = None,
    mode: str | None = None,
    weights: Path | None = None,
    data: Sequence[DataSource] = (),
    trials: Path | None = None,
    limit: int | None = None,
    metric: str | None = None,
    max_delta: float | None = None,
    max_score_delta: float | None = None,
    max_abs: float | None = None,
    out: Path | None = None,
) -> PrecisionRun:
    """``graphkit precision``: advise on the emitted model of ``batch`` (default the recipe's
    smallest) in ``models_dir`` and write ``keep_dtype.cfg`` into ``out`` (default that folder)."""
    from graphkit.pipeline.verify import verify_outputs

    folder = Path("out") / recipe.name if models_dir is None else Path(models_dir)
    b = batch if batch is not None else min(recipe.batch_sizes)
    path = folder / f"{recipe.name}_bs{b}.onnx"
    if not path.is_file():
        raise UsageError(
            f"{path}: not found; run `graphkit apply {recipe.path} -o {folder} --batch {b}` first"
        )
    verify_outputs(folder, recipe, weights=weights, files=[path])
    model = load_model(path)
    config = _config(recipe, mode, folder)
    feeds = parity_feeds(recipe, model, b)
    gate: Any
    if data:
        from graphkit.eval.inputs import load_eval_data

        prepared = load_eval_data(recipe, data, trials=trials, limit=limit, workers=2)
        gate = DataGate(
            recipe, prepared, model, b, metric=metric, max_delta=max_delta, max_score_delta=max_score_delta
        )
    else:
        if metric or max_delta is not None or max_score_delta is not None or trials or limit is not None:
            raise UsageError("--metric, --max-delta, --max-score-delta, --trials and --limit need --data")
        _, outs, _ = recipe.io_names()
        spec = recipe.parity
        tolerances = {}
        for name in recipe.outputs:
            tol = spec.tolerance_for(name)
            tolerances[outs.get(name, name)] = tol if max_abs is None else Tolerance(max_abs, None, None)
        gate = ParityGate(model, feeds, tolerances)
    advice = advise(model, config, gate, feeds[-1], gate_name=gate.name)
    written = None
    if advice.found and advice.kept:
        written = (out or folder) / KEEP_DTYPE_FILE
        earlier = sorted(config.keep_dtype - set(advice.kept))  # the recipe's own entries stay
        write_bytes(written, keep_dtype_text([*earlier, *advice.kept]).encode())
    return PrecisionRun(advice, path, b, written)


def _config(recipe: Recipe, mode: str | None, base: Path) -> PrecisionConfig:
    """The recipe's own ATC precision settings (its files relative to ``base``, where atc.sh
    runs), with ``mode`` (--mode) in place of its mode."""
    config = PrecisionConfig.from_atc(recipe.atc, base)
    if mode is not None:  # an unknown mode is the config's own UsageError, naming the modes
        config = dataclasses.replace(config, mode=mode)
    return config
