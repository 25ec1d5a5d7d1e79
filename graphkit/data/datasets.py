"""Evaluation datasets: speaker-verification trees with trial lists, and anti-spoofing sets.

Layouts read (docs/eval-design.md):

- speaker: ``<root>/<speaker>/…/<utt>.{wav,flac}`` (VoxCeleb1 ``id10270/x6uYqmx31kE/00001.wav``,
  LibriSpeech-style ``1688/1688-142285-0000.flac``). The utterance id is the path relative to the
  root with '/', exactly as VoxCeleb trial lists name files; the speaker is its first component.
  The trial list (``label enroll test``) is the given file, else the one ``veri_test.txt``,
  ``veri_test2.txt`` or ``trials*.txt`` in the root.
- spoof: an ASVspoof 2019 LA root (CM protocol + ``ASVspoof2019_LA_<part>/flac/<utt>.flac``),
  a folder with ``labels.tsv`` (columns file, label, system…), or a plain folder of audio with an
  explicit label.

Every bad-data case is a :class:`~graphkit.errors.DataError` with one line naming the file.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from graphkit.errors import DataError
from graphkit.ir.io import text_fields

__all__ = [
    "AUDIO_SUFFIXES",
    "Dataset",
    "Trial",
    "Utterance",
    "load_speaker_dataset",
    "load_spoof_dataset",
    "read_trials",
]

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac")
LABELS = ("bonafide", "spoof")
TRIAL_NAMES = ("veri_test.txt", "veri_test2.txt", "trials*.txt")
LA_PROTOCOLS = "ASVspoof2019_LA_cm_protocols"


@dataclass(frozen=True)
class Utterance:
    id: str  # the path relative to the dataset root, '/'-separated (ASVspoof: the utt id)
    path: Path  # absolute path of the audio file
    speaker: str | None  # first path component in speaker/utt layouts
    label: str | None  # anti-spoofing: "bonafide" | "spoof"
    attack: str | None  # "-" for bona fide, "A07".."A19" (ASVspoof) or a system name


@dataclass(frozen=True)
class Trial:
    enroll: str  # Utterance.id
    test: str  # Utterance.id
    target: bool


@dataclass(frozen=True)
class Dataset:
    kind: Literal["speaker", "spoof"]
    root: Path
    utterances: tuple[Utterance, ...]  # sorted by id, unique ids
    trials: tuple[Trial, ...] = ()  # speaker datasets with a trial list


# --- helpers ----------------------------------------------------------------------------------


def _audio_files(root: Path) -> list[Path]:
    """Audio files under root, sorted, skipping hidden files and folders."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and name.lower().endswith(AUDIO_SUFFIXES):
                found.append(Path(dirpath) / name)
    return found


def _rel_id(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _existing_dir(root: Path | str, what: str) -> Path:
    root = Path(root).expanduser().resolve()
    if not root.exists():
        raise DataError(f"{root}: {what} not found")
    if not root.is_dir():
        raise DataError(f"{root}: {what} must be a folder")
    return root


def _sorted_unique(utterances: list[Utterance], where: Path) -> tuple[Utterance, ...]:
    utterances.sort(key=lambda u: u.id)
    for a, b in zip(utterances, utterances[1:]):
        if a.id == b.id:
            raise DataError(f"{where}: utterance id {a.id} appears twice ({a.path} and {b.path})")
    return tuple(utterances)


def _missing(names: Sequence[str], what: str, where: Path) -> None:
    if names:
        raise DataError(f"{where}: {len(names)} {what} not found in the dataset, the first is {names[0]}")


# --- speaker verification ---------------------------------------------------------------------


def read_trials(path: Path | str) -> tuple[Trial, ...]:
    """A VoxCeleb-format trial list: lines ``label enroll test``, label 1 = target, 0 = not."""
    path = Path(path)
    trials = []
    for number, fields in text_fields(path, "trial list"):
        if len(fields) != 3 or fields[0] not in ("0", "1"):
            raise DataError(f"{path}:{number}: expected '1|0 enroll test', got {' '.join(fields)!r}")
        trials.append(Trial(enroll=fields[1], test=fields[2], target=fields[0] == "1"))
    if not trials:
        raise DataError(f"{path}: empty trial list")
    return tuple(trials)


def _find_trials(root: Path) -> Path | None:
    found = sorted({p for pattern in TRIAL_NAMES for p in root.glob(pattern) if p.is_file()})
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise DataError(f"{root}: several trial lists ({names}): name one explicitly")
    return found[0] if found else None


def load_speaker_dataset(root: Path | str, *, trials: Path | str | None = None) -> Dataset:
    """A ``speaker/…/utt.{wav,flac}`` tree and its trial list (see the module docstring)."""
    root = _existing_dir(root, "speaker dataset folder")
    utterances = []
    for path in _audio_files(root):
        uid = _rel_id(path, root)
        if "/" not in uid:
            raise DataError(f"{path}: audio at the top of a speaker dataset: expected speaker/utt")
        utterances.append(Utterance(uid, path, uid.split("/", 1)[0], None, None))
    if not utterances:
        raise DataError(f"{root}: no .wav or .flac files in the speaker dataset")
    utts = _sorted_unique(utterances, root)

    if trials is not None:
        trial_path = Path(trials).expanduser()
        if not trial_path.is_absolute() and not trial_path.exists() and (root / trial_path).exists():
            trial_path = root / trial_path
    else:
        trial_path = _find_trials(root)
    trial_list: tuple[Trial, ...] = ()
    if trial_path is not None:
        trial_list = read_trials(trial_path)
        ids = {u.id for u in utts}
        absent = list(dict.fromkeys(x for t in trial_list for x in (t.enroll, t.test) if x not in ids))
        _missing(absent, "files named by the trial list were", trial_path)
        log.info("%s: %d utterances, %d trials from %s", root, len(utts), len(trial_list), trial_path)
    return Dataset("speaker", root, utts, trial_list)


# --- anti-spoofing ----------------------------------------------------------------------------


def _check_label(label: str | None, where: Path) -> None:
    if label is not None and label not in LABELS:
        raise DataError(f"{where}: unknown label {label!r}, expected bonafide or spoof")


def _asvspoof(root: Path) -> list[Utterance]:
    """An LA root (its eval part) or one ``ASVspoof2019_LA_<part>`` folder beside the protocols."""
    if (root / LA_PROTOCOLS).is_dir():
        la, part = root, "eval"
    else:
        la, part = root.parent, root.name.removeprefix("ASVspoof2019_LA_")
    kind = "trn" if part == "train" else "trl"
    protocol = la / LA_PROTOCOLS / f"ASVspoof2019.LA.cm.{part}.{kind}.txt"
    audio = la / f"ASVspoof2019_LA_{part}" / "flac"
    if not protocol.is_file():
        raise DataError(f"{protocol}: ASVspoof 2019 CM protocol not found")
    if not audio.is_dir():
        raise DataError(f"{audio}: ASVspoof 2019 audio folder not found")
    from graphkit.data.scorefiles import read_cm_protocol  # the parser of the same file format

    utterances, absent = [], []
    for utt, (speaker, attack, key) in read_cm_protocol(protocol).items():
        path = audio / f"{utt}.flac"
        if not path.is_file():
            absent.append(utt)
        utterances.append(Utterance(utt, path, speaker, key, attack))
    _missing(absent, "audio files of the protocol were", protocol)
    return utterances


def _labels_tsv(root: Path, label: str | None) -> list[Utterance]:
    table = root / "labels.tsv"
    with table.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    header = rows[0] if rows else []
    if "file" not in header or "label" not in header:
        raise DataError(f"{table}:1: header must name the columns file and label")
    col = {name: i for i, name in enumerate(header)}
    utterances, absent = [], []
    for number, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DataError(f"{table}:{number}: {len(row)} columns, the header has {len(header)}")
        name, row_label = row[col["file"]], row[col["label"]]
        if row_label not in LABELS:
            raise DataError(f"{table}:{number}: unknown label {row_label!r}")
        if label is not None and row_label != label:
            raise DataError(f"{table}:{number}: label {row_label} but the source says {label}")
        system = row[col["system"]] if "system" in col else None
        attack = "-" if row_label == "bonafide" else system
        path = root / name
        if not path.is_file():
            absent.append(name)
        speaker = name.split("/", 1)[0] if "/" in name else None
        utterances.append(Utterance(Path(name).as_posix(), path, speaker, row_label, attack))
    _missing(absent, "files of labels.tsv were", table)
    if not utterances:
        raise DataError(f"{table}: no rows")
    return utterances


def _plain(root: Path, label: str | None) -> list[Utterance]:
    if label is None:
        raise DataError(f"{root}: no labels.tsv or ASVspoof protocol: give a label for the folder")
    utterances = []
    for path in _audio_files(root):
        uid = _rel_id(path, root)
        speaker = uid.split("/", 1)[0] if "/" in uid else None
        attack = "-" if label == "bonafide" else None
        utterances.append(Utterance(uid, path, speaker, label, attack))
    if not utterances:
        raise DataError(f"{root}: no .wav or .flac files")
    return utterances


def _is_asvspoof(root: Path) -> bool:
    return (root / LA_PROTOCOLS).is_dir() or (
        root.name.startswith("ASVspoof2019_LA_") and (root.parent / LA_PROTOCOLS).is_dir()
    )


def load_spoof_dataset(sources: Sequence[tuple[Path | str, str | None]]) -> Dataset:
    """Anti-spoofing utterances from one or more (folder, label or None) sources.

    An ASVspoof 2019 LA root reads the eval part (point at ``ASVspoof2019_LA_dev`` for dev), only
    the utterances with the label when one is given; a
    folder with ``labels.tsv`` takes labels from it (an explicit label must agree); a plain folder
    needs an explicit label. Ids: the ASVspoof utt id, else the path relative to the source.
    """
    if not sources:
        raise DataError("no spoof dataset sources given")
    utterances: list[Utterance] = []
    roots = []
    for source, label in sources:
        root = _existing_dir(source, "spoof dataset folder")
        _check_label(label, root)
        roots.append(root)
        if _is_asvspoof(root):
            found = _asvspoof(root)
            if label is not None:
                found = [u for u in found if u.label == label]
        elif (root / "labels.tsv").is_file():
            found = _labels_tsv(root, label)
        else:
            found = _plain(root, label)
        log.info("%s: %d utterances", root, len(found))
        utterances.extend(found)
    common = Path(os.path.commonpath(roots)) if len(roots) > 1 else roots[0]
    return Dataset("spoof", common, _sorted_unique(utterances, common))
