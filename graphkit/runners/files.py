"""Files runner: the outputs msame or ais_bench wrote on an NPU host, copied back here.

For batch key ``mel3`` and output index i the runner reads exactly one of

- ``mel3_output_<i>.txt`` (msame ``--outfmt TXT``: values separated by whitespace),
- ``mel3_<i>.bin`` (ais_bench ``--outfmt BIN``: raw values of ``dtype``),
- ``mel3_<i>.npy`` (ais_bench ``--outfmt NPY``),

found anywhere below ``directory`` (both tools write into a timestamped subfolder). i is the
position of the output in ``output_names``, which must follow the om's output order. ``feeds``
are ignored: the NPU already ran; the key alone picks the files.

TXT values carry only the precision their writer printed (docs/ascend-toolchain.md does not
state msame's; a 6-significant-digit print is off by up to ~5e-7 relative), so compare TXT
results with a tolerance; BIN and NPY files hold the exact values.

float16 outputs: an om built with ATC's default ``--precision_mode force_fp16`` and no
``--output_type`` writes fp16 outputs, so a float32 model's BIN file holds half the bytes. BIN
files carry no dtype and ais_bench's ``<dir>_summary.json`` records none either (timings,
throughput, files and arguments only: ``ais_bench/infer/summary.py``), so an fp16 file is known
by its size (exactly half the float32 bytes of the batch, which needs the batch) or by the
user's ``dtype=float16``; NPY files say it themselves. fp16 values are widened to float32
(exact) for the metric and named in ``fp16_outputs``.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from graphkit.errors import DataError, RunnerError
from graphkit.runners.base import Runner

log = logging.getLogger("graphkit")
FP16_HINT = "an om built with force_fp16 writes float16 outputs unless ATC's --output_type FP32 is set"

FORMATS = ("msame_txt", "ais_bench_bin", "npy")
# what each format's file names look like, to detect the format from the files present
_PATTERNS = {
    "msame_txt": re.compile(r".+_output_\d+\.txt$"),
    "ais_bench_bin": re.compile(r".+_\d+\.bin$"),
    "npy": re.compile(r".+_\d+\.npy$"),
}


def output_file_name(fmt: str, key: str, index: int) -> str:
    if fmt == "msame_txt":
        return f"{key}_output_{index}.txt"
    if fmt == "ais_bench_bin":
        return f"{key}_{index}.bin"
    if fmt == "npy":
        return f"{key}_{index}.npy"
    raise RunnerError(f"files runner: unknown format '{fmt}' (formats: auto, {', '.join(FORMATS)})")


def detect_format(names: Sequence[str], directory: Path) -> str:
    """The one format whose file names occur among ``names``."""
    found = [f for f, pattern in _PATTERNS.items() if any(pattern.match(n) for n in names)]
    if not found:
        raise DataError(
            f"{directory}: no inference outputs found (expected msame <key>_output_<i>.txt "
            "or ais_bench <key>_<i>.bin / <key>_<i>.npy below it)"
        )
    if len(found) > 1:
        raise DataError(f"{directory}: outputs in several formats ({', '.join(found)}); choose one with fmt=")
    return found[0]


class FilesRunner(Runner):
    """Read per-batch outputs from files.

    ``output_shapes``: the row shape of each output without the batch dim, as a mapping by
    name or a sequence in ``output_names`` order. ``batch``: the batch the files hold; None
    takes it from each file's size (which must then be a whole number of rows). ``dtype``: of
    BIN files (one dtype or one per output name); TXT values are parsed as text and cast to it,
    NPY files keep the dtype they carry. A float32 BIN file of exactly half the batch's bytes
    is float16 (see the module docstring). Every float16 output comes back as float32, its
    name in ``fp16_outputs``; one output in fp16 in one file and fp32 in another is refused.
    """

    kind: ClassVar[str] = "files"

    def __init__(
        self,
        directory: str | Path,
        *,
        output_names: Sequence[str],
        output_shapes: Mapping[str, Sequence[int]] | Sequence[Sequence[int]],
        batch: int | None = None,
        fmt: str = "auto",
        dtype: str | Mapping[str, str] = "float32",
        label: str | None = None,
    ) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise DataError(f"{self.directory}: output folder not found")
        self.output_names = tuple(output_names)
        if isinstance(output_shapes, Mapping):
            missing = [n for n in self.output_names if n not in output_shapes]
            if missing:
                raise RunnerError(f"files runner: no output_shapes for {', '.join(missing)}")
            shapes = [output_shapes[n] for n in self.output_names]
        else:
            shapes = list(output_shapes)
            if len(shapes) != len(self.output_names):
                raise RunnerError(
                    f"files runner: {len(shapes)} output_shapes for {len(self.output_names)} output_names"
                )
        self.row_shapes = {n: tuple(int(d) for d in s) for n, s in zip(self.output_names, shapes)}
        dtypes = dtype if isinstance(dtype, Mapping) else dict.fromkeys(self.output_names, dtype)
        self.dtypes = {n: np.dtype(dtypes.get(n, "float32")) for n in self.output_names}
        self.batch = batch
        self.fp16_outputs: set[str] = set()
        self._file_dtypes: dict[str, tuple[np.dtype, Path]] = {}  # output -> dtype of its first file
        # One scan: the files are copied back before the run and do not change during it.
        self._files: dict[str, list[Path]] = {}
        for p in sorted(self.directory.rglob("*")):
            if p.is_file():
                self._files.setdefault(p.name, []).append(p)
        if fmt == "auto":
            fmt = detect_format(list(self._files), self.directory)
        elif fmt not in FORMATS:
            raise RunnerError(f"files runner: unknown format '{fmt}' (formats: auto, {', '.join(FORMATS)})")
        self.fmt = fmt
        self.label = label or f"files {self.directory.name}"

    def _infer(self, feeds: Mapping[str, np.ndarray], key: str) -> dict[str, np.ndarray]:
        return {name: self._read(key, i, name) for i, name in enumerate(self.output_names)}

    def _find(self, key: str, index: int) -> Path:
        name = output_file_name(self.fmt, key, index)
        paths = self._files.get(name, [])
        if not paths:
            raise DataError(f"{self.directory}: no {name} below it (output {index} of batch '{key}')")
        if len(paths) > 1:
            where = ", ".join(str(p.relative_to(self.directory)) for p in paths)
            raise DataError(f"{self.directory}: {len(paths)} files named {name} ({where}); keep exactly one")
        return paths[0]

    def _read(self, key: str, index: int, name: str) -> np.ndarray:
        path = self._find(key, index)
        dtype = self.dtypes[name]
        try:
            if self.fmt == "msame_txt":
                values = _read_txt(path).astype(dtype)
            elif self.fmt == "ais_bench_bin":
                dtype = self._bin_dtype(path, name, path.stat().st_size)
                values = np.fromfile(path, dtype=dtype.newbyteorder("<"))
            else:
                values = np.load(path, allow_pickle=False)
                if not isinstance(values, np.ndarray):  # a zip archive loads as an NpzFile
                    values.close()
                    raise ValueError("it is an .npz archive")
                values = values.ravel()
        except OSError as exc:
            raise DataError(f"{path}: cannot read ({exc})") from None
        except ValueError as exc:
            raise DataError(f"{path}: not a valid .npy file ({exc})") from None
        return self._reshape(self._widen(values, path, name), path, name)

    def _bin_dtype(self, path: Path, name: str, size: int) -> np.dtype:
        """The dtype of a BIN file: the declared one, or float16 where a float32 output's file
        holds exactly half the bytes of the batch (an om's fp16 output)."""
        dtype = self.dtypes[name]
        if dtype == np.float32 and self.batch is not None:
            values = self.batch * math.prod(self.row_shapes[name])
            if values and size == 2 * values:
                return np.dtype(np.float16)
        if size % dtype.itemsize:
            raise DataError(
                f"{path}: {size} bytes is not a whole number of {dtype} values "
                f"(if it holds float16, as {FP16_HINT}: --runner files=DIR,dtype=float16)"
            )
        return dtype

    def _widen(self, values: np.ndarray, path: Path, name: str) -> np.ndarray:
        """float16 values as float32 (exact), after checking every file of ``name`` agrees."""
        first = self._file_dtypes.setdefault(name, (values.dtype, path))
        if first[0] != values.dtype:
            raise DataError(
                f"{path}: output '{name}' is {values.dtype} here but {first[0]} in {first[1]}: "
                "the folder mixes the outputs of two om models; keep one run's files"
            )
        if values.dtype != np.float16:
            return values
        if name not in self.fp16_outputs:
            self.fp16_outputs.add(name)
            log.warning(
                "%s: output '%s' is float16 (%s); widened to float32 for the metric",
                self.label,
                name,
                FP16_HINT,
            )
        return values.astype(np.float32)

    def _reshape(self, values: np.ndarray, path: Path, name: str) -> np.ndarray:
        row = self.row_shapes[name]
        per_row = math.prod(row)
        if self.batch is not None:
            want = self.batch * per_row
            if values.size != want:
                raise DataError(
                    f"{path}: {values.size} values, expected {want} "
                    f"(output '{name}': batch {self.batch} × {row})"
                )
            rows = self.batch
        else:
            if per_row == 0 or values.size == 0 or values.size % per_row:
                raise DataError(
                    f"{path}: {values.size} values is not a whole number of rows of output '{name}' {row}"
                )
            rows = values.size // per_row
        return values.reshape((rows, *row))


def _read_txt(path: Path) -> np.ndarray:
    """msame TXT: numbers separated by spaces and newlines."""
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file of numbers") from None
    tokens = text.split()
    try:
        return np.array(tokens, dtype=np.float64)
    except ValueError:
        bad = next(t for t in tokens if not _is_number(t))
        raise DataError(f"{path}: not a number: {bad[:40]!r}") from None


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True
