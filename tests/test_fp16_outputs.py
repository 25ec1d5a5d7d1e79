"""float16 NPU outputs: what an om built with force_fp16 (ATC's default) writes unless
--output_type FP32 is set. The files runner reads them as fp16 (by size, by dtype=float16, or
from an NPY file's own dtype) and widens them to float32; before, a float32 model's fp16 BIN
file was half the expected size and refused as a shape mismatch.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from test_golden import make_golden

from graphkit.cli import main
from graphkit.data.golden import load_golden
from graphkit.debug.compare_run import compare_paths
from graphkit.errors import DataError, UsageError
from graphkit.runners.files import FilesRunner
from graphkit.runners.select import RunnerChoice, parse_runner

ROOT = Path(__file__).resolve().parent.parent
ECAPA = str(ROOT / "recipes" / "ecapa.yaml")
KW = {"output_names": ["emb", "score"], "output_shapes": {"emb": (4, 3), "score": (2,)}}


def outputs(batch: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"emb": rng.standard_normal((batch, 4, 3)), "score": rng.standard_normal((batch, 2))}


def write(folder: Path, key: str, values: dict[str, np.ndarray], dtype: str, fmt: str = "bin") -> Path:
    stamp = folder / "2024_01_01-12_00_00"
    stamp.mkdir(parents=True, exist_ok=True)
    for i, v in enumerate(values.values()):
        if fmt == "npy":
            np.save(stamp / f"{key}_{i}.npy", v.astype(dtype))
        else:
            v.astype(f"<{np.dtype(dtype).str[1:]}").tofile(stamp / f"{key}_{i}.bin")
    return folder


def test_fp16_bin_files_are_known_by_their_size(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    want = outputs()
    write(tmp_path, "mel0", want, "float16")
    with caplog.at_level(logging.WARNING, logger="graphkit"):
        r = FilesRunner(tmp_path, **KW, batch=2)
        got = r.infer({}, key="mel0")
    for name, v in want.items():
        assert got[name].dtype == np.float32 and got[name].shape == v.shape
        np.testing.assert_array_equal(got[name], v.astype(np.float16).astype(np.float32))
    assert r.fp16_outputs == {"emb", "score"}
    assert "output 'emb' is float16 (an om built with force_fp16 writes float16 outputs" in caplog.text
    assert caplog.text.count("'emb' is float16") == 1  # once per output, not once per batch
    r.infer({}, key="mel0")
    assert caplog.text.count("'emb' is float16") == 1


def test_fp32_files_stay_fp32(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Must not fire: float32 files of the batch's size are float32, and nothing is said."""
    want = outputs()
    write(tmp_path, "mel0", want, "float32")
    with caplog.at_level(logging.WARNING, logger="graphkit"):
        r = FilesRunner(tmp_path, **KW, batch=2)
        got = r.infer({}, key="mel0")
    np.testing.assert_array_equal(got["emb"], want["emb"].astype(np.float32))
    assert r.fp16_outputs == set() and "float16" not in caplog.text


def test_dtype_float16_reads_fp16_without_a_batch(tmp_path: Path) -> None:
    want = outputs(3)
    write(tmp_path, "mel0", want, "float16")
    r = FilesRunner(tmp_path, **KW, dtype="float16")
    got = r.infer({}, key="mel0")
    assert got["emb"].shape == (3, 4, 3) and got["emb"].dtype == np.float32
    np.testing.assert_array_equal(got["score"], want["score"].astype(np.float16).astype(np.float32))


def test_fp16_npy_files_are_widened(tmp_path: Path) -> None:
    write(tmp_path, "mel0", outputs(), "float16", fmt="npy")
    r = FilesRunner(tmp_path, **KW, batch=2)
    assert r.infer({}, key="mel0")["emb"].dtype == np.float32 and r.fp16_outputs == {"emb", "score"}


def test_a_folder_mixing_fp16_and_fp32_files_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "mel0", outputs(), "float32")
    write(tmp_path, "mel1", outputs(), "float16")
    r = FilesRunner(tmp_path, **KW, batch=2)
    r.infer({}, key="mel0")
    with pytest.raises(
        DataError, match=r"mel1_0\.bin: output 'emb' is float16 here but float32 in .*mel0_0\.bin"
    ):
        r.infer({}, key="mel1")


def test_a_size_that_fits_no_dtype_names_fp16(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    np.zeros(3, np.float16).tofile(tmp_path / "t" / "mel0_0.bin")  # 6 bytes
    with pytest.raises(
        DataError, match=r"6 bytes is not a whole number of float32 values .*--runner files=DIR,dtype=float16"
    ):
        FilesRunner(tmp_path, output_names=["emb"], output_shapes=[(3,)]).infer({}, key="mel0")


# --- --runner files=DIR,dtype=float16 -----------------------------------------------------------


def test_parse_runner_files_options(tmp_path: Path) -> None:
    choice = parse_runner("files=out/npu,dtype=float16")
    assert choice == RunnerChoice("files", "out/npu", (("dtype", "float16"),))
    assert str(choice) == "files=out/npu,dtype=float16"
    both = parse_runner("files=out/npu,fmt=npy,dtype=float32")
    assert both.arg == "out/npu" and both.options == (("fmt", "npy"), ("dtype", "float32"))
    assert parse_runner("files=out/npu") == RunnerChoice("files", "out/npu")
    odd = tmp_path / "run,dtype=float16"  # a folder that is named so exists: it stays whole
    odd.mkdir()
    assert parse_runner(f"files={odd}") == RunnerChoice("files", str(odd))
    assert parse_runner("files=a,b").arg == "a,b"  # a comma without key=value is the folder's


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("files=out,dtyp=float16", r"unknown option 'dtyp' \(options: dtype, fmt\).*dtype"),
        ("files=out,dtype=int8", r"dtype is one of float16, float32"),
        ("files=out,dtype=float16,dtype=float32", r"dtype given twice"),
        ("files=,dtype=float16", r"name the folder"),
    ],
)
def test_parse_runner_files_option_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_runner(text)


# --- end to end ---------------------------------------------------------------------------------


def test_compare_golden_against_fp16_npu_outputs(tmp_path: Path) -> None:
    """The golden's batch tells the fp16 files by their size; before: 'shape [2, 5] vs [1, 5]'."""
    path = make_golden(tmp_path / "bs2.npz")
    g = load_golden(path)
    write(tmp_path / "npu", g.key, g.outputs, "float16")
    report = compare_paths(path, tmp_path / "npu")
    assert [r.shape_candidate for r in report.rows] == [(2, 5), (2, 3)]
    assert all(not r.abnormal for r in report.rows)  # fp16 rounding is within msit's thresholds
    assert "float16 outputs, widened to float32: /head/Softmax_output_0, emb" in report.notes


def test_eval_reads_fp16_npu_outputs(
    librispeech: Path, ecapa_bs1: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`eval --runner files=DIR` on what a force_fp16 om writes: the metric, not a size error."""
    from graphkit.data.preprocess import read_index
    from graphkit.ir.ort import session

    common = ["--data", str(librispeech), "--limit", "12", "--batch", "1"]
    pre = tmp_path / "pre"
    assert main(["-q", "preprocess", ECAPA, *common, "-o", str(pre)]) == 0
    sess = session(ecapa_bs1 / "ecapa_tdnn_bs1.onnx")
    results = tmp_path / "result"
    for b in read_index(pre).batches:
        x = np.fromfile(pre / "mel" / f"{b.key}.bin", dtype=np.float32).reshape(1, 80, 200)
        write(results, b.key, dict(enumerate(sess.run(None, {"mel": x}))), "float16")
    out = tmp_path / "eval"
    runners = ["--runner", "graphkit", "--runner", f"files={results}"]
    assert main(["eval", ECAPA, *common, "--models", str(ecapa_bs1), *runners, "-o", str(out)]) == 0
    assert "is float16" in capsys.readouterr().err
    import json

    report = json.loads((out / "latest" / "eval.json").read_text())
    graphkit_run, files_run = report["results"]
    assert files_run["agreement"]["max_abs_score_delta"] <= 2e-3  # fp16 rounding of the embedding
    explicit = tmp_path / "eval2"
    runners[-1] += ",dtype=float16"
    assert (
        main(["-q", "eval", ECAPA, *common, "--models", str(ecapa_bs1), *runners, "-o", str(explicit)]) == 0
    )
