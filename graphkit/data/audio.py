"""Audio reading and the log-mel features of the ECAPA guide (seed-models.md §4.3), numpy only.

The guide computes features with Tacotron2's ``TacotronSTFT`` (torch) and a librosa mel basis;
this module computes the same numbers in float64 numpy and returns float32:

    x_t[n]  = w[n] · x[200 + 160·t + n − 200]   reflect-padded x, frames of 400, hop 160
    w[n]    = ½ − ½·cos(2πn / 400)               periodic Hann
    S[f, t] = |Σ_n x_t[n] · e^{−2πi·f·n/400}|    magnitude (not power), f = 0 … 200
    M[m, t] = Σ_f H[m, f] · S[f, t]              80 Slaney-normalised mel filters, 0–8000 Hz
    y[m, t] = ln(max(M[m, t], 1e-5)) / 6 + 1     maps [ln 1e-5, 0] ≈ [−11.5, 0] to ≈ [−0.92, 1]

Unlike the guide, crops are deterministic (:func:`fixed_frames`), never an unseeded random crop.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from graphkit.errors import DataError

SAMPLE_RATE = 16000
AUDIO_SUFFIXES = (".wav", ".flac")
N_FFT = 400  # filter length = window length: 25 ms
HOP = 160  # 10 ms
N_MELS = 80
FMIN, FMAX = 0.0, 8000.0
LOG_FLOOR = 1e-5  # log(max(x, 1e-5)): silence maps to ln(1e-5)/6 + 1 ≈ −0.919

# Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, logarithmic above.
_F_SP = 200.0 / 3  # Hz per mel in the linear part
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # = 15
_LOGSTEP = np.log(6.4) / 27.0  # mels per natural-log step above 1 kHz


def read_audio(path: str | os.PathLike[str], *, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read a wav/flac file as a float32 mono waveform in [−1, 1).

    Integer PCM is scaled by 1/32768 (16 bit), as the guide's ``int16 / 32768``. Multi-channel
    audio is averaged over its channels. Raises :class:`DataError` for a missing, undecodable
    or empty file, for any sample rate other than ``sample_rate`` (graphkit never resamples), and
    for samples that are NaN, infinite or beyond full scale (:func:`_check_samples`).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"audio file not found: {path}")
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise DataError(f"cannot decode audio file {path}: {str(exc).strip()}") from exc
    if rate != sample_rate:
        raise DataError(
            f"{path} is {rate} Hz; graphkit does not resample; convert it to {sample_rate} Hz "
            f"(e.g. sox in.wav -r {sample_rate} out.wav)"
        )
    if data.shape[0] == 0:
        raise DataError(f"audio file {path} holds no samples")
    _check_samples(data, path)
    if data.shape[1] == 1:
        return np.ascontiguousarray(data[:, 0])
    return data.mean(axis=1, dtype=np.float64).astype(np.float32)  # stereo -> mean of channels


# A float wav may overshoot full scale by this much and still be read. Integer PCM (and FLAC,
# always integer) decodes into [-1, 1) and cannot exceed it; a float file can hold anything. Two
# 16-bit steps (2/32768) cover what a float export of full-scale int16 audio picks up from
# dither or rounding, and are below the quantisation noise the models were trained with. A
# resampler's ringing on clipped audio or a wrong gain (×50 flips AASIST's decision) goes
# further and is refused: the user rescales or clips, graphkit does not guess which.
FULL_SCALE_TOLERANCE = 2.0 / 32768


def _check_samples(data: np.ndarray, path: Path) -> None:
    """Refuse NaN/Inf samples and float samples beyond full scale, instead of scoring them."""
    finite = np.isfinite(data)
    if not finite.all():
        nan = int(np.isnan(data).sum())
        inf = data.size - int(finite.sum()) - nan
        raise DataError(
            f"{path}: {data.size - int(finite.sum())} of {data.size} samples are not finite "
            f"({nan} NaN, {inf} Inf): the file is corrupt; re-export it from its source"
        )
    peak = float(np.abs(data).max())
    if peak > 1.0 + FULL_SCALE_TOLERANCE:
        over = int((np.abs(data) > 1.0 + FULL_SCALE_TOLERANCE).sum())
        raise DataError(
            f"{path}: {over} of {data.size} float samples exceed full scale (peak {peak:.6g}, "
            "at most 1.0 expected): rescale it to [-1, 1] (sox --norm in.wav out.wav) or convert "
            "it to 16-bit PCM"
        )


def audio_files(root: str | os.PathLike[str]) -> list[Path]:
    """The .wav/.flac files below ``root`` in walk order (folders and names sorted), hidden
    names skipped. Nothing is skipped silently: a folder that cannot be read, a broken symbolic
    link, or one folder reached twice (a symlink loop, two links to one speaker) is a DataError.
    Symbolic links to folders are followed: datasets are often assembled from links, and
    os.walk's default would drop a linked speaker folder without a word."""
    root = Path(root)
    found: list[Path] = []
    seen: dict[tuple[int, int], str] = {}

    def unreadable(exc: OSError) -> None:
        raise DataError(
            f"{exc.filename}: cannot read the folder ({exc.strerror or exc}); its audio would be "
            "left out: fix its permissions or remove it"
        )

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=True):
        st = os.stat(dirpath)
        first = seen.setdefault((st.st_dev, st.st_ino), dirpath)
        if first != dirpath:
            raise DataError(
                f"{dirpath}: the same folder as {first} (a symbolic link loop or two links to one "
                "folder); its audio would be read twice: remove one link"
            )
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            if not path.exists():  # os.walk lists a dangling link as a file, whatever it was
                raise DataError(
                    f"{path}: broken symbolic link (to {os.readlink(path)}): the file or folder "
                    "it names is missing; restore it or remove the link"
                )
            if name.lower().endswith(AUDIO_SUFFIXES):
                found.append(path)
    return found


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    # m = f / (200/3) below 1 kHz;  m = 15 + ln(f / 1000) / (ln 6.4 / 27) above
    hz = np.asarray(hz, dtype=np.float64)
    log_part = _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(hz >= _MIN_LOG_HZ, log_part, hz / _F_SP)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    # the inverse: f = (200/3)·m below 15 mel;  f = 1000 · exp((m − 15) · ln 6.4 / 27) above
    mel = np.asarray(mel, dtype=np.float64)
    log_part = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(mel, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(mel >= _MIN_LOG_MEL, log_part, mel * _F_SP)


@functools.lru_cache(maxsize=8)
def mel_filterbank(
    sample_rate: int = SAMPLE_RATE,
    n_fft: int = N_FFT,
    n_mels: int = N_MELS,
    fmin: float = FMIN,
    fmax: float = FMAX,
) -> np.ndarray:
    """Slaney mel filterbank, (n_mels, n_fft//2 + 1) float64, read-only; librosa's default.

    Band m is a triangle over FFT bin frequencies f with corners e_m < e_{m+1} < e_{m+2}, the
    n_mels + 2 points evenly spaced on the Slaney mel scale from fmin to fmax:
    H[m, f] = max(0, min((f − e_m)/(e_{m+1} − e_m), (e_{m+2} − f)/(e_{m+2} − e_{m+1}))),
    scaled by 2/(e_{m+2} − e_m) so every triangle has unit area (Slaney normalisation).
    """
    freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs - lower) / (centre - lower)
    falling = (upper - freqs) / (upper - centre)
    bank = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (upper - lower))
    bank.flags.writeable = False
    return bank


def _hann(n: int) -> np.ndarray:
    # periodic Hann (the DFT-even window, scipy's get_window("hann", n, fftbins=True))
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def logmel(wave: np.ndarray) -> np.ndarray:
    """The guide's normalised log-mel spectrogram of a 16 kHz mono waveform: (80, T) float32.

    T = 1 + len(wave) // 160. The steps and their equations are in the module docstring.
    """
    x = np.asarray(wave, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise DataError(f"logmel needs a non-empty 1-D waveform, got shape {x.shape}")
    padded = np.pad(x, N_FFT // 2, mode="reflect")  # 200 samples each side (n_fft // 2)
    return _logmel_of_padded(padded)


def _logmel_of_padded(padded: np.ndarray) -> np.ndarray:
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]  # (T, 400)
    magnitude = np.abs(np.fft.rfft(frames * _hann(N_FFT), axis=1))  # (T, 201)
    mel = mel_filterbank() @ magnitude.T  # (80, T)
    return (np.log(np.maximum(mel, LOG_FLOOR)) / 6.0 + 1.0).astype(np.float32)


def logmel_frames(wave: np.ndarray, start: int, count: int) -> np.ndarray:
    """Frames ``start`` .. ``start + count − 1`` of :func:`logmel` (80, count), computed from
    only the samples they need: frame t reads padded samples [160·t, 160·t + 400), i.e.
    original samples [160·t − 200, 160·t + 200). Where those lie inside the waveform no reflect
    padding is involved and the slice gives the same frames; at the edges it falls back to the
    whole utterance. A 200-frame crop of a 30 s utterance costs 1/15 of the full spectrogram."""
    x = np.asarray(wave, dtype=np.float64)
    lo, hi = start * HOP - N_FFT // 2, (start + count - 1) * HOP + N_FFT // 2
    if lo < 0 or hi > x.size or count < 1:
        return logmel(x)[:, start : start + count]
    return _logmel_of_padded(x[lo:hi])


def fixed_frames(feat: np.ndarray, frames: int = 200, *, crops: int = 1) -> np.ndarray:
    """Deterministic fixed-length crops of a (n_mels, T) feature: (crops, n_mels, frames).

    ``crops=1`` takes the centre crop (offset (T − frames) // 2). ``crops=N`` takes N evenly
    spaced crops, the first at frame 0 and the last ending at frame T, offsets rounded to whole
    frames. A feature shorter than ``frames`` is first tiled: the whole utterance is repeated
    along time and cut to ``frames``, so every crop of it is that same tiled copy.
    """
    feat = np.asarray(feat, dtype=np.float32)
    if feat.ndim != 2 or feat.shape[1] == 0:
        raise DataError(f"features must be (n_mels, T) with T > 0, got shape {feat.shape}")
    if frames < 1 or crops < 1:
        raise ValueError(f"frames and crops must be positive, got frames={frames} crops={crops}")
    length = feat.shape[1]
    if length < frames:
        feat = np.tile(feat, (1, -(-frames // length)))[:, :frames]
        length = frames
    if crops == 1:
        starts = [(length - frames) // 2]
    else:
        starts = np.rint(np.linspace(0, length - frames, crops)).astype(int).tolist()
    return np.stack([feat[:, s : s + frames] for s in starts])


def ecapa_features(path: str | os.PathLike[str], *, frames: int = 200, crops: int = 1) -> np.ndarray:
    """read_audio → logmel → fixed_frames: the ECAPA input (crops, 80, frames) float32.

    Only the cropped frames are computed (:func:`logmel_frames`); utterances shorter than
    ``frames`` are tiled as :func:`fixed_frames` documents."""
    wave = read_audio(path)
    length = 1 + len(wave) // HOP  # frames of the whole utterance
    if length < frames:
        return fixed_frames(logmel(wave), frames, crops=crops)
    if crops == 1:
        starts = [(length - frames) // 2]
    else:
        starts = np.rint(np.linspace(0, length - frames, crops)).astype(int).tolist()
    return np.stack([logmel_frames(wave, s, frames) for s in starts])
