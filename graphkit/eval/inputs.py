"""A dataset as model rows: features extracted in the background, batched as preprocess writes them.

:func:`load_eval_data` reads a dataset for a recipe's task and starts extracting every
utterance's input rows in background threads; :func:`run_batches` feeds them to a runner in the
batches ``graphkit preprocess`` writes (so outputs an NPU host wrote can be read back by key);
:func:`preprocess_recipe` writes those batches for an NPU host.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from graphkit.data.preprocess import BatchIndex, batch_key, make_batches, read_index, write_batches
from graphkit.errors import DataError, UsageError
from graphkit.recipe import Recipe

DataSource = tuple[Path, "str | None"]  # a dataset folder and its label (anti-spoofing), if any


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


def load_eval_data(
    recipe: Recipe,
    data: Sequence[DataSource],
    *,
    trials: Path | None = None,
    limit: int | None = None,
    workers: int = 1,
) -> EvalData:
    from graphkit.data.datasets import load_speaker_dataset, load_spoof_dataset

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
        from graphkit.data import audio
        from graphkit.data.samples import row_from_audio

        path = self.utts[i].path
        if self.features == "ecapa_logmel":
            return audio.ecapa_features(path, frames=self.row_shape[-1], crops=self.crops).astype(self.dtype)
        return row_from_audio(path, self.features, self.row_shape)[None].astype(self.dtype)

    def row(self, index: int) -> np.ndarray:
        utt, crop = divmod(index, self.crops)
        return self.futures[utt].result()[crop]


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


def preprocess_recipe(
    recipe: Recipe,
    data: Sequence[DataSource],
    *,
    batch: int,
    out: Path,
    trials: Path | None = None,
    limit: int | None = None,
) -> BatchIndex:
    """Write the dataset's input rows for ``recipe`` as batches of ``batch`` (the preprocess
    layout, :mod:`graphkit.data.preprocess`) into ``out``; returns the index written."""
    if batch < 1:
        raise UsageError("--batch must be at least 1")
    if len(recipe.inputs) != 1:
        raise UsageError("graphkit preprocess handles single-input models")
    prepared = load_eval_data(recipe, data, trials=trials, limit=limit, workers=2)
    task = recipe.task
    assert task is not None  # load_eval_data refuses a recipe without one

    def rows_for(items: Sequence[int]) -> dict[str, np.ndarray]:
        return {task.input: np.stack([prepared.features(int(i)) for i in items])}

    meta = {
        "recipe": str(recipe.path),
        "recipe_sha256": recipe.sha256,
        "data": [f"{path}={label}" if label else str(path) for path, label in data],
        "utterances": prepared.utterance_ids,
        "crops": task.crops,
    }
    write_batches(out, make_batches(prepared.n_rows, batch), rows_for, recipe.inputs, meta)
    return read_index(out)
