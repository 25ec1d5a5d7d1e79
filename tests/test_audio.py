"""graphkit.data.audio: reading audio and the ECAPA guide's log-mel features (seed-models.md §4.3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from graphkit.data.audio import (
    ecapa_features,
    fixed_frames,
    logmel,
    mel_filterbank,
    read_audio,
)
from graphkit.errors import DataError

SILENCE = np.log(1e-5) / 6 + 1  # the log floor after normalisation, ≈ −0.919


def _speech_like(n: int, seed: int = 0) -> np.ndarray:
    """Seeded test signal: two tones, a chirp and noise, within [−1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * (300 + 2000 * t) * t)
    return (x + 0.05 * rng.standard_normal(n)).astype(np.float32)


def _reference_logmel(wave: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """The same features written the slow, obvious way: explicit padding, one frame at a time."""
    x = wave.astype(np.float64)
    padded = np.concatenate([x[200:0:-1], x, x[-2:-202:-1]])  # reflect, 200 each side
    window = np.hanning(401)[:-1]  # periodic Hann of 400 = symmetric Hann of 401 minus its end
    columns = []
    for start in range(0, len(padded) - 400 + 1, 160):
        spectrum = np.fft.fft(padded[start : start + 400] * window)[:201]
        columns.append(np.log(np.maximum(bank @ np.abs(spectrum), 1e-5)) / 6 + 1)
    return np.stack(columns, axis=1)


# --- the mel filterbank ----------------------------------------------------------------------


def test_mel_filterbank_matches_librosa():
    librosa = pytest.importorskip("librosa")
    want = librosa.filters.mel(sr=16000, n_fft=400, n_mels=80, fmin=0, fmax=8000)
    got = mel_filterbank()
    assert got.shape == (80, 201)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)


def test_mel_filterbank_shape_and_support():
    bank = mel_filterbank()
    assert bank.shape == (80, 201) and not bank.flags.writeable
    assert (bank >= 0).all() and (bank.max(axis=1) > 0).all()  # no empty band
    peaks = bank.argmax(axis=1)
    assert (np.diff(peaks) >= 0).all() and peaks[-1] <= 200  # bands rise in frequency


# --- logmel ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [16000, 16159, 16160, 20817])
def test_logmel_matches_a_frame_by_frame_computation(n):
    try:
        import librosa  # an independent filterbank where available

        bank = librosa.filters.mel(sr=16000, n_fft=400, n_mels=80, fmin=0, fmax=8000)
    except ImportError:
        bank = mel_filterbank()
    wave = _speech_like(n)
    got = logmel(wave)
    want = _reference_logmel(wave, bank.astype(np.float64))
    assert got.dtype == np.float32 and got.shape == (80, 1 + n // 160) == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_logmel_of_silence_is_the_log_floor():
    feat = logmel(np.zeros(16000, dtype=np.float32))
    assert feat.shape == (80, 101)
    np.testing.assert_allclose(feat, SILENCE, rtol=1e-6)


@pytest.mark.parametrize("wave", [np.zeros(0), np.zeros((2, 1600))])
def test_logmel_rejects_non_waveforms(wave):
    with pytest.raises(DataError, match="1-D waveform"):
        logmel(wave)


# --- fixed_frames ----------------------------------------------------------------------------


def _ramp(frames: int) -> np.ndarray:
    return np.tile(np.arange(frames, dtype=np.float32), (80, 1))  # value = frame index


def test_fixed_frames_centre_crop():
    out = fixed_frames(_ramp(301))
    assert out.shape == (1, 80, 200) and out.dtype == np.float32
    assert out[0, 0, 0] == 50 and out[0, 0, -1] == 249  # offset (301 − 200) // 2


def test_fixed_frames_evenly_spaced_crops():
    out = fixed_frames(_ramp(500), 200, crops=4)
    assert out.shape == (4, 80, 200)
    assert out[:, 0, 0].tolist() == [0, 100, 200, 300]  # first at 0, last ends at frame 500
    assert out[-1, 0, -1] == 499


def test_fixed_frames_tiles_short_utterances():
    feat = _ramp(70)
    out = fixed_frames(feat, 200, crops=3)
    assert out.shape == (3, 80, 200)
    expected = feat[:, np.arange(200) % 70]  # the whole utterance repeated along time
    assert all(np.array_equal(crop, expected) for crop in out)


def test_fixed_frames_exact_length_is_unchanged():
    feat = _ramp(200)
    assert np.array_equal(fixed_frames(feat, crops=2), np.stack([feat, feat]))


def test_fixed_frames_rejects_bad_arguments():
    with pytest.raises(DataError):
        fixed_frames(np.zeros((80, 0)))
    with pytest.raises(ValueError, match="positive"):
        fixed_frames(_ramp(300), 200, crops=0)


# --- read_audio ------------------------------------------------------------------------------


def _write(path: Path, data: np.ndarray, rate: int = 16000, subtype: str = "PCM_16") -> Path:
    sf.write(path, data, rate, subtype=subtype)
    return path


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_read_audio_scales_pcm16_like_the_guide(tmp_path, suffix):
    ints = np.array([0, 1, -1, 16384, -32768, 32767], dtype=np.int16)
    path = tmp_path / f"x{suffix}"
    sf.write(path, ints, 16000, subtype="PCM_16")
    wave = read_audio(path)
    assert wave.dtype == np.float32 and wave.shape == (6,)
    np.testing.assert_array_equal(wave, ints / np.float32(32768))  # int16 / 32768


def test_read_audio_averages_stereo(tmp_path):
    left, right = _speech_like(1600, 1), _speech_like(1600, 2)
    stereo = np.stack([left, right], axis=1)
    path = _write(tmp_path / "stereo.wav", stereo, subtype="FLOAT")
    np.testing.assert_allclose(read_audio(path), (left + right) / 2, atol=1e-7)


def test_read_audio_missing_file(tmp_path):
    path = tmp_path / "nope.wav"
    with pytest.raises(DataError, match="not found") as info:
        read_audio(path)
    assert str(path) in str(info.value)


def test_read_audio_not_audio(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n")
    with pytest.raises(DataError, match="cannot decode") as info:
        read_audio(path)
    assert str(path) in str(info.value)


def test_read_audio_wrong_sample_rate(tmp_path):
    path = _write(tmp_path / "phone.wav", _speech_like(8000), rate=8000)
    with pytest.raises(DataError) as info:
        read_audio(path)
    message = str(info.value)
    assert str(path) in message and "is 8000 Hz" in message and "does not resample" in message
    assert "sox in.wav -r 16000 out.wav" in message


def test_read_audio_empty_file(tmp_path):
    path = _write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32))
    with pytest.raises(DataError, match="no samples"):
        read_audio(path)


def test_short_and_silent_files_end_to_end(tmp_path):
    short = _write(tmp_path / "short.wav", _speech_like(4000))  # 0.25 s: 26 frames
    feat = ecapa_features(short)
    assert feat.shape == (1, 80, 200)
    np.testing.assert_array_equal(feat[0], feat[0][:, np.arange(200) % 26])  # tiled
    silent = _write(tmp_path / "silent.wav", np.zeros(32000, dtype=np.float32))
    np.testing.assert_allclose(ecapa_features(silent, crops=2), SILENCE, rtol=1e-6)


# --- real speech -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def speech_files(librispeech: Path) -> list[Path]:
    files = sorted(librispeech.glob("*/*.flac"))
    assert len(files) == 100
    first_of_each = {}
    for f in files:
        first_of_each.setdefault(f.parent.name, f)
    return list(first_of_each.values())  # one utterance of each of the 10 speakers


def test_real_speech_features(speech_files):
    for path in speech_files:
        wave = read_audio(path)
        assert wave.dtype == np.float32 and wave.ndim == 1 and len(wave) >= 2 * 16000
        assert 0.01 < np.abs(wave).max() <= 1.0
        feat = logmel(wave)
        assert feat.shape == (80, 1 + len(wave) // 160)
        assert np.isfinite(feat).all()
        assert feat.min() >= SILENCE - 1e-6 and feat.max() < 2.0
        assert feat.max() - feat.min() > 1.0  # speech and pauses: a real dynamic range
        crops = ecapa_features(path, crops=3)
        assert crops.shape == (3, 80, 200) and crops.dtype == np.float32
        np.testing.assert_array_equal(crops[0], feat[:, :200])
        np.testing.assert_array_equal(crops[-1], feat[:, -200:])


def test_real_speech_is_deterministic_and_matches_the_reference(speech_files):
    path = speech_files[0]
    first = ecapa_features(path)
    assert np.array_equal(first, ecapa_features(path))
    assert first.shape == (1, 80, 200)
    wave = read_audio(path)
    want = _reference_logmel(wave, mel_filterbank())
    np.testing.assert_allclose(logmel(wave), want, rtol=0, atol=1e-5)


def test_cropped_features_equal_the_crop_of_the_whole_spectrogram(librispeech):
    from graphkit.data.audio import ecapa_features, fixed_frames, logmel, read_audio

    for path in sorted(librispeech.rglob("*.flac"))[::30]:
        for crops in (1, 3):
            whole = fixed_frames(logmel(read_audio(path)), 200, crops=crops)
            np.testing.assert_allclose(ecapa_features(path, crops=crops), whole, atol=1e-5)
