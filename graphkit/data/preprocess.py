"""Batches for an NPU host: one raw ``.bin`` per batch and input, and ``index.json`` to read them back.

Items are grouped in dataset order into batches of N; the last batch is padded by repeating its
last row and records how many rows are valid. Batch k of input ``x`` is ``<out>/<x>/<x><k>.bin``
(raw, C order, little-endian, the input's dtype), ready for ``msame --input <out>/<x>`` or
``ais_bench --input <out>/<x>``. Both tools name their outputs after the input file's stem, so
the key of batch k is ``<first input name><k>`` (``mel0``, ``mel1``, …) and the files runner
finds ``mel0_output_0.txt`` / ``mel0_0.bin`` by it.

The folder is published whole (:mod:`graphkit.ir.publish`): the batches and ``index.json`` are
staged beside it and swapped in at once, so the folder always holds one run's complete set, and
``<x><k>.bin`` files of an earlier, longer run are gone (msame and ais_bench would run them too).
Other files in it are kept.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from graphkit.errors import DataError, UsageError
from graphkit.ir.io import write_bytes
from graphkit.ir.publish import Owned, ResultFolder
from graphkit.recipe import InputSpec

INDEX = "index.json"
FORMAT = "graphkit-batches"
VERSION = 1


@dataclass(frozen=True)
class Batch:
    index: int  # k: the batch's position, its files are <x><k>.bin
    items: tuple[int, ...]  # dataset item indices of all rows, padding included (len == size)
    valid: int  # the first ``valid`` rows are real; the rest repeat the last of them

    @property
    def size(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class IndexedBatch:
    key: str  # <first input name><k>: the stem msame and ais_bench name outputs after
    batch: Batch
    ids: tuple[str, ...]  # utterance ids of the valid rows


@dataclass(frozen=True)
class BatchIndex:
    root: Path
    batch_size: int
    inputs: tuple[InputSpec, ...]
    batches: tuple[IndexedBatch, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    def path(self, input_name: str, k: int) -> Path:
        return self.root / input_name / f"{input_name}{k}.bin"

    def feeds(self, entry: IndexedBatch) -> dict[str, np.ndarray]:
        """The arrays of one batch, read back from its ``.bin`` files."""
        out = {}
        for spec in self.inputs:
            path = self.path(spec.name, entry.batch.index)
            data = np.fromfile(path, dtype=np.dtype(spec.dtype).newbyteorder("<"))
            out[spec.name] = data.reshape(_batch_shape(spec, self.batch_size)).astype(spec.dtype)
        return out


def make_batches(n_items: int, batch: int) -> list[Batch]:
    """Items 0..n_items-1 in order, in batches of ``batch``; the last is padded with its last item."""
    if batch < 1:
        raise UsageError(f"batch size must be >= 1, got {batch}")
    if n_items < 1:
        raise DataError("no items to batch")
    out = []
    for k, start in enumerate(range(0, n_items, batch)):
        items = list(range(start, min(start + batch, n_items)))
        valid = len(items)
        items += [items[-1]] * (batch - valid)
        out.append(Batch(k, tuple(items), valid))
    return out


def batch_key(first_input: str, k: int) -> str:
    return f"{first_input}{k}"


def write_batches(
    out_dir: str | Path,
    batches: Sequence[Batch],
    rows_for: Callable[[Sequence[int]], Mapping[str, np.ndarray]],
    inputs: Sequence[InputSpec],
    meta: Mapping[str, Any],
    *,
    ids: Sequence[str] | None = None,
) -> Path:
    """Write every batch's input files and ``index.json``; returns the index path.

    ``rows_for(items)`` returns the rows of the valid items of a batch (batch axis first-class:
    each input's shape with its batch dim = len(items)); padding rows are copies of the last row,
    so a random crop is never drawn twice. ``ids`` maps item index → utterance id (default: the
    index as text). ``meta`` (recipe hash, dataset root, …) is stored as given; it must be JSON.
    """
    out = Path(out_dir)
    if not batches:
        raise DataError("no batches to write")
    if not inputs:
        raise DataError("no inputs to write")
    for spec in inputs:
        _check_name(spec.name)
    size = batches[0].size
    if any(b.size != size for b in batches):
        raise DataError("batches of different sizes in one preprocess run")
    with ResultFolder(out, owned_by=_index_owned, marker=INDEX, command="preprocess") as folder:
        stage = folder.staging
        entries = []
        for b in batches:
            rows = rows_for(list(b.items[: b.valid]))
            for spec in inputs:
                arr = _padded(spec, rows, b, size)
                write_bytes(stage / spec.name / f"{spec.name}{b.index}.bin", arr.tobytes(order="C"))
            row_ids = [str(ids[i]) if ids is not None else str(i) for i in b.items[: b.valid]]
            entries.append(
                {
                    "key": batch_key(inputs[0].name, b.index),
                    "index": b.index,
                    "valid": b.valid,
                    "items": list(b.items),
                    "ids": row_ids,
                }
            )
        index = {
            "format": FORMAT,
            "version": VERSION,
            "batch_size": size,
            "inputs": [
                {
                    "name": s.name,
                    "shape": list(_batch_shape(s, size)),
                    "spec_shape": list(s.shape),
                    "dtype": s.dtype,
                }
                for s in inputs
            ],
            "batches": entries,
            "meta": dict(meta),
        }
        try:
            text = json.dumps(index, indent=1, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise DataError(f"preprocess meta is not JSON: {exc}") from None
        write_bytes(stage / INDEX, (text + "\n").encode())
        folder.publish()
    return out / INDEX


def _index_owned(folder: Path) -> Owned:
    """The earlier run's files: its index and every ``<x>/<x><k>.bin`` of its inputs."""
    try:
        names = [str(d["name"]) for d in json.loads((folder / INDEX).read_text("utf-8"))["inputs"]]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        names = []
    patterns = [re.compile(re.escape(n) + "/" + re.escape(n) + r"\d+\.bin") for n in names]
    return lambda rel: rel == INDEX or rel in names or any(p.fullmatch(rel) for p in patterns)


def _check_name(name: str) -> None:
    if not name or name in {".", ".."} or any(c in name for c in "/\\\0"):
        raise DataError(f"input name {name!r} cannot name a folder of batch files")


def _batch_shape(spec: InputSpec, batch: int) -> tuple[int, ...]:
    """The input's shape for ``batch`` rows: its symbolic batch dim, else dim 0, set to ``batch``."""
    shape = list(spec.concrete(batch))
    axis = spec.batch_axis
    if axis is None:
        if not shape:
            raise DataError(f"input '{spec.name}' is a scalar and has no batch dim")
        shape[0] = batch
    if any(isinstance(d, str) or d < 0 for d in shape):
        raise DataError(f"input '{spec.name}' shape {spec.shape} has more than one symbolic dim")
    return tuple(int(d) for d in shape)


def _padded(spec: InputSpec, rows: Mapping[str, np.ndarray], b: Batch, size: int) -> np.ndarray:
    if spec.name not in rows:
        raise DataError(f"batch {b.index}: no rows for input '{spec.name}'")
    arr = np.asarray(rows[spec.name])
    axis = spec.batch_axis or 0
    want = _batch_shape(spec, b.valid)
    if arr.shape != want:
        raise DataError(f"batch {b.index}: input '{spec.name}' rows have shape {arr.shape}, expected {want}")
    try:
        arr = arr.astype(np.dtype(spec.dtype).newbyteorder("<"), casting="same_kind", copy=False)
    except TypeError:
        raise DataError(
            f"batch {b.index}: input '{spec.name}' is {arr.dtype}, cannot store as {spec.dtype}"
        ) from None
    if b.valid < size:
        last = np.take(arr, [b.valid - 1], axis=axis)
        arr = np.concatenate([arr] + [last] * (size - b.valid), axis=axis)
    return np.ascontiguousarray(arr)


def read_index(out_dir: str | Path) -> BatchIndex:
    """Read and check ``<out_dir>/index.json`` and that every batch file it names is there, whole."""
    root = Path(out_dir)
    path = root / INDEX
    if not path.is_file():
        raise DataError(f"{path}: not found (run graphkit preprocess first)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not readable JSON ({exc})") from None
    try:
        return _parse_index(root, data)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: malformed index ({type(exc).__name__}: {exc})") from None


def _parse_index(root: Path, data: Any) -> BatchIndex:
    path = root / INDEX
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DataError(f"{path}: not a graphkit batch index")
    if data.get("version") != VERSION:
        raise DataError(f"{path}: index version {data.get('version')!r}, this graphkit reads {VERSION}")
    size = int(data["batch_size"])
    if size < 1:
        raise ValueError(f"batch_size {size}")
    inputs = []
    for d in data["inputs"]:
        spec_shape = tuple(x if isinstance(x, str) else int(x) for x in d["spec_shape"])
        spec = InputSpec(str(d["name"]), spec_shape, str(d["dtype"]))
        np.dtype(spec.dtype)
        _check_name(spec.name)
        if tuple(d["shape"]) != _batch_shape(spec, size):
            raise ValueError(f"input '{spec.name}' shape {d['shape']} does not match batch {size}")
        inputs.append(spec)
    if not inputs:
        raise ValueError("no inputs")
    batches = []
    for k, e in enumerate(data["batches"]):
        items, valid = tuple(int(i) for i in e["items"]), int(e["valid"])
        ids = tuple(str(i) for i in e["ids"])
        if int(e["index"]) != k or e["key"] != batch_key(inputs[0].name, k):
            raise ValueError(f"batch {k} has index {e['index']!r} and key {e['key']!r}")
        if len(items) != size or not 1 <= valid <= size or len(ids) != valid:
            raise ValueError(
                f"batch {k}: {len(items)} items, {valid} valid, {len(ids)} ids, batch size {size}"
            )
        batches.append(IndexedBatch(e["key"], Batch(k, items, valid), ids))
    index = BatchIndex(root, size, tuple(inputs), tuple(batches), dict(data.get("meta") or {}))
    for spec in index.inputs:
        nbytes = math.prod(_batch_shape(spec, size)) * np.dtype(spec.dtype).itemsize
        for entry in index.batches:
            f = index.path(spec.name, entry.batch.index)
            if not f.is_file():
                raise DataError(f"{f}: missing (listed in {path})")
            if f.stat().st_size != nbytes:
                shape = _batch_shape(spec, size)
                raise DataError(f"{f}: {f.stat().st_size} bytes, expected {nbytes} ({spec.dtype} {shape})")
    return index
