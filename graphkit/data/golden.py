"""Golden files: seeded inputs and the unmodified model's outputs, saved so two machines can compare.

A golden file is one ``.npz`` (read with ``np.load(path, allow_pickle=False)``) holding

- ``input/<name>``: each model input, in the model's input order,
- ``output/<name>``: each output of the unmodified source model under onnxruntime,
- ``tensor/<name>``: optional further tensors (intermediates) to compare by name,
- ``__meta__``: a 0-d unicode array holding a JSON object: ``format`` ("graphkit-golden"),
  ``version`` (1), ``graphkit_version``, ``recipe``, ``recipe_sha256``, ``seed``, ``batch``,
  ``inputs`` and ``outputs`` (name order), ``producer`` ("onnxruntime, unmodified source
  model" unless the caller says otherwise) and whatever else the caller adds.

``graphkit apply --save-golden`` writes, per batch size N::

    <out>/golden/bsN.npz              save_golden: inputs, outputs, meta
    <out>/golden/bsN/<x>/<x>0.bin     write_golden_inputs: input x as raw little-endian C-order bytes

which is the preprocess layout (graphkit.data.preprocess) with one batch. On the NPU host
``msame --model m_bsN.om --input <out>/golden/bsN/<x> --output npu/bsN`` (or ``ais_bench
--input …``) names its outputs after the input file's stem: ``<x>0_output_0.txt`` or
``<x>0_0.bin``, i.e. batch key ``<first input>0`` (:attr:`Golden.key`). Copy ``npu/bsN`` back
and run ``graphkit compare <out>/golden/bsN.npz npu/bsN``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from graphkit.data.preprocess import batch_key
from graphkit.errors import DataError
from graphkit.ir.arrays import load_npz
from graphkit.ir.io import atomic_path, write_bytes

FORMAT = "graphkit-golden"
VERSION = 1
PRODUCER = "onnxruntime, unmodified source model"
META_KEY = "__meta__"
REQUIRED_META = ("recipe", "recipe_sha256", "seed", "batch")  # what the caller must state
_SECTIONS = {"input": "inputs", "output": "outputs", "tensor": "tensors"}


@dataclass(frozen=True)
class Golden:
    """A loaded golden file. ``key`` is the batch key of its input files (``<first input>0``)."""

    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    meta: dict[str, Any]
    key: str
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    path: Path | None = None

    @property
    def batch(self) -> int | None:
        b = self.meta.get("batch")
        return int(b) if isinstance(b, int) else None


def save_golden(
    path: str | Path,
    *,
    inputs: Mapping[str, np.ndarray],
    outputs: Mapping[str, np.ndarray],
    meta: Mapping[str, Any],
    tensors: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Write a golden ``.npz`` atomically; returns its path.

    ``meta`` must hold recipe, recipe_sha256, seed and batch (None where they do not apply);
    format, version, graphkit_version, input/output order and producer are filled in unless
    given. Input names must be usable as folder names (see :func:`write_golden_inputs`).
    """
    from graphkit._version import __version__

    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ValueError(f"golden meta lacks {', '.join(missing)}")
    if not inputs or not outputs:
        raise ValueError("a golden file needs at least one input and one output")
    for name in inputs:
        _check_folder_name(name)
    full = {
        "format": FORMAT,
        "version": VERSION,
        "graphkit_version": __version__,
        "producer": PRODUCER,
        **dict(meta),
        "inputs": list(inputs),
        "outputs": list(outputs),
    }
    arrays: dict[str, np.ndarray] = {}
    for prefix, group in (("input", inputs), ("output", outputs), ("tensor", tensors or {})):
        for name, value in group.items():
            arr = np.asarray(value)
            if arr.dtype.hasobject:  # np.load(allow_pickle=False) could not read it back
                raise ValueError(f"golden {prefix} '{name}' has dtype object")
            arrays[f"{prefix}/{name}"] = arr
    try:
        arrays[META_KEY] = np.array(json.dumps(full, ensure_ascii=False, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"golden meta is not JSON: {exc}") from None
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)  # a file object: np.savez would append .npz to a name
    return path


def load_golden(path: str | Path) -> Golden:
    """Read and check a golden file; anything missing, corrupt or foreign is a DataError."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: golden file not found")
    arrays = load_npz(path, "golden file")  # a .npy or a foreign zip under the name: said so
    if META_KEY not in arrays:
        raise DataError(f"{path}: not a graphkit golden file (no {META_KEY} entry)")
    try:
        meta = json.loads(str(arrays.pop(META_KEY)))
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: {META_KEY} is not JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"{path}: not a graphkit golden file (format is not '{FORMAT}')")
    if meta.get("version") != VERSION:
        raise DataError(f"{path}: golden version {meta.get('version')!r}, this graphkit reads {VERSION}")
    groups: dict[str, dict[str, np.ndarray]] = {"input": {}, "output": {}, "tensor": {}}
    for k, arr in arrays.items():
        prefix, sep, name = k.partition("/")
        if not sep or prefix not in groups or not name:
            raise DataError(f"{path}: unexpected entry '{k}' (entries: input/…, output/…, tensor/…)")
        groups[prefix][name] = arr
    inputs = _ordered(path, groups["input"], meta, "input")
    outputs = _ordered(path, groups["output"], meta, "output")
    key = batch_key(next(iter(inputs)), 0)
    return Golden(inputs, outputs, meta, key, groups["tensor"], path)


def _ordered(path: Path, group: dict[str, np.ndarray], meta: dict[str, Any], prefix: str) -> dict:
    """The group in meta's name order; the names must agree exactly."""
    order = meta.get(_SECTIONS[prefix])
    if not isinstance(order, list) or not order or sorted(order) != sorted(group):
        what = _SECTIONS[prefix]
        raise DataError(
            f"{path}: meta '{what}' {order!r} does not match the {prefix}/ entries {sorted(group)}"
        )
    return {name: group[name] for name in order}


def write_golden_inputs(golden: Golden, folder: str | Path) -> list[Path]:
    """Write each input as ``<folder>/<x>/<x>0.bin`` (raw, C order, little-endian); returns the files.

    Other ``<x><k>.bin`` files in those folders are removed: msame and ais_bench run every file
    of an input folder, and a stale one would produce outputs under a key nobody asked for.
    """
    folder = Path(folder)
    written = []
    for name, arr in golden.inputs.items():
        _check_folder_name(name)
        dst = folder / name / f"{name}0.bin"
        data = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes(order="C")
        write_bytes(dst, data)
        stale = re.compile(re.escape(name) + r"\d+\.bin")
        for p in dst.parent.iterdir():
            if p != dst and stale.fullmatch(p.name):
                p.unlink()
        written.append(dst)
    return written


def _check_folder_name(name: str) -> None:
    if not name or name in {".", ".."} or any(c in name for c in "/\\\0"):
        raise DataError(f"input name {name!r} cannot name a folder of input files")
