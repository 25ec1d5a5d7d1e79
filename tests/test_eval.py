"""graphkit eval / bench / preprocess end to end on the real shared data.

ECAPA (seeded weights) and AASIST-L (published weights) with torch, the plain export and
graphkit's output: the task's metric agrees to 4 decimals at every batch size. Outputs written
in the NPU hosts' layouts (msame TXT, ais_bench BIN) give back the same metric.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from graphkit.cli import main

ROOT = Path(__file__).resolve().parent.parent
ECAPA = str(ROOT / "recipes" / "ecapa.yaml")
AASIST = str(ROOT / "recipes" / "aasist.yaml")
pytest.importorskip("torch")


def read_report(out: Path) -> dict:
    report = json.loads((out / "latest" / "eval.json").read_text())  # this run's folder
    assert (out / "latest" / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return report


def assert_metric_agrees(report: dict, batches: list[int]) -> None:
    metric = report["main_metric"]
    ref = report["results"][0]
    assert ref["runner"] == "torch"
    seen = {r["batch"] for r in report["results"]}
    assert set(batches) <= seen
    for r in report["results"]:
        for name, value in r["metrics"].items():
            assert abs(value - ref["metrics"][name]) < 5e-5, (r["runner"], name)  # 4 decimals
        if r is not ref:
            assert r["agreement"]["max_abs_score_delta"] <= 1e-4
    assert metric in ref["metrics"]


@pytest.mark.slow  # the data fixture first: without the data it skips before six models are built
def test_ecapa_eval_every_batch_size(librispeech, ecapa_emitted, tmp_path, capsys):
    out = tmp_path / "eval"
    args = [
        "-q",
        "eval",
        ECAPA,
        "--data",
        str(librispeech),
        "--models",
        str(ecapa_emitted),
        "--limit",
        "12",  # bs4: full batches; bs8: a padded last batch; from bs16: one padded batch
        "-o",
        str(out),
    ]
    assert main(args) == 0
    report = read_report(out)
    assert report["trials"] > 0 and report["main_metric"] == "eer_percent"
    assert_metric_agrees(report, [1, 4, 8, 16, 32, 64])
    for r in report["results"][1:]:
        assert r["agreement"]["min_cosine"] >= 0.99999
    table = capsys.readouterr().out
    assert "torch" in table and "export" in table and "graphkit" in table


@pytest.mark.slow
def test_aasist_eval_at_several_batch_sizes(aasist_emitted, aasist_weights, shared, tmp_path):
    # bs1 (8 batches), bs4 (2, full) and bs16 (1, padded) cover what eval does per batch size; the
    # bs64 model is checked on real audio by the session's apply itself (against the export), and
    # one bs64 AASIST-L run alone takes 24 s here (12 GB of activations), so eval does not repeat it
    data = shared / "data"
    out = tmp_path / "eval"
    args = [
        "-q",
        "eval",
        AASIST,
        "--data",
        f"{data / 'librispeech-test-other-10spk'}=bonafide",
        "--data",
        str(data / "tts-synthetic-spoof-en"),
        "--models",
        str(aasist_emitted),
        "--weights",
        str(aasist_weights),
        "--limit",
        "8",
        "--batch",
        "1,4,16",
        "-o",
        str(out),
    ]
    assert main(args) == 0
    report = read_report(out)
    assert report["main_metric"] == "eer_percent"
    assert_metric_agrees(report, [1, 4, 16])


def write_npu_outputs(models: Path, preprocessed: Path, out: Path, layout: str) -> None:
    """Run the bs4 model on the preprocessed batches with onnxruntime and write its outputs as
    msame (TXT) or ais_bench (BIN) would on an NPU host."""
    from graphkit.data.preprocess import read_index
    from graphkit.ir.ort import session

    index = read_index(preprocessed)
    sess = session(models / "ecapa_tdnn_bs4.onnx")
    stamp = out / ("20240101_120000" if layout == "txt" else "2024_01_01-12_00_00")
    stamp.mkdir(parents=True)
    for b in index.batches:
        x = np.fromfile(preprocessed / "mel" / f"{b.key}.bin", dtype=np.float32).reshape(4, 80, 200)
        for i, y in enumerate(sess.run(None, {"mel": x})):
            if layout == "txt":
                np.savetxt(stamp / f"{b.key}_output_{i}.txt", y.reshape(y.shape[0], -1), fmt="%.9g")
            else:
                y.astype(np.float32).tofile(stamp / f"{b.key}_{i}.bin")


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["txt", "bin"])
def test_files_runner_gives_the_same_metric(librispeech, ecapa_emitted, tmp_path, layout):
    pre = tmp_path / "input_bs4"
    common = ["--data", str(librispeech), "--limit", "12"]  # 12 utterances: 3 batches of 4
    assert main(["-q", "preprocess", ECAPA, *common, "--batch", "4", "-o", str(pre)]) == 0
    assert sorted(p.name for p in (pre / "mel").iterdir()) == [f"mel{k}.bin" for k in range(3)]
    results = tmp_path / "result"
    write_npu_outputs(ecapa_emitted, pre, results, layout)
    out = tmp_path / "eval"
    args = [
        "-q",
        "eval",
        ECAPA,
        *common,
        "--models",
        str(ecapa_emitted),
        "--batch",
        "4",
        "--runner",
        "graphkit",
        "--runner",
        f"files={results}",
        "-o",
        str(out),
    ]
    assert main(args) == 0
    report = read_report(out)
    graphkit_run, files_run = report["results"]
    assert files_run["runner"] == "files bs4"
    for name, value in graphkit_run["metrics"].items():
        assert abs(files_run["metrics"][name] - value) < 5e-5
    assert files_run["agreement"]["max_abs_score_delta"] <= 1e-5


@pytest.mark.slow
def test_bench_writes_table_json_and_plot(ecapa_emitted, tmp_path, capsys):
    out = tmp_path / "bench"
    args = [
        "-q",
        "bench",
        ECAPA,
        "--models",
        str(ecapa_emitted),
        "--batch",
        "1,4",
        "--loops",
        "2",
        "--warmup",
        "1",
        "-o",
        str(out),
    ]
    assert main(args) == 0
    report = json.loads((out / "latest" / "bench.json").read_text())
    assert {(r["runner"], r["batch"]) for r in report["rows"]} == {
        ("export", 1),
        ("export", 4),
        ("graphkit", 1),
        ("graphkit", 4),
    }
    for r in report["rows"]:
        assert r["throughput"] == pytest.approx(1000 * r["batch"] / r["mean_ms"])
        assert r["p50_ms"] <= r["p99_ms"]
    assert (out / "latest" / "bench.png").read_bytes()[:4] == b"\x89PNG"
    assert "graphkit/export" in capsys.readouterr().out


def one_line_error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if line.startswith("graphkit: error: ")]
    assert len(errors) == 1 and "Traceback" not in "".join(lines), lines
    return errors[0]


def tone(path: Path, seconds: float, rate: int = 16000, channels: int = 1) -> None:
    t = np.arange(int(seconds * rate)) / rate
    y = 0.1 * np.sin(2 * np.pi * 220 * t)
    sf.write(path, np.stack([y] * channels, axis=1) if channels > 1 else y, rate)


def fake_speakers(root: Path, *, rate: int = 16000, seconds: float = 2.5) -> Path:
    for spk in ("a", "b"):
        (root / spk).mkdir(parents=True)
        for i in range(2):
            tone(root / spk / f"{i}.wav", seconds, rate)
    return root


@pytest.mark.parametrize(
    "setup, needle",
    [
        (lambda d: d / "missing", "missing"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "empty"),
        (lambda d: fake_speakers(d / "sr", rate=8000), "8000 Hz"),
        (
            lambda d: (fake_speakers(d / "tr"), (d / "tr" / "trials.txt").write_text("1 a/0.wav c/9.wav\n"))[
                0
            ],
            "c/9.wav",
        ),
    ],
)
def test_bad_dataset_input_is_one_clear_line(tmp_path, capsys, ecapa_bs1, setup, needle):
    data = setup(tmp_path)
    args = [
        "eval",
        ECAPA,
        "--data",
        str(data),
        "--models",
        str(ecapa_bs1),
        "--batch",
        "1",
        "--runner",
        "graphkit",
        "-o",
        str(tmp_path / "o"),
    ]
    assert main(args) == 2
    assert needle in one_line_error(capsys)


def test_too_short_and_stereo_audio_are_handled_as_documented(tmp_path, ecapa_bs1):
    root = tmp_path / "d"
    for spk in ("a", "b"):
        (root / spk).mkdir(parents=True)
        tone(root / spk / "short.wav", 0.5)  # 51 frames: tiled to 200
        tone(root / spk / "stereo.wav", 2.5, channels=2)  # channels averaged
    args = [
        "-q",
        "eval",
        ECAPA,
        "--data",
        str(root),
        "--models",
        str(ecapa_bs1),
        "--batch",
        "1",
        "--runner",
        "graphkit",
        "-o",
        str(tmp_path / "o"),
    ]
    assert main(args) == 0


def test_eval_usage_errors(tmp_path, capsys):
    assert main(["eval", ECAPA, "--data", str(tmp_path), "--runner", "tensorflow"]) == 2
    assert "unknown runner 'tensorflow'" in one_line_error(capsys)
    assert main(["eval", ECAPA, "--data", f"{tmp_path}=genuine"]) == 2
    assert "bonafide or spoof" in one_line_error(capsys)
