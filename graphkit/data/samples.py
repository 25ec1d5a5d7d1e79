"""Real input rows for parity checks, from the files a recipe names.

``audio`` samples: a folder (searched recursively for .flac/.wav, sorted, ``count`` files picked
evenly spaced so every speaker folder tends to be represented) or one file, turned into input
rows by a named feature extractor. ``npy`` samples: an array shaped (N, *input shape without the
batch dim); the first ``count`` rows are used.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from graphkit.errors import DataError
from graphkit.ir.arrays import load_npy
from graphkit.recipe import InputSpec, SampleSpec

log = logging.getLogger("graphkit")
AASIST_SAMPLES = 64600  # AASIST input: first 64,600 samples, shorter files tiled (upstream loader)


def audio_files(path: Path) -> list[Path]:
    """``path`` itself, or the audio below it, sorted; an unreadable folder or a broken link
    below it is a DataError (:func:`graphkit.data.audio.audio_files`), never a smaller sample."""
    if path.is_file():
        return [path]
    from graphkit.data import audio

    return sorted(audio.audio_files(path))


def pick_evenly(items: list[Path], count: int) -> list[Path]:
    if len(items) <= count:
        return items
    idx = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in idx]


def row_from_audio(path: Path, features: str, row_shape: tuple[int, ...]) -> np.ndarray:
    from graphkit.data import audio

    if features == "ecapa_logmel":
        return audio.ecapa_features(path, frames=row_shape[-1])[0]
    if features == "waveform_64600":
        wave = audio.read_audio(path)
        reps = int(np.ceil(AASIST_SAMPLES / len(wave)))
        return np.tile(wave, reps)[:AASIST_SAMPLES].astype(np.float32)
    raise DataError(f"unknown sample features '{features}'")


def load_samples(spec: SampleSpec, inp: InputSpec) -> np.ndarray | None:
    """Rows (n, *row shape) for ``inp``; None when an optional source is absent."""
    row_shape = tuple(d for i, d in enumerate(inp.shape) if i != inp.batch_axis)
    source = spec.audio or spec.npy
    assert source is not None
    if not source.exists():
        if spec.required:
            raise DataError(f"parity sample source not found: {source}")
        log.warning("parity samples skipped: %s is absent (required: false)", source)
        return None
    if spec.npy is not None:
        arr = load_npy(spec.npy, "parity sample array")  # a .npz or a zip under the name: said so
        if arr.ndim == 0:
            raise DataError(f"{spec.npy}: a single value; parity samples are rows (N, *{row_shape})")
        rows = arr[: spec.count]
    else:
        files = pick_evenly(audio_files(source), spec.count)
        if not files:
            raise DataError(f"{source}: no .flac or .wav files found")
        assert spec.features is not None
        rows = np.stack([row_from_audio(f, spec.features, row_shape) for f in files])
    if rows.shape[1:] != row_shape:
        raise DataError(
            f"{source}: sample rows are shaped {rows.shape[1:]}, input '{inp.name}' needs {row_shape}"
        )
    return rows.astype(inp.dtype)
