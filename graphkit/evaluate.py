"""``graphkit eval``: the task's metric per batch size and runner, against the reference.

For each batch size the dataset's inputs are grouped into batches exactly as
``graphkit preprocess`` writes them (so outputs an NPU host wrote can be read back by key),
every runner infers them, and the task's metric is computed from the valid rows:

* speaker verification: the ECAPA guide's all-vs-centroid ROC AUC, and with a trial list the
  trial-based EER, minDCF (p_target 0.01 and 0.05) and ROC AUC;
* anti-spoofing: EER and ROC AUC of the bona fide score, and min t-DCF when ASV scores are given.

Agreement with the reference runner (torch when it is evaluated) is reported per utterance:
max |Δ| of the scores and the minimum cosine between embeddings. Features are extracted once,
in a background thread that runs ahead of inference.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from graphkit.errors import DataError, UsageError
from graphkit.recipe import Recipe

log = logging.getLogger("graphkit")


@dataclass
class EvalData:
    """The dataset turned into model rows: ``rows[i]`` belongs to utterance ``owner[i]``."""

    kind: str
    utterance_ids: list[str]
    speakers: list[str | None]
    labels: list[str | None]
    trials: list[Any]
    owner: np.ndarray
    features: Callable[[int], np.ndarray]  # row index -> input row (blocks until extracted)
    n_rows: int


@dataclass
class RunResult:
    runner: str
    batch: int | None
    metrics: dict[str, float]
    scores: np.ndarray  # per utterance (anti-spoofing) or per centroid/trial score
    embeddings: np.ndarray | None = None
    agreement: dict[str, float] = field(default_factory=dict)
    curve: tuple[np.ndarray, np.ndarray] | None = None  # (false accept, false reject) rates


# -- data ----------------------------------------------------------------------------------------


def load_eval_data(
    recipe: Recipe,
    data: Sequence[tuple[Path, str | None]],
    *,
    trials: Path | None = None,
    limit: int | None = None,
    workers: int = 1,
) -> EvalData:
    from graphkit.datasets import load_speaker_dataset, load_spoof_dataset

    task = recipe.task
    if task is None:
        raise UsageError(f"{recipe.path}: the recipe has no 'task' section; graphkit eval needs one")
    if task.kind == "speaker_verification":
        if len(data) != 1 or data[0][1] is not None:
            raise UsageError("--data: speaker verification takes one dataset folder (no =label)")
        ds = load_speaker_dataset(data[0][0], trials=trials)
    else:
        ds = load_spoof_dataset(list(data))
    utts = list(ds.utterances)
    if limit is not None and limit < len(utts):
        keep = np.linspace(0, len(utts) - 1, limit).round().astype(int)
        utts = [utts[i] for i in sorted(set(keep.tolist()))]
    ids = {u.id for u in utts}
    trial_list = [t for t in ds.trials if t.enroll in ids and t.test in ids]
    if ds.trials and not any(t.target for t in trial_list):
        raise DataError(
            f"--limit {limit} leaves no target trial of the trial list (too few utterances per "
            "speaker); raise it or drop it"
        )
    crops = task.crops
    owner = np.repeat(np.arange(len(utts)), crops)
    inp = next(i for i in recipe.inputs if i.name == task.input)
    row_shape = tuple(d for k, d in enumerate(inp.shape) if k != inp.batch_axis)
    extractor = _Extractor(utts, task.features, crops, row_shape, inp.dtype, workers)
    return EvalData(
        ds.kind,
        [u.id for u in utts],
        [u.speaker for u in utts],
        [u.label for u in utts],
        trial_list,
        owner,
        extractor.row,
        len(owner),
    )


class _Extractor:
    """Extracts every utterance's rows in background threads, in order; ``row(i)`` waits."""

    def __init__(self, utts, features: str, crops: int, row_shape, dtype: str, workers: int) -> None:
        self.utts, self.features, self.crops = utts, features, crops
        self.row_shape, self.dtype = row_shape, dtype
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="features")
        self.futures = [self.pool.submit(self._rows, i) for i in range(len(utts))]
        self.lock = threading.Lock()

    def _rows(self, i: int) -> np.ndarray:
        from graphkit import audio
        from graphkit.samples import row_from_audio

        path = self.utts[i].path
        if self.features == "ecapa_logmel":
            return audio.ecapa_features(path, frames=self.row_shape[-1], crops=self.crops).astype(self.dtype)
        return row_from_audio(path, self.features, self.row_shape)[None].astype(self.dtype)

    def row(self, index: int) -> np.ndarray:
        utt, crop = divmod(index, self.crops)
        return self.futures[utt].result()[crop]


# -- running -------------------------------------------------------------------------------------


def run_batches(
    runner: Any,
    data: EvalData,
    batch: int,
    input_name: str,
    output: str,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """All rows through ``runner`` in batches of ``batch`` (the preprocess layout); the
    ``output`` rows, padding dropped."""
    from graphkit.preprocess import batch_key, make_batches

    batches = make_batches(data.n_rows, batch)
    out = []
    for k, b in enumerate(batches):
        x = np.stack([data.features(int(i)) for i in b.items])
        result = runner.infer({input_name: x}, key=batch_key(input_name, b.index))
        out.append(np.asarray(result[output])[: b.valid])
        if progress:
            progress(k + 1, len(batches))
    return np.concatenate(out)


def utterance_outputs(rows: np.ndarray, data: EvalData, task: Any) -> np.ndarray:
    """Per utterance: the bona fide score, or the crop-averaged, L2-normalised embedding."""
    if task.kind == "anti_spoofing":
        return rows[:, task.score_index].astype(np.float64)
    emb = rows.reshape(len(data.utterance_ids), task.crops, -1).mean(axis=1).astype(np.float64)
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


def task_metrics(
    values: np.ndarray, data: EvalData, asv: Any = None
) -> tuple[dict[str, float], np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The task's metrics, the scores they were computed from, and the DET curve (FAR, FRR)
    of the main metric's positives and negatives."""
    from graphkit import metrics as M

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


# -- the command ---------------------------------------------------------------------------------

RUNNER_CHOICES = ("torch", "export", "graphkit", "files", "ais_bench", "ort_cuda")
BATCH_FREE = ("torch", "export")  # any batch: evaluated once, shown on every row


def parse_runner(text: str) -> tuple[str, str | None]:
    """'torch' | 'export' | 'graphkit' | 'files=DIR' | 'ais_bench[=DEVICE]'."""
    from graphkit.suggest import did_you_mean

    kind, _, arg = text.partition("=")
    if kind not in RUNNER_CHOICES:
        raise UsageError(
            f"--runner: unknown runner '{kind}' (runners: {', '.join(RUNNER_CHOICES)})"
            f"{did_you_mean(kind, RUNNER_CHOICES)}"
        )
    if kind == "files" and not arg:
        raise UsageError("--runner files=DIR: name the folder holding the NPU host's output files")
    return kind, arg or None


def main_metric(kind: str, has_trials: bool) -> str:
    if kind == "spoof":
        return "eer_percent"
    return "eer_percent" if has_trials else "centroid_roc_auc"


def evaluate(
    recipe: Recipe,
    data: Sequence[tuple[Path, str | None]],
    *,
    runners: Sequence[str] = (),
    batch_sizes: Sequence[int] | None = None,
    models_dir: Path | None = None,
    weights: Path | None = None,
    trials: Path | None = None,
    asv_scores: Path | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    from graphkit.metrics import read_asv_scores
    from graphkit.runners.onnxruntime import OnnxruntimeRunner

    task = recipe.task
    if task is None:
        raise UsageError(f"{recipe.path}: the recipe has no 'task' section; graphkit eval needs one")
    specs = [parse_runner(r) for r in runners] or _default_runners(recipe)
    batch_sizes = list(batch_sizes or recipe.batch_sizes)
    models_dir = models_dir or Path("out") / recipe.name
    asv = read_asv_scores(asv_scores) if asv_scores else None
    data_ = load_eval_data(recipe, data, trials=trials, limit=limit, workers=2)
    log.info(
        "eval %s: %d utterances, %d rows, runners %s, batch sizes %s",
        recipe.name,
        len(data_.utterance_ids),
        data_.n_rows,
        ", ".join(k for k, _ in specs),
        batch_sizes,
    )
    results: list[RunResult] = []

    def run(runner, label: str, batch: int | None) -> RunResult:
        b = batch or min(8, data_.n_rows)
        rows = run_batches(runner, data_, b, task.input, task.output, _progress(label))
        values = utterance_outputs(rows, data_, task)
        metrics, scores, curve = task_metrics(values, data_, asv)
        emb = values if task.kind == "speaker_verification" else None
        res = RunResult(label, batch, metrics, scores, emb, curve=curve)
        results.append(res)
        return res

    plain = None
    for kind, _ in specs:
        if kind == "torch":
            from graphkit.runners.torch import TorchRunner
            from graphkit.source import build_module

            with TorchRunner(
                build_module(recipe, weights),
                input_names=[task.input],
                output_names=list(recipe.outputs),
                label="torch",
            ) as r:
                run(r, "torch", None)
        elif kind == "export":
            if plain is None:
                from graphkit.source import load_source

                plain = load_source(recipe, weights=weights).model
            with OnnxruntimeRunner(plain, label="plain export") as r:
                run(r, "plain export", None)
    for b in batch_sizes:
        for kind, arg in specs:
            if kind in BATCH_FREE:
                continue
            with _open_batch_runner(kind, arg, recipe, models_dir, b, len(batch_sizes) > 1) as r:
                run(r, r.label, b)
    return _report(recipe, data_, results, batch_sizes, models_dir)


def _default_runners(recipe: Recipe) -> list[tuple[str, str | None]]:
    specs = [("torch", None)] if recipe.source.model is not None else []
    return [*specs, ("export", None), ("graphkit", None)]


def _open_batch_runner(
    kind: str, arg: str | None, recipe: Recipe, models_dir: Path, batch: int, several: bool
) -> Any:
    from graphkit.runners.ais_bench import AisBenchRunner
    from graphkit.runners.files import FilesRunner
    from graphkit.runners.onnxruntime import OnnxruntimeRunner

    stem = models_dir / f"{recipe.name}_bs{batch}"
    if kind in ("graphkit", "ort_cuda"):
        path = stem.with_suffix(".onnx")
        if not path.is_file():
            raise UsageError(f"{path}: not found; run `graphkit apply {recipe.path} -o {models_dir}` first")
        providers = "auto" if kind == "ort_cuda" else "cpu"
        return OnnxruntimeRunner(path, providers=providers, label=f"graphkit bs{batch}")
    if kind == "ais_bench":
        return AisBenchRunner(stem, device_id=int(arg or 0), batch=batch, label=f"ais_bench bs{batch}")
    assert kind == "files" and arg is not None
    directory = Path(arg)
    if several and (directory / f"bs{batch}").is_dir():
        directory = directory / f"bs{batch}"
    shapes = _output_row_shapes(recipe, models_dir, batch)
    return FilesRunner(
        directory,
        output_names=list(recipe.outputs),
        output_shapes=shapes,
        batch=batch,
        label=f"files bs{batch}",
    )


def _output_row_shapes(recipe: Recipe, models_dir: Path, batch: int) -> dict[str, list[int]]:
    """Output row shapes (without the batch) from the emitted model of that batch size."""
    import onnx

    path = models_dir / f"{recipe.name}_bs{batch}.onnx"
    if not path.is_file():
        raise UsageError(
            f"{path}: the files runner reads output shapes from the emitted model; "
            f"run `graphkit apply {recipe.path} -o {models_dir}` first"
        )
    model = onnx.load(str(path), load_external_data=False)
    out = {}
    for o in model.graph.output:
        dims = [d.dim_value for d in o.type.tensor_type.shape.dim]
        out[o.name] = dims[1:]
    return out


def _progress(label: str) -> Callable[[int, int], None]:
    step = {"next": 0.0}

    def report(done: int, total: int) -> None:
        if done == total or done / total >= step["next"]:
            log.info("  %-16s %3d/%d batches", label, done, total)
            step["next"] = done / total + 0.25

    return report


def _report(
    recipe: Recipe, data: EvalData, results: list[RunResult], batch_sizes: Sequence[int], models_dir: Path
) -> dict[str, Any]:
    ref = results[0]
    for r in results[1:]:
        r.agreement = agreement(r, ref)
    metric = main_metric(data.kind, bool(data.trials))
    return {
        "recipe": {"name": recipe.name, "path": str(recipe.path), "sha256": recipe.sha256},
        "task": recipe.task.kind if recipe.task else None,
        "utterances": len(data.utterance_ids),
        "trials": len(data.trials),
        "main_metric": metric,
        "reference": ref.runner,
        "batch_sizes": list(batch_sizes),
        "models_dir": str(models_dir),
        "results": [
            {
                "runner": r.runner,
                "batch": r.batch,
                "metrics": r.metrics,
                "agreement": r.agreement,
                "delta_to_reference": {k: v - ref.metrics[k] for k, v in r.metrics.items()},
            }
            for r in results
        ],
        "_curves": {r.runner: r.curve for r in results},  # for the plot; not in the JSON
    }


def render_table(report: dict[str, Any]) -> str:
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
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return (
        f"{metric} ({report['utterances']} utterances"
        + (f", {report['trials']} trials)" if report["trials"] else ")")
        + "\n"
        + "\n".join(lines)
    )


def plot(report: dict[str, Any], path: Path) -> None:
    """ROC (speaker verification) or DET-style FRR/FAR (anti-spoofing) curves per runner."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    floor = 1e-4
    for name, (far, frr) in report["_curves"].items():
        ax.plot(np.maximum(far, floor), np.maximum(frr, floor), label=name, linewidth=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("false acceptance rate")
    ax.set_ylabel("false rejection rate")
    ax.set_title(f"{report['recipe']['name']}: DET curve ({report['main_metric']}) per runner")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    from graphkit.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
