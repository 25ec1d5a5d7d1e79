"""Bad data is refused with one line naming the file, never folded into a metric.

Audio with NaN/Inf samples or float samples beyond full scale; trial lists with self-trials,
repeated pairs, contradictory labels or labels that contradict the speaker folders; folders
that cannot be read (a broken link, a link loop, a read error injected into os.scandir, since
root reads a chmod 000 folder); text files that are not UTF-8. Each guard also has its
must-not-fire test on the real shared data.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from graphkit.cli import main
from graphkit.data.audio import FULL_SCALE_TOLERANCE, audio_files, ecapa_features, read_audio
from graphkit.data.datasets import load_speaker_dataset, load_spoof_dataset, read_trials
from graphkit.data.samples import row_from_audio
from graphkit.data.scorefiles import read_asv_scores, read_cm_protocol, read_cm_scores
from graphkit.errors import DataError

ROOT = Path(__file__).resolve().parent.parent
ECAPA = str(ROOT / "recipes" / "ecapa.yaml")


def tone(path: Path, *, gain: float = 0.1, n: int = 16000, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    y = gain * np.sin(2 * np.pi * 220 * np.arange(n) / 16000)
    sf.write(path, y.astype(np.float32), 16000, subtype=subtype)
    return path


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if line.startswith("graphkit: error: ")]
    assert len(errors) == 1 and "Traceback" not in "".join(lines), lines
    return errors[0]


# --- audio samples ------------------------------------------------------------------------------


def test_nan_and_inf_samples_are_refused(tmp_path: Path) -> None:
    y = np.full(1600, 0.1, dtype=np.float32)
    y[[3, 7]] = np.nan
    y[9] = np.inf
    path = tmp_path / "x.wav"
    sf.write(path, y, 16000, subtype="FLOAT")
    with pytest.raises(DataError, match=r"x\.wav: 3 of 1600 samples are not finite \(2 NaN, 1 Inf\)"):
        read_audio(path)
    with pytest.raises(DataError, match="not finite"):  # and so every feature extractor
        ecapa_features(path)
    with pytest.raises(DataError, match="not finite"):
        row_from_audio(path, "waveform_64600", (64600,))


@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
def test_float_wav_beyond_full_scale_is_refused(tmp_path: Path, subtype: str) -> None:
    path = tone(tmp_path / "loud.wav", gain=5.0, subtype=subtype)  # ×50 of a 0.1 tone
    with pytest.raises(
        DataError, match=r"loud\.wav: \d+ of 16000 float samples exceed full scale \(peak 5\b"
    ):
        read_audio(path)
    y = np.zeros(1600, dtype=np.float32)
    y[10] = 1.001
    sf.write(path, y, 16000, subtype=subtype)
    with pytest.raises(
        DataError, match=r"1 of 1600 float samples exceed full scale \(peak 1\.001, at most 1\.0"
    ):
        read_audio(path)


def test_full_scale_and_a_tiny_overshoot_are_read(tmp_path: Path) -> None:
    """Must not fire: int16 full scale (−32768 → −1.0) and a float overshoot within tolerance."""
    pcm = tmp_path / "pcm.wav"
    sf.write(pcm, np.array([-32768, 32767, 0] * 100, dtype=np.int16), 16000, subtype="PCM_16")
    assert read_audio(pcm).min() == -1.0
    y = np.zeros(1600, dtype=np.float32)
    y[5], y[6] = 1.0 + FULL_SCALE_TOLERANCE / 2, -1.0
    sf.write(tmp_path / "f.wav", y, 16000, subtype="FLOAT")
    assert read_audio(tmp_path / "f.wav")[5] == np.float32(1.0 + FULL_SCALE_TOLERANCE / 2)


def test_real_audio_passes_the_sample_checks(librispeech: Path, shared: Path) -> None:
    files = audio_files(librispeech) + audio_files(shared / "data" / "tts-synthetic-spoof-en")
    assert len(files) == 180
    for path in files:
        assert np.abs(read_audio(path)).max() <= 1.0


def test_eval_refuses_a_loud_float_wav_and_writes_no_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ecapa_bs1: Path
) -> None:
    data = tmp_path / "d"
    for spk in ("a", "b"):
        for i in range(2):
            tone(data / spk / f"{i}.wav", n=40000)
    tone(data / "b" / "1.wav", gain=5.0, n=40000, subtype="FLOAT")
    out = tmp_path / "o"
    args = ["eval", ECAPA, "--data", str(data), "--models", str(ecapa_bs1), "--batch", "1"]
    assert main([*args, "--runner", "graphkit", "-o", str(out)]) == 2
    line = one_line_error(capsys)
    assert "b/1.wav" in line and "exceed full scale (peak 5" in line
    assert not out.exists()  # no report folder
    pre = tmp_path / "pre"
    assert main(["preprocess", ECAPA, "--data", str(data), "--batch", "1", "-o", str(pre)]) == 2
    assert "exceed full scale" in one_line_error(capsys)
    assert not (pre / "index.json").exists()


# --- trial lists --------------------------------------------------------------------------------


def speakers(root: Path) -> list[str]:
    """Two speakers of three utterances each; returns their ids a/0.wav … b/2.wav."""
    ids = [f"{s}/{i}.wav" for s in "ab" for i in range(3)]
    for uid in ids:
        tone(root / uid, n=160)
    return ids


GOOD = ["1 a/0.wav a/1.wav", "0 a/0.wav b/0.wav", "1 b/1.wav b/2.wav", "0 a/2.wav b/2.wav"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["1 a/1.wav a/1.wav", "0 b/2.wav b/2.wav"],
            r"2 self-trials \(enroll and test are the same file\), at lines 5 and 6",
        ),
        (["1 a/0.wav a/1.wav"] * 2, r"2 trials repeat an earlier one, first at lines 1 and 5"),
        (["1 a/0.wav b/0.wav"], r"1 pairs labelled both target and non-target, first at lines 2 and 5"),
        (["1 b/0.wav a/0.wav"], r"1 pairs labelled both target and non-target, first at lines 2 and 5"),
    ],
)
def test_bad_trial_lists_are_refused(tmp_path: Path, extra: list[str], message: str) -> None:
    speakers(tmp_path)
    (tmp_path / "trials.txt").write_text("\n".join(GOOD + extra) + "\n")
    with pytest.raises(DataError, match=r"trials\.txt: " + message):
        read_trials(tmp_path / "trials.txt")
    with pytest.raises(DataError, match=message):
        load_speaker_dataset(tmp_path)


def test_a_swapped_repeat_is_kept_and_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    speakers(tmp_path)
    (tmp_path / "trials.txt").write_text("\n".join([*GOOD, "1 a/1.wav a/0.wav"]) + "\n")
    with caplog.at_level(logging.WARNING, logger="graphkit"):
        assert len(load_speaker_dataset(tmp_path).trials) == 5
    assert "1 trials repeat an earlier pair in swapped order (first at lines 1 and 5); kept" in caplog.text


@pytest.mark.parametrize(
    ("line", "said", "truth"),
    [("0 a/0.wav a/2.wav", "non-target", "the same speaker folder"), ("1 a/1.wav b/1.wav", "target", "two")],
)
def test_labels_that_contradict_the_speaker_folders_are_refused(
    tmp_path: Path, line: str, said: str, truth: str
) -> None:
    speakers(tmp_path)
    (tmp_path / "trials.txt").write_text("\n".join([*GOOD, line]) + "\n")
    with pytest.raises(
        DataError,
        match=rf"trials\.txt: 1 trials contradict the speaker folders, at line 5 \(the first is labelled {said}",
    ) as err:
        load_speaker_dataset(tmp_path)
    assert truth in str(err.value)
    read_trials(tmp_path / "trials.txt")  # the list alone knows no speakers: fine


def test_eval_refuses_a_repeated_trial_and_writes_no_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ecapa_bs1: Path
) -> None:
    data = tmp_path / "d"
    speakers(data)
    (data / "trials.txt").write_text("\n".join([*GOOD, *GOOD[:1] * 50]) + "\n")  # one trial ×51
    out = tmp_path / "o"
    args = ["eval", ECAPA, "--data", str(data), "--models", str(ecapa_bs1), "--batch", "1"]
    assert main([*args, "--runner", "graphkit", "-o", str(out)]) == 2
    assert "50 trials repeat an earlier one, first at lines 1 and 5" in one_line_error(capsys)
    assert not out.exists()  # no report folder


@pytest.mark.parametrize("name", ["veri_test.txt", "veri_test2.txt"])
def test_the_official_voxceleb_lists_pass(shared: Path, name: str, caplog: pytest.LogCaptureFixture) -> None:
    """Must not fire: no self-trial, repeat or conflict; their 338/337 swapped pairs are kept."""
    with caplog.at_level(logging.WARNING, logger="graphkit"):
        trials = read_trials(shared / "data" / "voxceleb" / name)
    assert len(trials) in (37720, 37611)
    assert "in swapped order" in caplog.text


def test_the_librispeech_trials_pass(librispeech: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="graphkit"):
        ds = load_speaker_dataset(librispeech, trials=librispeech / "trials_all_pairs.txt")
    assert len(ds.trials) > 0 and "swapped" not in caplog.text


# --- folders that cannot be read ----------------------------------------------------------------


def test_a_folder_that_cannot_be_read_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """root reads a chmod 000 folder, so the read error is injected where os.walk meets it."""
    speakers(tmp_path)
    real = os.scandir

    def scandir(path):  # noqa: ANN001, ANN202 - os.scandir's own signature
        if Path(path).name == "b":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(
        DataError, match=r"/b: cannot read the folder \(Permission denied\); its audio would be left out"
    ):
        load_speaker_dataset(tmp_path)
    with pytest.raises(DataError, match="cannot read the folder"):
        load_spoof_dataset([(tmp_path, "bonafide")])


def test_broken_links_and_link_loops_are_errors(tmp_path: Path) -> None:
    speakers(tmp_path / "d")
    (tmp_path / "d" / "c").symlink_to(tmp_path / "unmounted" / "c")  # a speaker folder gone
    with pytest.raises(DataError, match=r"d/c: broken symbolic link \(to .*unmounted/c\)"):
        load_speaker_dataset(tmp_path / "d")
    (tmp_path / "d" / "c").unlink()
    (tmp_path / "d" / "a" / "loop").symlink_to(tmp_path / "d" / "a")
    with pytest.raises(DataError, match=r"a/loop: the same folder as .*/a \(a symbolic link loop"):
        load_speaker_dataset(tmp_path / "d")


def test_a_linked_speaker_folder_is_read(tmp_path: Path) -> None:
    """Must not fire, and a fix: os.walk's default silently dropped a linked speaker folder."""
    speakers(tmp_path / "elsewhere")
    root = tmp_path / "d"
    root.mkdir()
    for spk in ("a", "b"):
        (root / spk).symlink_to(tmp_path / "elsewhere" / spk)
    ds = load_speaker_dataset(root)
    assert [u.id for u in ds.utterances] == [f"{s}/{i}.wav" for s in "ab" for i in range(3)]


# --- text files that are not UTF-8 --------------------------------------------------------------


def test_a_labels_tsv_that_is_not_utf8_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tone(tmp_path / "s" / "x.wav")
    (tmp_path / "s" / "labels.tsv").write_bytes("file\tlabel\nx.wav\tspoof\n# caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"labels\.tsv:3: the labels table is not UTF-8 text \(byte 0xe9\)"):
        load_spoof_dataset([(tmp_path / "s", None)])
    pre = tmp_path / "pre"
    aasist = str(ROOT / "recipes" / "aasist.yaml")
    assert main(["preprocess", aasist, "--data", str(tmp_path / "s"), "--batch", "1", "-o", str(pre)]) == 2
    assert "labels.tsv:3: the labels table is not UTF-8 text" in one_line_error(capsys)
    assert not (pre / "index.json").exists()


def test_a_labels_tsv_with_a_bom_is_read(tmp_path: Path) -> None:
    """Must not fire: a spreadsheet's UTF-8 BOM before the header."""
    tone(tmp_path / "s" / "x.wav")
    (tmp_path / "s" / "labels.tsv").write_text("\ufefffile\tlabel\nx.wav\tspoof\n", encoding="utf-8")
    assert [u.label for u in load_spoof_dataset([(tmp_path / "s", None)]).utterances] == ["spoof"]


@pytest.mark.parametrize("reader", [read_trials, read_cm_protocol, read_cm_scores, read_asv_scores])
def test_other_text_files_that_are_not_utf8_are_data_errors(tmp_path: Path, reader) -> None:  # noqa: ANN001
    path = tmp_path / "list.txt"
    path.write_bytes(b"1 a b\n\xff\xfe\n")
    with pytest.raises(DataError, match=r"list\.txt: .*can't decode byte 0xff"):
        reader(path)
