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
import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from graphkit.data.audio import AUDIO_SUFFIXES, audio_files
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
    """A VoxCeleb-format trial list: lines ``label enroll test``, label 1 = target, 0 = not.

    Refused, since each would move the EER without a word: a self-trial (enroll == test), the
    same pair listed twice, a pair labelled both target and non-target (in either order). A pair
    repeated in swapped order (b a after a b) is kept with a warning: a cosine score is symmetric,
    so it counts twice, but the official VoxCeleb1 lists hold 338 such pairs and published EERs
    count them."""
    return tuple(t for _, t in _numbered_trials(Path(path)))


def _numbered_trials(path: Path) -> list[tuple[int, Trial]]:
    trials = []
    for number, fields in text_fields(path, "trial list"):
        if len(fields) != 3 or fields[0] not in ("0", "1"):
            raise DataError(f"{path}:{number}: expected '1|0 enroll test', got {' '.join(fields)!r}")
        trials.append((number, Trial(enroll=fields[1], test=fields[2], target=fields[0] == "1")))
    if not trials:
        raise DataError(f"{path}: empty trial list")
    _check_trials(trials, path)
    return trials


def _at(numbers: Sequence[int]) -> str:
    """'line 3' or 'lines 3 and 9': the first two of ``numbers``."""
    return f"line {numbers[0]}" if len(numbers) == 1 else f"lines {numbers[0]} and {numbers[1]}"


def _check_trials(trials: list[tuple[int, Trial]], path: Path) -> None:
    selfs = [n for n, t in trials if t.enroll == t.test]
    if selfs:
        raise DataError(
            f"{path}: {len(selfs)} self-trials (enroll and test are the same file), at {_at(selfs)}: "
            "a file always matches itself; remove them"
        )
    first: dict[tuple[str, str], tuple[int, Trial]] = {}
    conflicts: list[tuple[int, int]] = []
    repeats: list[tuple[int, int]] = []
    swapped: list[tuple[int, int]] = []
    for number, t in trials:
        key = (t.enroll, t.test) if t.enroll < t.test else (t.test, t.enroll)
        if key not in first:
            first[key] = (number, t)
            continue
        was, earlier = first[key]
        if earlier.target != t.target:
            conflicts.append((was, number))
        elif earlier.enroll == t.enroll:
            repeats.append((was, number))
        else:
            swapped.append((was, number))
    if conflicts:
        raise DataError(
            f"{path}: {len(conflicts)} pairs labelled both target and non-target, first at "
            f"{_at(conflicts[0])}: fix the labels"
        )
    if repeats:
        raise DataError(
            f"{path}: {len(repeats)} trials repeat an earlier one, first at {_at(repeats[0])}: "
            "each repeat weighs its pair twice in the EER; remove the repeats"
        )
    if swapped:
        log.warning(
            "%s: %d trials repeat an earlier pair in swapped order (first at %s); kept, as in the "
            "official VoxCeleb1 lists: with a symmetric score each such pair counts twice",
            path,
            len(swapped),
            _at(swapped[0]),
        )


def _check_labels(trials: list[tuple[int, Trial]], speaker: dict[str, str | None], path: Path) -> None:
    """Refuse trials whose label contradicts the speaker folders: in this layout the speaker is
    the first path component by definition, so a contradiction is a wrong label (or a file in the
    wrong folder), and either way the EER would be computed against it."""
    wrong = [(n, t) for n, t in trials if (speaker[t.enroll] == speaker[t.test]) != t.target]
    if wrong:
        t = wrong[0][1]
        said = "target" if t.target else "non-target"
        truth = "two speaker folders" if t.target else "the same speaker folder"
        raise DataError(
            f"{path}: {len(wrong)} trials contradict the speaker folders, at {_at([n for n, _ in wrong])} "
            f"(the first is labelled {said}, but {t.enroll} and {t.test} are in {truth}): fix the "
            "labels or move the files"
        )


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
    for path in audio_files(root):
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
        numbered = _numbered_trials(trial_path)
        trial_list = tuple(t for _, t in numbered)
        speaker = {u.id: u.speaker for u in utts}
        absent = list(dict.fromkeys(x for t in trial_list for x in (t.enroll, t.test) if x not in speaker))
        _missing(absent, "files named by the trial list were", trial_path)
        _check_labels(numbered, speaker, trial_path)
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


def _utf8_text(path: Path, what: str) -> str:
    """The text of a UTF-8 file (a leading BOM, as spreadsheets write it, dropped); anything
    else is a DataError naming the line of the first bad byte."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"{path}:{line}: the {what} is not UTF-8 text (byte 0x{data[exc.start]:02x}): save it as UTF-8"
        ) from None


def _labels_tsv(root: Path, label: str | None) -> list[Utterance]:
    table = root / "labels.tsv"
    rows = list(csv.reader(io.StringIO(_utf8_text(table, "labels table"), newline=""), delimiter="\t"))
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
    for path in audio_files(root):
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
