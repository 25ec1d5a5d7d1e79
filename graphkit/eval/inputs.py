"""A dataset as model rows: features extracted in the background, batched as preprocess writes them.

:func:`load_eval_data` reads a dataset for a recipe's task; each pass over it (one per runner
and batch size) opens a :class:`RowReader`, which extracts the utterances' input rows in
background threads at most a window of :data:`AHEAD_BATCHES` batches ahead of the rows being
read, and drops the rows of the utterances read. Memory is so bounded by the batch, not the
dataset (AASIST on 3,080 files held every row, 2.2 GB; the 71k-file ASVspoof LA eval set would
have needed ~18 GB), and an interrupt waits for no queued extraction. Extraction is
deterministic, so every pass reads the same bytes. :func:`run_batches` feeds the rows to a
runner in the batches ``graphkit preprocess`` writes (so outputs an NPU host wrote can be read
back by key); :func:`preprocess_recipe` writes those batches for an NPU host.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from graphkit.data.preprocess import BatchIndex, batch_key, make_batches, read_index, write_batches
from graphkit.errors import DataError, UsageError
from graphkit.recipe import Recipe

DataSource = tuple[Path, "str | None"]  # a dataset folder and its label (anti-spoofing), if any
AHEAD_BATCHES = 2  # a reader extracts this many batches ahead: one to overlap inference, one spare
MIN_WINDOW = 8  # utterances, so that small batches still keep both workers busy


@dataclass
class EvalData:
    """The dataset turned into model rows: ``rows[i]`` belongs to utterance ``owner[i]``."""

    kind: str
    utterance_ids: list[str]
    speakers: list[str | None]
    labels: list[str | None]
    trials: list[Any]
    owner: np.ndarray
    open_rows: Callable[[int], RowReader]  # batch size -> a reader for one pass over the rows
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
        extractor.reader,
        len(owner),
    )


class _Extractor:
    """How to extract one utterance's rows; :meth:`reader` opens a pass over all of them."""

    def __init__(self, utts, features: str, crops: int, row_shape, dtype: str, workers: int) -> None:
        self.utts, self.features, self.crops = utts, features, crops
        self.row_shape, self.dtype = tuple(row_shape), dtype
        self.workers = max(1, workers)

    def rows(self, i: int) -> np.ndarray:
        """Utterance ``i``'s rows, (crops, *row_shape)."""
        from graphkit.data import audio
        from graphkit.data.samples import row_from_audio

        path = self.utts[i].path
        if self.features == "ecapa_logmel":
            return audio.ecapa_features(path, frames=self.row_shape[-1], crops=self.crops).astype(self.dtype)
        return row_from_audio(path, self.features, self.row_shape)[None].astype(self.dtype)

    def reader(self, batch: int) -> RowReader:
        window = max(MIN_WINDOW, math.ceil(AHEAD_BATCHES * max(1, batch) / self.crops))
        return RowReader(
            self.rows, len(self.utts), self.crops, self.row_shape, self.dtype, window, self.workers
        )


class RowReader:
    """One pass over a dataset's rows, in order: ``rows(items)`` returns the rows of row indices
    ``items`` (never before a row already read), while workers extract the following utterances.

    At most ``window`` utterances are held at once (submitted, extracted or being read); those
    below the row read last are dropped. ``close()`` (the end of a ``with`` block) cancels the
    queued extractions; a running one finishes in its daemon thread, which nothing waits for.
    """

    def __init__(
        self,
        extract: Callable[[int], np.ndarray],
        n_utts: int,
        crops: int,
        row_shape: tuple[int, ...],
        dtype: str,
        window: int,
        workers: int,
    ) -> None:
        self._extract, self.n_utts, self.crops = extract, n_utts, crops
        self.row_shape, self.dtype, self.window = row_shape, dtype, max(1, window)
        self._held: dict[int, Future[np.ndarray]] = {}
        self._next = 0  # the next utterance to submit
        self._low = 0  # every utterance below it is dropped
        self.peak = 0  # the most utterances held at once (≤ window)
        self._pool = _DaemonPool(min(workers, self.window))

    def rows(self, items: Sequence[int]) -> np.ndarray:
        out = np.empty((len(items), *self.row_shape), self.dtype)
        for j, item in enumerate(items):
            utt, crop = divmod(int(item), self.crops)
            if utt < self._low:
                raise ValueError(f"row {item}: a RowReader reads forward only (utterance {utt} is dropped)")
            for done in range(self._low, min(utt, self._next)):
                self._held.pop(done).cancel()
            self._low = utt
            self._next = max(self._next, utt)  # a skip ahead submits from the row read
            self._fill()
            row = self._held[utt].result()[crop]
            if row.shape != self.row_shape:  # assigning would broadcast it silently
                raise DataError(
                    f"utterance {utt}: features shaped {row.shape}, the input's rows {self.row_shape}"
                )
            out[j] = row
        return out

    def _fill(self) -> None:
        while self._next < self.n_utts and self._next < self._low + self.window:
            self._held[self._next] = self._pool.submit(self._extract, self._next)
            self._next += 1
        self.peak = max(self.peak, len(self._held))

    def close(self) -> None:
        for future in self._held.values():
            future.cancel()
        self._held.clear()
        self._pool.close()

    def __enter__(self) -> RowReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _DaemonPool:
    """Worker threads that are daemons. ThreadPoolExecutor's are joined by an exit hook: Ctrl-C
    waited there for every queued extraction (5 to 40 s), and a second Ctrl-C broke the join with
    a traceback. Here an interrupted run exits at once; a worker busy with one file dies with it."""

    def __init__(self, workers: int) -> None:
        self._tasks: queue.SimpleQueue[tuple[Future[Any], Callable[[int], Any], int] | None]
        self._tasks = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"features-{k}", daemon=True) for k in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[[int], Any], arg: int) -> Future[Any]:
        future: Future[Any] = Future()
        self._tasks.put((future, fn, arg))
        return future

    def _work(self) -> None:
        while (task := self._tasks.get()) is not None:
            future, fn, arg = task
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while queued
            try:
                future.set_result(fn(arg))
            except BaseException as exc:  # handed to the reader, which raises it in the main thread
                future.set_exception(exc)

    def close(self) -> None:
        for _ in self._threads:
            self._tasks.put(None)


def run_batches(
    runner: Any,
    data: EvalData,
    batch: int,
    input_name: str,
    output: str,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """All rows through ``runner`` in batches of ``batch`` (the preprocess layout); the
    ``output`` rows, padding dropped. ``progress(rows done, rows in all)`` after each batch."""
    batches = make_batches(data.n_rows, batch)
    out = []
    done = 0
    with data.open_rows(batch) as reader:
        for b in batches:
            x = reader.rows(b.items)
            result = runner.infer({input_name: x}, key=batch_key(input_name, b.index))
            out.append(np.asarray(result[output])[: b.valid])
            del x  # the next batch's rows are built before this name would be rebound
            done += b.valid
            if progress:
                progress(done, data.n_rows)
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

    meta = {
        "recipe": str(recipe.path),
        "recipe_sha256": recipe.sha256,
        "data": [f"{path}={label}" if label else str(path) for path, label in data],
        "utterances": prepared.utterance_ids,
        "crops": task.crops,
    }
    with prepared.open_rows(batch) as reader:  # write_batches asks for the batches in order

        def rows_for(items: Sequence[int]) -> dict[str, np.ndarray]:
            return {task.input: reader.rows(items)}

        write_batches(out, make_batches(prepared.n_rows, batch), rows_for, recipe.inputs, meta)
    return read_index(out)
