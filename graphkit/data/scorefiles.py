"""Score and protocol files of speaker verification and anti-spoofing (ASVspoof 2019 formats).

Every malformed line is a :class:`~graphkit.errors.DataError` naming the file and the line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphkit.errors import DataError
from graphkit.ir.io import text_fields


def _float(path: Path, number: int, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{path}:{number}: score {text!r} is not a number") from None
    if not np.isfinite(value):
        raise DataError(f"{path}:{number}: score {text!r} is not finite")
    return value


def read_cm_protocol(path: Path) -> dict[str, tuple[str, str, str]]:
    """ASVspoof 2019 CM protocol, lines ``speaker utt - attack key`` → {utt: (speaker, attack, key)}.

    attack is ``-`` for bona fide; key is ``bonafide`` or ``spoof``.
    """
    out: dict[str, tuple[str, str, str]] = {}
    for number, fields in text_fields(path):
        if len(fields) != 5 or fields[4] not in ("bonafide", "spoof"):
            raise DataError(f"{path}:{number}: expected 'speaker utt - attack bonafide|spoof'")
        if fields[1] in out:
            raise DataError(f"{path}:{number}: utterance {fields[1]} listed twice")
        out[fields[1]] = (fields[0], fields[3], fields[4])
    if not out:
        raise DataError(f"{path}: empty protocol")
    return out


@dataclass(frozen=True)
class CMScore:
    """One line of a CM score file; source and key are None in the two-column format."""

    score: float
    source: str | None = None
    key: str | None = None


def read_cm_scores(path: Path) -> dict[str, CMScore]:
    """CM score file: ``utt score`` or ``utt source key score`` (clovaai/aasist, RawGAT-ST)."""
    out: dict[str, CMScore] = {}
    for number, fields in text_fields(path):
        if len(fields) == 2:
            entry = CMScore(_float(path, number, fields[1]))
        elif len(fields) == 4:
            if fields[2] not in ("bonafide", "spoof"):
                raise DataError(f"{path}:{number}: key {fields[2]!r} is not bonafide|spoof")
            entry = CMScore(_float(path, number, fields[3]), fields[1], fields[2])
        else:
            raise DataError(f"{path}:{number}: expected 'utt score' or 'utt source key score'")
        if fields[0] in out:
            raise DataError(f"{path}:{number}: utterance {fields[0]} scored twice")
        out[fields[0]] = entry
    if not out:
        raise DataError(f"{path}: no scores")
    return out


def read_asv_scores(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ASVspoof ASV score file, lines ``source key score`` → (target, nontarget, spoof) arrays."""
    groups: dict[str, list[float]] = {"target": [], "nontarget": [], "spoof": []}
    for number, fields in text_fields(path):
        if len(fields) != 3 or fields[1] not in groups:
            raise DataError(f"{path}:{number}: expected 'source target|nontarget|spoof score'")
        groups[fields[1]].append(_float(path, number, fields[2]))
    for key, values in groups.items():
        if not values:
            raise DataError(f"{path}: no {key} scores")
    return tuple(np.asarray(groups[k]) for k in ("target", "nontarget", "spoof"))  # type: ignore[return-value]
