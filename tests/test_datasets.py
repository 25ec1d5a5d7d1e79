"""graphkit.data.datasets: the real shared folders, and tmp_path fakes for every error case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from graphkit.data.datasets import Trial, load_speaker_dataset, load_spoof_dataset, read_trials
from graphkit.errors import DataError


def wav(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(160, dtype=np.float32), 16000, subtype="PCM_16")
    return path


# --- real folders -----------------------------------------------------------------------------


def test_librispeech_speaker_dataset(librispeech: Path) -> None:
    ds = load_speaker_dataset(librispeech)
    assert ds.kind == "speaker" and ds.root == librispeech.resolve()
    assert len(ds.utterances) == 100
    assert len({u.speaker for u in ds.utterances}) == 10
    first = ds.utterances[0]
    assert first.id == "1688/1688-142285-0000.flac" and first.speaker == "1688"
    assert first.path.is_file() and first.label is None
    assert [u.id for u in ds.utterances] == sorted(u.id for u in ds.utterances)
    assert len(ds.trials) == 4950 and sum(t.target for t in ds.trials) == 450
    assert ds.trials[0] == Trial("1688/1688-142285-0000.flac", "1688/1688-142285-0001.flac", True)
    speaker = {u.id: u.speaker for u in ds.utterances}
    assert all(t.target == (speaker[t.enroll] == speaker[t.test]) for t in ds.trials)


@pytest.mark.parametrize(
    ("name", "n", "n_target", "n_utts"),
    [("veri_test.txt", 37720, 18860, 4715), ("veri_test2.txt", 37611, 18802, 4708)],
)
def test_voxceleb_trial_lists(shared: Path, name: str, n: int, n_target: int, n_utts: int) -> None:
    trials = read_trials(shared / "data" / "voxceleb" / name)
    assert len(trials) == n and sum(t.target for t in trials) == n_target
    assert len({x for t in trials for x in (t.enroll, t.test)}) == n_utts
    assert trials[0] == Trial("id10270/x6uYqmx31kE/00001.wav", "id10270/8jEAjG6SegY/00008.wav", True)


def test_tts_labels_tsv_with_bona_fide_folder(shared: Path, librispeech: Path) -> None:
    tts = shared / "data" / "tts-synthetic-spoof-en"
    ds = load_spoof_dataset([(librispeech, "bonafide"), (tts, None)])
    labels = [u.label for u in ds.utterances]
    assert labels.count("bonafide") == 100 and labels.count("spoof") == 80
    spoof = {u.id: u for u in ds.utterances if u.label == "spoof"}
    assert spoof["flite_awb_h01.flac"].attack == "flite-awb"
    assert len({u.attack for u in spoof.values()}) == 8
    bona = next(u for u in ds.utterances if u.label == "bonafide")
    assert bona.attack == "-" and bona.speaker == "1688"
    with pytest.raises(DataError, match="but the source says bonafide"):
        load_spoof_dataset([(tts, "bonafide")])


# --- speaker datasets: fakes ------------------------------------------------------------------


def voxceleb_tree(root: Path) -> list[str]:
    ids = [
        "id10270/x6uYqmx31kE/00001.wav",
        "id10270/8jEAjG6SegY/00008.wav",
        "id10300/ize_eiCFEg0/00003.wav",
    ]
    for uid in ids:
        wav(root / uid)
    return ids


def test_voxceleb_nested_layout(tmp_path: Path) -> None:
    ids = voxceleb_tree(tmp_path)
    (tmp_path / "veri_test2.txt").write_text(f"1 {ids[0]} {ids[1]}\n0 {ids[0]} {ids[2]}\n")
    (tmp_path / ".hidden").mkdir()
    wav(tmp_path / ".hidden" / "x.wav")
    (tmp_path / "id10270" / "notes.txt").write_text("not audio")
    ds = load_speaker_dataset(tmp_path)
    assert [u.id for u in ds.utterances] == sorted(ids)
    assert {u.speaker for u in ds.utterances} == {"id10270", "id10300"}
    assert ds.trials == (Trial(ids[0], ids[1], True), Trial(ids[0], ids[2], False))


def test_explicit_trials_relative_to_root(tmp_path: Path) -> None:
    ids = voxceleb_tree(tmp_path)
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "mine.txt").write_text(f"0 {ids[1]} {ids[2]}\n")
    assert len(load_speaker_dataset(tmp_path, trials=Path("lists/mine.txt")).trials) == 1
    assert len(load_speaker_dataset(tmp_path, trials=lists / "mine.txt").trials) == 1
    with pytest.raises(DataError, match="trial list not found"):
        load_speaker_dataset(tmp_path, trials=tmp_path / "absent.txt")


def test_no_trial_list_is_fine(tmp_path: Path) -> None:
    voxceleb_tree(tmp_path)
    assert load_speaker_dataset(tmp_path).trials == ()


def test_speaker_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_speaker_dataset(tmp_path / "absent")
    with pytest.raises(DataError, match="no .wav or .flac"):
        load_speaker_dataset(tmp_path)
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    with pytest.raises(DataError, match="must be a folder"):
        load_speaker_dataset(afile)
    flat = tmp_path / "flat"
    wav(flat / "a.wav")
    with pytest.raises(DataError, match="expected speaker/utt"):
        load_speaker_dataset(flat)


def test_trial_list_naming_absent_files(tmp_path: Path) -> None:
    ids = voxceleb_tree(tmp_path)
    (tmp_path / "trials.txt").write_text(
        f"1 {ids[0]} {ids[1]}\n0 {ids[0]} id10999/a/1.wav\n0 id10999/b/2.wav {ids[0]}\n"
    )
    with pytest.raises(DataError, match=r"trials\.txt: 2 files .* the first is id10999/a/1\.wav"):
        load_speaker_dataset(tmp_path)


@pytest.mark.parametrize("line", ["2 a b", "1 a", "1 a b c", "target a b"])
def test_malformed_trial_line(tmp_path: Path, line: str) -> None:
    path = tmp_path / "t.txt"
    path.write_text(f"1 x y\n\n{line}\n")
    with pytest.raises(DataError, match=r"t\.txt:3: expected"):
        read_trials(path)


def test_empty_trial_list_and_ambiguous_lists(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("\n")
    with pytest.raises(DataError, match="empty trial list"):
        read_trials(tmp_path / "t.txt")
    ids = voxceleb_tree(tmp_path / "root")
    for name in ("veri_test.txt", "veri_test2.txt"):
        (tmp_path / "root" / name).write_text(f"1 {ids[0]} {ids[1]}\n")
    with pytest.raises(DataError, match="several trial lists"):
        load_speaker_dataset(tmp_path / "root")


# --- spoof datasets: fakes --------------------------------------------------------------------


def asvspoof_root(root: Path, utts: dict[str, tuple[str, str]], present: list[str]) -> Path:
    protocols = root / "ASVspoof2019_LA_cm_protocols"
    protocols.mkdir(parents=True)
    lines = [f"LA_00{i} {u} - {a} {k}" for i, (u, (a, k)) in enumerate(utts.items())]
    (protocols / "ASVspoof2019.LA.cm.eval.trl.txt").write_text("\n".join(lines) + "\n")
    (root / "ASVspoof2019_LA_eval" / "flac").mkdir(parents=True)
    for utt in present:
        wav(root / "ASVspoof2019_LA_eval" / "flac" / f"{utt}.flac")
    return root


UTTS = {"LA_E_1": ("-", "bonafide"), "LA_E_2": ("A07", "spoof"), "LA_E_3": ("A19", "spoof")}


def test_asvspoof_layout(tmp_path: Path) -> None:
    root = asvspoof_root(tmp_path / "LA", UTTS, list(UTTS))
    for source in (root, root / "ASVspoof2019_LA_eval"):
        ds = load_spoof_dataset([(source, None)])
        assert [(u.id, u.label, u.attack) for u in ds.utterances] == [
            ("LA_E_1", "bonafide", "-"),
            ("LA_E_2", "spoof", "A07"),
            ("LA_E_3", "spoof", "A19"),
        ]
        assert ds.utterances[0].speaker == "LA_000" and ds.utterances[0].path.is_file()
    only = load_spoof_dataset([(root, "spoof")])
    assert [u.id for u in only.utterances] == ["LA_E_2", "LA_E_3"]


def test_asvspoof_missing_audio_and_protocol(tmp_path: Path) -> None:
    root = asvspoof_root(tmp_path / "LA", UTTS, ["LA_E_2"])
    with pytest.raises(DataError, match=r"eval\.trl\.txt: 2 audio files .* first is LA_E_1"):
        load_spoof_dataset([(root, None)])
    (root / "ASVspoof2019_LA_dev").mkdir()
    with pytest.raises(DataError, match=r"dev\.trl\.txt: ASVspoof 2019 CM protocol not found"):
        load_spoof_dataset([(root / "ASVspoof2019_LA_dev", None)])
    bad = tmp_path / "bad"
    asvspoof_root(bad, {"LA_E_1": ("-", "bonafide")}, [])
    (bad / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.eval.trl.txt").write_text(
        "LA_0001 LA_E_1 - bonafide\n"
    )
    with pytest.raises(DataError, match=r"eval\.trl\.txt:1:"):
        load_spoof_dataset([(bad, None)])


def test_labels_tsv_errors(tmp_path: Path) -> None:
    header = "file\tlabel\tsystem\n"
    wav(tmp_path / "a.flac")
    table = tmp_path / "labels.tsv"
    table.write_text(header + "a.flac\tspoof\tsys1\nb.flac\tspoof\tsys1\n")
    with pytest.raises(DataError, match=r"labels\.tsv: 1 files .* first is b\.flac"):
        load_spoof_dataset([(tmp_path, None)])
    table.write_text(header + "a.flac\tfake\tsys1\n")
    with pytest.raises(DataError, match=r"labels\.tsv:2: unknown label 'fake'"):
        load_spoof_dataset([(tmp_path, None)])
    table.write_text(header + "a.flac\tspoof\n")
    with pytest.raises(DataError, match=r"labels\.tsv:2: 2 columns"):
        load_spoof_dataset([(tmp_path, None)])
    table.write_text("name\tkind\n")
    with pytest.raises(DataError, match=r"labels\.tsv:1: header"):
        load_spoof_dataset([(tmp_path, None)])


def test_plain_folder_errors(tmp_path: Path) -> None:
    wav(tmp_path / "real" / "spk1" / "a.wav")
    wav(tmp_path / "real" / "b.wav")
    ds = load_spoof_dataset([(tmp_path / "real", "bonafide")])
    assert [(u.id, u.speaker) for u in ds.utterances] == [("b.wav", None), ("spk1/a.wav", "spk1")]
    with pytest.raises(DataError, match="give a label"):
        load_spoof_dataset([(tmp_path / "real", None)])
    with pytest.raises(DataError, match="unknown label 'fake'"):
        load_spoof_dataset([(tmp_path / "real", "fake")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .wav or .flac"):
        load_spoof_dataset([(tmp_path / "empty", "spoof")])
    with pytest.raises(DataError, match="not found"):
        load_spoof_dataset([(tmp_path / "absent", "spoof")])
    with pytest.raises(DataError, match="no spoof dataset sources"):
        load_spoof_dataset([])


def test_duplicate_ids_across_sources(tmp_path: Path) -> None:
    wav(tmp_path / "one" / "x.wav")
    wav(tmp_path / "two" / "x.wav")
    with pytest.raises(DataError, match="utterance id x.wav appears twice"):
        load_spoof_dataset([(tmp_path / "one", "bonafide"), (tmp_path / "two", "spoof")])


def test_a_trial_list_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    """/dev/zero or a FIFO would be read without end: refused before reading, one line."""
    import os

    from graphkit.data.datasets import read_trials
    from graphkit.errors import DataError

    fifo = tmp_path / "trials.fifo"
    os.mkfifo(fifo)
    for path in (Path("/dev/zero"), fifo, tmp_path):
        with pytest.raises(DataError, match="the trial list is not a regular file"):
            read_trials(path)
